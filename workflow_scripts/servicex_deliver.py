"""Deliver the AGC skim of every input file with ServiceX; write the input list of the results."""

import argparse
import sys

from agc_ttbar.fileset import InputsError, add_fileset_arguments, fileset_from_args
from agc_ttbar.remote import RemoteOptions, RemoteReadError
from agc_ttbar.servicex_delivery import DeliveryError, deliver_fileset, write_inputs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    add_fileset_arguments(p)
    p.add_argument("--output", required=True, help="input list of the delivered files to write")
    p.add_argument("--use-inference", action="store_true", help="also keep the ML branches")
    p.add_argument("--tree", default="Events", help="input tree name")
    p.add_argument("--config-path", default=None, help="servicex.yaml (default: the client's search)")
    p.add_argument("--backend", default=None, help="endpoint name in servicex.yaml")
    p.add_argument("--cache-dir", default=None, help="ServiceX client cache folder")
    p.add_argument("--ignore-cache", action="store_true", help="AGC SERVICEX_IGNORE_CACHE")
    p.add_argument("--delivery", choices=["URLs", "LocalCache"], default="URLs")
    p.add_argument("--timeout", type=float, default=60, help="timeout of the endpoint check (s)")
    p.add_argument("--retries", type=int, default=3, help="attempts of the endpoint check")
    args = p.parse_args(argv)

    try:
        fileset = fileset_from_args(args)
        n = sum(len(s["files"]) for s in fileset.values())
        print(f"submitting {n} file(s) of {len(fileset)} sample(s), one ServiceX sample per file", flush=True)
        inputs = deliver_fileset(fileset, use_inference=args.use_inference, config_path=args.config_path,
                                 backend=args.backend, cache_dir=args.cache_dir, ignore_cache=args.ignore_cache,
                                 delivery=args.delivery, tree_name=args.tree,
                                 remote_options=RemoteOptions(args.timeout, args.retries))
    except (InputsError, DeliveryError, RemoteReadError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    write_inputs(inputs, args.output)
    for process, variations in inputs.items():
        for variation, sample in variations.items():
            print(f"{process}__{variation}: {len(sample['files'])} delivered file(s), "
                  f"nevts_total={sample['nevts_total']}")
            for f in sample["files"]:
                print(f"  {f['source']} -> {f['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
