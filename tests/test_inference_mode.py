"""minigrad.inference_mode: no graph, and inference tensors with torch's restrictions (as far as emulated)."""
import numpy as np
import pytest

import minigrad
import nn

torch = pytest.importorskip("torch")


def inference_facts(lib):
    w = lib.ones(2, requires_grad=True)
    with lib.inference_mode():
        made = lib.ones(2)
        y = w * 2
        inside = (lib.is_inference_mode_enabled(), lib.is_grad_enabled(), made.is_inference(), y.is_inference(),
                  y.requires_grad, made[0:1].is_inference())
        made.add_(1)  # in place inside inference mode is fine
        with lib.inference_mode(False):
            nested = (lib.is_inference_mode_enabled(), lib.is_grad_enabled(), lib.ones(1).is_inference())
    after = (lib.is_inference_mode_enabled(), made.is_inference(), made.detach().is_inference(),
             made.clone().is_inference(), w.is_inference())
    return inside, nested, after, made.tolist()


def test_inference_mode_and_inference_tensors_as_torch():
    ours, theirs = inference_facts(minigrad), inference_facts(torch)
    assert ours == theirs
    assert ours[0] == (True, False, True, True, False, True)


@pytest.mark.parametrize("use, message", [
    (lambda lib, t, w: t.add_(1), "Inplace update to inference tensor outside InferenceMode"),
    (lambda lib, t, w: t.requires_grad_(), "Setting requires_grad=True on inference tensor outside InferenceMode"),
    (lambda lib, t, w: t._version, "Inference tensors do not track version counter"),
    (lambda lib, t, w: (w * t).sum().backward(), "Inference tensors"),  # mul saves t for its backward
], ids=["in place", "requires_grad", "version", "saved for backward"])
def test_what_an_inference_tensor_refuses_outside_inference_mode(use, message):
    for lib in (minigrad, torch):
        with lib.inference_mode():
            t = lib.ones(2)
        w = lib.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError, match=message):
            use(lib, t, w)


def test_what_an_inference_tensor_allows_outside_inference_mode():
    for lib in (minigrad, torch):
        with lib.inference_mode():
            t = lib.ones(2)
        w = lib.ones(2, requires_grad=True)
        (w + t).sum().backward()  # add saves nothing: fine in torch too
        assert w.grad.tolist() == [1.0, 1.0]
        c = t.clone()
        c.add_(1)
        (w * c).sum().backward()
        assert w.grad.tolist() == [3.0, 3.0]


def test_decorator_forms_and_a_model_under_inference_mode():
    @minigrad.inference_mode
    def bare():
        return minigrad.is_inference_mode_enabled()

    @minigrad.inference_mode()
    def called():
        return minigrad.is_inference_mode_enabled()

    assert bare() and called() and not minigrad.is_inference_mode_enabled()
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2))
    x = minigrad.randn(5, 3)
    with minigrad.inference_mode():
        out = model(x)
    assert out.is_inference() and out.grad_fn is None and not out.requires_grad
    with minigrad.no_grad():
        np.testing.assert_array_equal(out.numpy(), model(x).numpy())
    assert not model[0].weight.is_inference()  # parameters made outside stay normal
    model(x).sum().backward()  # and train as usual
    assert model[0].weight.grad is not None
