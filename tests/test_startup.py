"""Start-up of the job scripts (issue 15): optional imports they never use are skipped, and the
libraries they use still work without them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_skip_unused_optional_imports_keeps_awkward_and_uproot_working(tmp_path):
    path = tmp_path / "t.root"
    proc = _run(
        "import sys\n"
        "from agc_ttbar._imports import UNUSED_OPTIONAL, skip_unused_optional_imports\n"
        "skip_unused_optional_imports()\n"
        "import awkward as ak, numpy as np, uproot\n"
        "assert all(sys.modules[m] is None for m in UNUSED_OPTIONAL)\n"
        f"with uproot.recreate({str(path)!r}) as f:\n"
        "    f['Events'] = {'Jet_pt': ak.Array([[1.0, 2.0], [], [3.0]])}\n"
        f"with uproot.open({str(path)!r}) as f:\n"
        "    a = f['Events'].arrays(['Jet_pt'])\n"
        "assert ak.to_list(a.Jet_pt) == [[1.0, 2.0], [], [3.0]]\n"
        "print('ok')\n")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]


def test_skip_leaves_an_imported_module_alone():
    proc = _run("import sys, types\n"
                "sys.modules['pyarrow'] = types.ModuleType('pyarrow')\n"
                "from agc_ttbar._imports import skip_unused_optional_imports\n"
                "skip_unused_optional_imports()\n"
                "assert sys.modules['pyarrow'] is not None\n")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_job_scripts_skip_them_before_awkward():
    """process_file.py and write_histograms.py call the skip before anything imports awkward."""
    for script in ("process_file.py", "write_histograms.py"):
        text = (REPO / "workflow_scripts" / script).read_text()
        skip = text.index("skip_unused_optional_imports()")
        first_agc = min(i for i in (text.find("from agc_ttbar.io"), text.find("from agc_ttbar.output")) if i >= 0)
        assert skip < first_agc, script
