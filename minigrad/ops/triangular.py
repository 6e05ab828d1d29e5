"""tril and triu: keep the lower (or upper) triangle of the last two dims, zero the rest.

`diagonal` shifts the border as in PyTorch: 0 is the main diagonal, positive values
reach above it, negative below. Leading dims are a batch. Keeping some elements and
zeroing the others is linear, so the backward is the same op on the gradient.
"""
from ..autograd import Function


class Triangle(Function):
    def forward(self, x, diagonal, upper):
        self.diagonal, self.upper = diagonal, upper
        return self.xp.triu(x, k=diagonal) if upper else self.xp.tril(x, k=diagonal)

    def backward(self, grad):
        return Triangle.apply(grad, diagonal=self.diagonal, upper=self.upper)


def _triangle(input, diagonal, upper):
    if input.ndim < 2:
        raise ValueError(f"{'triu' if upper else 'tril'}: the input must have at least 2 dims, got shape {input.shape}")
    return Triangle.apply(input, diagonal=int(diagonal), upper=upper)


def tril(input, diagonal=0):
    """The lower triangle: elements (i, j) with j - i <= diagonal, zeros elsewhere."""
    return _triangle(input, diagonal, upper=False)


def triu(input, diagonal=0):
    """The upper triangle: elements (i, j) with j - i >= diagonal, zeros elsewhere."""
    return _triangle(input, diagonal, upper=True)


__all__ = ["tril", "triu"]
