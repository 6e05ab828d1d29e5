"""detect_anomaly: the error names the op whose backward first returned a NaN or an infinity and shows
where that op was called in the forward; stacks are kept only while anomaly mode is on."""
import inspect
import os
import warnings

import numpy as np
import pytest

import minigrad
import minigrad.functional as F
from minigrad.autograd import Function, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from test_torch_style_function import backward_returning

torch = pytest.importorskip("torch")


def line_of(marker):
    """The line number of the line of this file that contains `marker`."""
    lines = inspect.getsource(inspect.getmodule(line_of)).splitlines()
    return next(number for number, text in enumerate(lines, 1) if marker in text and "line_of(" not in text)


def test_the_error_names_the_op_and_shows_its_forward_call():
    x = minigrad.tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly(), np.errstate(divide="ignore"):
        root = x.sqrt()  # the anomalous call
        loss = (root * 3).sum()
        with pytest.raises(RuntimeError) as error:
            loss.backward()
    message = str(error.value)
    assert message.startswith("Function 'Sqrt' returned inf values in its 0th output.")
    assert "Traceback of the forward call that created it" in message
    assert f'{__file__}", line {line_of("# the anomalous call")}, in test_the_error_names_the_op' in message
    assert "root = x.sqrt()" in message
    assert os.path.dirname(minigrad.__file__) not in message  # minigrad's own frames are left off


def test_a_torch_style_function_and_torchs_message():
    messages = []
    for lib, base in ((minigrad, Function), (torch, torch.autograd.Function)):
        x, k = lib.ones(2, requires_grad=True), lib.ones(2, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns that anomaly mode is slow, and gives its trace as a warning
            with detect_anomaly() if lib is minigrad else torch.autograd.detect_anomaly():
                bad = backward_returning(lambda g: g * 2, lambda g: g * float("nan"), base=base, name="Bad")
                y = bad.apply(x, k)  # the torch-style call
                with pytest.raises(RuntimeError) as error:
                    y.sum().backward()
        messages.append(str(error.value))
    assert messages[1] == "Function 'BadBackward' returned nan values in its 1th output."
    assert messages[0].startswith(messages[1] + "\n")
    assert f"line {line_of('# the torch-style call')}" in messages[0]


def test_the_kernel_path_and_the_reference_path(both_paths):
    """NaN from the array backward of the Linear kernel, or, in reference mode, from the composed ops."""
    x = minigrad.tensor([[float("inf"), 1.0]])
    w = minigrad.ones(3, 2, requires_grad=True)
    with detect_anomaly(), np.errstate(invalid="ignore"):
        h = F.linear(x, w)  # the linear call
        with pytest.raises(RuntimeError) as error:
            (h * 0).sum().backward()
    message = str(error.value)
    expected = "Linear" if both_paths == "kernels" else "MatMul"
    assert message.startswith(f"Function '{expected}' returned nan values in its")
    assert f"line {line_of('# the linear call')}" in message


def test_without_anomaly_mode_nothing_is_kept_and_nothing_is_checked():
    assert not is_anomaly_enabled()
    x = minigrad.tensor([0.0], requires_grad=True)
    y = x.sqrt()
    assert y.grad_fn._forward_stack is None
    with np.errstate(divide="ignore"):
        y.sum().backward()  # inf reaches x.grad unchecked
    assert np.isinf(x.grad.numpy()).all()
    with detect_anomaly():
        assert is_anomaly_enabled()
        assert x.sqrt().grad_fn._forward_stack is not None
    assert not is_anomaly_enabled()


def test_a_node_recorded_before_anomaly_mode_says_it_has_no_trace():
    x = minigrad.tensor([0.0], requires_grad=True)
    y = x.sqrt()
    with detect_anomaly(), np.errstate(divide="ignore"), pytest.raises(RuntimeError, match="No forward trace"):
        y.sum().backward()


def test_check_nan_false_keeps_the_stacks_but_does_not_check():
    x = minigrad.tensor([0.0], requires_grad=True)
    with detect_anomaly(check_nan=False), np.errstate(divide="ignore"):
        y = x.sqrt()
        assert y.grad_fn._forward_stack is not None
        y.sum().backward()
    assert np.isinf(x.grad.numpy()).all()


def test_an_error_inside_a_backward_warns_with_the_forward_call_and_goes_on():
    class Broken(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, grad):
            raise ValueError("broken backward")

    x = minigrad.ones(1, requires_grad=True)
    with detect_anomaly():
        y = Broken.apply(x)  # the broken call
        with pytest.warns(UserWarning, match="Error detected in BrokenBackward") as warned, \
                pytest.raises(ValueError, match="broken backward"):
            y.sum().backward()
    assert f"line {line_of('# the broken call')}" in str(warned[0].message)


def test_set_detect_anomaly_and_the_decorator():
    with set_detect_anomaly(True):
        assert is_anomaly_enabled()
        with set_detect_anomaly(False):
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()

    @detect_anomaly()
    def inside():
        return is_anomaly_enabled()

    assert inside() and not is_anomaly_enabled()
