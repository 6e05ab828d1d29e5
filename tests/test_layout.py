"""The layout's rules, checked on the source: layering one way, NumPy and CuPy imported only where
the design allows, and train.py short enough to read top to bottom."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minigrad", "nn", "transformer")
# Where NumPy may be imported: the backend, and host-side data preparation (token ids, batches).
NUMPY_ALLOWED = ("minigrad/backend/", "transformer/data.py")
CUPY_ALLOWED = ("minigrad/backend/",)
TRAIN_PY_MAX_LINES = 350


def imported_modules(path: Path) -> set[str]:
    """The top-level names of every module a file imports (anywhere in it, lazily too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def source_files(package: str):
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package, forbidden", [("minigrad", {"nn", "transformer"}), ("nn", {"transformer"})])
def test_layering_is_one_way(package, forbidden):
    offenders = {str(path.relative_to(ROOT)): sorted(imported_modules(path) & forbidden)
                 for path in source_files(package) if imported_modules(path) & forbidden}
    assert not offenders, f"{package} must not import {sorted(forbidden)}: {offenders}"


@pytest.mark.parametrize("module, allowed", [("numpy", NUMPY_ALLOWED), ("cupy", CUPY_ALLOWED)])
def test_array_libraries_are_imported_only_where_allowed(module, allowed):
    offenders = [str(path.relative_to(ROOT)) for package in PACKAGES for path in source_files(package)
                 if module in imported_modules(path) and not str(path.relative_to(ROOT)).startswith(allowed)]
    assert not offenders, f"{module} imported outside {allowed}: {offenders}"


def test_train_py_reads_top_to_bottom():
    lines = len((ROOT / "train.py").read_text(encoding="utf-8").splitlines())
    assert lines <= TRAIN_PY_MAX_LINES, f"train.py has {lines} lines; move pieces into transformer/ modules"
