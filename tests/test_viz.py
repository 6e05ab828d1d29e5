"""minigrad.viz: DOT text of a graph, and rendering through the optional graphviz package."""
import shutil
import subprocess
import sys

import pytest

import minigrad
from minigrad import viz


def small_graph():
    w = minigrad.tensor([[0.5, -1.0], [2.0, 0.1]], requires_grad=True)
    x = minigrad.tensor([1.0, 2.0])
    b = minigrad.tensor([0.1, 0.2], requires_grad=True)
    y = (w @ x + b).tanh()
    return (y * y).sum(), w, b


def test_to_dot_names_ops_shapes_and_grad_requirements():
    loss, w, b = small_graph()
    dot = viz.to_dot(loss, params={"w": w, "b": b}, name="loss")
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for op in ("Sum", "Mul", "Tanh", "Add", "MatMul"):
        assert f'label="{op}\\n' in dot
    assert 'label="w\\n(2, 2) float32\\nrequires_grad"' in dot
    assert 'label="b\\n(2,) float32\\nrequires_grad"' in dot
    assert 'label="loss\\n() float32\\nrequires_grad"' in dot
    assert "MatMul\\n(2,) float32" in dot
    assert dot.count(" -> ") == 8  # y * y draws two arrows from Tanh into Mul


def test_to_dot_is_deterministic_and_handles_a_tensor_without_graph():
    assert viz.to_dot(small_graph()[0]) == viz.to_dot(small_graph()[0])
    dot = viz.to_dot(minigrad.ones(3))
    assert "no grad" in dot and " -> " not in dot


def test_to_dot_on_a_deep_graph_needs_no_recursion():
    x = minigrad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    assert viz.to_dot(y).count("Add\\n") == 5000


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz dot program is not installed")
def test_dot_text_is_valid_graphviz():
    result = subprocess.run(["dot", "-Tsvg"], input=viz.to_dot(small_graph()[0]), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout


def test_render_without_graphviz_package_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # makes `import graphviz` fail
    with pytest.raises(ImportError, match="pip install graphviz"):
        viz.render(small_graph()[0], tmp_path / "graph.svg")


def test_render_rejects_unknown_formats(tmp_path):
    with pytest.raises(ValueError, match="svg"):
        viz.render(small_graph()[0], tmp_path / "graph.pdf", format="pdf")


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz dot program is not installed")
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_render_writes_an_image(tmp_path, fmt, magic):
    pytest.importorskip("graphviz")
    path = viz.render(small_graph()[0], tmp_path / f"graph.{fmt}", format=fmt)
    assert magic in open(path, "rb").read()[:400]
