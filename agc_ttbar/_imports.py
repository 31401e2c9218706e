"""Start-up of the short per-file and write jobs: optional third-party imports they never use.

awkward imports ``pyarrow`` eagerly when it is installed (``awkward._connect.pyarrow``), only for
``ak.to_arrow``/parquet, which no job script calls; that is ~0.04 s CPU (~0.1 s wall on a loaded
machine) of the ~0.5 s start-up of a per-file job, paid by every job process. Marking it absent
before awkward is first imported is what awkward does without pyarrow installed (its
``ModuleNotFoundError`` path). Own code, because no library offers a lazy import switch for this.
"""

from __future__ import annotations

import sys

#: Modules the job scripts never use that a dependency imports eagerly.
UNUSED_OPTIONAL = ("pyarrow",)


def skip_unused_optional_imports() -> None:
    """Mark :data:`UNUSED_OPTIONAL` as not installed for this process, unless already imported.

    Call it first thing in a job script, before anything imports awkward or uproot.
    """
    for name in UNUSED_OPTIONAL:
        if name not in sys.modules:
            sys.modules[name] = None
