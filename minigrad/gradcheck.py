"""Check analytic gradients against central finite differences, in float64.

For a function f and a random fixed vector v over its outputs, let L(x) = <v, f(x)>.
Autograd gives dL/dx in one backward pass; finite differences give
(L(x + eps e_k) - L(x - eps e_k)) / 2 eps for each input element k (the full
Jacobian-vector check), or along a few random directions u for large inputs.
A random v, rather than all ones, catches errors that a plain sum would cancel.
"""
from .backend import host_numpy as numpy  # finite differences run on host copies

from .autograd import grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree."""


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _projected(fn, inputs, projections):
    """L = sum over outputs of <v, output>, as a tensor."""
    total = None
    for output, v in zip(_as_tuple(fn(*inputs)), projections):
        if v is None:
            continue
        term = (output * v).sum()
        total = term if total is None else total + term
    return total


def _value(fn, inputs, projections):
    """L(inputs) as a float; grad mode stays on, since fn may itself differentiate (gradgradcheck)."""
    return float(_projected(fn, inputs, projections).item())


def _host(t):
    return t.detach().numpy()


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, max_full_size=1000,
              n_directions=4, seed=0):
    """True when autograd matches finite differences for every input that requires grad.

    Inputs of up to `max_full_size` elements are checked element by element (full
    Jacobian-vector product); larger ones along `n_directions` random directions.
    On a mismatch, raises GradcheckError naming the input, the element (or
    direction), the analytic and the numeric value.
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i in checked:
        if inputs[i].dtype != numpy.float64:
            raise ValueError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64 inputs")
    rng = numpy.random.default_rng(seed)
    before = [_host(x) if isinstance(x, Tensor) else None for x in inputs]

    outputs = _as_tuple(fn(*inputs))
    projections = [Tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=o.device)
                   if isinstance(o, Tensor) and o.dtype.kind == "f" else None for o in outputs]
    projection_copies = [_host(v) if v is not None else None for v in projections]
    total = _projected(lambda *a: outputs, inputs, projections)
    if total is not None and total.requires_grad:
        analytic = grad(total, [inputs[i] for i in checked], allow_unused=True)
    else:
        analytic = [None] * len(checked)
    analytic = [_host(g) if g is not None else numpy.zeros(inputs[i].shape) for g, i in zip(analytic, checked)]

    for name, original, x in zip(range(len(inputs)), before, inputs):
        if original is not None and not numpy.array_equal(original, _host(x), equal_nan=True):
            raise GradcheckError(f"gradcheck: the function modified input {name} in place")
    for v, copy in zip(projections, projection_copies):
        if v is not None and not numpy.array_equal(copy, _host(v)):
            raise GradcheckError("gradcheck: backward modified the incoming gradient in place")

    def perturbed(index, delta):
        args = list(inputs)
        x = inputs[index]
        args[index] = Tensor(before[index] + delta, dtype=x.dtype, device=x.device, requires_grad=True)
        return _value(fn, args, projections)

    for position, i in enumerate(checked):
        x = before[i]
        if x.size <= max_full_size:
            for element in numpy.ndindex(*x.shape):
                delta = numpy.zeros_like(x)
                delta[element] = eps
                numeric = (perturbed(i, delta) - perturbed(i, -delta)) / (2 * eps)
                got = analytic[position][element]
                if not abs(got - numeric) <= atol + rtol * abs(numeric):
                    if raise_exception:
                        raise GradcheckError(f"gradcheck: input {i}, element {element}: analytic {got!r} "
                                             f"vs numeric {numeric!r}")
                    return False
        else:
            for direction in range(n_directions):
                u = rng.standard_normal(x.shape)
                numeric = (perturbed(i, eps * u) - perturbed(i, -eps * u)) / (2 * eps)
                got = float((analytic[position] * u).sum())
                if not abs(got - numeric) <= atol + rtol * abs(numeric):
                    if raise_exception:
                        raise GradcheckError(f"gradcheck: input {i}, random direction {direction}: analytic "
                                             f"{got!r} vs numeric {numeric!r}")
                    return False
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, max_full_size=1000,
                  n_directions=4, seed=0):
    """Check second derivatives: the gradient function (built with create_graph) must pass gradcheck."""
    inputs = _as_tuple(inputs)
    checked = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    rng = numpy.random.default_rng(seed + 1)
    outputs = _as_tuple(fn(*inputs))
    projections = [Tensor(rng.standard_normal(o.shape), dtype=o.dtype, device=o.device)
                   if isinstance(o, Tensor) and o.dtype.kind == "f" else None for o in outputs]

    def first_derivatives(*args):
        total = _projected(fn, args, projections)
        wrt = [a for a in args if isinstance(a, Tensor) and a.requires_grad]
        grads = grad(total, wrt, create_graph=True, allow_unused=True)
        return tuple(g if g is not None else x * 0.0 for g, x in zip(grads, wrt))

    if len(checked) == 0:
        raise ValueError("gradgradcheck: no input requires grad")
    return gradcheck(first_derivatives, inputs, eps, atol, rtol, raise_exception, max_full_size, n_directions,
                     seed)
