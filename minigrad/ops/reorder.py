"""Reordering: flip and roll move every element to a new place, without changing a value.

Each is a permutation of the elements, so its backward applies the inverse
permutation to the gradient: flip is its own inverse, roll by -shifts undoes roll.
Both return a new tensor, as in PyTorch (NumPy's flip is a view; this one is a copy).
"""
from ..autograd import Function
from .reduction import normalize_dim, normalize_dims


class Flip(Function):
    def forward(self, x, axes):
        self.axes = axes
        return self.xp.flip(x, axis=axes).copy()

    def backward(self, grad):
        return Flip.apply(grad, axes=self.axes)


class Roll(Function):
    def forward(self, x, shifts, axes):
        self.shifts, self.axes = shifts, axes
        return self.xp.roll(x, shifts, axis=axes)

    def backward(self, grad):
        inverse = -self.shifts if self.axes is None else tuple(-shift for shift in self.shifts)
        return Roll.apply(grad, shifts=inverse, axes=self.axes)


def _ints(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def flip(input, dims):
    """input with the order of the elements reversed along each of `dims` (torch.flip)."""
    return Flip.apply(input, axes=normalize_dims(_ints(dims), input.ndim, "flip"))


def roll(input, shifts, dims=None):
    """Shift elements along dims, wrapping around (torch.roll); without dims, over the flattened tensor."""
    shifts = _ints(shifts)
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: without dims, shifts must be one number, got {shifts}")
        return Roll.apply(input, shifts=int(shifts[0]), axes=None)
    dims = _ints(dims)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts {shifts} and dims {dims} must have the same length")
    if input.ndim == 0:
        raise IndexError(f"roll: a 0-d tensor has no dimension {dims[0]}")
    axes = tuple(normalize_dim(d, input.ndim, "roll") for d in dims)
    return Roll.apply(input, shifts=tuple(int(s) for s in shifts), axes=axes)


__all__ = ["flip", "roll"]
