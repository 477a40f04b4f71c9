"""Keep freed memory in the process instead of returning it to the OS at once.

DuckDB hands query results to Python in buffers it allocates with ``malloc``
(the Arrow export of a query, for example), and numpy does the same for its
arrays. With glibc's defaults, every buffer above 32 MiB is a fresh ``mmap``
that is unmapped when freed, so each query pays again for the page faults of
all its large buffers: for the frequencies of a 10,000-sample cohort that was
about 10,000 faults (40 MiB) and a fifth of the time of a call.

:func:`tune` raises glibc's ``mmap`` threshold to 128 MiB and its trim
threshold to 512 MiB (``mallopt``), so that buffers up to 128 MiB come from
the heap and up to 512 MiB of freed heap is kept for the next query. The
process then holds on to memory it has used, up to that bound, until it
exits. Set ``BIOBANK_MALLOC_TUNING=off`` to keep glibc's defaults. On other C
libraries (musl, macOS) :func:`tune` does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

#: ``mallopt`` parameters (``<malloc.h>``)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: buffers up to this size come from the heap instead of their own ``mmap``
MMAP_THRESHOLD = 128 * 1024 * 1024
#: freed memory at the top of the heap kept for reuse, at most
TRIM_THRESHOLD = 512 * 1024 * 1024

_done: bool | None = None


def tune() -> bool:
    """Apply the thresholds once per process; return whether they are in effect.

    Returns
    -------
    bool
        ``True`` if glibc accepted both settings (now or on an earlier call),
        ``False`` if turned off with ``BIOBANK_MALLOC_TUNING=off``, not on
        glibc, or refused.
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("BIOBANK_MALLOC_TUNING", "").strip().lower() in {"off", "0", "no", "false"}:
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not _done:
        logger.debug("glibc refused the malloc thresholds; keeping its defaults")
    return _done
