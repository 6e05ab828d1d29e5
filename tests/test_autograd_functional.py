"""minigrad.autograd.functional against torch.autograd.functional: jacobian, hessian, vjp, jvp, vhp and hvp
give torch's values, in torch's structures, with create_graph and strict behaving as torch's."""
import numpy as np
import pytest

import minigrad
import minigrad.autograd.functional as MF
from fake_gpu import device_params

torch = pytest.importorskip("torch")
TF = torch.autograd.functional

RNG = np.random.default_rng(0)
A, B, V = (RNG.standard_normal((2, 3)) for _ in range(3))


def on_both(call):
    """call(functional module, library) for minigrad and for torch (float64 inputs)."""
    return call(MF, minigrad), call(TF, torch)


def assert_same(ours, theirs, rtol=1e-10):
    """Equal nested structure (tuples) and values."""
    assert isinstance(ours, tuple) == isinstance(theirs, tuple)
    if isinstance(ours, tuple):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, rtol)
    else:
        assert tuple(ours.shape) == tuple(theirs.shape)
        np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-12)


# Functions written once for both libraries (Tensor methods only).
def two_outputs(x, y):
    return (x.exp() * y).sum(), x * y.tanh()


def elementwise(x):
    return (x ** 3).tanh() * x


def matrix_product(x, y):
    return x @ y.T


def scalar_of_two(x, y):
    return (x.exp() * y * y).sum() + (x * y).sum() ** 2


def scalar(x):
    return (x.exp() * x).sum() + (x ** 2).sum() ** 2


@pytest.mark.parametrize("name, func, inputs", [
    ("jacobian", elementwise, (A,)), ("jacobian", two_outputs, (A, B)), ("jacobian", matrix_product, (A, B)),
    ("jacobian", lambda x, y: x * 2, (A, B)), ("hessian", scalar, (A,)), ("hessian", scalar_of_two, (A, B)),
], ids=["jacobian, one in one out", "jacobian, two in two out", "jacobian, matmul", "jacobian, an unused input",
        "hessian, one input", "hessian, two inputs"])
def test_jacobian_and_hessian(name, func, inputs):
    def call(functional, lib):
        tensors = tuple(lib.tensor(a) for a in inputs)
        return getattr(functional, name)(func, tensors if len(tensors) > 1 else tensors[0])

    assert_same(*on_both(call))


def test_jacobian_of_a_tuple_of_one_input_keeps_the_tuples():
    assert_same(*on_both(lambda functional, lib: functional.jacobian(lambda x: (x * x, x.sum()), (lib.tensor(A),))))


def test_hessian_is_the_jacobian_of_the_gradient():
    x = minigrad.tensor(A)
    hessian = MF.hessian(scalar, x)
    gradient = MF.jacobian(lambda t: MF.jacobian(scalar, t, create_graph=True), x)
    np.testing.assert_allclose(hessian.numpy(), gradient.numpy(), rtol=1e-12)
    np.testing.assert_allclose(hessian.numpy().reshape(6, 6), hessian.numpy().reshape(6, 6).T, rtol=1e-12)


def test_vjp_and_jvp():
    assert_same(*on_both(lambda functional, lib: functional.vjp(elementwise, lib.tensor(A), lib.tensor(V))))
    assert_same(*on_both(lambda functional, lib: functional.jvp(elementwise, lib.tensor(A), lib.tensor(V))))
    assert_same(*on_both(lambda functional, lib: functional.vjp(
        two_outputs, (lib.tensor(A), lib.tensor(B)), (lib.tensor(np.float64(1.5)), lib.tensor(V)))))
    assert_same(*on_both(lambda functional, lib: functional.jvp(
        two_outputs, (lib.tensor(A), lib.tensor(B)), (lib.tensor(V), lib.tensor(A)))))
    # v may be left out for one single-element output (vjp) or input (jvp)
    assert_same(*on_both(lambda functional, lib: functional.vjp(scalar, lib.tensor(A))))
    assert_same(*on_both(lambda functional, lib: functional.jvp(lambda x: x * x.exp(), lib.tensor(np.array([0.3])))))


def test_jvp_is_the_jacobian_times_v():
    x, v = minigrad.tensor(A), minigrad.tensor(V)
    _, jv = MF.jvp(elementwise, x, v)
    jacobian = MF.jacobian(elementwise, x).numpy().reshape(6, 6)
    np.testing.assert_allclose(jv.numpy().reshape(6), jacobian @ V.reshape(6), rtol=1e-12)


def test_vhp_and_hvp():
    for name in ("vhp", "hvp"):
        assert_same(*on_both(lambda functional, lib: getattr(functional, name)(scalar, lib.tensor(A), lib.tensor(V))))
        assert_same(*on_both(lambda functional, lib: getattr(functional, name)(
            scalar_of_two, (lib.tensor(A), lib.tensor(B)), (lib.tensor(V), lib.tensor(A)))))


def test_create_graph_gives_differentiable_results_and_detached_ones_otherwise():
    def call(functional, lib):
        x = lib.tensor(A, requires_grad=True)
        plain = functional.jacobian(elementwise, x)
        assert not plain.requires_grad
        jac = functional.jacobian(elementwise, x, create_graph=True)
        out, jv = functional.jvp(elementwise, x, lib.tensor(V), create_graph=True)
        hess = functional.hessian(scalar, x, create_graph=True)
        assert jac.requires_grad and jv.requires_grad and out.requires_grad and hess.requires_grad
        grad = minigrad.grad if lib is minigrad else torch.autograd.grad
        return grad((jac ** 2).sum() + jv.sum() + hess.sum(), x)

    assert_same(*on_both(call))


def test_the_arguments_are_fresh_tensors_not_the_ones_given():
    x = minigrad.tensor(A, requires_grad=True)
    jac = MF.jacobian(lambda t: t * x, x)  # d/dt of t * x (x held as a constant by the function)
    np.testing.assert_allclose(jac.numpy(), TF.jacobian(lambda t: t * torch.tensor(A), torch.tensor(A)).numpy())
    assert x.grad is None


@pytest.mark.parametrize("call, message", [
    (lambda F, L: F.jacobian(lambda x, y: x * 2, (L.tensor(A), L.tensor(B)), strict=True),
     "Output 0 of the user-provided function is independent of input 1"),
    (lambda F, L: F.vjp(lambda x: L.ones(2, 3, dtype=x.dtype), L.tensor(A), L.tensor(V), strict=True),
     "Output 0 of the user-provided function does not require gradients"),
    (lambda F, L: F.hessian(lambda x: x.sum(), L.tensor(A), strict=True),
     "jacobian of the user-provided function with respect to input 0 is independent of the input"),
    (lambda F, L: F.vjp(elementwise, L.tensor(A)), "The vector v can only be None if"),
    (lambda F, L: F.jvp(elementwise, L.tensor(A), L.tensor(B[:, :2])), "v has invalid size"),
    (lambda F, L: F.hessian(elementwise, L.tensor(A)), "should contain a single element"),
], ids=["independent input", "constant output", "linear function's hessian", "missing v", "v's shape",
        "hessian of a non-scalar"])
def test_errors_as_torch(call, message):
    for functional, lib in ((MF, minigrad), (TF, torch)):
        with pytest.raises(RuntimeError, match=message):
            call(functional, lib)


def test_without_strict_an_independent_input_gets_zeros():
    jac = MF.jacobian(lambda x, y: x * 2, (minigrad.tensor(A), minigrad.tensor(B)))
    assert not jac[1].numpy().any() and jac[1].shape == (2, 3, 2, 3)


def test_inputs_must_be_tensors_and_vectorize_is_refused():
    with pytest.raises(TypeError, match="must be either a Tensor or a tuple of Tensors"):
        MF.jacobian(elementwise, A)
    with pytest.raises(NotImplementedError, match="vmap"):
        MF.jacobian(elementwise, minigrad.tensor(A), vectorize=True)


def test_on_both_paths_through_kernels(both_paths):
    """The jacobian and hessian of a layer_norm + linear (kernels outside reference mode) are torch's."""
    weight = RNG.standard_normal((2, 3))

    def call(functional, lib):
        F = minigrad.functional if lib is minigrad else torch.nn.functional
        w = lib.tensor(weight)

        def layer(x):
            return F.linear(F.layer_norm(x, (3,)), w).tanh()

        return functional.jacobian(layer, lib.tensor(A)), functional.hessian(lambda x: layer(x).sum(), lib.tensor(A))

    assert_same(*on_both(call), rtol=1e-9)


@pytest.mark.parametrize("device", device_params())
def test_on_every_device(device):
    x = minigrad.tensor(A, device=device)
    jac = MF.jacobian(elementwise, x)
    hess = MF.hessian(scalar, x)
    assert jac.device == hess.device == x.device
    np.testing.assert_allclose(jac.numpy(), TF.jacobian(elementwise, torch.tensor(A)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(hess.numpy(), TF.hessian(scalar, torch.tensor(A)).numpy(), rtol=1e-10)
