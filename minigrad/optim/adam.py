"""Adam and AdamW: steps scaled by running estimates of the gradient's first and second moments.

    m <- b1 m + (1 - b1) g              v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

The (1 - b^t) factors undo the bias of m and v towards their zero start.
Adam's weight_decay adds weight_decay * p to g (L2 regularisation, which the
adaptive scaling then distorts); AdamW instead shrinks p by lr * weight_decay
directly, "decoupled" from the gradient (Loshchilov & Hutter, 2019).
"""
import math

from ..autograd import is_reference_mode
from ..kernels.adam import adam_row_kernel
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
        if not is_reference_mode():  # the fast layer: the same step in one pass per block, all parameters at once
            return adam_row_kernel(xp, param, grad, m, v, v_max, lr, beta1, beta2, eps, step, decay, l2)
        if decay is not None:
            param *= decay
        elif l2 is not None:
            grad = grad + l2 * param
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        if v_max is not None:
            xp.maximum(v_max, v, out=v_max)
            v = v_max
        param -= lr / (1 - beta1 ** step) * m / (xp.sqrt(v) / math.sqrt(1 - beta2 ** step) + eps)
        return None


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr * weight_decay) before the Adam step."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
