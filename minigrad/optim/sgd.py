"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """p <- p - lr * d, with d the gradient, optionally smoothed by momentum.

    With momentum m the buffer is b <- m b + (1 - dampening) g (just g on the first step);
    plain momentum steps along b, Nesterov along g + m b. weight_decay adds
    weight_decay * p to the gradient first (classic L2 regularisation).
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, param, grad, state, group, tensor):
        xp = tensor.xp
        momentum, dampening = group["momentum"], group["dampening"]
        if group["weight_decay"] != 0:
            grad = xp.multiply(param, group["weight_decay"])  # a fresh array: p.grad stays untouched
            grad += tensor.grad.data
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = self._state_buffer(tensor, grad.copy())
            else:
                buffer.data *= momentum
                buffer.data += grad if dampening == 0 else xp.multiply(grad, 1 - dampening)
            if group["nesterov"]:
                step = xp.multiply(buffer.data, momentum)
                step += grad
                step *= group["lr"]
            else:
                step = xp.multiply(buffer.data, group["lr"])
        else:
            step = xp.multiply(grad, group["lr"])
        param -= step
