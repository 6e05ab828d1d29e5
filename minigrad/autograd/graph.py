"""What the graph keeps for backward, and how to watch it: saved_tensors_hooks.

    def pack(tensor):                 # called for every tensor an op saves for its backward
        print("saved", tuple(tensor.shape))
        return tensor                 # ... and whatever it returns is what the graph keeps

    def unpack(packed):               # called when backward reads it: must give the tensor back
        return packed

    with minigrad.autograd.graph.saved_tensors_hooks(pack, unpack):
        loss = model(x).sum()         # ops recorded here save through pack
    loss.backward()                   # their backward reads through unpack

As in PyTorch: the hooks apply to the nodes recorded while the block is active (the innermost
block wins), pack receives each saved tensor (an input, the output, or an intermediate the op
kept), and unpack must return a Tensor with the same values. The graph then keeps only what pack
returned, so pack may, say, copy a tensor to the host and unpack bring it back.

What backward gets is unpack's values with the saved tensor's place in the graph put back (its
node, or for a leaf a `SavedLeaf` node that passes gradients to it), so create_graph and the
kernels' reference backward still differentiate through it; in-place writes to a saved input or
output after it was saved are still caught. Both of the engine's paths read saved values through
Function._unpack_saved, so the hooks see the kernels' saved arrays too (as Tensors).

Costs nothing when no hooks are active: one check of an empty list per recorded node.
"""
from ..tensor import Tensor
from .function import Function, _modified_in_place, _SavedOutput
from .grad_mode import no_grad

_hooks_stack = []  # (pack_hook, unpack_hook) of the active saved_tensors_hooks blocks, innermost last


class saved_tensors_hooks:
    """Context manager: every tensor saved for backward inside it goes through pack_hook(tensor), and
    comes back through unpack_hook(packed) when backward reads it."""

    def __init__(self, pack_hook, unpack_hook):
        self.pack_hook = pack_hook
        self.unpack_hook = unpack_hook

    def __enter__(self):
        _hooks_stack.append((self.pack_hook, self.unpack_hook))
        return self

    def __exit__(self, *exc):
        _hooks_stack.pop()
        return False


class _Packed:
    """One saved tensor as the graph keeps it under hooks: pack's result, and what is needed to check
    and reattach what unpack returns."""

    __slots__ = ("value", "place", "output", "counter", "version")

    def __init__(self, value, place, output, counter, version):
        self.value = value
        self.place = place  # the saved tensor's grad_fn, or a leaf that requires grad, or None
        self.output = output  # for an output of the node: its _SavedOutput marker, else None
        self.counter = counter  # its version counter, to catch in-place writes (None for an op's own array)
        self.version = version


def pack_saved(node, inputs):
    """Replace what `node` just saved by what the innermost pack hook returns for each tensor."""
    pack, unpack = _hooks_stack[-1]
    packed = []
    for item, version in zip(node._saved, node._versions):
        output = None
        if item.__class__ is _SavedOutput:
            tensor, counter = _saved_output_tensor(node, item.index)
            place, output = node, item
        elif isinstance(item, Tensor):
            tensor, counter = item, item._shared_version_counter()
            place = next((edge for x, edge in zip(inputs, node.edges) if x is item), None)
        elif isinstance(item, node.backend.array_type):  # an array the op computed and kept
            tensor, counter, place = Tensor._make(item, node.backend), None, None
        else:  # None, numbers, shapes: not tensors, kept as they are
            packed.append(item)
            continue
        with _hooks_off():
            packed.append(_Packed(pack(tensor), place, output, counter, version))
    node._saved = packed
    node._unpack_hook = unpack


def _saved_output_tensor(node, index):
    """The saved output as a Tensor for pack, and its counter; the node then stops keeping its array."""
    counter = node._kept_output(index)[2]
    tensor = node._saved_output(index, counter.value)
    if index is None:
        node._output = None
    else:
        node._saved_outputs[index] = (None,) + node._saved_outputs[index][1:]
    return tensor, counter


def unpacked(node):
    """What `node` saved, each packed tensor given back by unpack and put back in its place in the graph."""
    for item in node._saved:
        if item.__class__ is not _Packed:
            yield item
            continue
        if item.counter is not None and item.counter.value != item.version:
            raise _modified_in_place(f"a tensor saved for the backward of {type(node).__name__}", item.counter.value,
                                     item.version)
        with _hooks_off():
            tensor = node._unpack_hook(item.value)
        if not isinstance(tensor, Tensor):
            raise TypeError(f"unpack_hook returned a {type(tensor).__name__}; it must return a Tensor")
        if tensor._backend is not node.backend:
            raise RuntimeError(f"unpack_hook returned a tensor on {tensor.device} for {type(node).__name__}, "
                               f"whose tensors are on {node.backend.device}")
        yield _reattached(node, tensor.data, item)


def _reattached(node, array, item):
    """A Tensor of unpack's values that stands where the saved tensor stood in the graph."""
    place, backend = item.place, node.backend
    tensor = Tensor._make(array, backend)
    if item.output is not None:  # one of the node's outputs
        node._reconnect_output(tensor, item.output.index)
    elif isinstance(place, Function):
        tensor.grad_fn, tensor._requires_grad = place, True
    elif place is not None:  # a leaf: a node that passes the gradient on to it
        tensor.grad_fn = SavedLeaf._node(backend, (place,), array.shape, array.dtype)
        tensor._requires_grad = True
    if item.counter is not None:
        tensor._version_counter = item.counter
    return tensor


class SavedLeaf(Function):
    """A saved leaf as unpack gives it back: the identity, so its gradient reaches the leaf itself."""

    def backward(self, grad):
        return grad


class _hooks_off:
    """Pack and unpack run without recording and without hooks (a hook's own ops must not be packed)."""

    def __enter__(self):
        self.saved, _hooks_stack[:] = list(_hooks_stack), []
        self.no_grad = no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        _hooks_stack[:] = self.saved
        return False
