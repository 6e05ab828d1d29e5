"""Write your own op the PyTorch way: staticmethods that take a `ctx`, called through `apply`.

This is torch.autograd.Function's style, and minigrad runs it beside its own (in
examples/custom_function.py the same softplus is written the project's way, with `forward` on
raw arrays). A subclass of `minigrad.autograd.Function` whose `forward` is a staticmethod is
taken to be written this way:

* `forward(ctx, *args)` receives the arguments as they were given (Tensors stay Tensors) and
  computes with Tensor ops. It runs under no_grad: nothing it does is recorded, and its result
  becomes the output of one graph node whose backward is yours. It may return a tuple.
* `backward(ctx, *grads)` receives one gradient per output and returns one per argument of
  forward, None for arguments that need none (`ctx.needs_input_grad` says which are wanted).
* `ctx` is that node: `ctx.save_for_backward(...)` keeps Tensors (read back as
  `ctx.saved_tensors`, checked against in-place writes), other values are plain attributes,
  and `ctx.mark_non_differentiable(t)` says an output (an index, say) gets no gradient.

Run: python examples/torch_style_function.py
"""
import minigrad
from minigrad.autograd import Function


class Softplus(Function):
    """softplus(x) = log(1 + exp(beta x)) / beta = (max(z, 0) + log(1 + e^-|z|)) / beta for z = beta x."""

    @staticmethod
    def forward(ctx, x, beta=1.0):
        z = x * beta
        ctx.save_for_backward(x)
        ctx.beta = beta
        return (z.clip(min=0) + (1 + (-z.abs()).exp()).log()) / beta

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors  # the input itself: under create_graph the backward is recorded
        return grad * (x * ctx.beta).sigmoid(), None  # nothing for beta (a number)


class MaxWithIndex(Function):
    """The largest value along the last dimension and where it is: two outputs, the index not differentiable."""

    @staticmethod
    def forward(ctx, x):
        index = x.argmax(dim=-1)
        value = x.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        ctx.mark_non_differentiable(index)
        ctx.save_for_backward(index)  # an output can be saved too
        ctx.columns = x.shape[-1]
        return value, index

    @staticmethod
    def backward(ctx, grad_value, grad_index):  # grad_index is zeros: the index gets no gradient
        (index,) = ctx.saved_tensors
        columns = minigrad.arange(ctx.columns, device=grad_value.device)
        chosen = (columns == index.unsqueeze(-1)).to(grad_value.dtype)  # one-hot rows
        return grad_value.unsqueeze(-1) * chosen


def main():
    x = minigrad.tensor([-1000.0, -1.0, 0.0, 2.0, 1000.0], requires_grad=True)
    y = Softplus.apply(x)
    print("softplus   ", y.detach().numpy(), y.grad_fn)  # <SoftplusBackward>, as torch names it
    y.sum().backward()
    print("d/dx       ", x.grad.numpy(), "(= sigmoid(x))")

    scores = minigrad.tensor([[0.1, 2.0, -1.0], [3.0, 0.5, 0.2]], requires_grad=True)
    value, index = MaxWithIndex.apply(scores)
    print("max, index ", value.detach().numpy(), index.numpy(), "index requires grad:", index.requires_grad)
    (value * minigrad.tensor([1.0, 10.0])).sum().backward()
    print("d/dscores  ", scores.grad.numpy().tolist())

    # Check both backwards against finite differences, first and second order, in float64.
    x64 = minigrad.randn(3, 4, dtype=minigrad.float64, requires_grad=True)
    for beta in (1.0, 2.5):
        assert minigrad.gradcheck(lambda t: Softplus.apply(t, beta), (x64,))
        assert minigrad.gradgradcheck(lambda t: Softplus.apply(t, beta), (x64,))
    assert minigrad.gradcheck(lambda t: MaxWithIndex.apply(t)[0], (x64,))
    assert minigrad.gradgradcheck(lambda t: MaxWithIndex.apply(t)[0], (x64,))
    print("gradcheck and gradgradcheck passed")


if __name__ == "__main__":
    main()
