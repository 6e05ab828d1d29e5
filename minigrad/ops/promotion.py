"""Result dtypes of ops on mixed dtypes, by PyTorch's rules rather than NumPy's.

NumPy widens `int64 array * 0.5` to float64 and `float32 array * float64 0-d array`
to float64: float64 creeps into float32 graphs (pitfall #4). PyTorch instead ranks
dtypes by *category* -- bool < integer < floating -- and by *kind of operand*:

- tensors with at least one dimension decide first;
- 0-d tensors, then Python numbers, only matter when they bring a higher category
  (so `float32 tensor * float64 0-d tensor` stays float32, and `int64 tensor * 0.5`
  becomes the default float dtype, float32);
- mixing an integer (or bool) with a float gives the float's dtype, never wider;
- true division of integers gives the default float dtype.

Ops cast their tensor operands to the result dtype before running, so NumPy never
gets the chance to promote. Python numbers are left alone: NumPy 2 treats them as
"weak" and they take the array's dtype.
"""
from ..tensor import Tensor, bool_, get_default_dtype, int64


def _category(dtype):
    """0 bool, 1 integer, 2 floating (3 complex)."""
    return {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}[dtype.kind]


def _promote(dtype_a, dtype_b, xp):
    """Two dtypes -> one: the higher category wins outright; within one category, the wider type."""
    if dtype_a is None or dtype_a == dtype_b:
        return dtype_b
    if dtype_b is None:
        return dtype_a
    category_a, category_b = _category(dtype_a), _category(dtype_b)
    if category_a != category_b:
        return dtype_a if category_a > category_b else dtype_b
    return xp.promote_types(dtype_a, dtype_b)


def _combine(higher, lower, xp):
    """Let a lower-priority kind of operand in only when it brings a higher category."""
    if higher is None:
        return lower
    if lower is None or _category(higher) >= _category(lower):
        return higher
    return _promote(higher, lower, xp)


def _python_number_dtype(x):
    if isinstance(x, bool):
        return bool_
    return int64 if isinstance(x, int) else get_default_dtype()


def result_dtype(operands, true_division=False):
    """The dtype PyTorch gives an elementwise op (or cat) on these tensors and Python numbers."""
    dimensioned = zero_dim = python = None
    xp = None
    for x in operands:
        if isinstance(x, Tensor):
            xp = x.xp
            if x.ndim:
                dimensioned = _promote(dimensioned, x.dtype, xp)
            else:
                zero_dim = _promote(zero_dim, x.dtype, xp)
        elif isinstance(x, (bool, int, float)):
            python = _promote(python, _python_number_dtype(x), xp)
    dtype = _combine(dimensioned, _combine(zero_dim, python, xp), xp)
    if true_division and _category(dtype) < 2:
        dtype = get_default_dtype()
    return dtype


def promote(*operands, true_division=False):
    """The operands, tensors cast to their common result dtype (Python numbers left as they are).

    A bool tensor (a mask, as in relu's backward `grad * (y > 0)`) is left uncast when another
    tensor already has the result dtype: NumPy then gives that dtype too, without a copy.
    """
    dtype = result_dtype(operands, true_division)
    anchored = any(isinstance(x, Tensor) and x.dtype == dtype for x in operands)
    return tuple(x.to(dtype) if isinstance(x, Tensor) and x.dtype != dtype and not (anchored and x.dtype.kind == "b")
                 else x for x in operands)
