"""A kernel's Tensor-op `backward`: the gradient of the reference computation it replaces.

A kernel computes in one node what minigrad.functional composes from primitive ops. When a
graph of the backward must be recorded (create_graph=True, or gradients of gradients), or a
backward runs in reference mode, the engine calls this Tensor-op backward: the kernel
recomputes its output with that composition, in reference mode, and differentiates it:
its derivatives of every order are then the reference's by construction, not a second
hand-written formula that could drift from the first.
"""
from ..autograd import enable_grad, grad, is_grad_enabled, set_reference_mode


def gradient_through_reference(node, output_grad, inputs, reference):
    """Gradients for `node`'s inputs, from differentiating `reference(*inputs)` at those inputs.

    `inputs` are the Tensors the kernel was applied to (None where an input was None), in the
    order of `node.needs_input_grad`; `reference` recomputes the kernel's output from them.
    """
    record = is_grad_enabled()  # the engine turns grad mode on exactly when create_graph is set
    wanted = [x for x, need in zip(inputs, node.needs_input_grad) if need]
    with set_reference_mode(True), enable_grad():
        output = reference(*inputs)
        grads = iter(grad(output, wanted, output_grad, retain_graph=record, create_graph=record,
                          allow_unused=True))
    return tuple(next(grads) if need else None for need in node.needs_input_grad)
