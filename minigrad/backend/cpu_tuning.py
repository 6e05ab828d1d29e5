"""minigrad.tune_cpu(): two process-wide settings that make training faster on the CPU.

They change the whole process (its malloc, NumPy's BLAS threads), so importing minigrad makes
neither: a program asks for them with one call as its first step (train.py and the benchmarks do).
"""
import ctypes
import os
import platform

BLAS_THREAD_TIMEOUT = "20"  # log2 of the cycles an idle OpenBLAS thread spins: 2**20, well under a millisecond
_TIMEOUT_VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
_timeout_set_here = False
_restarted = set()          # OpenBLAS libraries whose threads now run with the short timeout


def tune_cpu(keep_freed_memory=None):
    """Tune this process for minigrad on the CPU; returns a dict saying what was applied.

    - malloc (glibc) keeps freed blocks of up to 1 GiB for reuse instead of handing them back to
      the kernel: a step allocates the same large arrays every time, and returning them made every
      step pay page faults and zero-filling again (10-20% of a step). `keep_freed_memory=False`,
      or $MINIGRAD_KEEP_FREED_MEMORY=0 when it is not given, leaves malloc as it is.
    - OpenBLAS's idle threads stop spinning after 2**20 cycles instead of 2**28 (about 0.1 s), so
      that after a matrix product they leave the core to minigrad's elementwise threads
      ($OPENBLAS_THREAD_TIMEOUT=20). A value already in the environment is left alone. OpenBLAS reads
      the variable when it loads, which `import minigrad` (NumPy) has done already, so its threads are
      restarted to take it; under another BLAS only the variable is set.

    Call it early, while no other thread runs a matrix product (restarting BLAS's threads under a
    running product is not safe). Calling it again changes nothing more.
    """
    if keep_freed_memory is None:
        keep_freed_memory = os.environ.get("MINIGRAD_KEEP_FREED_MEMORY", "1") != "0"
    return {"keep_freed_memory": bool(keep_freed_memory) and _keep_freed_host_memory(), **_shorten_blas_spin()}


def _keep_freed_host_memory():
    """Raise glibc's mmap and trim thresholds to 1 GiB; False where malloc is not glibc's."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mmap_set = mallopt(m_mmap_threshold, 1 << 30)
    trim_set = mallopt(m_trim_threshold, 1 << 30)
    return bool(mmap_set and trim_set)  # mallopt returns 1 on success


def _shorten_blas_spin():
    global _timeout_set_here
    value = os.environ.get(_TIMEOUT_VARIABLE)
    if value is not None and not _timeout_set_here:
        return {"openblas_thread_timeout": value, "openblas": "left alone: the environment already sets it"}
    os.environ[_TIMEOUT_VARIABLE] = BLAS_THREAD_TIMEOUT
    _timeout_set_here = True
    libraries = _loaded_openblas()
    if not libraries:
        how = "environment only: no OpenBLAS is loaded (an OpenBLAS loaded later reads it; other BLAS ignore it)"
        return {"openblas_thread_timeout": BLAS_THREAD_TIMEOUT, "openblas": how}
    done = [os.path.basename(path) for path in libraries if path in _restarted or _restart_threads(path)]
    missing = [os.path.basename(path) for path in libraries if path not in _restarted]
    how = f"applied to {', '.join(done)} (its threads restarted once)" if done else ""
    if missing:
        how += ("; " if how else "") + (f"environment only for {', '.join(missing)} "
                                        "(no openblas_read_env / blas_thread_shutdown_ / blas_thread_init)")
    return {"openblas_thread_timeout": BLAS_THREAD_TIMEOUT, "openblas": how}


def _loaded_openblas():
    """Paths of the OpenBLAS libraries mapped into this process (NumPy's bundled one, maybe SciPy's)."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                path = fields[5].strip() if len(fields) == 6 else ""
                name = os.path.basename(path).lower()
                if "openblas" in name and ".so" in name and path not in paths and os.path.exists(path):
                    paths.append(path)
    except OSError:  # no /proc (not Linux)
        pass
    return paths


def _restart_threads(path):
    """Make a loaded OpenBLAS take $OPENBLAS_THREAD_TIMEOUT now; False when it lacks the functions.

    openblas_read_env() stores the variables again (the thread count is not re-derived from them);
    blas_thread_init() reads the timeout from there, but only when it starts the threads, so
    blas_thread_shutdown_() stops them first (it is OpenBLAS's own fork handler; OpenBLAS calls
    blas_thread_init again whenever it finds its threads stopped).
    """
    try:
        library = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_NOLOAD)  # the copy already loaded, never a new one
        read_env, shutdown, start = library.openblas_read_env, library.blas_thread_shutdown_, library.blas_thread_init
    except (OSError, AttributeError):
        return False
    read_env()
    shutdown()
    start()
    _restarted.add(path)
    return True
