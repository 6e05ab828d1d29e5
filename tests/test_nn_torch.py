"""Every layer and loss against its torch.nn twin: same weights, same inputs, same outputs and gradients."""
import numpy as np
import pytest

import minigrad
import nn

torch = pytest.importorskip("torch")


def _copy_weights(ours, theirs):
    """Load our parameters into the torch module by name (the names must agree)."""
    state = {name: torch.tensor(t.numpy()) for name, t in ours.state_dict().items()}
    theirs.load_state_dict(state)
    return theirs


def _compare(ours, theirs, inputs, rng, grad_inputs=(0,), atol=1e-12):
    """Run both on the same float64 inputs, backprop the same random upstream gradient, compare everything."""
    our_inputs = [minigrad.tensor(x, requires_grad=i in grad_inputs) for i, x in enumerate(inputs)]
    their_inputs = [torch.tensor(x, requires_grad=i in grad_inputs) for i, x in enumerate(inputs)]
    out, expected = ours(*our_inputs), theirs(*their_inputs)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10, atol=atol)
    upstream = rng.standard_normal(tuple(expected.shape))
    out.backward(minigrad.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    for i in grad_inputs:
        np.testing.assert_allclose(our_inputs[i].grad.numpy(), their_inputs[i].grad.numpy(), rtol=1e-10, atol=atol)
    their_params = dict(theirs.named_parameters())
    our_params = dict(ours.named_parameters())
    assert set(our_params) == set(their_params)
    for name, p in our_params.items():
        np.testing.assert_allclose(p.grad.numpy(), their_params[name].grad.numpy(), rtol=1e-10, atol=atol,
                                   err_msg=name)


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias, rng):
    ours = nn.Linear(5, 3, bias=bias).double()
    theirs = _copy_weights(ours, torch.nn.Linear(5, 3, bias=bias, dtype=torch.float64))
    _compare(ours, theirs, [rng.standard_normal((2, 4, 5))], rng)


@pytest.mark.parametrize("shape,affine", [(6, True), ((3, 6), True), (6, False)])
def test_layer_norm(shape, affine, rng):
    ours = nn.LayerNorm(shape, elementwise_affine=affine).double()
    theirs = torch.nn.LayerNorm(shape, elementwise_affine=affine, dtype=torch.float64)
    for name, value in theirs.state_dict().items():  # the default init agrees (ones and zeros) ...
        np.testing.assert_array_equal(ours.state_dict()[name].numpy(), value.numpy())
    if affine:  # ... then random affine parameters, so that they matter
        with minigrad.no_grad():
            ours.weight.copy_(minigrad.tensor(rng.standard_normal(ours.weight.shape)))
            ours.bias.copy_(minigrad.tensor(rng.standard_normal(ours.bias.shape)))
        _copy_weights(ours, theirs)
    x_shape = (2, 4) + ((shape,) if isinstance(shape, int) else shape)
    _compare(ours, theirs, [3.0 + 2.0 * rng.standard_normal(x_shape)], rng)


@pytest.mark.parametrize("padding_idx", [None, 0, -2])
def test_embedding(padding_idx, rng):
    ours = nn.Embedding(7, 4, padding_idx=padding_idx).double()
    theirs = torch.nn.Embedding(7, 4, padding_idx=padding_idx, dtype=torch.float64)
    assert ours.padding_idx == theirs.padding_idx
    _copy_weights(ours, theirs)
    ids = np.array([[0, 5, 5, 1], [6, 0, 2, 5]])
    _compare(ours, theirs, [ids], rng, grad_inputs=())


@pytest.mark.parametrize("ours,theirs", [(nn.ReLU(), torch.nn.ReLU()), (nn.GELU(), torch.nn.GELU()),
                                         (nn.GELU("tanh"), torch.nn.GELU("tanh")), (nn.Tanh(), torch.nn.Tanh()),
                                         (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Identity(), torch.nn.Identity())])
def test_activations(ours, theirs, rng):
    _compare(ours, theirs, [3 * rng.standard_normal((3, 5))], rng)


def test_dropout_in_eval_is_identity_like_torch(rng):
    ours, theirs = nn.Dropout(0.3).eval(), torch.nn.Dropout(0.3).eval()
    _compare(ours, theirs, [rng.standard_normal((3, 5))], rng)


def test_sequential_names_match_torch_so_weights_copy_across(rng):
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 3)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.LayerNorm(8),
                                 torch.nn.Linear(8, 3)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _copy_weights(ours, theirs)
    _compare(ours, theirs, [rng.standard_normal((6, 4))], rng)
    # and back: torch's weights into ours
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})


# -- losses ------------------------------------------------------------------------------------------
def _targets(rng, shape, classes, ignore_index, ignored_fraction=0.3):
    target = rng.integers(0, classes, size=shape)
    target[rng.random(shape) < ignored_fraction] = ignore_index
    return target


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("ignore_index", [-100, 0])
@pytest.mark.parametrize("logits_shape", [(8, 5), (4, 5, 3), (2, 5, 3, 2)])
def test_cross_entropy(reduction, smoothing, ignore_index, logits_shape, rng):
    target_shape = (logits_shape[0],) + logits_shape[2:]
    target = _targets(rng, target_shape, logits_shape[1], ignore_index)
    logits = 4 * rng.standard_normal(logits_shape)
    ours = nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)
    theirs = torch.nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)
    _compare(ours, theirs, [logits, target], rng)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_with_every_target_ignored_gives_nan_like_torch(smoothing, rng):
    logits = rng.standard_normal((3, 4))
    target = np.full(3, -100)
    ours = nn.CrossEntropyLoss(label_smoothing=smoothing)
    x = minigrad.tensor(logits, requires_grad=True)
    loss = ours(x, minigrad.tensor(target))
    t = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(t, torch.tensor(target))
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    loss.backward()
    expected.backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())  # zeros in both
    assert nn.CrossEntropyLoss(reduction="sum")(x, minigrad.tensor(target)).item() == 0.0


def test_cross_entropy_with_no_ignored_target_and_smoothing_is_finite(rng):
    """Pitfall 12: smoothing must not need a pad token in the batch, nor blow up on tiny probabilities."""
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    target = np.array([2, 1])
    ours = nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    theirs = torch.nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    _compare(ours, theirs, [logits, target], rng, atol=1e-9)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction, rng):
    log_probs = np.log(rng.dirichlet(np.ones(5), size=6))
    target = _targets(rng, (6,), 5, -100)
    _compare(nn.NLLLoss(reduction=reduction), torch.nn.NLLLoss(reduction=reduction), [log_probs, target], rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction, rng):
    _compare(nn.MSELoss(reduction), torch.nn.MSELoss(reduction=reduction),
             [rng.standard_normal((3, 4)), rng.standard_normal((3, 4))], rng, grad_inputs=(0, 1))
