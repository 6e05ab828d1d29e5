"""Functions written the PyTorch way: `forward` and `backward` are staticmethods that take a `ctx`.

    class Exp(minigrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):            # Tensors in (run under no_grad), Tensor or tuple of Tensors out
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad):        # one gradient per output in, one per forward argument out
            (y,) = ctx.saved_tensors
            return grad * y

    y = Exp.apply(x)

The project's own ops are written the other way (minigrad/autograd/function.py: `forward(self,
*arrays)` on raw arrays); a Function subclass whose `forward` is a staticmethod is one of these,
and `Function.__init_subclass__` gives it the `apply` below. Both kinds are nodes of one graph.

As in PyTorch, `ctx` is the graph node itself: an instance of a class made for each such Function
(`ExpBackward` for `Exp`), which is what `y.grad_fn` shows. It offers PyTorch's `ctx` API:
save_for_backward / saved_tensors, needs_input_grad, mark_non_differentiable and
set_materialize_grads; anything else you set on it (`ctx.k = 2`) stays there for backward.
`forward(*args)` with a separate `setup_context(ctx, inputs, output)` works too.

Several outputs: the engine gives every node one output, so output i of a Function that returns a
tuple gets a small node of its own, `OutputOf` (its `grad_fn`), whose backward hands the gradient
to slot i of the Function's node; the node runs once all its outputs' gradients have arrived
(`OutputGrads`), and backward receives one gradient per output, zeros where none came (None
with `ctx.set_materialize_grads(False)`). In PyTorch `y.grad_fn` is the Function's node itself.

Not supported: mark_dirty (in-place Functions), once_differentiable, forward-mode `jvp`, vmap.
"""
import inspect
import weakref

from ..tensor import Tensor
from . import anomaly_mode as _anomaly_mode
from . import grad_mode as _grad_mode
from .function import _SAVED_OUTPUT, Function, _SavedOutput


def make_torch_style(cls):
    """Called for every Function subclass whose forward is a staticmethod: give it PyTorch's apply
    and the node class its calls create."""
    cls._backward_cls = type(f"{cls.__name__}Backward", (BackwardNode,),
                             {"_forward_cls": cls, "__module__": cls.__module__,
                              "__qualname__": f"{cls.__qualname__}Backward"})
    cls.apply = classmethod(apply)


def apply(cls, *args, **kwargs):
    """Run `cls.forward` on the arguments (Tensors as they are) under no_grad; when an argument
    requires grad and grad mode is on, make the outputs the outputs of a new node."""
    setup_context = getattr(cls, "setup_context", None)
    if setup_context:  # as torch: forward(*args) sees every parameter, defaults included, as an input
        bound = inspect.signature(cls.forward).bind(*args, **kwargs)
        bound.apply_defaults()
        args, kwargs = bound.args, bound.kwargs
    elif kwargs:  # keyword arguments are bound to forward's parameters: each is an input, as in torch
        bound = inspect.signature(cls.forward).bind(None, *args, **kwargs)
        args, kwargs = bound.args[1:], bound.kwargs
    node = cls._backward_cls.__new__(cls._backward_cls)
    node.backend = _common_backend(cls, args)
    node.needs_input_grad = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
    node._record = any(node.needs_input_grad) and _grad_mode._grad_enabled
    node._to_save = ()
    with _grad_mode.no_grad():
        if setup_context:
            outputs = cls.forward(*args, **kwargs)
            setup_context(node, args, outputs)
        else:
            outputs = cls.forward(node, *args, **kwargs)
    if not node._record:
        return outputs
    if _anomaly_mode._enabled:
        node._forward_stack = _anomaly_mode.forward_stack()
    return node._connect_outputs(args, outputs)


def _common_backend(cls, args):
    backends = {a._backend for a in args if isinstance(a, Tensor)}  # one per device: compared by identity
    if len(backends) > 1:
        raise RuntimeError(f"{cls.__name__}: expected all tensors on one device, got "
                           + " and ".join(sorted(b.device for b in backends)))
    return backends.pop() if backends else None


class BackwardNode(Function):
    """The node (and `ctx`) of one call of a PyTorch-style Function; `_forward_cls` is that Function."""

    _forward_cls = None
    _materialize_grads = True
    _non_differentiable = ()
    _output_meta = None  # per output: (shape, dtype, backend, differentiable), None for non-Tensors
    _several_outputs = False  # forward returned a tuple
    _saved_outputs = None  # output index -> (array, weak reference, version counter), when saved

    # -- PyTorch's ctx API ------------------------------------------------------------
    def save_for_backward(self, *tensors):
        """Keep inputs, outputs or other Tensors (or None) for backward: `ctx.saved_tensors`."""
        for index, item in enumerate(tensors):
            if item is not None and not isinstance(item, Tensor):
                raise TypeError(f"save_for_backward can only save Tensors (or None), but argument {index} "
                                f"is a {type(item).__name__}; keep other values as attributes of ctx")
        if self._record:
            self._to_save = tensors

    def mark_non_differentiable(self, *tensors):
        """These outputs get no gradient: they do not require grad, and backward receives zeros for them."""
        self._non_differentiable = self._non_differentiable + tensors

    def set_materialize_grads(self, value):
        """True (the default): backward receives zeros for outputs no gradient reached; False: None."""
        self._materialize_grads = bool(value)

    def mark_dirty(self, *tensors):
        raise NotImplementedError("minigrad's Functions cannot modify their inputs in place (mark_dirty); "
                                  "return a new tensor instead")

    # -- wiring the outputs into the graph --------------------------------------------------
    def _connect_outputs(self, args, outputs):
        self._several_outputs = isinstance(outputs, tuple)
        returned = outputs if self._several_outputs else (outputs,)
        self.edges = tuple((a.grad_fn or a) if needs else None for a, needs in zip(args, self.needs_input_grad))
        self._inputs_meta = tuple((a.shape, a.dtype) if isinstance(a, Tensor) else None for a in args)
        non_differentiable = {id(t) for t in self._non_differentiable}
        results, meta = [], []
        for index, out in enumerate(returned):
            if not isinstance(out, Tensor):
                results.append(out)
                meta.append(None)
                continue
            # A new Tensor for each output (forward may return an input itself), sharing its memory.
            result = Tensor._make(out.data, out._backend)
            result._version_counter = out._shared_version_counter()
            differentiable = id(out) not in non_differentiable and out.dtype.kind == "f"
            if differentiable:
                result.grad_fn = output_node(self, index, len(returned), result) if self._several_outputs else self
                result._requires_grad = True
            results.append(result)
            meta.append((out.shape, out.dtype, out._backend, differentiable))
        self._output_meta = meta
        tensors = [m for m in meta if m is not None]
        shapes = tuple(m[0] for m in tensors)  # for minigrad.viz and error messages
        self.output_shape = shapes[0] if len(shapes) == 1 and not self._several_outputs else shapes
        self.output_dtype = ", ".join(sorted({str(m[1]) for m in tensors}))
        self._save(args, returned, results)
        return tuple(results) if self._several_outputs else results[0]

    def _save(self, args, returned, results):
        saved, versions = [], []
        for item in self._to_save:
            version = None
            output_index = next((i for i, out in enumerate(returned) if item is out), None)
            if output_index is not None:
                result = results[output_index]
                if not self._several_outputs:
                    item, version = _SAVED_OUTPUT, self._keep_output(result.data, result)
                else:
                    counter = result._shared_version_counter()
                    if self._saved_outputs is None:
                        self._saved_outputs = {}
                    self._saved_outputs[output_index] = (result.data, weakref.ref(result), counter)
                    item, version = _SavedOutput(output_index), counter.value
            elif item is not None:
                version = item._version  # an input, or a tensor forward made: kept as it is
            saved.append(item)
            versions.append(version)
        self._store_saved(saved, versions, args)

    def _kept_output(self, index):
        if index is None:
            return super()._kept_output(index)
        array, ref, counter = self._saved_outputs[index]
        return array, ref, counter, self._output_meta[index][2]

    def _reconnect_output(self, tensor, index):
        if index is None:
            super()._reconnect_output(tensor, index)
        elif self._output_meta[index][3]:  # differentiable: a fresh OutputOf node leads to this node
            tensor.grad_fn, tensor._requires_grad = output_node(self, index, len(self._output_meta), tensor), True

    def _release(self):
        super()._release()
        self._saved_outputs = None

    # -- the engine calls this ----------------------------------------------------------------
    def backward(self, grad):
        """Call the Function's backward(ctx, *grads) and check what it returns."""
        grads = grad.grads if self._several_outputs else (grad,)
        if self._materialize_grads:
            grads = tuple(_zeros(meta) if g is None and meta is not None else g
                          for g, meta in zip(grads, self._output_meta))
        result = self._forward_cls.backward(self, *grads)
        return self._checked_input_grads(result if isinstance(result, tuple) else (result,))

    def _checked_input_grads(self, grads):
        name, expected = type(self).__name__, len(self.edges)
        if len(grads) < expected or any(g is not None for g in grads[expected:]):
            raise RuntimeError(f"function {name} returned an incorrect number of gradients "
                               f"(expected {expected}, got {len(grads)})")
        checked = []
        for index, (g, meta) in enumerate(zip(grads, self._inputs_meta)):
            if g is not None:
                if meta is None:
                    raise RuntimeError(f"function {name} returned a gradient different than None at position "
                                       f"{index + 1}, but the corresponding forward input was not a Tensor")
                if not isinstance(g, Tensor):
                    raise TypeError(f"function {name} returned a {type(g).__name__} as gradient {index}; "
                                    "expected a Tensor or None")
                shape, dtype = meta
                if g.shape != shape:
                    g = _summed_to(g, shape, name, index)
                if g.dtype != dtype:  # as torch: the gradient takes its input's dtype
                    g = g.to(dtype)
            checked.append(g)
        return tuple(checked)


def _summed_to(grad, shape, name, index):
    """As torch: a gradient of the broadcast shape is summed down to the input's shape; others are errors."""
    from ..ops.broadcast import broadcast_shapes, sum_to

    try:
        fits = broadcast_shapes(shape, grad.shape) == tuple(grad.shape)
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"Function {name} returned an invalid gradient at index {index} - got "
                           f"{list(grad.shape)} but expected shape compatible with {list(shape)}")
    return sum_to(grad, shape)


def _zeros(meta):
    shape, dtype, backend, _ = meta
    return Tensor._make(backend.xp.zeros(shape, dtype=dtype), backend)


# -- several outputs ----------------------------------------------------------------------------
class OutputOf(Function):
    """The node of output `index` of a Function with several outputs: its backward sends the
    gradient on to slot `index` of that Function's node."""

    def backward(self, grad):
        grads = [None] * self.count
        grads[self.index] = grad
        return OutputGrads(tuple(grads))

    def __repr__(self):
        return f"<output {self.index} of {type(self.edges[0]).__name__}>"


def output_node(node, index, count, result):
    """The OutputOf node of output `index` (of `count`) of `node`, for the Tensor `result`."""
    output = OutputOf._node(result._backend, (node,), result.shape, result.dtype)
    output.index, output.count = index, count
    return output


class OutputGrads:
    """The gradients reaching a node with several outputs: one per output, None where none came yet.
    The engine adds them up like any gradient (`+`)."""

    __slots__ = ("grads",)

    def __init__(self, grads):
        self.grads = grads

    def __add__(self, other):
        return OutputGrads(tuple(b if a is None else a if b is None else a + b
                                 for a, b in zip(self.grads, other.grads)))
