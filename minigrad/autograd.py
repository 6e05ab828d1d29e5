"""Reverse-mode autograd: graph nodes, the backward pass, and grad mode.

Every differentiable op is a `Function` subclass with two methods side by side:

    forward(self, *arrays, **params) -> array     runs on raw backend arrays
    backward(self, grad) -> grad per input        runs on Tensors

Because `backward` is written with Tensor ops, running it while grad mode is on
records a graph of the backward pass itself: that is all `create_graph=True` does,
and why second derivatives come for free. This `backward` is the reference.

Two paths, one engine: a Function of the fast layer (minigrad/kernels) may also write

    backward_arrays(self, grad) -> array per input   the same gradient on raw arrays

and the engine, not the op, picks: `backward_arrays` when no graph of the backward is
recorded, `backward` when one is (create_graph=True) or in reference mode
(`set_reference_mode(True)`, or MINIGRAD_REFERENCE=1 in the environment), which also
makes minigrad.functional compose every layer from the primitive ops and optim.Adam make
its whole-array reference update.

Calling `SomeOp.apply(x, y)` runs `forward` and, if any input requires grad,
keeps the Function instance as the output's `grad_fn`: a node of the graph, with
one edge per input (the input's own node, or the leaf tensor itself).
"""
import contextlib
import os
import weakref

from .tensor import Tensor

# -- grad mode ----------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled():
    return _grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context manager / decorator that turns graph recording on or off."""

    def __init__(self, mode):
        self.mode = bool(mode)
        self.previous = []

    def __enter__(self):
        global _grad_enabled
        self.previous.append(_grad_enabled)
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.previous.pop()
        return False


class _ModeDecorator(set_grad_enabled):
    """A grad mode usable as `with mode():`, `@mode()` and, as in torch 2, plain `@mode`."""

    _mode = True

    def __new__(cls, function=None):
        if function is None:
            return super().__new__(cls)
        return cls()(function)  # `@no_grad` without parentheses: Python passes the function itself

    def __init__(self, function=None):
        super().__init__(self._mode)


class no_grad(_ModeDecorator):
    """Do not record ops (inference, optimizer updates). Usable as `with` or as a decorator."""

    _mode = False


class enable_grad(_ModeDecorator):
    """Record ops again inside a `no_grad` block."""

    _mode = True


# -- which path: the reference or the kernels ----------------------------------------------
_reference_mode = os.environ.get("MINIGRAD_REFERENCE", "0") not in ("", "0")


def is_reference_mode():
    """True when only the reference path runs: composed primitive ops, Tensor-op backwards."""
    return _reference_mode


class set_reference_mode:
    """Run only the reference path (True) or let the engine use the kernels (False).

    Takes effect at once, and as a context manager puts the previous mode back on exit:

        minigrad.set_reference_mode(True)          # from here on
        with minigrad.set_reference_mode(True):    # inside the block only
    """

    def __init__(self, mode):
        global _reference_mode
        self.previous, _reference_mode = _reference_mode, bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _reference_mode
        _reference_mode = self.previous
        return False


# -- graph nodes --------------------------------------------------------------------------
class _SavedOutput:
    """Marks 'the output of this op' in the saved list (held as an array, not a Tensor: no cycle)."""


_SAVED_OUTPUT = _SavedOutput()


class Function:
    """An op with its forward and backward; instances are the nodes of the graph."""

    __slots__ = ("backend", "edges", "needs_input_grad", "_record", "_to_save", "_saved", "_versions",
                 "output_shape", "output_dtype", "__dict__", "__weakref__")
    # Defaults shared by all nodes (an instance only stores them once they change: fewer writes per op).
    _output = None  # the output array, when forward saved it
    _output_ref = None  # weak reference to the output Tensor (no cycle output -> node -> output)
    _released = False  # True once backward freed the saved values
    _retained = None  # weak reference to an output that asked for retain_grad()
    # True for ops whose output is a view of input 0 (reshape, permute, basic indexing, broadcast):
    # the output then shares the input's version counter, so an in-place write through either is seen.
    # An op that returns a view only sometimes sets it on the node in `forward`.
    aliases_input = False

    # -- to be written by each op -------------------------------------------------------
    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    # Optional (the kernels of minigrad/kernels define it): `backward_arrays(self, grad)` takes the raw
    # gradient array and returns raw arrays (or None) per input; read the saved values with `saved_arrays`.
    # The engine calls it only when no graph of the backward is recorded and reference mode is off.
    backward_arrays = None

    # -- helpers for forward/backward ------------------------------------------------------
    @property
    def xp(self):
        """The array module of this op's inputs (NumPy or CuPy)."""
        return self.backend.xp

    def save_for_backward(self, *items):
        """Keep inputs, the output or other arrays for backward (they come back as Tensors)."""
        if self._record:
            self._to_save = items

    @property
    def saved_tensors(self):
        """What forward saved, as Tensors (inputs come back as the input Tensors themselves)."""
        saved = []
        for item in self._unpack_saved():
            if isinstance(item, self.backend.array_type):
                item = Tensor._make(item, self.backend)
            saved.append(item)
        return tuple(saved)

    @property
    def saved_arrays(self):
        """What forward saved, as raw arrays (for `backward_arrays`)."""
        return tuple(item.data if isinstance(item, Tensor) else item for item in self._unpack_saved())

    def _unpack_saved(self):
        if self._released:
            raise RuntimeError(
                f"trying to backward through {type(self).__name__} a second time: its saved values were "
                "freed after the first backward; pass retain_graph=True to the first backward")
        for item, version in zip(self._saved, self._versions):
            if item is _SAVED_OUTPUT:
                item = self._saved_output(version)
            elif isinstance(item, Tensor) and version is not None and item._version != version:
                raise RuntimeError(
                    f"a tensor saved for the backward of {type(self).__name__} was modified in place "
                    f"(it is at version {item._version}, saved at version {version})")
            yield item

    def _saved_output(self, version):
        if self._output_counter.value != version:
            raise RuntimeError(f"the output of {type(self).__name__}, saved for its backward, was modified in "
                               f"place (it is at version {self._output_counter.value}, saved at version {version})")
        output = self._output_ref()
        if output is None:  # the output Tensor is gone: rebuild it around the kept array and counter
            output = Tensor._make(self._output, self.backend, self)
            output._version_counter = self._output_counter
        return output

    def retain_output_grad(self, tensor):
        self._retained = weakref.ref(tensor)

    # -- running an op ---------------------------------------------------------------------
    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays; record a graph node when a gradient is needed."""
        backend = None
        needs_grad = False
        arrays = []
        for x in inputs:
            if isinstance(x, Tensor):
                if backend is None:
                    backend = x._backend
                elif x._backend is not backend:
                    raise RuntimeError(f"{cls.__name__}: expected all tensors on one device, "
                                       f"got {backend.device} and {x._backend.device}")
                needs_grad = needs_grad or x._requires_grad
                arrays.append(x.data)
            else:
                arrays.append(x)
        node = cls.__new__(cls)
        node.backend = backend
        node._record = record = needs_grad and _grad_enabled
        node._to_save = ()
        try:
            output = node.forward(*arrays, **params)
        except (ValueError, IndexError) as error:
            shapes = " and ".join(str(getattr(a, "shape", type(a).__name__)) for a in arrays)
            raise type(error)(f"{cls.__name__} on shapes {shapes}: {error}") from None
        backend = node.backend  # ToDevice changes it
        raw_output = output
        if type(output) is not backend.array_type:
            output = backend.xp.asarray(output)  # NumPy returns scalars, not arrays, for 0-d results
        result = Tensor._make(output, backend, node if record else None)
        if node.aliases_input:
            result._version_counter = inputs[0]._shared_version_counter()
        if record:
            node._connect(inputs, arrays, output, result, raw_output)
        return result

    def _connect(self, inputs, arrays, output, result, raw_output):
        edges = [(x.grad_fn or x) if isinstance(x, Tensor) and x._requires_grad else None for x in inputs]
        self.edges = tuple(edges)
        self.needs_input_grad = tuple([edge is not None for edge in edges])
        self.output_shape = output.shape  # for minigrad.viz and error messages; the array itself is not kept
        self.output_dtype = output.dtype
        saved, versions = [], []
        for item in self._to_save:
            version = None
            if item is raw_output or item is output:
                # The counter, not just the Tensor: a view of the output may outlive it and be written to.
                self._output_counter = result._shared_version_counter()
                item, version = _SAVED_OUTPUT, self._output_counter.value
                self._output = output
                self._output_ref = weakref.ref(result)
            else:
                for x, array in zip(inputs, arrays):
                    if item is array and isinstance(x, Tensor):
                        counter = x._version_counter  # read directly: the property costs a call
                        item, version = x, (0 if counter is None else counter.value)
                        break
                else:
                    if hasattr(item, "dtype") and type(item) is not self.backend.array_type:
                        item = self.backend.xp.asarray(item)  # a NumPy scalar from a 0-d computation
            saved.append(item)
            versions.append(version)
        self._saved = saved
        self._versions = versions
        self._to_save = ()

    def _release(self):
        self._saved = None
        self._output = None
        self._released = True

    def __repr__(self):
        return f"<{type(self).__name__}>"


# -- the backward pass ---------------------------------------------------------------------
def _topological_dependencies(roots, needed=None):
    """For every node reachable from the roots: how many reachable nodes feed it a gradient.
    With `needed`, the walk does not go below nodes outside it.

    Iterative (an explicit stack), so a chain of 100,000 ops needs no recursion.
    """
    dependencies = {}
    seen = set(roots)
    stack = list(roots)
    while stack:
        node = stack.pop()
        if needed is not None and node not in needed:
            continue
        for edge in node.edges:
            if isinstance(edge, Function):
                dependencies[edge] = dependencies.get(edge, 0) + 1
                if edge not in seen:
                    seen.add(edge)
                    stack.append(edge)
    return dependencies


def _accumulate(total, grad):
    """Sum of the gradients reaching one place. Recorded as an Add node only under create_graph:
    otherwise a plain array addition (no graph node, no Function dispatch)."""
    if total is None:
        return grad
    if _grad_enabled:
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
    dependencies = _topological_dependencies(roots, needed)
    ready = [node for node in roots if dependencies.get(node, 0) == 0]
    use_arrays = not create_graph and not _reference_mode  # the engine picks the path, not the op
    with set_grad_enabled(create_graph):
        while ready:
            node = ready.pop()
            grad = pending.pop(node)
            if capture is not None and node in capture:
                capture[node] = _accumulate(capture[node], grad)
            if node._retained is not None:
                output = node._retained()
                if output is not None:
                    output.grad = grad if output.grad is None else output.grad + grad
            if needed is not None and node not in needed:  # grad(): no wanted gradient lies below
                continue
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

    for leaf, grad in leaf_grads.items():
        if capture is not None:
            if leaf in capture:
                capture[leaf] = _accumulate(capture[leaf], grad)
            continue
        _accumulate_into_leaf(leaf, grad, create_graph)


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
        node = stack.pop()
        if needed is not None and node not in needed:
            continue
        for edge in node.edges:
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
