"""Write your own op: a numerically stable softplus as a minigrad.Function.

An op is a subclass of `minigrad.Function` with two methods side by side:

* `forward(self, *arrays, **params)` receives raw backend arrays (NumPy or CuPy) and
  returns an array. Use `self.xp` for the array module, so the op runs on any device.
  Call `self.save_for_backward(...)` with what backward will need.
* `backward(self, grad)` receives the gradient of the output as a Tensor and returns
  one gradient per input (None for inputs that need none). Write it with Tensor ops:
  then `create_graph=True` records it too, and second derivatives come for free.

Call it with `Softplus.apply(x, beta=...)`; keyword arguments are plain parameters.

An op may also define `backward_arrays(self, grad)`: the same gradients on raw arrays (read
what forward saved with `self.saved_arrays`). The engine calls it only when no graph of the
backward is recorded (no create_graph) and reference mode is off, and `backward` otherwise,
so `backward` is needed either way. The fused kernels of minigrad/kernels do this for speed;
a small op like this one does not need it.

Run: python examples/custom_function.py
"""
import math

import minigrad


class Softplus(minigrad.Function):
    """softplus(x) = log(1 + exp(beta x)) / beta, written so that it never overflows.

    log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): the exponent is never positive.
    Its derivative is sigmoid(beta x), itself a stable Tensor op.
    """

    def forward(self, x, beta=1.0):
        xp = self.xp
        self.beta = beta
        self.save_for_backward(x)
        z = x * beta
        return (xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))) / beta

    def backward(self, grad):
        (x,) = self.saved_tensors  # the input, as a Tensor (part of the graph under create_graph)
        return grad * minigrad.sigmoid(x * self.beta)


def softplus(x, beta=1.0):
    return Softplus.apply(x, beta=beta)


def main():
    x = minigrad.tensor([-1000.0, -1.0, 0.0, 2.0, 1000.0], requires_grad=True)
    y = softplus(x)
    with minigrad.no_grad():
        big = x.detach().clip(max=80.0)  # exp(1000) overflows; show the naive formula where it still works
        naive = (1 + big.exp()).log()
    print("x          ", x.detach().numpy())
    print("softplus   ", y.detach().numpy())
    print("naive, x<=80", naive.numpy(), "(exp(1000) would be inf)")
    y.sum().backward()
    print("d/dx       ", x.grad.numpy(), "(= sigmoid(x))")
    assert all(math.isfinite(v) for v in y.detach().numpy().tolist())

    # Check the backward against finite differences, first and second order, in float64.
    x64 = minigrad.randn(3, 4, dtype=minigrad.float64, requires_grad=True)
    for beta in (1.0, 2.5):
        assert minigrad.gradcheck(lambda t: softplus(t, beta), (x64,))
        assert minigrad.gradgradcheck(lambda t: softplus(t, beta), (x64,))
    print("gradcheck and gradgradcheck passed")


if __name__ == "__main__":
    main()
