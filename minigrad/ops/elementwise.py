"""Elementwise ops: arithmetic, math functions, comparisons and tests, where and masked_fill.

Binary ops broadcast like NumPy and take Python scalars on either side; their
backward sums the gradient back to each operand's shape (`sum_to`).
Masks used by backward (relu, clip, maximum) are saved as constants of the
input's dtype: the functions are piecewise linear, so their second derivative
through the mask is zero, and treating the mask as a constant is exact.
"""
import math
import numbers

from ..autograd import Function
from ..tensor import Tensor
from .broadcast import _shape, broadcast_shapes, sum_to
from .promotion import promote


def _operand(x):
    """Python numbers stay scalars (they take the tensor's dtype); other data becomes a tensor."""
    if isinstance(x, Tensor) or type(x) in (int, float, bool):
        return x
    if isinstance(x, numbers.Number) and getattr(x, "ndim", 0) == 0:
        return x.item() if hasattr(x, "item") else x  # NumPy scalars would force their dtype
    return Tensor(x)


def _operands(a, b, true_division=False):
    """Both operands of a binary op, tensors cast to PyTorch's result dtype (see promotion.py).

    The common cases -- two float tensors of one dtype, a float tensor and a bool mask or a
    Python number -- return at once: NumPy already gives the float's dtype.
    """
    if isinstance(a, Tensor):
        dtype = a.data.dtype
        if dtype.kind == "f":
            if isinstance(b, Tensor):
                other = b.data.dtype
                if other == dtype or other.kind == "b":
                    return a, b
            elif type(b) in (int, float):
                return a, b
    elif isinstance(b, Tensor) and b.data.dtype.kind == "f" and (
            type(a) in (int, float) or (isinstance(a, Tensor) and a.data.dtype.kind == "b")):
        return a, b
    return promote(_operand(a), _operand(b), true_division=true_division)


def _reduce(grad, needed, shape):
    return sum_to(grad, shape) if needed else None


# -- arithmetic ---------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return a + b

    def backward(self, grad):
        need_a, need_b = self.needs_input_grad
        return _reduce(grad, need_a, self.shapes[0]), _reduce(grad, need_b, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (_shape(a), _shape(b))
        return a - b

    def backward(self, grad):
        need_a, need_b = self.needs_input_grad
        return _reduce(grad, need_a, self.shapes[0]), _reduce(-grad, need_b, self.shapes[1]) if need_b else None


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (_reduce(grad * b, need_a, _shape(a)) if need_a else None,
                _reduce(grad * a, need_b, _shape(b)) if need_b else None)


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, grad):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        grad_a = grad / b
        return (_reduce(grad_a, need_a, _shape(a)) if need_a else None,
                _reduce(-grad_a * a / b, need_b, _shape(b)) if need_b else None)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Pow(Function):
    """base ** exponent, either of which may be a tensor."""

    def forward(self, base, exponent):
        result = base ** exponent
        self.save_for_backward(base, exponent, result)
        return result

    def backward(self, grad):
        base, exponent, result = self.saved_tensors
        need_base, need_exponent = self.needs_input_grad
        grad_base = grad_exponent = None
        if need_base:
            if isinstance(exponent, Tensor):
                grad_base = sum_to(grad * exponent * base ** (exponent - 1), base.shape)
            elif exponent == 0:
                grad_base = grad * 0.0
            else:
                grad_base = grad * (exponent * base ** (exponent - 1))
        if need_exponent:
            # d/dp b**p = b**p log b; 0**p contributes nothing where p > 0 (and log of a negative base is NaN).
            if isinstance(base, Tensor):
                log_base = log(base.masked_fill(base == 0, 1))
            else:  # a Python number: math.log would raise for 0 and below
                log_base = math.log(base) if base > 0 else (0.0 if base == 0 else math.nan)
            grad_exponent = sum_to(grad * result * log_base, exponent.shape)
        return grad_base, grad_exponent


# -- math functions -------------------------------------------------------------------------
class Exp(Function):
    minus_one = False  # Expm1: exp(x) - 1, exact for tiny x, with the same derivative exp(x) = y + 1

    def forward(self, x):
        y = self.xp.expm1(x) if self.minus_one else self.xp.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (y + 1) if self.minus_one else grad * y


class Expm1(Exp):
    minus_one = True


class Log(Function):
    plus_one = False  # Log1p: log(1 + x), exact for tiny x (where 1 + x would round to 1)

    def forward(self, x):
        self.save_for_backward(x)
        return self.xp.log1p(x) if self.plus_one else self.xp.log(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad / (x + 1) if self.plus_one else grad / x


class Log1p(Log):
    plus_one = True


class Sqrt(Function):
    def forward(self, x):
        y = self.xp.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad / (2 * y)


class Tanh(Function):
    def forward(self, x):
        y = self.xp.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (1 - y * y)


class Sin(Function):
    cosine = False  # Cos: each one's derivative is the other (with a sign for cos)

    def forward(self, x):
        self.save_for_backward(x)
        return self.xp.cos(x) if self.cosine else self.xp.sin(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return -grad * sin(x) if self.cosine else grad * cos(x)


class Cos(Sin):
    cosine = True


class Sigmoid(Function):
    def forward(self, x):
        # exp of a non-positive number only: no overflow at |x| = 1000.
        xp = self.xp
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * y * (1 - y)


class Relu(Function):
    def forward(self, x):
        y = self.xp.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (y > 0)


class Erf(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return self.backend.erf(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * exp(-(x * x))


class Gelu(Function):
    """x * Phi(x) (exact, with erf) or PyTorch's tanh approximation."""

    def forward(self, x, approximate):
        self.approximate = approximate
        self.save_for_backward(x)
        xp = self.xp
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + self.backend.erf(x * (1 / math.sqrt(2))))

    def backward(self, grad):
        (x,) = self.saved_tensors
        if self.approximate == "tanh":
            c = math.sqrt(2 / math.pi)
            t = tanh(c * (x + 0.044715 * x ** 3))
            slope = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        else:
            cdf = 0.5 * (1 + erf(x * (1 / math.sqrt(2))))
            pdf = exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
            slope = cdf + x * pdf
        return grad * slope


class Abs(Function):
    def forward(self, x):
        self.save_for_backward(self.xp.sign(x))
        return self.xp.abs(x)

    def backward(self, grad):
        (sign_x,) = self.saved_tensors
        return grad * sign_x


class Maximum(Function):
    """Elementwise max; at ties the gradient is shared equally (as PyTorch does)."""

    def forward(self, a, b, take_max=True):
        xp = self.xp
        dtype = a.dtype if hasattr(a, "dtype") else b.dtype
        wins = (a > b) if take_max else (a < b)
        weight_a = wins.astype(dtype) + (a == b).astype(dtype) * 0.5
        self.save_for_backward(weight_a)
        self.shapes = (_shape(a), _shape(b))
        return xp.maximum(a, b) if take_max else xp.minimum(a, b)

    def backward(self, grad):
        (weight_a,) = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (_reduce(grad * weight_a, need_a, self.shapes[0]) if need_a else None,
                _reduce(grad * (1 - weight_a), need_b, self.shapes[1]) if need_b else None)


class Clip(Function):
    def forward(self, x, low, high):
        inside = self.xp.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        self.save_for_backward(inside)
        return self.xp.clip(x, low, high)

    def backward(self, grad):
        (inside,) = self.saved_tensors
        return grad * inside


class ClipTensor(Function):
    """clip with tensor bounds: each output element's gradient goes to where its value came from.

    As PyTorch: x gets it where min <= x <= max; min where x < min < max; max where x > max,
    or where max < min (the output is then max everywhere).
    """

    def forward(self, x, low, high):
        xp = self.xp
        to_x = True
        result = x
        if low is not None:
            result = xp.maximum(result, low)
            to_x = x >= low
            to_low = x < low if high is None else (x < low) & (low < high)
        if high is not None:
            result = xp.minimum(result, high)
            to_x = to_x & (x <= high)
            to_high = x > high if low is None else (x > high) | (high < low)
        self.shapes = (_shape(x), _shape(low), _shape(high))
        self.save_for_backward(to_x, to_low if low is not None else None, to_high if high is not None else None)
        return result

    def backward(self, grad):
        to_x, to_low, to_high = self.saved_tensors
        need_x, need_low, need_high = self.needs_input_grad
        return (_reduce(grad * to_x, need_x, self.shapes[0]) if need_x else None,
                _reduce(grad * to_low, need_low, self.shapes[1]) if need_low else None,
                _reduce(grad * to_high, need_high, self.shapes[2]) if need_high else None)


class Where(Function):
    def forward(self, condition, a, b):
        self.save_for_backward(condition)
        self.shapes = (_shape(a), _shape(b))
        return self.xp.where(condition, a, b)

    def backward(self, grad):
        (condition,) = self.saved_tensors
        _, need_a, need_b = self.needs_input_grad
        return (None,
                _reduce(where(condition, grad, 0.0), need_a, self.shapes[0]) if need_a else None,
                _reduce(where(condition, 0.0, grad), need_b, self.shapes[1]) if need_b else None)


class MaskedFill(Function):
    def forward(self, x, mask, value):
        self.save_for_backward(mask)
        self.input_shape = x.shape
        return self.xp.where(mask, self.xp.asarray(value, dtype=x.dtype), x)

    def backward(self, grad):
        (mask,) = self.saved_tensors
        return sum_to(masked_fill(grad, mask, 0.0), self.input_shape), None


class Cast(Function):
    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return cast(grad, self.input_dtype)


class ToDevice(Function):
    """An explicit move between devices (the only way data crosses, besides item/numpy)."""

    def forward(self, x, target):
        self.source = self.backend
        self.backend = target  # the output lives on the target device
        return target.asarray(self.source.to_host(x))

    def backward(self, grad):
        return to_device(grad, self.source)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


# -- the public functions ----------------------------------------------------------------
def add(a, b):
    return Add.apply(*_operands(a, b))


def sub(a, b):
    return Sub.apply(*_operands(a, b))


def mul(a, b):
    return Mul.apply(*_operands(a, b))


def div(a, b):
    """True division: integers give the default float dtype, as in PyTorch."""
    return Div.apply(*_operands(a, b, true_division=True))


def neg(x):
    return Neg.apply(x)


def pow(base, exponent):
    return Pow.apply(*_operands(base, exponent))


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def rsqrt(x):
    return 1 / sqrt(x)


def log1p(x):
    return Log1p.apply(x)


def expm1(x):
    return Expm1.apply(x)


def sin(x):
    return Sin.apply(x)


def cos(x):
    return Cos.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return Relu.apply(x)


def erf(x):
    return Erf.apply(x)


def gelu(x, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return Gelu.apply(x, approximate=approximate)


def abs(x):
    return Abs.apply(x)


def maximum(a, b):
    return Maximum.apply(*_operands(a, b), take_max=True)


def minimum(a, b):
    return Maximum.apply(*_operands(a, b), take_max=False)


def clip(x, min=None, max=None):
    """x limited to [min, max]; the bounds may be numbers or tensors (which broadcast and get gradients)."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        bounds = [_operand(b) for b in (min, max) if b is not None]
        x, *bounds = promote(x, *bounds)
        low = bounds.pop(0) if min is not None else None
        high = bounds.pop(0) if max is not None else None
        return ClipTensor.apply(x, low, high)
    return Clip.apply(x, low=min, high=max)


clamp = clip


def where(condition, a, b):
    """a where condition holds, else b (condition is a bool tensor; a and b tensors or numbers)."""
    condition = _operand(condition)
    a, b = _operands(a, b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return _no_grad(lambda c: condition.xp.where(c, a, b), condition)
    return Where.apply(condition, a, b)


def masked_fill(x, mask, value):
    """x with `value` wherever mask is True (mask broadcasts against x)."""
    mask = _operand(mask)
    if mask.dtype.kind != "b":
        raise TypeError(f"masked_fill: the mask must be a bool tensor, got {mask.dtype}")
    return MaskedFill.apply(x, mask, value=value)


def cast(x, dtype):
    return Cast.apply(x, dtype=dtype)


def to_device(x, backend):
    return ToDevice.apply(x, target=backend)


def clone(x):
    return Clone.apply(x)


# -- ops without a gradient: comparisons, tests, sign, logical ---------------------------------
def _no_grad(array_fn, *inputs):
    """Run an op that has no gradient (its output never requires grad)."""
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    backend = tensors[0]._backend
    for x in tensors[1:]:
        if x._backend is not backend:
            raise RuntimeError(f"expected all tensors on one device, got {backend.device} and {x._backend.device}")
    arrays = [x.data if isinstance(x, Tensor) else x for x in inputs]
    result = array_fn(*arrays)
    if type(result) is not backend.array_type:
        result = backend.xp.asarray(result)
    return Tensor._make(result, backend)


def eq(a, b):
    return _no_grad(lambda x, y: x == y, _operand(a), _operand(b))


def ne(a, b):
    return _no_grad(lambda x, y: x != y, _operand(a), _operand(b))


def lt(a, b):
    return _no_grad(lambda x, y: x < y, _operand(a), _operand(b))


def le(a, b):
    return _no_grad(lambda x, y: x <= y, _operand(a), _operand(b))


def gt(a, b):
    return _no_grad(lambda x, y: x > y, _operand(a), _operand(b))


def ge(a, b):
    return _no_grad(lambda x, y: x >= y, _operand(a), _operand(b))


def sign(x):
    return _no_grad(lambda a: x.xp.sign(a), x)


def isfinite(x):
    return _no_grad(lambda a: x.xp.isfinite(a), x)


def isnan(x):
    return _no_grad(lambda a: x.xp.isnan(a), x)


def isinf(x):
    return _no_grad(lambda a: x.xp.isinf(a), x)


def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other| elementwise (equal infinities are close), as torch.isclose."""
    if not isinstance(other, Tensor) or not isinstance(input, Tensor) or input.dtype != other.dtype:
        raise TypeError(f"isclose: expected two tensors of one dtype, got {getattr(input, 'dtype', type(input))} "
                        f"and {getattr(other, 'dtype', type(other))}")
    try:
        broadcast_shapes(input.shape, other.shape)
    except ValueError as error:
        raise ValueError(f"isclose: {error}") from None
    return _no_grad(lambda a, b: input.xp.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan), input, other)


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when every element is close (see isclose): a Python bool, so on a GPU it waits for the device."""
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


def logical_not(x):
    return _no_grad(lambda a: ~a, x)


def logical_and(a, b):
    return _no_grad(lambda x, y: x & y, _operand(a), _operand(b))


def logical_or(a, b):
    return _no_grad(lambda x, y: x | y, _operand(a), _operand(b))
