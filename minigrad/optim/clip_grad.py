"""Gradient clipping by the global norm of all gradients together."""
from ..tensor import Tensor


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients in place so that their joint norm is at most `max_norm`; return that norm.

    The norm is the `norm_type`-norm of the vector of all gradient entries (inf: the
    largest magnitude). The scale factor min(1, max_norm / (norm + 1e-6)) is applied as
    a device array, so clipping never waits for the GPU; the norm comes back as a
    0-d Tensor (call .item() when you want to log it).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    if not grads:
        from ..creation import tensor

        return tensor(0.0)
    backend = grads[0]._backend
    for g in grads:
        if g._backend is not backend:
            raise RuntimeError(f"clip_grad_norm_: gradients on several devices ({backend.device}, {g.device})")
    xp = backend.xp
    per_tensor = xp.stack([xp.asarray(xp.linalg.norm(g.data.reshape(-1), ord=norm_type)) for g in grads])
    total = xp.linalg.norm(per_tensor, ord=norm_type)
    total = xp.asarray(total)  # NumPy gives a scalar; keep an array so the code reads the same on CuPy
    if error_if_nonfinite and not bool(xp.isfinite(total)):  # the one host sync, only when asked for
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} is not finite")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g.data *= scale.astype(g.dtype)
        g._bump_version()
    return Tensor._make(total, backend)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient entry to [-clip_value, clip_value] in place."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    for p in parameters:
        if p.grad is not None:
            p.grad.xp.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
            p.grad._bump_version()
