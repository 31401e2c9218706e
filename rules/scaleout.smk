# Scale-out settings derived from the rules (HTCondor, REANA). Included last, after every rule exists:
# - localrules: the cheap bookkeeping rules run on the submit node (agc_ttbar.scaleout.LOCAL_RULES);
# - every rule's mem_mb also becomes htcondor_request_mem_mb (HTCondor request_memory; the executor
#   plugin ignores mem_mb) and kubernetes_memory_limit (REANA), after --set-resources and
#   --default-resources. request_cpus is the rule's threads.

from agc_ttbar import scaleout as _scaleout

_scaleout.set_localrules(workflow)
_scaleout.derive_batch_resources(workflow)
