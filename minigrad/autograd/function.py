"""Graph nodes: a `Function` is an op (forward and backward side by side), and each
instance is one node of the graph, with one edge per input.

    forward(self, *arrays, **params) -> array     runs on raw backend arrays
    backward(self, grad) -> grad per input        runs on Tensors

Because `backward` is written with Tensor ops, running it while grad mode is on
records a graph of the backward pass itself: that is all `create_graph=True` does,
and why second derivatives come for free. This `backward` is the reference.

A Function of the fast layer (minigrad/kernels) may also write

    backward_arrays(self, grad) -> array per input   the same gradient on raw arrays

and the engine (minigrad/autograd/engine.py), not the op, picks which one runs.

Calling `SomeOp.apply(x, y)` runs `forward` and, if any input requires grad,
keeps the Function instance as the output's `grad_fn`: a node of the graph, with
one edge per input (the input's own node, or the leaf tensor itself).

A subclass whose `forward` is a staticmethod is written the PyTorch way instead,
`forward(ctx, *tensors)` / `backward(ctx, *grads)`: see torch_style.py.
"""
import inspect
import weakref

from ..tensor import Tensor
from . import anomaly_mode as _anomaly_mode
from . import grad_mode as _grad_mode


class _SavedOutput:
    """Marks 'an output of this op' in the saved list (held as an array, not a Tensor: no cycle).
    `index` is None for the one output of an op (every op of the project has one); a Function
    written the PyTorch way may have several (minigrad/autograd/torch_style.py)."""

    __slots__ = ("index",)

    def __init__(self, index=None):
        self.index = index


_SAVED_OUTPUT = _SavedOutput()


class Function:
    """An op with its forward and backward; instances are the nodes of the graph."""

    __slots__ = ("backend", "edges", "needs_input_grad", "_record", "_to_save", "_saved", "_versions",
                 "output_shape", "output_dtype", "__dict__", "__weakref__")
    # Defaults shared by all nodes (an instance only stores them once they change: fewer writes per op).
    _output = None  # the output array, when forward saved it
    _output_ref = None  # weak reference to the output Tensor (no cycle output -> node -> output)
    _released = False  # True once backward freed the saved values
    _grad_hooks = None  # the output's hooks and retain_grad(), once it has any (minigrad/autograd/hooks.py)
    _unpack_hook = None  # set when saved_tensors_hooks packed what it saved (minigrad/autograd/graph.py)
    _forward_stack = None  # where forward was called, kept in anomaly mode (minigrad/autograd/anomaly_mode.py)
    # True for ops whose output is a view of input 0 (reshape, permute, basic indexing, broadcast):
    # the output then shares the input's version counter, so an in-place write through either is seen.
    # An op that returns a view only sometimes sets it on the node in `forward`.
    aliases_input = False

    def __init_subclass__(cls, **kwargs):
        """A subclass whose forward is a staticmethod is written the PyTorch way: see torch_style.py."""
        super().__init_subclass__(**kwargs)
        if isinstance(inspect.getattr_static(cls, "forward"), staticmethod):
            from .torch_style import make_torch_style

            make_torch_style(cls)

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
        if self._unpack_hook is not None:  # saved through saved_tensors_hooks (graph.py)
            yield from _graph.unpacked(self)
            return
        for item, version in zip(self._saved, self._versions):
            if item.__class__ is _SavedOutput:
                item = self._saved_output(item.index, version)
            elif isinstance(item, Tensor) and version is not None and item._version != version:
                raise _modified_in_place(f"a tensor saved for the backward of {type(self).__name__}", item._version,
                                         version)
            yield item

    def _saved_output(self, index, version):
        """A saved output: the output Tensor itself while it lives, else one rebuilt around the kept array."""
        array, ref, counter, backend = self._kept_output(index)
        if counter.value != version:
            what = "the output" if index is None else f"output {index}"
            raise _modified_in_place(f"{what} of {type(self).__name__}, saved for its backward,", counter.value,
                                     version)
        output = ref()
        if output is None:  # the output Tensor is gone: rebuild it around the kept array and counter
            output = Tensor._make(array, backend)
            output._version_counter = counter
            self._reconnect_output(output, index)
        return output

    def _kept_output(self, index):
        """(array, weak reference, version counter, backend) of a saved output."""
        return self._output, self._output_ref, self._output_counter, self.backend

    def _reconnect_output(self, tensor, index):
        """Make a rebuilt tensor this node's output again, so that gradients through it reach the node."""
        tensor.grad_fn, tensor._requires_grad = self, True

    def retain_output_grad(self, tensor):
        from .hooks import grad_hooks

        grad_hooks(tensor).retained = weakref.ref(tensor)

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
        node._record = record = needs_grad and _grad_mode._grad_enabled
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
            if _anomaly_mode._enabled:
                node._forward_stack = _anomaly_mode.forward_stack()
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
                item, version = _SAVED_OUTPUT, self._keep_output(output, result)
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
        self._store_saved(saved, versions, inputs)

    def _store_saved(self, saved, versions, inputs):
        """Keep what forward saved; while saved_tensors_hooks are active, what pack returns instead (graph.py)."""
        self._saved = saved
        self._versions = versions
        self._to_save = ()
        if _graph._hooks_stack:
            _graph.pack_saved(self, inputs)

    def _keep_output(self, output, result):
        """Keep the output for backward as its array and a weak reference; returns its version.
        The counter, not just the Tensor: a view of the output may outlive it and be written to."""
        self._output_counter = result._shared_version_counter()
        self._output = output
        self._output_ref = weakref.ref(result)
        return self._output_counter.value

    @classmethod
    def _node(cls, backend, edges, shape, dtype):
        """A node made without running forward (the engine's helpers: OutputOf, SavedLeaf)."""
        node = cls.__new__(cls)
        node.backend, node.edges = backend, tuple(edges)
        node.needs_input_grad = tuple(edge is not None for edge in node.edges)
        node._record, node._to_save, node._saved, node._versions = True, (), [], []
        node.output_shape, node.output_dtype = shape, dtype
        return node

    def _release(self):
        self._saved = None
        self._output = None
        self._released = True

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _modified_in_place(what, now, then):
    return RuntimeError(f"{what} was modified in place (it is at version {now}, saved at version {then})")


from . import graph as _graph  # noqa: E402  (graph.py builds on Function)
