"""Kernel for the Adam/AdamW update: every stage of the step in one pass per row block.

Replaces: the reference update in minigrad/optim/adam.py (whole-array expressions, each a
pass over the parameter and a temporary of its size). Saves: the stages run in place on a
block of rows with one temporary reused throughout, using m / (sqrt(v) / c2 + eps) ==
c2 * m / (sqrt(v) + eps * c2) for one pass less, and the optimizer runs every parameter's
blocks in one thread-pool pass (like torch's multi-tensor "foreach" optimizers).
"""
import math


def adam_row_kernel(xp, param, grad, m, v, v_max, lr, beta1, beta2, eps, step, decay, l2):
    """A job (kernel(start, stop), rows, row_size) that makes the Adam step on rows [start, stop).

    `decay`: AdamW's factor 1 - lr * weight_decay (or None); `l2`: Adam's weight_decay added to the
    gradient (or None)."""
    c2 = math.sqrt(1 - beta2 ** step)
    step_size = lr * c2 / (1 - beta1 ** step)

    def update(start, stop):
        p, g, m_rows, v_rows = param[start:stop], grad[start:stop], m[start:stop], v[start:stop]
        if decay is not None:
            p *= decay
        elif l2 is not None:
            g = g + l2 * p  # a fresh array: p.grad stays untouched
        work = xp.multiply(g, 1 - beta1)  # the one temporary, reused for every stage below
        m_rows *= beta1
        m_rows += work
        xp.multiply(g, g, out=work)
        work *= 1 - beta2
        v_rows *= beta2
        v_rows += work
        if v_max is not None:
            xp.maximum(v_max[start:stop], v_rows, out=v_max[start:stop])
            v_rows = v_max[start:stop]
        xp.sqrt(v_rows, out=work)
        work += eps * c2
        xp.divide(m_rows, work, out=work)
        work *= step_size
        p -= work

    if param.ndim == 0:  # blocks are rows: give a scalar parameter one (views, still in place)
        param, grad, m, v = (a.reshape(1) for a in (param, grad, m, v))
        v_max = v_max.reshape(1) if v_max is not None else None
    return update, param.shape[0], param.size // max(param.shape[0], 1)
