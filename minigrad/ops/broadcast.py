"""Broadcasting and its adjoint, sum_to: the pair every binary op's backward relies on.

Broadcasting copies a value along new or size-1 dimensions, so its gradient must
add those copies back up: the gradient of `broadcast_to(x, shape)` is
`sum_to(grad, x.shape)`, and the other way round.
"""
from ..autograd import Function


def _shape(x):
    return getattr(x, "shape", ())


def broadcast_shapes(*shapes):
    """The shape that NumPy-style broadcasting gives, or a ValueError naming all shapes."""
    ndim = max(len(shape) for shape in shapes)
    result = []
    for axis in range(-ndim, 0):
        sizes = {shape[axis] for shape in shapes if len(shape) >= -axis} - {1}
        if len(sizes) > 1:
            raise ValueError("shapes " + " and ".join(str(tuple(s)) for s in shapes) + " cannot be broadcast together")
        result.append(sizes.pop() if sizes else 1)
    return tuple(result)


class BroadcastTo(Function):
    aliases_input = True  # a read-only view with zero strides

    def forward(self, x, shape):
        self.input_shape = x.shape
        return self.xp.broadcast_to(x, shape)

    def backward(self, grad):
        return sum_to(grad, self.input_shape)


class SumTo(Function):
    def forward(self, x, shape):
        self.input_shape = x.shape
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, size in enumerate(shape) if size == 1 and x.shape[lead + i] != 1)
        result = x.sum(axis=axes, keepdims=True) if axes else x
        return result.reshape(shape)

    def backward(self, grad):
        return broadcast_to(grad, self.input_shape)


def broadcast_to(x, shape):
    shape = tuple(shape)
    if x.shape == shape:
        return x
    broadcast_shapes(x.shape, shape)  # a clear error before NumPy's
    return BroadcastTo.apply(x, shape=shape)


def sum_to(x, shape):
    """Sum `x` down to `shape` (the inverse of broadcasting `shape` up to x.shape)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo.apply(x, shape=shape)


def expand(x, *sizes):
    """PyTorch's expand: like broadcast_to, with -1 meaning 'keep this size'."""
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: the number of sizes {sizes} is smaller than the tensor's ndim {x.ndim}")
    for i, size in enumerate(sizes):
        if size == -1 and i < lead:
            raise ValueError(f"expand: -1 (keep the size) is not allowed in the new leading dimension {i} of {sizes}")
        if size < 0 and size != -1:
            raise ValueError(f"expand: sizes must be non-negative or -1, got {sizes}")
    shape = tuple(x.shape[i - lead] if size == -1 else size for i, size in enumerate(sizes))
    return broadcast_to(x, shape)
