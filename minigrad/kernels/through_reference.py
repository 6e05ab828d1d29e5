"""A kernel's Tensor-op `backward`: the gradient of the reference computation it replaces.

A kernel computes in one node what minigrad.functional composes from primitive ops. When a
graph of the backward must be recorded (create_graph=True, or gradients of gradients), or a
backward runs in reference mode, the engine calls this Tensor-op backward: the kernel
recomputes its output with that composition, in reference mode, and differentiates it:
its derivatives of every order are then the reference's by construction, not a second
hand-written formula that could drift from the first.
"""
from ..autograd import enable_grad, is_grad_enabled, partial_grad, set_reference_mode


def gradient_through_reference(node, output_grad, inputs, reference):
    """Gradients for `node`'s inputs, from differentiating `reference(*inputs)` at those inputs.

    `inputs` are the Tensors the kernel was applied to (None where an input was None), in the
    order of `node.needs_input_grad`; `reference` recomputes the kernel's output from them. The
    derivatives are partial ones (partial_grad): an input computed from another, as a sub-layer's
    output from its residual, gets only its own share; the outer pass adds the paths between them.
    """
    record = is_grad_enabled()  # the engine turns grad mode on exactly when create_graph is set
    wanted = []  # each tensor once: one passed as two arguments gets its whole gradient in its first slot
    for x, need in zip(inputs, node.needs_input_grad):
        if need and not any(x is seen for seen in wanted):
            wanted.append(x)
    with set_reference_mode(True), enable_grad():
        output = reference(*inputs)
        grads = partial_grad(output, wanted, output_grad, create_graph=record)
    result, given = [], set()
    for x, need in zip(inputs, node.needs_input_grad):
        index = next((i for i, seen in enumerate(wanted) if seen is x), None) if need else None
        result.append(grads[index] if index is not None and index not in given else None)
        given.add(index)
    return tuple(result)
