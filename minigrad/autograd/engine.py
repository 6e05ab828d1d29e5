"""The backward pass: send gradients from outputs back through the graph's nodes to the leaves.

Two paths, one engine: the engine, not the op, picks a node's backward: `backward_arrays`
(raw arrays, the fast layer in minigrad/kernels) when no graph of the backward is recorded,
`backward` (Tensor ops, the reference) when one is (create_graph=True) or in reference mode
(`set_reference_mode(True)`, or MINIGRAD_REFERENCE=1 in the environment), which also
makes minigrad.functional compose every layer from the primitive ops and optim.Adam make
its whole-array reference update.
"""
from ..tensor import Tensor
from . import anomaly_mode as _anomaly_mode
from . import grad_mode as _grad_mode
from . import hooks as _hooks
from .function import Function
from .grad_mode import set_grad_enabled
from .torch_style import OutputGrads


# -- the backward pass ---------------------------------------------------------------------
def _topological_dependencies(roots, needed=None, leaf_uses=None):
    """For every node reachable from the roots: how many reachable nodes feed it a gradient.
    With `needed`, the walk does not go below nodes outside it. With `leaf_uses` (a dict), it also
    counts there how many reachable nodes feed each leaf.

    Iterative (an explicit stack), so a chain of 100,000 ops needs no recursion.
    """
    dependencies = {}
    seen = set(roots)
    stack = list(roots)
    while stack:
        for edge in _counted_inputs(stack.pop(), needed):
            if isinstance(edge, Function):
                dependencies[edge] = dependencies.get(edge, 0) + 1
                if edge not in seen:
                    seen.add(edge)
                    stack.append(edge)
            elif leaf_uses is not None and edge is not None:
                leaf_uses[edge] = leaf_uses.get(edge, 0) + 1
    return dependencies


def _counted_inputs(node, needed):
    """The edges of `node` whose dependency counts it holds (none when the walk stops at it)."""
    if needed is not None and node not in needed:
        return ()
    return node.edges


def _accumulate(total, grad):
    """Sum of the gradients reaching one place. Recorded as an Add node only under create_graph:
    otherwise a plain array addition (no graph node, no Function dispatch). A node with several
    outputs gathers OutputGrads, which add up slot by slot."""
    if total is None:
        return grad
    if _grad_mode._grad_enabled or total.__class__ is OutputGrads:
        return total + grad
    return Tensor._make(total.data + grad.data, total._backend)


def _run_backward(tensors, grads, retain_graph, create_graph, capture=None, through_capture=True):
    """Send `grads` back from `tensors` through the graph.

    With `capture` (a dict keyed by node or leaf), the gradients reaching those
    places are collected there instead of being accumulated into leaves' `.grad`,
    and only the nodes that lead to one of them run their backward; with
    `through_capture` False the pass also stops there (partial derivatives).
    """
    pending = {}  # node -> gradient of its output, summed over all its consumers so far
    leaf_grads = {}  # leaf -> gradient summed over this pass
    roots = []
    for tensor, grad in zip(tensors, grads):
        if tensor.grad_fn is None:
            if tensor._requires_grad:
                leaf_grads[tensor] = _accumulate(leaf_grads.get(tensor), grad)
            continue
        node = tensor.grad_fn
        if node not in pending:
            roots.append(node)
        pending[node] = _accumulate(pending.get(node), grad)

    needed = _nodes_leading_to(capture, roots, through_capture) if capture is not None else None
    # With post-accumulate-grad hooks about (DistributedDataParallel's), a leaf's gradient goes into
    # .grad as soon as the last node feeding it has run, so that its hooks run during the pass.
    leaf_uses = {} if capture is None and _hooks.post_accumulate_hooks else None
    dependencies = _topological_dependencies(roots, needed, leaf_uses)
    ready = [node for node in roots if dependencies.get(node, 0) == 0]
    use_arrays = not create_graph and not _grad_mode._reference_mode  # the engine picks the path, not the op
    anomaly = _anomaly_mode._enabled  # detect_anomaly(): check what every backward returns
    with set_grad_enabled(create_graph):
        while ready:
            node = ready.pop()
            grad = pending.pop(node)
            if node._grad_hooks is not None:  # the output tensor's hooks, then retain_grad()
                grad = node._grad_hooks(grad)
            if capture is not None and node in capture:
                capture[node] = _accumulate(capture[node], grad)
            if needed is not None and node not in needed:  # grad(): no wanted gradient lies below
                continue
            if anomaly:
                input_grads = _anomaly_mode.checked_backward(_node_backward, node, grad, use_arrays)
            else:
                input_grads = _node_backward(node, grad, use_arrays)
            if not retain_graph:
                node._release()
            for edge, input_grad in zip(node.edges, input_grads):
                if edge is None:
                    continue
                if isinstance(edge, Function):
                    if input_grad is not None:
                        pending[edge] = _accumulate(pending.get(edge), input_grad)
                    dependencies[edge] -= 1
                    if dependencies[edge] == 0:
                        if edge in pending:
                            ready.append(edge)
                        else:  # no gradient reached it: nothing to do below it either
                            _skip_subgraph(edge, dependencies, pending, ready, needed)
                elif input_grad is not None:
                    leaf_grads[edge] = _accumulate(leaf_grads.get(edge), input_grad)
                if leaf_uses is not None and not isinstance(edge, Function):
                    leaf_uses[edge] -= 1
                    if leaf_uses[edge] == 0 and edge in leaf_grads:   # its gradient is whole
                        _finish_leaf(edge, leaf_grads.pop(edge), create_graph)

    hooked_leaves = _hooks.leaf_hooks  # usually empty: no lookup per leaf
    for leaf, grad in leaf_grads.items():
        if capture is not None:
            if hooked_leaves:
                grad = _run_leaf_hooks(leaf, grad, create_graph)
            if leaf in capture:
                capture[leaf] = _accumulate(capture[leaf], grad)
            continue
        _finish_leaf(leaf, grad, create_graph)


def _finish_leaf(leaf, grad, create_graph):
    """A leaf's whole gradient of this pass: through its hooks, into .grad, then its post-accumulate hooks."""
    if _hooks.leaf_hooks:
        grad = _run_leaf_hooks(leaf, grad, create_graph)
    _accumulate_into_leaf(leaf, grad, create_graph)
    if _hooks.post_accumulate_hooks:
        _hooks.run_post_accumulate_hooks(leaf)


def _run_leaf_hooks(leaf, grad, create_graph):
    hooks = _hooks.leaf_grad_hooks(leaf)
    if hooks is None:
        return grad
    with set_grad_enabled(create_graph):  # as the nodes' hooks run: a graph only under create_graph
        return hooks(grad)


def _node_backward(node, grad, use_arrays):
    """The gradients a node sends to its inputs, as a tuple of Tensors (or None): from its
    array-level backward when the node has one and no graph of the backward is recorded,
    else from its Tensor-op backward (the reference)."""
    if use_arrays and node.backward_arrays is not None:
        arrays = node.backward_arrays(grad.data)
        if not isinstance(arrays, tuple):
            arrays = (arrays,)
        return tuple(None if a is None else Tensor._make(a, node.backend) for a in arrays)
    grads = node.backward(grad)
    return grads if isinstance(grads, tuple) else (grads,)


def _nodes_leading_to(capture, roots, through_capture=True):
    """The nodes with a captured place among their inputs, or below them: the only ones whose
    backward grad() must run (as in torch, it stops where no wanted gradient lies below).
    With `through_capture` False, nothing below a captured node counts.

    An iterative depth-first walk that judges each node after all of its inputs' nodes."""
    needed, visited = set(), set()
    stack = [(root, False) for root in roots]
    while stack:
        node, inputs_judged = stack.pop()
        stops_here = not through_capture and node in capture
        if inputs_judged:
            if not stops_here and any(edge in capture or edge in needed for edge in node.edges if edge is not None):
                needed.add(node)
        elif node not in visited:
            visited.add(node)
            stack.append((node, True))
            if not stops_here:
                stack.extend((edge, False) for edge in node.edges if isinstance(edge, Function) and edge not in visited)
    return needed


def _skip_subgraph(node, dependencies, pending, ready, needed=None):
    """A node that received no gradient still releases its inputs' dependency counts (only
    those counted: with `needed`, the walk did not go below nodes outside it)."""
    stack = [node]
    while stack:
        for edge in _counted_inputs(stack.pop(), needed):
            if isinstance(edge, Function):
                dependencies[edge] -= 1
                if dependencies[edge] == 0:
                    if edge in pending:
                        ready.append(edge)
                    else:
                        stack.append(edge)


def _accumulate_into_leaf(leaf, grad, create_graph):
    if grad.shape != leaf.shape:
        raise RuntimeError(f"internal error: gradient of shape {grad.shape} for a leaf of shape {leaf.shape}")
    if not create_graph:
        grad = grad.detach()
    if leaf.grad is None:
        # Own the array: the same gradient array may have been handed to several leaves.
        leaf.grad = grad if create_graph else Tensor._make(grad.data.copy(), grad._backend)
    elif create_graph or leaf.grad._requires_grad:
        leaf.grad = leaf.grad + grad
    else:
        leaf.grad.data += grad.data


def _initial_gradients(tensors, gradients):
    grads = []
    for tensor, grad in zip(tensors, gradients):
        if grad is None:
            if tensor.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs, but the output has shape "
                    f"{tensor.shape}: pass `gradient=` (a tensor of that shape)")
            grad = Tensor._make(tensor.xp.ones_like(tensor.data), tensor._backend)
        elif not isinstance(grad, Tensor):
            grad = Tensor(grad, dtype=tensor.dtype, device=tensor.device)
        if grad.shape != tensor.shape:
            raise RuntimeError(f"gradient has shape {grad.shape} but the output has shape {tensor.shape}")
        grads.append(grad)
    return grads


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate gradients of `tensors` into the `.grad` of the leaves that require grad.

    retain_graph defaults to create_graph, as in PyTorch: a graph of the gradients is only
    useful if the graph it was built from is still there for a later backward.
    """
    if retain_graph is None:
        retain_graph = create_graph
    tensors = _as_tuple(tensors)
    grad_tensors = _as_tuple(grad_tensors) if grad_tensors is not None else (None,) * len(tensors)
    for tensor in tensors:
        if not tensor._requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad and has no grad_fn")
    grads = _initial_gradients(tensors, grad_tensors)
    if inputs is not None:
        inputs = _as_tuple(inputs)
        input_grads = grad(tensors, inputs, grads, retain_graph, create_graph, allow_unused=True)
        for tensor, input_grad in zip(inputs, input_grads):
            if input_grad is not None:
                _accumulate_into_leaf(tensor, input_grad, create_graph)
        return
    _run_backward(tensors, grads, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """d(outputs)/d(inputs) returned as a tuple, without touching any `.grad`; only the part of the
    graph that leads to `inputs` runs."""
    return _captured_gradients(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, True)


def partial_grad(outputs, inputs, grad_outputs=None, create_graph=False):
    """Like grad(), but each input is held fixed: where one input was computed from another, that
    path is not followed, so the results are partial derivatives. A kernel's create_graph backward
    needs exactly these: the derivatives of its output with respect to each of its arguments, which
    the outer backward pass then chains through the rest of the graph itself."""
    return _captured_gradients(outputs, inputs, grad_outputs, create_graph, create_graph, True, False)


def _captured_gradients(outputs, inputs, grad_outputs, retain_graph, create_graph, allow_unused, through_inputs):
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    grad_outputs = _as_tuple(grad_outputs) if grad_outputs is not None else (None,) * len(outputs)
    if retain_graph is None:
        retain_graph = create_graph
    for tensor in inputs:
        if not tensor._requires_grad:
            raise RuntimeError("grad(): one of the inputs does not require grad")
    keys = [tensor.grad_fn or tensor for tensor in inputs]
    capture = dict.fromkeys(keys)
    grads = _initial_gradients(outputs, grad_outputs)
    _run_backward(outputs, grads, retain_graph, create_graph, capture, through_inputs)
    results = []
    for index, key in enumerate(keys):
        result = capture[key]
        if result is None and not allow_unused:
            raise RuntimeError(f"grad(): input {index} was not used to compute the outputs "
                               "(pass allow_unused=True to get None for it)")
        results.append(result)
    return tuple(results)
