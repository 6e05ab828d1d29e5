"""Draw the graph behind a tensor: which ops made it, from which leaves, with what shapes.

    dot_text = minigrad.viz.to_dot(loss)            # Graphviz DOT source, no dependency needed
    minigrad.viz.render(loss, "graph.svg")          # needs `pip install graphviz` (and the `dot` program)

Boxes are ops (graph nodes, `tensor.grad_fn`), labelled with the op's name and the
shape and dtype of its output. Ellipses are leaf tensors: filled when they require
grad (they will receive `.grad`). The drawn arrows follow the forward pass; the
backward pass walks them in reverse, which is the order `backward()` uses.
"""
from .autograd import Function

_LEAF_STYLE = 'shape=ellipse, style=filled, fillcolor="#cfe2f3"'
_CONSTANT_STYLE = "shape=ellipse"
_OP_STYLE = 'shape=box, style="rounded,filled", fillcolor="#eeeeee"'
_OUTPUT_STYLE = 'shape=ellipse, style=filled, fillcolor="#d9ead3"'


def _describe(shape, dtype):
    return f"{tuple(shape)} {dtype}"


def _escape(text):
    """A label for DOT: quotes and backslashes escaped (newlines are written as \\n by the caller)."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def to_dot(tensor, params=None, name="output"):
    """Graphviz DOT text for the graph that produced `tensor`.

    `params` optionally maps names to leaf tensors (e.g. `dict(model.named_parameters())`)
    so that leaves are labelled by name. Node ids are numbered in the order the walk
    meets them, so the text is the same on every run.
    """
    names = {id(t): key for key, t in (params or {}).items()}
    ids = {}
    lines = ["digraph minigrad {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=11];']

    def node_id(obj):
        if id(obj) not in ids:
            ids[id(obj)] = f"n{len(ids)}"
        return ids[id(obj)]

    def leaf_label(leaf):
        grad_note = "requires_grad" if leaf.requires_grad else "no grad"
        title = _escape(names.get(id(leaf), "leaf"))
        return f"{title}\\n{_describe(leaf.shape, leaf.dtype)}\\n{grad_note}"

    output_id = node_id(tensor)
    output_note = "requires_grad" if tensor.requires_grad else "no grad"
    output_label = f"{_escape(name)}\\n{_describe(tensor.shape, tensor.dtype)}\\n{output_note}"
    lines.append(f'  {output_id} [label="{output_label}", {_OUTPUT_STYLE}];')
    if tensor.grad_fn is None:
        lines.append("}")
        return "\n".join(lines) + "\n"

    lines.append(f"  {node_id(tensor.grad_fn)} -> {output_id};")
    stack, seen = [tensor.grad_fn], set()
    while stack:  # iterative, like backward: deep graphs need no recursion
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        label = f"{type(node).__name__}\\n{_describe(node.output_shape, node.output_dtype)}"
        lines.append(f'  {node_id(node)} [label="{label}", {_OP_STYLE}];')
        for edge in node.edges:
            if edge is None:  # an input that needs no gradient (a constant) is not part of the graph
                continue
            if isinstance(edge, Function):
                stack.append(edge)
            elif id(edge) not in seen:
                seen.add(id(edge))
                style = _LEAF_STYLE if edge.requires_grad else _CONSTANT_STYLE
                lines.append(f'  {node_id(edge)} [label="{leaf_label(edge)}", {style}];')
            lines.append(f"  {node_id(edge)} -> {node_id(node)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, format="svg", params=None):
    """Write the graph of `tensor` as an image (svg or png) with the `graphviz` Python package."""
    if format not in ("svg", "png"):
        raise ValueError(f"render: format must be 'svg' or 'png', got {format!r}")
    try:
        import graphviz
    except ImportError:
        raise ImportError("minigrad.viz.render needs the graphviz Python package: `pip install graphviz` "
                          "(and the Graphviz `dot` program, e.g. `apt-get install graphviz`); "
                          "minigrad.viz.to_dot works without it") from None
    image = graphviz.Source(to_dot(tensor, params)).pipe(format=format)
    with open(path, "wb") as file:
        file.write(image)
    return path
