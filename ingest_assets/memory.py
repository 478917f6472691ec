"""Peak resident memory of the process over one load, and giving freed memory back.

On Linux the kernel's high-water mark (``VmHWM``) is reset at the start of a load by writing
``5`` to ``/proc/self/clear_refs``, so the figure read at the end is the peak of that load alone.
Where that is not possible the process's lifetime peak (``ru_maxrss``) is reported instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

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


def _libc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


_MALLOC_TRIM = _libc_trim()


def release_unused() -> None:
    """Return memory freed by the last phase to the system, so the next one starts low.

    Arrow's allocator and the C allocator keep freed blocks for reuse; after reading a window
    that is tens of megabytes the write (DuckDB's own allocations) would otherwise stack on top.
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
