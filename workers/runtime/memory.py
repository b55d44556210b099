"""Keep freed memory in the process, so that a CPU forward does not page-fault its activations anew.

glibc serves a block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and hands it
back to the kernel on ``free``; a freed heap top above 128 KiB is trimmed back too. A batch of 32
through EfficientNet-Lite0 allocates activations of up to 154 MB per layer, so every forward touches
every page of them for the first time: the kernel zeroes each 4 KiB page on its first write, and
that, not the arithmetic, was the forward's largest cost on a 2-core machine (a 154 MB ``clone``
took 78 ms; 13 ms once the memory was kept).

``keep_freed_memory()`` sets three ``mallopt`` knobs: one malloc arena for all threads (the model
runs in an executor thread, and its OpenMP threads allocate too; a thread arena cannot hold blocks
over 64 MiB), no mmap for big blocks, no trimming. The process then keeps its peak heap and reuses
it; its RSS stays at the peak instead of going up and down with each batch.

Call it first thing in a process, before any thread starts (an arena once made stays in use).
Measured on 2 CPU cores, batch 32, by a microbenchmark of the backbone in an executor thread
(medians of 7): 42-46 images/s without, 70-81 with; ``vitrine bench ingest`` shows the end-to-end
effect. A no-op (returns False) where the C library is not glibc. The entry points call it unless
the ``keep_freed_memory`` setting (``VITRINE_KEEP_FREED_MEMORY=false``) turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["freeze_startup_heap", "keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_done = False


def keep_freed_memory() -> bool:
    """Apply the malloc settings above (idempotent); True when they took effect."""
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in
             ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1)))
    _done = ok
    return ok


def freeze_startup_heap() -> int:
    """Move every object alive now (the loaded models, torch, the libraries: ~540k objects in an
    ingest worker) to the garbage collector's permanent generation; return how many were frozen.

    Each full collection walks every tracked object, so a worker that allocates fast (a patch is a
    dozen small objects) spent a quarter of its per-event time walking the models' objects.
    Measured, validate + triage + record + encode of 20,000 patches with the models loaded (medians
    of 5, twice): 63 and 68 µs per patch without, 46 and 51 with. Call it once, after startup: what is
    frozen is never collected, which is right for objects that live as long as the process.
    """
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
