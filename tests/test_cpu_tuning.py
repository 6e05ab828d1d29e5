"""minigrad.tune_cpu(): importing minigrad changes nothing of the process; the call makes the CPU settings."""
import json
import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import blas_idle_spin  # noqa: E402

_TUNING_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "MINIGRAD_KEEP_FREED_MEMORY")


def _run(code, **env):
    """The last line `code` prints, as JSON, from a fresh interpreter with none of the tuning variables
    set (beyond those in `env`)."""
    environment = {name: value for name, value in os.environ.items() if name not in _TUNING_VARIABLES}
    environment.update(PYTHONPATH=ROOT, **env)
    output = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True,
                            check=True, timeout=120).stdout
    return json.loads(output.splitlines()[-1])


def test_importing_minigrad_changes_no_environment_variable():
    changed = _run("import json, os\n"
                   "before = dict(os.environ)\n"
                   "import minigrad, minigrad.functional, nn, transformer\n"
                   "after = dict(os.environ)\n"
                   "print(json.dumps(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))))")
    assert changed == []


_HEAP_REGION = """
import json
import minigrad
xp = minigrad.backend.host_numpy


def region(array):
    address = array.ctypes.data
    for line in open("/proc/self/maps"):
        fields = line.split()
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) > 5 else "anonymous"


# glibc serves a 64 MB block by mmap (above its 32 MB ceiling) unless mallopt raised the threshold
before = region(xp.empty(64 << 20, dtype=xp.uint8))
applied = minigrad.tune_cpu(**KEYWORDS)
after = region(xp.empty(64 << 20, dtype=xp.uint8))
print(json.dumps([before, applied, after]))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_malloc_is_tuned_by_tune_cpu_not_by_import():
    before, applied, after = _run(_HEAP_REGION.replace("KEYWORDS", "{}"))
    assert before == "anonymous" and applied["keep_freed_memory"] is True and after == "[heap]"
    for keywords, env in [("{'keep_freed_memory': False}", {}), ("{}", {"MINIGRAD_KEEP_FREED_MEMORY": "0"})]:
        before, applied, after = _run(_HEAP_REGION.replace("KEYWORDS", keywords), **env)
        assert applied["keep_freed_memory"] is False and before == after == "anonymous"


def test_tune_cpu_sets_the_blas_timeout_once_and_respects_a_value_already_set():
    first, second, variable = _run(
        "import json, os\n"
        "import minigrad\n"
        "from minigrad.backend import cpu_tuning\n"
        "assert 'OPENBLAS_THREAD_TIMEOUT' not in os.environ\n"
        "first = minigrad.tune_cpu()\n"
        "cpu_tuning._restart_threads = None  # a second call must not restart BLAS's threads again\n"
        "second = minigrad.tune_cpu()\n"
        "print(json.dumps([first, second, os.environ['OPENBLAS_THREAD_TIMEOUT']]))")
    assert first == second and first["openblas_thread_timeout"] == variable == "20"
    result, variable = _run("import json, os, minigrad\n"
                            "print(json.dumps([minigrad.tune_cpu(), os.environ['OPENBLAS_THREAD_TIMEOUT']]))",
                            OPENBLAS_THREAD_TIMEOUT="24")
    assert variable == result["openblas_thread_timeout"] == "24" and "left alone" in result["openblas"]


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="counts threads and maps in /proc (Linux)")
def test_idle_blas_threads_stop_spinning_once_tuned():
    """After a product, OpenBLAS's idle thread spins while the main thread sleeps 50 ms, unless the
    timeout was set before NumPy loaded or tune_cpu() restarted the threads with it."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: OpenBLAS starts no second thread")
    untuned = blas_idle_spin.measure("untuned")
    if not untuned["openblas"] or untuned["blas_threads"] < 2:
        pytest.skip(f"needs NumPy on OpenBLAS with 2 threads (OpenBLAS: {untuned['openblas']}, "
                    f"threads: {untuned['blas_threads']})")
    if untuned["median_ms"] < 5:
        pytest.skip(f"no spinning to measure without tuning ({untuned['median_ms']:.1f} ms per 50 ms sleep)")
    for case in ("env", "tune_cpu"):
        tuned = blas_idle_spin.measure(case)
        assert tuned["median_ms"] < untuned["median_ms"] / 2, (case, tuned["spin_ms"], untuned["spin_ms"])
    assert "applied to" in tuned["tune_cpu"]["openblas"]
