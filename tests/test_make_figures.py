"""docs/make_figures.py on tiny models in a temporary directory: every figure of the walkthrough is
written, and the script's checks (what it takes apart gives back what the model computed) pass."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "make_figures.py"
TINY = ["--train-size", "300", "--valid-size", "20", "--steps", "20", "--d-model", "16", "--heads", "2",
        "--d-ff", "32", "--max-len", "48", "--no-progress", "--eval-every", "0", "--examples", "0"]


def figure_names():
    spec = importlib.util.spec_from_file_location("make_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FIGURE_NAMES


def run_script(cwd, *args, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


def assert_every_figure_written(out_dir, result):
    assert result.returncode == 0, result.stdout + result.stderr
    for name in figure_names():
        path = out_dir / name
        if name.endswith("_graph.png") and shutil.which("dot") is None:
            path = path.with_suffix(".dot")          # no Graphviz: the graph's DOT text instead
        assert path.is_file() and path.stat().st_size > 1000, f"{path} missing or empty\n{result.stdout}"
    assert "recomputations against the model" in result.stdout


@pytest.mark.slow
def test_trains_a_tiny_model_and_writes_every_figure(tmp_path):
    pytest.importorskip("matplotlib", reason="docs/make_figures.py draws with matplotlib (pip install \".[plots]\")")
    figures = tmp_path / "figures"
    result = run_script(tmp_path, "--run-dir", str(tmp_path / "run"), "--figures", str(figures),
                        "--grad-steps", "5", "--layers", "1", *TINY)
    assert_every_figure_written(figures, result)
    assert (tmp_path / "run" / "last.ckpt").is_file()


@pytest.mark.slow
def test_pre_ln_checkpoint_given_sentence_and_head(tmp_path):
    """From a checkpoint of a pre-LN model (its LayerNorms are hooked modules), with a sentence of one's own."""
    pytest.importorskip("matplotlib", reason="docs/make_figures.py draws with matplotlib (pip install \".[plots]\")")
    sys.path.insert(0, str(ROOT))
    import train
    assert train.main(["--out", str(tmp_path / "run"), "--norm-first", "--encoder-layers", "1",
                       "--decoder-layers", "2", *TINY]) == 0
    figures = tmp_path / "figures"
    result = run_script(tmp_path, "--checkpoint", str(tmp_path / "run"), "--figures", str(figures),
                        "--sentence", "the big dog sees a zebra", "--head", "1", "--grad-steps", "3")
    assert_every_figure_written(figures, result)
    assert "read as <unk>: zebra" in result.stdout


def test_without_matplotlib_one_clear_line(tmp_path):
    blocker = tmp_path / "matplotlib"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = run_script(tmp_path, "--checkpoint", "nowhere", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ('error: make_figures.py draws with matplotlib, which is not installed: '
                                     'pip install "minigrad[plots]"')
