"""CPU time that OpenBLAS's idle threads burn after a matrix product, with and without minigrad.tune_cpu().

    python benchmarks/blas_idle_spin.py              # the three cases below, 2 BLAS threads
    python benchmarks/blas_idle_spin.py --threads 4 --rounds 20

After a product OpenBLAS's threads spin for 2**28 cycles (about 0.1 s) before they sleep,
holding cores that minigrad's elementwise threads then wait for. Each round here is one
512x512 float32 product, then a 50 ms sleep of the main thread, timed in CPU time of the whole
process (time.process_time: every thread). Each case runs in a fresh process:

    untuned   import minigrad, nothing else
    env       $OPENBLAS_THREAD_TIMEOUT=20 set before NumPy loads
    tune_cpu  minigrad.tune_cpu() called after import minigrad (NumPy already loaded)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = ("untuned", "env", "tune_cpu")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def probe(case, rounds):
    """Run in the fresh process: {"spin_ms": CPU ms per 50 ms sleep, per round; "openblas"; "blas_threads"; ...}."""
    if case == "env":
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "20"
    sys.path.insert(0, ROOT)
    import minigrad
    from minigrad.backend import cpu_tuning

    result = {"case": case, "openblas": bool(cpu_tuning._loaded_openblas()),
              "blas_threads": len(os.listdir("/proc/self/task"))}  # OpenBLAS counts this thread as one of its own
    if case == "tune_cpu":
        result["tune_cpu"] = minigrad.tune_cpu(keep_freed_memory=False)
    xp = minigrad.backend.host_numpy
    a = xp.ones((512, 512), dtype=xp.float32)
    for _ in range(3):
        a @ a
    spins = []
    for _ in range(rounds):
        a @ a
        start = time.process_time()
        time.sleep(0.05)
        spins.append((time.process_time() - start) * 1000)
    result["spin_ms"] = spins
    return result


def measure(case, threads=2, rounds=10):
    """probe(case) in a fresh process with `threads` BLAS threads; adds the median as "median_ms"."""
    env = {name: value for name, value in os.environ.items() if name != "OPENBLAS_THREAD_TIMEOUT"}
    env.update(OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    output = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", case, "--rounds", str(rounds)],
                            env=env, capture_output=True, text=True, check=True, timeout=120).stdout
    result = json.loads(output.splitlines()[-1])
    result["median_ms"] = statistics.median(result["spin_ms"])
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads ($OPENBLAS_NUM_THREADS)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--probe", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.rounds)))
        return
    for case in CASES:
        result = measure(case, args.threads, args.rounds)
        print(f"{case:9s} CPU burnt per 50 ms sleep: median {result['median_ms']:5.2f} ms "
              f"(rounds: {' '.join(f'{s:.1f}' for s in result['spin_ms'])}; {result['blas_threads']} BLAS threads, "
              f"OpenBLAS: {result['openblas']}){'  ' + str(result['tune_cpu']) if 'tune_cpu' in result else ''}")


if __name__ == "__main__":
    main()
