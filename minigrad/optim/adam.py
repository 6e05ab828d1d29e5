"""Adam and AdamW: steps scaled by running estimates of the gradient's first and second moments.

    m <- b1 m + (1 - b1) g              v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

The (1 - b^t) factors undo the bias of m and v towards their zero start.
Adam's weight_decay adds weight_decay * p to g (L2 regularisation, which the
adaptive scaling then distorts); AdamW instead shrinks p by lr * weight_decay
directly, "decoupled" from the gradient (Loshchilov & Hutter, 2019).
"""
import math

from .optimizer import Optimizer


class Adam(Optimizer):
    _decoupled = False
    _passes_per_element = 10

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__}: lr, eps and weight_decay must be >= 0, "
                             f"got {lr}, {eps}, {weight_decay}")
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _update(self, param, grad, state, group, tensor):
        xp = tensor.xp
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = self._state_buffer(tensor, xp.zeros_like(param))
            state["exp_avg_sq"] = self._state_buffer(tensor, xp.zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = self._state_buffer(tensor, xp.zeros_like(param))
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"].data, state["exp_avg_sq"].data
        v_max = state["max_exp_avg_sq"].data if group["amsgrad"] else None
        decay = 1 - lr * weight_decay if weight_decay != 0 and self._decoupled else None
        l2 = weight_decay if weight_decay != 0 and not self._decoupled else None
        # m / (sqrt(v) / c2 + eps) == c2 * m / (sqrt(v) + eps * c2): one pass less over the array
        c2 = math.sqrt(1 - beta2 ** step)
        step_size = lr * c2 / (1 - beta1 ** step)

        def update(start, stop):  # rows [start, stop) of every array; blocks run on all cores
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
        return update, param.shape[0], param.size // max(param.shape[0], 1)  # step() runs all parameters' at once


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr * weight_decay) before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
