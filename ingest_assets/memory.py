"""Peak resident memory of the process over one load.

On Linux the kernel's high-water mark (``VmHWM``) is reset at the start of a load by writing
``5`` to ``/proc/self/clear_refs``, so the figure read at the end is the peak of that load alone.
Where that is not possible the process's lifetime peak (``ru_maxrss``) is reported instead.
"""

from __future__ import annotations

import resource
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


class PeakMemory:
    """Measures the peak resident memory from its creation on."""

    def __init__(self) -> None:
        try:
            _CLEAR_REFS.write_text("5")
            self.scoped = True
        except OSError:
            self.scoped = False

    def read(self) -> int:
        """The peak resident set size in bytes since creation (or since the process began)."""
        if self.scoped:
            try:
                for line in _STATUS.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
            except OSError:
                pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
