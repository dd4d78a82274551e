"""Process-level performance settings shared by the vectorised steps."""
from __future__ import annotations


def keep_freed_memory() -> None:
    """Let glibc reuse freed numpy buffers instead of returning them to the OS after each block.

    Vectorised steps that allocate and free many multi-MB temporaries per block (the FER2013
    pixel parser, batched hashing) otherwise get a fresh mmap per temporary whose pages fault
    in again: measured 25% of the CSV parse time and 20% of the hashing time. Raising glibc's
    mmap and trim thresholds keeps freed blocks on the heap for reuse. Process-wide; a no-op
    off glibc.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass
