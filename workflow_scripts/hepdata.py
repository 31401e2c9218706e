"""Write and validate the HEPData record of the fit (agc_ttbar.statistics.hepdata)."""

import argparse
import sys

from agc_ttbar.statistics.hepdata import HEPDataError, write_record


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workspace", required=True)
    p.add_argument("--fit-results", required=True)
    p.add_argument("--cabinetry-config", required=True)
    p.add_argument("--output-dir", required=True, help="record folder: yaml/ and submission.tar.gz")
    a = p.parse_args()
    try:
        archive = write_record(a.workspace, a.fit_results, a.cabinetry_config, a.output_dir)
    except HEPDataError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(f"HEPData record: {archive} (valid)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
