"""Process-wide settings that make training faster on the CPU (made when minigrad is imported)."""
import ctypes
import os
import platform


def _keep_freed_host_memory():
    """Ask glibc's malloc to keep freed blocks of up to 1 GiB for reuse instead of unmapping them.

    A training step allocates and frees the same large arrays every step (a tokens x vocabulary
    matrix of logits is 65 MB at base size). By default glibc hands blocks over 32 MB straight
    back to the kernel, so the next step pays page faults and zero-filling for all of it again
    (10-20% of a step in benchmarks/transformer_step.py on a 2-core machine). Set MINIGRAD_KEEP_FREED_MEMORY=0 to leave malloc as it is.
    """
    if os.environ.get("MINIGRAD_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 1 << 30)
    mallopt(m_trim_threshold, 1 << 30)

