"""Optimizers, learning-rate schedules and gradient clipping, checked against torch.optim and hand formulas."""
import math

import numpy as np
import pytest

import minigrad
import nn
from minigrad import optim
from minigrad.optim import lr_scheduler


def _trajectory(rng, steps=20, shapes=((3, 4), (5,))):
    """Starting parameters and a fixed sequence of gradients for each (float64)."""
    start = [rng.standard_normal(shape) for shape in shapes]
    grads = [[rng.standard_normal(shape) for shape in shapes] for _ in range(steps)]
    return start, grads


def _run_minigrad(name, kwargs, start, grads):
    params = [minigrad.tensor(p.copy(), requires_grad=True) for p in start]
    optimizer = getattr(optim, name)(params, **kwargs)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = minigrad.tensor(g.copy())
        optimizer.step()
    return [p.detach().numpy() for p in params]


def _run_torch(torch, name, kwargs, start, grads):
    params = [torch.tensor(p.copy(), requires_grad=True) for p in start]
    optimizer = getattr(torch.optim, name)(params, **kwargs, foreach=False)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g.copy())
        optimizer.step()
    return [p.detach().numpy() for p in params]


OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.25, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.9, 0.98), eps=1e-9, weight_decay=0.1)),
    ("Adam", dict(lr=0.02, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.8, 0.95), weight_decay=0.3)),
]


@pytest.mark.parametrize("name,kwargs", OPTIMIZER_CASES)
def test_optimizer_matches_torch_for_20_steps(name, kwargs, rng):
    torch = pytest.importorskip("torch")
    start, grads = _trajectory(rng)
    ours = _run_minigrad(name, kwargs, start, grads)
    theirs = _run_torch(torch, name, kwargs, start, grads)
    for a, b, s in zip(ours, theirs, start):
        assert not np.allclose(a, s)  # the parameters did move
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_sgd_first_step_by_hand():
    p = minigrad.tensor([1.0, -2.0], dtype=minigrad.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.5, momentum=0.9, weight_decay=0.1)
    p.grad = minigrad.tensor([0.2, 0.4], dtype=minigrad.float64)
    opt.step()
    # d = g + wd * p = [0.3, 0.2]; first momentum buffer = d; p - lr * d
    np.testing.assert_allclose(p.detach().numpy(), [1.0 - 0.15, -2.0 - 0.1], atol=1e-15)


def test_adamw_decay_is_decoupled_from_the_gradient():
    """With a zero gradient Adam's L2 term still moves p through the moments; AdamW only shrinks p."""
    p = minigrad.tensor([2.0], dtype=minigrad.float64, requires_grad=True)
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = minigrad.tensor([0.0], dtype=minigrad.float64)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [2.0 * (1 - 0.1 * 0.5)], atol=1e-15)


def test_step_skips_parameters_without_grad_and_bumps_versions():
    a = minigrad.tensor([1.0, 2.0], requires_grad=True)
    b = minigrad.tensor([3.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = minigrad.tensor([1.0, 1.0])
    version = a._version
    opt.step()
    assert a._version == version + 1
    assert b.detach().numpy().tolist() == [3.0]
    assert b not in opt.state


def test_update_is_not_recorded_and_grad_untouched():
    p = minigrad.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, weight_decay=0.5, momentum=0.5)
    grad = minigrad.tensor([0.5, -0.5])
    p.grad = grad
    opt.step()
    assert p.grad_fn is None and p.is_leaf
    assert grad.numpy().tolist() == [0.5, -0.5]


def test_zero_grad_set_to_none_and_zero():
    p = minigrad.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = minigrad.tensor([3.0])
    opt.zero_grad(set_to_none=False)
    assert p.grad.numpy().tolist() == [0.0]
    opt.zero_grad()
    assert p.grad is None


def test_param_groups_have_their_own_hyperparameters():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    opt = optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.5}],
                    lr=0.1, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["momentum"] == 0.9
    with pytest.raises(ValueError, match="more than one"):
        opt.add_param_group({"params": [model[0].weight]})
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([], lr=0.1)


def test_optimizer_state_lives_on_parameter_device_and_dtype():
    p = minigrad.tensor([1.0, 2.0], dtype=minigrad.float64, requires_grad=True)
    opt = optim.Adam([p])
    p.grad = minigrad.tensor([1.0, 1.0], dtype=minigrad.float64)
    opt.step()
    for name in ("exp_avg", "exp_avg_sq"):
        assert opt.state[p][name].device == p.device and opt.state[p][name].dtype == p.dtype


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                         ("Adam", dict(lr=0.01, amsgrad=True)), ("AdamW", dict(lr=0.01))])
def test_optimizer_state_dict_resumes_identically(name, kwargs, rng, tmp_path):
    start, grads = _trajectory(rng, steps=10)
    straight = _run_minigrad(name, kwargs, start, grads)

    params = [minigrad.tensor(p.copy(), requires_grad=True) for p in start]
    opt = getattr(optim, name)(params, **kwargs)
    for step_grads in grads[:5]:
        for p, g in zip(params, step_grads):
            p.grad = minigrad.tensor(g.copy())
        opt.step()
    minigrad.save({"params": [p.detach() for p in params], "opt": opt.state_dict()}, tmp_path / "ck.npz")
    loaded = minigrad.load(tmp_path / "ck.npz")

    resumed = [minigrad.tensor(p.numpy().copy(), requires_grad=True) for p in loaded["params"]]
    opt2 = getattr(optim, name)(resumed, lr=123.0)  # hyper-parameters come from the state dict
    opt2.load_state_dict(loaded["opt"])
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    for step_grads in grads[5:]:
        for p, g in zip(resumed, step_grads):
            p.grad = minigrad.tensor(g.copy())
        opt2.step()
    for a, b in zip(resumed, straight):
        np.testing.assert_array_equal(a.detach().numpy(), b)


def test_optimizer_state_dict_layout_and_private_copies():
    p = minigrad.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = minigrad.tensor([1.0, 1.0])
    opt.step()
    state = opt.state_dict()
    assert state["param_groups"][0]["params"] == [0] and state["param_groups"][0]["lr"] == 0.1
    assert set(state["state"][0]) == {"momentum_buffer"}
    q = minigrad.tensor([1.0, 2.0], requires_grad=True)
    opt2 = optim.SGD([q], lr=0.1, momentum=0.9)
    opt2.load_state_dict(state)
    assert opt2.state[q]["momentum_buffer"].data is not opt.state[p]["momentum_buffer"].data
    with pytest.raises(ValueError, match="parameter group 0"):
        optim.SGD([q, minigrad.tensor([1.0], requires_grad=True)], lr=0.1).load_state_dict(state)


# -- schedules ----------------------------------------------------------------------------------
def _lrs(scheduler, optimizer, steps):
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        assert scheduler.get_last_lr()[0] == values[-1]
        optimizer.step()
        scheduler.step()
    return values


def _torch_lrs(torch, lr, make_scheduler, steps):
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=lr)
    scheduler = make_scheduler(optimizer)
    values = []
    for _ in range(steps):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def _our_optimizer(lr):
    return optim.SGD([minigrad.zeros(1, requires_grad=True)], lr=lr)


def test_lambda_lr_matches_torch():
    torch = pytest.importorskip("torch")
    fn = lambda step: 0.95 ** step + 0.01 * (step % 3)  # noqa: E731
    opt = _our_optimizer(0.3)
    ours = _lrs(lr_scheduler.LambdaLR(opt, fn), opt, 30)
    theirs = _torch_lrs(torch, 0.3, lambda o: torch.optim.lr_scheduler.LambdaLR(o, fn), 30)
    assert ours == pytest.approx(theirs, rel=1e-15, abs=0)


def test_noam_matches_torch_lambda_lr_with_the_paper_formula():
    torch = pytest.importorskip("torch")
    d_model, warmup, factor = 512, 40, 2.0

    def paper(step):  # the update with index `step` is the paper's step_num = step + 1
        n = step + 1
        return factor * d_model ** -0.5 * min(n ** -0.5, n * warmup ** -1.5)

    opt = _our_optimizer(1.0)
    ours = _lrs(lr_scheduler.NoamLR(opt, d_model, warmup, factor), opt, 200)
    theirs = _torch_lrs(torch, 1.0, lambda o: torch.optim.lr_scheduler.LambdaLR(o, paper), 200)
    assert ours == pytest.approx(theirs, rel=1e-15, abs=0)
    assert max(ours) == ours[warmup - 1]  # peak at step_num == warmup
    assert ours[0] > 0


def test_noam_ignores_the_optimizer_base_lr():
    a, b = _our_optimizer(1.0), _our_optimizer(0.001)
    assert (lr_scheduler.NoamLR(a, 64, 10).get_last_lr() == lr_scheduler.NoamLR(b, 64, 10).get_last_lr())


def test_warmup_cosine_matches_hand_formula():
    base, warmup, total, min_lr = 0.5, 10, 50, 0.01
    opt = _our_optimizer(base)
    ours = _lrs(lr_scheduler.WarmupCosineLR(opt, warmup, total, min_lr), opt, 60)
    for step, lr in enumerate(ours):
        if step < warmup:
            expected = base * (step + 1) / warmup
        elif step < total:
            expected = min_lr + (base - min_lr) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2
        else:
            expected = min_lr
        assert lr == pytest.approx(expected, rel=1e-14)
    assert ours[warmup - 1] == pytest.approx(base) and ours[warmup] == pytest.approx(base)
    assert ours[total] == min_lr


def test_scheduler_state_dict_resumes():
    opt = _our_optimizer(1.0)
    scheduler = lr_scheduler.NoamLR(opt, 64, 10)
    for _ in range(7):
        scheduler.step()
    state = scheduler.state_dict()
    assert "optimizer" not in state
    opt2 = _our_optimizer(1.0)
    scheduler2 = lr_scheduler.NoamLR(opt2, 64, 10)
    scheduler2.load_state_dict(state)
    scheduler.step()
    scheduler2.step()
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


# -- clipping -----------------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, rng):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [minigrad.tensor(np.zeros_like(g), requires_grad=True) for g in grads]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad = minigrad.tensor(g.copy())
        t.grad = torch.tensor(g.copy())
    total = optim.clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type, foreach=False)
    assert isinstance(total, minigrad.Tensor) and total.shape == ()
    assert total.item() == pytest.approx(expected.item(), rel=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=0)


def test_clip_grad_norm_reaches_max_norm_and_is_reexported():
    assert nn.utils.clip_grad_norm_ is optim.clip_grad_norm_
    p = minigrad.tensor([0.0, 0.0], dtype=minigrad.float64, requires_grad=True)
    p.grad = minigrad.tensor([3.0, 4.0], dtype=minigrad.float64)
    total = nn.utils.clip_grad_norm_([p], 1.0)
    assert total.item() == 5.0
    assert float(np.linalg.norm(p.grad.numpy())) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(RuntimeError, match="not finite"):
        p.grad = minigrad.tensor([float("nan"), 1.0], dtype=minigrad.float64)
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


# -- devices (the simulated GPU follows CuPy's rules; a real GPU runs too when present) ----------------
import fake_gpu  # noqa: E402

DEVICES = fake_gpu.device_params()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
                                         ("Adam", dict(lr=0.1, weight_decay=0.1, amsgrad=True)),
                                         ("AdamW", dict(lr=0.1))])
def test_optimizer_steps_on_device_without_host_traffic(device, name, kwargs, rng):
    start, grads = _trajectory(rng, steps=3)
    expected = _run_minigrad(name, kwargs, start, grads)
    params = [minigrad.tensor(p.copy(), requires_grad=True, device=device) for p in start]
    opt = getattr(optim, name)(params, **kwargs)
    device_grads = [[minigrad.tensor(g, device=device) for g in step] for step in grads]
    with fake_gpu.no_host_traffic():
        for step in device_grads:
            for p, g in zip(params, step):
                p.grad = g
            opt.step()
            total = optim.clip_grad_norm_(params, 1e6)
            opt.zero_grad()
    assert total.device == params[0].device
    for state in opt.state.values():
        for value in state.values():
            if isinstance(value, minigrad.Tensor):
                assert type(value.data) is fake_gpu.array_type(device) and value.device == params[0].device
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.detach().numpy(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_clip_grad_norm_on_device_matches_cpu(device, rng):
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(7)]
    totals = {}
    for where in ("cpu", device):
        params = [minigrad.zeros(g.shape, dtype=minigrad.float64, device=where, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = minigrad.tensor(g, device=where)
        with fake_gpu.no_host_traffic():
            total = optim.clip_grad_norm_(params, 0.5)
        totals[where] = (total.item(), [p.grad.numpy() for p in params])
    assert totals[device][0] == pytest.approx(totals["cpu"][0], rel=1e-12)
    for a, b in zip(totals[device][1], totals["cpu"][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
