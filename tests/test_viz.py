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


def retained_graph():
    """The small graph after backward, with every intermediate result retaining its gradient."""
    w = minigrad.tensor([[0.5, -1.0], [2.0, 0.1]], requires_grad=True)
    x = minigrad.tensor([1.0, 2.0])
    b = minigrad.tensor([0.1, 0.2], requires_grad=True)
    h = w @ x                                       # [-1.5, 2.2]
    y = (h + b).tanh()
    for t in (h, y):
        t.retain_grad()
    loss = (y * y).sum()
    loss.backward()
    return loss, {"w": w, "b": b, "h": h}, y


def test_values_and_grads_are_off_by_default():
    loss, params, _ = retained_graph()
    dot = viz.to_dot(loss, params=params)
    assert "\\nvalue" not in dot and "\\ngrad" not in dot


def test_show_values_prints_small_tensors_rounded():
    loss, params, y = retained_graph()
    dot = viz.to_dot(loss, params=params, name="loss", show_values=True)
    assert 'label="w\\n(2, 2) float32\\nrequires_grad\\nvalue [[0.5, -1], [2, 0.1]]"' in dot
    assert 'label="h = MatMul\\n(2,) float32\\nvalue [-1.5, 2.2]"' in dot   # named in params
    tanh = y.tolist()
    assert f"Tanh\\n(2,) float32\\nvalue [{tanh[0]:.4g}, {tanh[1]:.4g}]" in dot
    assert f"value {loss.item():.4g}" in dot
    assert "Add\\n(2,) float32\\nvalue not kept" in dot  # nobody holds h + b
    assert "\\ngrad" not in dot


def test_show_grads_prints_leaf_and_retained_gradients():
    loss, params, y = retained_graph()
    dot = viz.to_dot(loss, params=params, show_grads=True)
    w_grad = params["w"].grad.tolist()
    assert f"grad [[{w_grad[0][0]:.4g}, {w_grad[0][1]:.4g}], [{w_grad[1][0]:.4g}, {w_grad[1][1]:.4g}]]" in dot
    y_grad = y.grad.tolist()                         # d loss / d y = 2 y
    assert f"Tanh\\n(2,) float32\\ngrad [{y_grad[0]:.4g}, {y_grad[1]:.4g}]" in dot
    assert "h = MatMul\\n(2,) float32\\ngrad [" in dot
    assert "Add\\n(2,) float32\\ngrad not retained" in dot
    assert "\\nvalue" not in dot


def test_an_unnamed_intermediate_shows_its_value_and_grad_once_it_retains_grad():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    kept, dropped = w + 1.0, w - 1.0                  # Add and Sub save nothing for backward
    kept.retain_grad()
    loss = (kept * 3.0 + dropped).sum()
    loss.backward()
    dot = viz.to_dot(loss, show_values=True, show_grads=True)
    assert "Add\\n(2,) float32\\nvalue [2, 3]\\ngrad [3, 3]" in dot
    assert "Sub\\n(2,) float32\\nvalue not kept\\ngrad not retained" in dot


def test_a_leaf_before_backward_shows_grad_none():
    w = minigrad.tensor([1.0, 2.0], requires_grad=True)
    dot = viz.to_dot((w * 3.0).sum(), params={"w": w}, show_grads=True)
    assert 'label="w\\n(2,) float32\\nrequires_grad\\ngrad None"' in dot


def test_big_tensors_show_a_summary_not_every_value():
    w = minigrad.full((4, 5), 2.0, requires_grad=True)
    (w * w).sum().backward()
    dot = viz.to_dot((w * 1.0).sum(), params={"w": w}, show_values=True, show_grads=True)
    assert "value mean 2, norm 8.944" in dot          # sqrt(20 * 4)
    assert "grad mean 4, norm 17.89" in dot           # d(w*w)/dw = 2w = 4
    assert "[2, 2" not in dot


def test_rankdir_sets_the_layout_direction_and_rejects_others():
    loss = small_graph()[0]
    assert "  rankdir=LR;" in viz.to_dot(loss)
    dot = viz.to_dot(loss, rankdir="TB")
    assert "  rankdir=TB;" in dot and "rankdir=LR" not in dot
    with pytest.raises(ValueError, match="rankdir must be one of LR, TB"):
        viz.to_dot(loss, rankdir="top-down")


def test_names_with_quotes_and_newlines_are_escaped():
    w = minigrad.tensor([1.0], requires_grad=True)
    dot = viz.to_dot((w * 2.0).sum(), params={'say "hi"\\now\nnext': w}, name="a\"b")
    assert 'label="say \\"hi\\"\\\\now\\nnext\\n(1,) float32' in dot
    assert 'label="a\\"b\\n' in dot
    assert "\nnext" not in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="the Graphviz dot program is not installed")
def test_dot_text_with_values_and_grads_is_valid_graphviz():
    loss, params, _ = retained_graph()
    text = viz.to_dot(loss, params={**params, 'q"uote': params["b"]}, show_values=True, show_grads=True,
                      rankdir="TB")
    result = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "value [0.1, 0.2]" in result.stdout and "grad [" in result.stdout
