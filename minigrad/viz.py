"""Draw the graph behind a tensor: which ops made it, from which leaves, with what shapes.

    dot_text = minigrad.viz.to_dot(loss)            # Graphviz DOT source, no dependency needed
    minigrad.viz.render(loss, "graph.svg")          # needs `pip install graphviz` (and the `dot` program)
    minigrad.viz.to_dot(loss, show_values=True, show_grads=True, rankdir="TB")

Boxes are ops (graph nodes, `tensor.grad_fn`), labelled with the op's name and the
shape and dtype of its output. Ellipses are leaf tensors: filled when they require
grad (they will receive `.grad`). The drawn arrows follow the forward pass; the
backward pass walks them in reverse, which is the order `backward()` uses.

With `show_values` / `show_grads` a node also shows its tensor's value and `.grad`: all
of a small tensor's numbers, a summary (mean, norm) of a bigger one. A graph node does not
keep its output (that would hold every intermediate array alive), so an op box can only
show the value of a tensor the caller still holds: one named in `params`, one that called
`retain_grad()`, or one the op saved for its own backward. Its gradient shows when the
tensor called `retain_grad()` before `backward()`, as only then is `.grad` kept for a
non-leaf (as in PyTorch); a leaf's `.grad` is always there after `backward()`.
"""
from .autograd import Function

_LEAF_STYLE = 'shape=ellipse, style=filled, fillcolor="#cfe2f3"'
_CONSTANT_STYLE = "shape=ellipse"
_OP_STYLE = 'shape=box, style="rounded,filled", fillcolor="#eeeeee"'
_OUTPUT_STYLE = 'shape=ellipse, style=filled, fillcolor="#d9ead3"'
RANKDIRS = ("LR", "TB", "RL", "BT")  # Graphviz's layout directions: left to right, top to bottom, ...
MAX_PRINTED = 6  # tensors with at most this many elements show every value; bigger ones a summary


def _describe(shape, dtype):
    return f"{tuple(shape)} {dtype}"


def _escape(text):
    """A label for DOT: quotes and backslashes escaped, line breaks written as DOT's \\n."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")


def _number(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _nested(values):
    return "[" + ", ".join(_nested(v) if isinstance(v, list) else _number(v) for v in values) + "]"


def format_values(tensor):
    """A tensor's numbers for a label: all of them, rounded, when there are few; else mean and norm."""
    if tensor.data.size <= MAX_PRINTED:
        values = tensor.tolist()
        return _nested(values) if isinstance(values, list) else _number(values)
    xp, data = tensor.xp, tensor.data
    if data.dtype.kind == "b":
        data = data.astype("int64")
    return f"mean {float(xp.mean(data)):.4g}, norm {float(xp.linalg.norm(data.ravel())):.4g}"


def to_dot(tensor, params=None, name="output", show_values=False, show_grads=False, rankdir="LR"):
    """Graphviz DOT text for the graph that produced `tensor`.

    `params` optionally maps names to tensors so that they are labelled by name: leaves (e.g.
    `dict(model.named_parameters())`) or intermediate results, whose name then heads the box of
    the op that made them. `show_values` adds each node's value and `show_grads` its `.grad`
    (see the module docstring for which ones an op box can show). `rankdir` is the layout
    direction: "LR" (left to right) or "TB" (top to bottom), or "RL", "BT". Node ids are
    numbered in the order the walk meets them, so the text is the same on every run.
    """
    if rankdir not in RANKDIRS:
        raise ValueError(f"to_dot: rankdir must be one of {', '.join(RANKDIRS)}, got {rankdir!r}")
    names = {id(t): key for key, t in (params or {}).items()}
    held = {id(t.grad_fn): t for t in (params or {}).values() if t.grad_fn is not None}  # named intermediates
    if tensor.grad_fn is not None:
        held[id(tensor.grad_fn)] = tensor
    ids = {}
    lines = ["digraph minigrad {", f"  rankdir={rankdir};", '  node [fontname="Helvetica", fontsize=11];']

    def node_id(obj):
        if id(obj) not in ids:
            ids[id(obj)] = f"n{len(ids)}"
        return ids[id(obj)]

    def extras(held_tensor, is_leaf):
        """The value and grad lines of a node (already escaped), as asked for."""
        extra = []
        if show_values:
            extra.append("value not kept" if held_tensor is None else f"value {format_values(held_tensor)}")
        if show_grads:
            grad = None if held_tensor is None else held_tensor.grad
            if grad is not None:
                extra.append(f"grad {format_values(grad)}")
            else:
                extra.append("grad None" if is_leaf else "grad not retained")
        return "".join(f"\\n{_escape(line)}" for line in extra)

    def leaf_label(leaf):
        grad_note = "requires_grad" if leaf.requires_grad else "no grad"
        title = _escape(names.get(id(leaf), "leaf"))
        return f"{title}\\n{_describe(leaf.shape, leaf.dtype)}\\n{grad_note}{extras(leaf, True)}"

    def op_label(node):
        output = held.get(id(node))
        if output is None and node._grad_hooks is not None and node._grad_hooks.retained is not None:
            output = node._grad_hooks.retained()  # a tensor that called retain_grad() (None once it is gone)
        if output is None and node._output_ref is not None:
            output = node._output_ref()  # the op saved its output for backward, and the tensor lives
        title = type(node).__name__
        if output is not None and id(output) in names:
            title = f"{names[id(output)]} = {title}"
        return f"{_escape(title)}\\n{_describe(node.output_shape, node.output_dtype)}{extras(output, False)}"

    output_id = node_id(tensor)
    output_note = "requires_grad" if tensor.requires_grad else "no grad"
    output_label = (f"{_escape(name)}\\n{_describe(tensor.shape, tensor.dtype)}\\n{output_note}"
                    f"{extras(tensor, tensor.grad_fn is None)}")
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
        lines.append(f'  {node_id(node)} [label="{op_label(node)}", {_OP_STYLE}];')
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


def render(tensor, path, format="svg", params=None, name="output", show_values=False, show_grads=False,
           rankdir="LR"):
    """Write the graph of `tensor` as an image (svg or png) with the `graphviz` Python package;
    the other arguments are to_dot's."""
    if format not in ("svg", "png"):
        raise ValueError(f"render: format must be 'svg' or 'png', got {format!r}")
    dot_text = to_dot(tensor, params, name, show_values=show_values, show_grads=show_grads, rankdir=rankdir)
    try:
        import graphviz
    except ImportError:
        raise ImportError("minigrad.viz.render needs the graphviz Python package: `pip install graphviz` "
                          "(and the Graphviz `dot` program, e.g. `apt-get install graphviz`); "
                          "minigrad.viz.to_dot works without it") from None
    image = graphviz.Source(dot_text).pipe(format=format)
    with open(path, "wb") as file:
        file.write(image)
    return path
