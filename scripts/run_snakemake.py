"""`python scripts/run_snakemake.py ARGS` = `snakemake ARGS`, after removing a lock left by a killed
run (only when no live snakemake works in the same directory; agc_ttbar/workflow_lock.py).
`make analysis` and `make report` use it."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agc_ttbar.workflow_lock import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
