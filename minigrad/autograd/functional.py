"""Derivatives of whole functions, with the names, signatures and results of torch.autograd.functional.

    jacobian(func, inputs)      d func / d inputs, of shape output.shape + input.shape
    hessian(func, inputs)       the jacobian of the gradient, for a func with one output element
    vjp(func, inputs, v)        (func(inputs), v^T J)    one backward pass
    jvp(func, inputs, v)        (func(inputs), J v)      the double-backward trick (below)
    vhp(func, inputs, v)        (func(inputs), v^T H)    and hvp: (func(inputs), H v)

`inputs` is a Tensor or a tuple of Tensors, and `func(*inputs)` returns a Tensor or a tuple of
them; results come back in the same structure (jacobian(...)[i][j] is output i by input j when
both are tuples). Every input is replaced by a fresh tensor before func sees it, so the results
are derivatives with respect to exactly these arguments. With create_graph=True the results are
part of the graph (differentiable again); otherwise they are detached. An output independent of
an input gives zeros, or with strict=True an error.

All of them are built on minigrad.grad, nothing else: a jacobian is one backward pass per output
element, a grad_outputs of the standard basis; a hessian is the jacobian of a gradient computed
with create_graph=True. jvp has no forward mode to use: the gradient g(u) = J^T u of the outputs,
taken with create_graph=True at a u that requires grad, is linear in u, so differentiating it
with respect to u in the direction v gives J v.

Reverse mode only: torch's vectorize=True and strategy="forward-mode" need vmap and forward-mode
AD, which minigrad does not have.
"""
from ..tensor import Tensor
from .engine import grad
from .grad_mode import enable_grad, is_grad_enabled, set_grad_enabled

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]


# -- the public functions ---------------------------------------------------------------------
def vjp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T J): v has the outputs' shapes; it may be omitted for one single-element output."""
    with enable_grad():
        is_inputs_tuple, inputs = _prepared_inputs(inputs, "vjp", create_graph)
        is_outputs_tuple, outputs = _outputs(func, inputs, "vjp", strict)
        v = _vector(v, outputs, is_outputs_tuple, "vjp", create_graph,
                    "the user-provided function returns a single Tensor with a single element")
    with set_grad_enabled(create_graph or is_grad_enabled()):
        result = _fill_in_zeros(_grad(outputs, inputs, v, create_graph), inputs, strict, create_graph, "back")
    return _returned(outputs, is_outputs_tuple, result, is_inputs_tuple, create_graph)


def jvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), J v): v has the inputs' shapes; it may be omitted for one single-element input."""
    with enable_grad():
        is_inputs_tuple, inputs = _prepared_inputs(inputs, "jvp", create_graph)
        v = _vector(v, inputs, is_inputs_tuple, "jvp", create_graph, _SINGLE_INPUT)
        is_outputs_tuple, outputs = _outputs(func, inputs, "jvp", strict)
        # g(u) = J^T u at a u that requires grad: any value will do (g is linear in u), zeros are safe.
        u = tuple(_zeros_like(out).requires_grad_(True) for out in outputs)
        grad_inputs = _grad(outputs, inputs, u, create_graph=True)
        _check_requires_grad(grad_inputs, "grad_inputs", strict)
    with set_grad_enabled(create_graph or is_grad_enabled()):
        result = _fill_in_zeros(_grad(grad_inputs, u, v, create_graph), outputs, strict, create_graph, "back_trick")
    return _returned(outputs, is_outputs_tuple, result, is_outputs_tuple, create_graph)


def jacobian(func, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"):
    """d func(inputs) / d inputs: for each output and input, a Tensor of shape output.shape + input.shape."""
    _reverse_mode_only(vectorize, strategy, "jacobian")
    with enable_grad():
        is_inputs_tuple, inputs = _prepared_inputs(inputs, "jacobian", create_graph)
        is_outputs_tuple, outputs = _outputs(func, inputs, "jacobian", strict)
        jacobians = []
        for i, out in enumerate(outputs):
            rows = [[] for _ in inputs]  # per input: d out.flatten()[j] / d input, for every j
            for j in range(out.numel()):
                basis = out.xp.zeros(out.numel(), dtype=out.dtype)  # grad_outputs: the j-th basis vector
                basis[j] = 1
                basis = Tensor._make(basis.reshape(out.shape), out._backend)
                for k, (row, g) in enumerate(zip(rows, _grad((out,), inputs, (basis,), create_graph,
                                                               retain_graph=True))):
                    if g is None:
                        if strict:
                            raise RuntimeError(f"Output {i} of the user-provided function is independent of "
                                               f"input {k}. This is not allowed in strict mode.")
                        g = _zeros_like(inputs[k])
                    elif strict and create_graph and not g.requires_grad:
                        raise RuntimeError(f"The jacobian of the user-provided function is independent of input "
                                           f"{k}. This is not allowed in strict mode when create_graph=True.")
                    row.append(g)
            jacobians.append(tuple(_stacked(row, out, x) for row, x in zip(rows, inputs)))
    jacobians = tuple(_detached(j, create_graph) for j in jacobians)
    return _unpacked(jacobians, (is_outputs_tuple, is_inputs_tuple))


def hessian(func, inputs, create_graph=False, strict=False, vectorize=False, outer_jacobian_strategy="reverse-mode"):
    """The matrix of second derivatives of func (one output element): shape input.shape + input.shape,
    hessian(...)[i][j] for inputs i and j when inputs is a tuple."""
    _reverse_mode_only(vectorize, outer_jacobian_strategy, "hessian")
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")

    def single_output(*args):
        out = func(*args)
        is_out_tuple, outputs = _as_tuple(out, "outputs of the user-provided function", "hessian")
        _check_requires_grad(outputs, "outputs", strict)
        _check_single_element(is_out_tuple, outputs, "hessian")
        return out.reshape(())

    def gradient(*args):
        jac = jacobian(single_output, args, create_graph=True)
        _check_requires_grad(jac, "jacobian", strict)
        return jac

    result = jacobian(gradient, inputs, create_graph=create_graph, strict=strict)
    return _unpacked(result, (is_inputs_tuple, is_inputs_tuple))


def vhp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), v^T H) for func with one output element."""
    return _hessian_product(func, inputs, v, create_graph, strict, "vhp")


def hvp(func, inputs, v=None, create_graph=False, strict=False):
    """(func(inputs), H v) for func with one output element (the double-backward trick on the gradient)."""
    return _hessian_product(func, inputs, v, create_graph, strict, "hvp")


def _hessian_product(func, inputs, v, create_graph, strict, name):
    with enable_grad():
        is_inputs_tuple, inputs = _prepared_inputs(inputs, name, create_graph)
        v = _vector(v, inputs, is_inputs_tuple, name, create_graph, _SINGLE_INPUT)
        is_outputs_tuple, outputs = _outputs(func, inputs, name, strict)
        _check_single_element(is_outputs_tuple, outputs, name)
        gradients = _grad(outputs, inputs, None, create_graph=True)
        _check_requires_grad(gradients, "jacobian", strict)
        if name == "hvp":  # H v = d/du (H u) . v: the gradient's own backward, applied to u, is H^T u = H u
            u = tuple(_zeros_like(x).requires_grad_(True) for x in inputs)
            gradients = _grad(gradients, inputs, u, create_graph=True)
            wrt, stage = u, "double_back_trick"
        else:
            wrt, stage = inputs, "double_back"
    with set_grad_enabled(create_graph or is_grad_enabled()):
        result = _fill_in_zeros(_grad(gradients, wrt, v, create_graph), inputs, strict, create_graph, stage)
    return _returned(outputs, is_outputs_tuple, result, is_inputs_tuple, create_graph)


# -- the steps they share (each as torch.autograd.functional has it) ----------------------------------
_SINGLE_INPUT = "the input to the user-provided function is a single Tensor with a single element"


def _as_tuple(x, what, fn_name):
    """(was it a tuple, the Tensors as a tuple); anything but Tensors is a TypeError."""
    is_tuple = isinstance(x, tuple)
    items = x if is_tuple else (x,)
    for index, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"the value at index {index} has" if is_tuple else f"the given {what} has"
            raise TypeError(f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors but "
                            f"{where} type {type(item)}.")
    return is_tuple, items


def _prepared_inputs(inputs, fn_name, create_graph):
    """Fresh tensors for func: a differentiable copy of an input that requires grad under create_graph
    (torch makes a view; the copy costs a little memory, not correctness), else a detached leaf."""
    is_tuple, inputs = _as_tuple(inputs, "inputs", fn_name)
    return is_tuple, _fresh(inputs, create_graph, need_graph=True)


def _fresh(tensors, create_graph, need_graph):
    return tuple(t.clone() if create_graph and t.requires_grad else t.detach().requires_grad_(need_graph)
                 for t in tensors)


def _outputs(func, inputs, fn_name, strict):
    is_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", fn_name)
    _check_requires_grad(outputs, "outputs", strict)
    return is_tuple, outputs


def _vector(v, refs, is_refs_tuple, fn_name, create_graph, none_allowed_when):
    """v as a tuple of fresh tensors, checked against the shapes of `refs` (None where allowed)."""
    if v is None:
        if len(refs) != 1 or refs[0].numel() != 1:
            raise RuntimeError(f"The vector v can only be None if {none_allowed_when}.")
        return None
    _, v = _as_tuple(v, "v", fn_name)
    v = _fresh(v, create_graph, need_graph=False)
    if len(v) != len(refs):
        raise RuntimeError(f"v is a tuple of invalid length: should be {len(refs)} but got {len(v)}."
                           if is_refs_tuple else "The given v should contain a single Tensor.")
    for index, (item, ref) in enumerate(zip(v, refs)):
        if item.shape != ref.shape:
            prefix = f"Entry {index} in " if is_refs_tuple else ""
            raise RuntimeError(f"{prefix}v has invalid size: should be {tuple(ref.shape)} but got {tuple(item.shape)}.")
    return v


def _check_single_element(is_tuple, outputs, fn_name):
    if is_tuple or len(outputs) != 1:
        raise RuntimeError(f"The function given to {fn_name} should return a single Tensor")
    if outputs[0].numel() != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn_name} should contain a single element")


def _check_requires_grad(tensors, kind, strict):
    """In strict mode, refuse tensors that do not depend on the inputs (None: an unused input)."""
    if not strict:
        return
    for index, t in enumerate(tensors):
        if t is None:
            raise RuntimeError(f"The output of the user-provided function is independent of input {index}. "
                               "This is not allowed in strict mode.")
        if not t.requires_grad:
            raise RuntimeError({
                "outputs": f"Output {index} of the user-provided function does not require gradients. The outputs "
                           "must be computed in a differentiable manner from the input when running in strict mode.",
                "grad_inputs": f"The gradient with respect to input {index} is independent of the inputs of the "
                               "user-provided function. This is not allowed in strict mode.",
                "jacobian": "While computing the hessian, found that the jacobian of the user-provided function "
                            f"with respect to input {index} is independent of the input. This is not allowed in "
                            "strict mode.",
                "hessian": f"The hessian of the user-provided function with respect to input {index} is "
                           "independent of the input. This is not allowed in strict mode.",
            }[kind])


def _grad(outputs, inputs, grad_outputs, create_graph, retain_graph=None):
    """minigrad.grad over the outputs that require grad (None entries and constants dropped), allowing
    unused inputs: None for an input no output depends on."""
    grad_outputs = (None,) * len(outputs) if grad_outputs is None else grad_outputs
    kept = [(out, g) for out, g in zip(outputs, grad_outputs) if out is not None and out.requires_grad]
    if not kept:
        return (None,) * len(inputs)
    return grad(tuple(out for out, _ in kept), inputs, tuple(g for _, g in kept), retain_graph=retain_graph,
                create_graph=create_graph, allow_unused=True)


def _fill_in_zeros(grads, refs, strict, create_graph, stage):
    """Zeros for the gradients that are None (or, in strict mode, an error saying which is missing)."""
    filled = []
    for index, (g, ref) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError({
                    "back": f"The output of the user-provided function is independent of input {index}.",
                    "back_trick": f"The gradient with respect to the input is independent of entry {index} in the "
                                  "grad_outputs when using the double backward trick to compute forward mode "
                                  "gradients.",
                    "double_back": f"The jacobian of the user-provided function is independent of input {index}.",
                    "double_back_trick": f"The hessian of the user-provided function is independent of entry {index}"
                                         " in the grad_jacobian.",
                }[stage] + " This is not allowed in strict mode.")
            g = _zeros_like(ref)
        elif strict and create_graph and not g.requires_grad:
            what = "hessian" if "double" in stage else "jacobian"
            raise RuntimeError(f"The {what} of the user-provided function is independent of input {index}. "
                               "This is not allowed in strict mode when create_graph=True.")
        filled.append(g)
    return tuple(filled)


def _stacked(rows, out, x):
    """The rows d out.flatten()[j] / d x stacked into one Tensor of shape out.shape + x.shape."""
    from ..ops import stack

    if not rows:  # an output with no elements
        return Tensor._make(x.xp.zeros(tuple(out.shape) + tuple(x.shape), dtype=x.dtype), x._backend)
    return stack(rows, 0).reshape(tuple(out.shape) + tuple(x.shape))


def _zeros_like(t):
    return Tensor._make(t.xp.zeros(t.shape, dtype=t.dtype), t._backend)


def _detached(tensors, create_graph):
    if isinstance(tensors, Tensor):
        return tensors if create_graph else tensors.detach()
    return tuple(_detached(t, create_graph) for t in tensors)


def _returned(outputs, is_outputs_tuple, result, is_result_tuple, create_graph):
    """(the outputs, the result), detached unless create_graph, each unpacked where it was no tuple."""
    return (_unpacked(_detached(outputs, create_graph), is_outputs_tuple),
            _unpacked(_detached(result, create_graph), is_result_tuple))


def _unpacked(result, was_tuple):
    """Undo _as_tuple: `was_tuple` is one flag, or (outer, inner) for a tuple of tuples."""
    if isinstance(was_tuple, tuple):
        outer, inner = was_tuple
        if not inner:
            result = tuple(row[0] for row in result)
        return result if outer else result[0]
    return result if was_tuple else result[0]


def _reverse_mode_only(vectorize, strategy, fn_name):
    if vectorize or strategy != "reverse-mode":
        raise NotImplementedError(f"{fn_name}: minigrad has no vmap nor forward-mode AD; only vectorize=False "
                                  "and strategy='reverse-mode' are supported")
