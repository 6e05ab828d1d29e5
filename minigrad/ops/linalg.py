"""Matrix products: `a @ b` for 1-D, 2-D and batched N-D operands with broadcast batch dims, and
PyTorch's stricter mm, bmm, dot and outer (fixed dims, no broadcasting).

For C = A @ B the gradients are dA = dC @ B^T and dB = A^T @ dC; batch dimensions
that were broadcast are summed back with `sum_to`. 1-D operands are treated as a
row (left) or a column (right) vector, as NumPy and PyTorch do.
"""
from ..autograd import Function
from .broadcast import sum_to


def _check_shapes(a_shape, b_shape):
    if not a_shape or not b_shape:
        raise ValueError(f"matmul: both operands need at least 1 dim, got shapes {a_shape} and {b_shape}")
    inner_a = a_shape[-1]
    inner_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: shapes {a_shape} and {b_shape} do not align ({inner_a} != {inner_b})")


class MatMul(Function):
    def forward(self, a, b):
        _check_shapes(a.shape, b.shape)
        self.save_for_backward(a, b)
        return self.xp.matmul(a, b)

    def backward(self, grad):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:  # dot product: grad is a scalar
            return (grad * b if need_a else None), (grad * a if need_b else None)
        a2 = a.unsqueeze(0) if a.ndim == 1 else a
        b2 = b.unsqueeze(-1) if b.ndim == 1 else b
        g2 = grad.unsqueeze(-2) if a.ndim == 1 else grad
        g2 = g2.unsqueeze(-1) if b.ndim == 1 else g2
        grad_a = grad_b = None
        if need_a:
            grad_a = sum_to(matmul(g2, b2.mT), a2.shape).reshape(a.shape)
        if need_b:
            if b2.ndim == 2 and a2.ndim > 2:  # one weight shared by a batch: a single big product
                grad_b = matmul(a2.reshape(-1, a2.shape[-1]).mT, g2.reshape(-1, g2.shape[-1]))
            else:
                grad_b = sum_to(matmul(a2.mT, g2), b2.shape)
            grad_b = grad_b.reshape(b.shape)
        return grad_a, grad_b


def matmul(a, b):
    return MatMul.apply(a, b)


def _check_dims(op, a, b, ndim, inner):
    """Both operands of `op` have `ndim` dims and a's last size equals b's size at `inner`."""
    if a.ndim != ndim or b.ndim != ndim or a.shape[-1] != b.shape[inner] or a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"{op}: expected two {ndim}-D tensors that fit, got shapes {a.shape} and {b.shape}")


def mm(input, mat2):
    """(n, m) @ (m, p) -> (n, p)."""
    _check_dims("mm", input, mat2, 2, 0)
    return matmul(input, mat2)


def bmm(input, mat2):
    """(b, n, m) @ (b, m, p) -> (b, n, p): one batch size on both sides (no broadcasting, as torch.bmm)."""
    _check_dims("bmm", input, mat2, 3, 1)
    return matmul(input, mat2)


def dot(input, other):
    """The inner product of two 1-D tensors of one size: a 0-d tensor."""
    _check_dims("dot", input, other, 1, 0)
    return matmul(input, other)


def outer(input, vec2):
    """(n,) and (m,) -> (n, m) with out[i, j] = input[i] * vec2[j]."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise ValueError(f"outer: expected two 1-D tensors, got shapes {input.shape} and {vec2.shape}")
    return input.unsqueeze(1) * vec2.unsqueeze(0)
