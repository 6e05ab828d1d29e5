"""minigrad.optim.lr_scheduler's torch schedules, step by step against torch.optim.lr_scheduler.

Every case builds the same optimizer (three parameter groups with their own lrs) in both
libraries, constructs the schedule with the same call on each module, runs optimizer.step()
and scheduler.step() in torch's order and compares every group's lr (and momentum, where a
schedule moves it), get_last_lr() and last_epoch after every step.
"""
import io
import warnings

import pytest

import minigrad
from minigrad import optim
from minigrad.optim import lr_scheduler

STEPS = 40


def _groups(params):
    """Three groups: two with their own lr, one on the optimizer's default."""
    return [{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.03}, {"params": [params[2]]}]


def _our_optimizer(kind="sgd"):
    params = [minigrad.zeros(2, requires_grad=True) for _ in range(3)]
    if kind == "adam":
        return optim.Adam(_groups(params), lr=0.5)
    return optim.SGD(_groups(params), lr=0.5, momentum=0.9)


def _torch_optimizer(torch, kind="sgd"):
    params = [torch.zeros(2, requires_grad=True) for _ in range(3)]
    if kind == "adam":
        return torch.optim.Adam(_groups(params), lr=0.5)
    return torch.optim.SGD(_groups(params), lr=0.5, momentum=0.9)


def _momenta(optimizer):
    return [group["betas"][0] if "betas" in group else group["momentum"] for group in optimizer.param_groups]


def _run(optimizer, schedulers, steps=STEPS):
    """Record, before every update, the groups' lrs and momenta, and after every scheduler step
    get_last_lr() and last_epoch (of the last of `schedulers`, one scheduler or a list stepped together)."""
    schedulers = schedulers if isinstance(schedulers, list) else [schedulers]
    lrs, momenta, last_lrs, epochs = [], [], [], []
    for _ in range(steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        momenta.append(_momenta(optimizer))
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        last_lrs.append(list(schedulers[-1].get_last_lr()))
        epochs.append(schedulers[-1].last_epoch)
    return {"lr": lrs, "momentum": momenta, "last_lr": last_lrs, "last_epoch": epochs}


def _flat(rows):
    return [value for row in rows for value in row]


def _assert_same_run(ours, theirs):
    assert ours["last_epoch"] == theirs["last_epoch"]
    for key in ("lr", "momentum", "last_lr"):
        assert _flat(ours[key]) == pytest.approx(_flat(theirs[key]), rel=1e-12, abs=0), key


# One schedule each: (id, class name, keyword arguments, optimizer kind). Both sides are built by the
# same call, getattr(module, name)(optimizer, **kwargs), on torch.optim.lr_scheduler or minigrad's.
SINGLE = [
    ("step", "StepLR", dict(step_size=3), "sgd"),
    ("step-gamma", "StepLR", dict(step_size=7, gamma=0.5), "sgd"),
    ("multistep", "MultiStepLR", dict(milestones=[4, 11, 25]), "sgd"),
    ("multistep-repeated-unsorted", "MultiStepLR", dict(milestones=[30, 6, 6, 15], gamma=0.7), "sgd"),
    ("exponential", "ExponentialLR", dict(gamma=0.9), "sgd"),
    ("cosine", "CosineAnnealingLR", dict(T_max=STEPS), "sgd"),
    ("cosine-past-T_max", "CosineAnnealingLR", dict(T_max=7, eta_min=0.01), "sgd"),
    ("cosine-to-zero-and-back", "CosineAnnealingLR", dict(T_max=10), "sgd"),
    ("linear-defaults", "LinearLR", dict(), "sgd"),
    ("linear-down", "LinearLR", dict(start_factor=1.0, end_factor=0.05, total_iters=30), "sgd"),
    ("linear-warmup", "LinearLR", dict(start_factor=0.01, end_factor=0.8, total_iters=12), "adam"),
    ("onecycle-sgd", "OneCycleLR", dict(max_lr=1.0, total_steps=STEPS), "sgd"),
    ("onecycle-adam-betas", "OneCycleLR", dict(max_lr=[1.0, 0.3, 2.0], total_steps=STEPS), "adam"),
    ("onecycle-linear-epochs", "OneCycleLR", dict(max_lr=0.8, epochs=4, steps_per_epoch=10, pct_start=0.25,
                                                  anneal_strategy="linear"), "sgd"),
    ("onecycle-three-phase", "OneCycleLR", dict(max_lr=[1.0, 0.5, 0.1], total_steps=STEPS, three_phase=True,
                                                div_factor=10.0, final_div_factor=100.0), "adam"),
    ("onecycle-three-phase-linear", "OneCycleLR", dict(max_lr=1.0, total_steps=STEPS, three_phase=True,
                                                       anneal_strategy="linear", pct_start=0.4,
                                                       base_momentum=[0.8, 0.7, 0.6], max_momentum=0.99), "sgd"),
    ("onecycle-no-momentum", "OneCycleLR", dict(max_lr=1.0, total_steps=STEPS, cycle_momentum=False), "adam"),
]


def _single(name, kwargs):
    return lambda module, optimizer: getattr(module, name)(optimizer, **kwargs)


# Schedules built from others: (id, make(module, optimizer), optimizer kind).
COMBINED = [
    ("sequential-warmup-cosine", lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=30)], milestones=[5]),
     "sgd"),
    ("sequential-three", lambda m, o: m.SequentialLR(
        o, [m.ExponentialLR(o, gamma=0.8), m.LinearLR(o, start_factor=0.5, total_iters=6),
            m.StepLR(o, step_size=4, gamma=0.5)], milestones=[7, 20]), "sgd"),
    ("sequential-multistep-first", lambda m, o: m.SequentialLR(
        o, [m.MultiStepLR(o, milestones=[2, 4]), m.ExponentialLR(o, gamma=0.95)], milestones=[9]), "adam"),
    ("sequential-onecycle-then-cosine", lambda m, o: m.SequentialLR(
        o, [m.OneCycleLR(o, max_lr=1.0, total_steps=20), m.CosineAnnealingLR(o, T_max=8, eta_min=0.002)],
        milestones=[20]), "sgd"),
]
# Chaining: several schedulers stepped on one optimizer compose (each changes the lr the one before
# left), as torch documents. make returns the list, stepped in order.
CHAINED = [
    ("chained-exponential-multistep", lambda m, o: [m.ExponentialLR(o, gamma=0.9),
                                                    m.MultiStepLR(o, milestones=[5, 12], gamma=0.5)], "sgd"),
    ("chained-linear-cosine", lambda m, o: [m.LinearLR(o, start_factor=0.2, total_iters=8),
                                            m.CosineAnnealingLR(o, T_max=25, eta_min=0.001)], "sgd"),
    ("chained-step-linear", lambda m, o: [m.StepLR(o, step_size=5, gamma=0.8), m.LinearLR(o, 0.5, 1.0, 10)],
     "adam"),
]
RESUMABLE = [(case_id, _single(name, kwargs), kind) for case_id, name, kwargs, kind in SINGLE] + COMBINED
CASES = RESUMABLE + CHAINED


@pytest.mark.parametrize("case_id,make,kind", CASES, ids=[case[0] for case in CASES])
def test_every_step_matches_torch(case_id, make, kind):
    torch = pytest.importorskip("torch")
    ours_optimizer, theirs_optimizer = _our_optimizer(kind), _torch_optimizer(torch, kind)
    ours = _run(ours_optimizer, make(lr_scheduler, ours_optimizer))
    theirs = _run(theirs_optimizer, make(torch.optim.lr_scheduler, theirs_optimizer))
    _assert_same_run(ours, theirs)


def _checkpointed(obj):
    """obj after a trip through minigrad.save / minigrad.load (what a real checkpoint keeps)."""
    buffer = io.BytesIO()
    minigrad.save(obj, buffer)
    buffer.seek(0)
    return minigrad.load(buffer)


@pytest.mark.parametrize("stop", [1, 6, 23])
@pytest.mark.parametrize("case_id,make,kind", RESUMABLE, ids=[case[0] for case in RESUMABLE])
def test_resuming_from_state_dicts_continues_the_same_lrs(case_id, make, kind, stop):
    """Stop mid-schedule, save optimizer and scheduler through a checkpoint, rebuild both fresh (the torch
    way: scheduler first, then load the optimizer's state and the scheduler's) and go on: the lrs and
    momenta are those of the run that never stopped."""
    optimizer = _our_optimizer(kind)
    whole = _run(optimizer, make(lr_scheduler, optimizer))

    optimizer = _our_optimizer(kind)
    scheduler = make(lr_scheduler, optimizer)
    first = _run(optimizer, scheduler, steps=stop)
    saved_optimizer, saved_scheduler = _checkpointed((optimizer.state_dict(), scheduler.state_dict()))

    fresh_optimizer = _our_optimizer(kind)
    fresh = make(lr_scheduler, fresh_optimizer)
    fresh_optimizer.load_state_dict(saved_optimizer)
    fresh.load_state_dict(saved_scheduler)
    assert fresh.last_epoch == stop and fresh.get_last_lr() == whole["last_lr"][stop - 1]
    rest = _run(fresh_optimizer, fresh, steps=STEPS - stop)
    for key in ("lr", "momentum", "last_lr", "last_epoch"):
        assert first[key] + rest[key] == whole[key], key


def test_sequential_state_dict_nests_its_schedulers_and_load_leaves_the_argument_alone():
    optimizer = _our_optimizer()
    scheduler = lr_scheduler.SequentialLR(optimizer, [lr_scheduler.ExponentialLR(optimizer, 0.9),
                                                      lr_scheduler.StepLR(optimizer, 3)], milestones=[4])
    state = scheduler.state_dict()
    assert "optimizer" not in state and len(state["_schedulers"]) == 2
    assert all("optimizer" not in inner for inner in state["_schedulers"])
    before = repr(state)
    scheduler.load_state_dict(state)
    assert repr(state) == before


@pytest.mark.parametrize("case_id,name,kwargs,kind", SINGLE, ids=[case[0] for case in SINGLE])
def test_constructing_with_last_epoch_matches_torch(case_id, name, kwargs, kind):
    """Run 9 steps, then build a second scheduler of the same kind with last_epoch=9 on the same optimizer
    (torch's way to resume without a state_dict: the groups keep initial_lr) and go on with that one."""
    torch = pytest.importorskip("torch")

    def resumed(module, optimizer):
        first = getattr(module, name)(optimizer, **kwargs)
        for _ in range(9):
            optimizer.step()
            first.step()
        return getattr(module, name)(optimizer, **kwargs, last_epoch=9)

    ours_optimizer, theirs_optimizer = _our_optimizer(kind), _torch_optimizer(torch, kind)
    ours = _run(ours_optimizer, resumed(lr_scheduler, ours_optimizer), steps=20)
    theirs = _run(theirs_optimizer, resumed(torch.optim.lr_scheduler, theirs_optimizer), steps=20)
    _assert_same_run(ours, theirs)


def _jumping_run(module, optimizer, name, kwargs, epochs):
    """step(epoch) to each of `epochs` (torch's deprecated form, the closed form there), each followed by
    one plain step(); the groups' lrs and momenta after each call."""
    scheduler = getattr(module, name)(optimizer, **kwargs)
    seen = []
    for epoch in epochs:
        for target in (epoch, None):
            optimizer.step()
            scheduler.step(target)
            seen.append([group["lr"] for group in optimizer.param_groups] + _momenta(optimizer)
                        + [scheduler.last_epoch])
    return seen


@pytest.mark.parametrize("case_id,name,kwargs,kind", SINGLE, ids=[case[0] for case in SINGLE])
def test_step_with_an_epoch_jumps_there_as_torch_does(case_id, name, kwargs, kind):
    torch = pytest.importorskip("torch")
    epochs = [3, 8, 2, 15, 27, 11]
    with pytest.warns(UserWarning, match="deprecated"):
        ours = _jumping_run(lr_scheduler, _our_optimizer(kind), name, kwargs, epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _jumping_run(torch.optim.lr_scheduler, _torch_optimizer(torch, kind), name, kwargs, epochs)
    assert _flat(ours) == pytest.approx(_flat(theirs), rel=1e-12, abs=0)


def test_onecycle_runs_to_total_steps_and_no_further_as_torch():
    torch = pytest.importorskip("torch")
    for module, optimizer in ((lr_scheduler, _our_optimizer()), (torch.optim.lr_scheduler, _torch_optimizer(torch))):
        scheduler = module.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
        for _ in range(10):  # the constructor took step 0; steps 1..10 are allowed (10 extrapolates the last phase)
            optimizer.step()
            scheduler.step()
        assert scheduler.last_epoch == 10
        with pytest.raises(ValueError, match="10"):
            scheduler.step()


# -- ReduceLROnPlateau ------------------------------------------------------------------------------
def _plateau_metrics(rng, steps=STEPS):
    """A loss that improves now and then (by more or less than the thresholds) and otherwise stalls or
    wobbles, with exact repeats, so every branch of the comparison is taken; the last 15 steps only stall,
    long enough for the default patience to run out."""
    value, metrics = 1.0, []
    for step in range(steps):
        odds = [0.25, 0.25, 0.3, 0.2] if step < steps - 15 else [0.0, 0.0, 0.6, 0.4]
        move = rng.choice(["big", "small", "same", "up"], p=odds)
        value = {"big": value * 0.7, "small": value * (1 - 1e-5), "same": value, "up": value * 1.02}[move]
        metrics.append(value)
    return metrics


PLATEAU_SETTINGS = [
    dict(),
    dict(patience=2, threshold=0.05),
    dict(patience=1, threshold=0.01, threshold_mode="abs", cooldown=3, min_lr=[0.01, 0.001, 0.2]),
    dict(mode="max", patience=1, factor=0.5),
    dict(mode="max", patience=0, factor=0.5, threshold_mode="abs", threshold=0.001, cooldown=1),
    dict(patience=0, factor=0.9, eps=0.004),
    dict(patience=0, factor=0.3, min_lr=0.05),
]


def _plateau_run(optimizer, scheduler, metrics, to_metric=float):
    """step(metric) for each metric; what the groups and the scheduler hold after each."""
    seen = []
    for metric in metrics:
        optimizer.step()
        scheduler.step(to_metric(metric))
        seen.append(([group["lr"] for group in optimizer.param_groups], scheduler.get_last_lr(), scheduler.best,
                     scheduler.num_bad_epochs, scheduler.cooldown_counter, scheduler.last_epoch))
    return seen


@pytest.mark.parametrize("settings", PLATEAU_SETTINGS, ids=[repr(s) for s in PLATEAU_SETTINGS])
def test_reduce_on_plateau_matches_torch(settings, rng):
    torch = pytest.importorskip("torch")
    metrics = _plateau_metrics(rng)
    if settings.get("mode") == "max":
        metrics = [-m for m in metrics]
    ours_optimizer, theirs_optimizer = _our_optimizer(), _torch_optimizer(torch)
    ours = _plateau_run(ours_optimizer, lr_scheduler.ReduceLROnPlateau(ours_optimizer, **settings), metrics)
    theirs = _plateau_run(theirs_optimizer, torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_optimizer, **settings),
                          metrics)
    for step, (mine, reference) in enumerate(zip(ours, theirs)):
        assert mine[0] == pytest.approx(reference[0], rel=1e-12, abs=0), step
        assert mine[1] == pytest.approx(reference[1], rel=1e-12, abs=0), step
        assert mine[2:] == reference[2:], step
    assert ours[-1][0] != ours[0][0]  # the run did reduce something


def test_reduce_on_plateau_with_a_group_added_later_matches_torch():
    """A scalar min_lr covers a group added after construction; a per-group list cannot (both as torch)."""
    torch = pytest.importorskip("torch")
    seen = []
    for module, optimizer, new_param in ((lr_scheduler, _our_optimizer(), minigrad.zeros(2, requires_grad=True)),
                                         (torch.optim.lr_scheduler, _torch_optimizer(torch),
                                          torch.zeros(2, requires_grad=True))):
        scalar = module.ReduceLROnPlateau(optimizer, patience=0, factor=0.5, min_lr=0.02)
        listed = module.ReduceLROnPlateau(optimizer, patience=0, min_lr=[0.0, 0.0, 0.0])
        optimizer.add_param_group({"params": [new_param], "lr": 0.3})
        for metric in (1.0, 2.0, 3.0, 4.0):
            scalar.step(metric)
            seen.append([group["lr"] for group in optimizer.param_groups])
        assert scalar.min_lrs == [0.02] * 4
        listed.step(1.0)
        with pytest.raises(RuntimeError):
            listed.step(2.0)
    ours, theirs = seen[:4], seen[4:]
    assert _flat(ours) == pytest.approx(_flat(theirs), rel=1e-12, abs=0)


def test_reduce_on_plateau_takes_a_0d_tensor_and_resumes_from_a_checkpoint(rng):
    metrics = _plateau_metrics(rng)
    settings = dict(patience=1, cooldown=2, factor=0.5)
    optimizer = _our_optimizer()
    whole = _plateau_run(optimizer, lr_scheduler.ReduceLROnPlateau(optimizer, **settings), metrics)
    optimizer = _our_optimizer()
    as_tensors = _plateau_run(optimizer, lr_scheduler.ReduceLROnPlateau(optimizer, **settings), metrics,
                              to_metric=lambda m: minigrad.tensor(m, dtype=minigrad.float64))
    assert as_tensors == whole

    optimizer = _our_optimizer()
    scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, **settings)
    first = _plateau_run(optimizer, scheduler, metrics[:17])
    saved_optimizer, saved_scheduler = _checkpointed((optimizer.state_dict(), scheduler.state_dict()))
    fresh_optimizer = _our_optimizer()
    fresh = lr_scheduler.ReduceLROnPlateau(fresh_optimizer, **settings)
    fresh_optimizer.load_state_dict(saved_optimizer)
    fresh.load_state_dict(saved_scheduler)
    assert first + _plateau_run(fresh_optimizer, fresh, metrics[17:]) == whole


# -- bad arguments --------------------------------------------------------------------------------
# (id, make(module, new_optimizer), the exception): the same call must fail the same way in both.
ERRORS = [
    ("not-an-optimizer", lambda m, new: m.StepLR([0.1], step_size=2), TypeError),
    ("resume-without-initial_lr", lambda m, new: m.ExponentialLR(new(), gamma=0.9, last_epoch=4), KeyError),
    ("linear-start-0", lambda m, new: m.LinearLR(new(), start_factor=0.0), ValueError),
    ("linear-start-above-1", lambda m, new: m.LinearLR(new(), start_factor=1.5), ValueError),
    ("linear-end-negative", lambda m, new: m.LinearLR(new(), end_factor=-0.1), ValueError),
    ("onecycle-no-length", lambda m, new: m.OneCycleLR(new(), max_lr=1.0), ValueError),
    ("onecycle-epochs-only", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, epochs=3), ValueError),
    ("onecycle-total-0", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, total_steps=0), ValueError),
    ("onecycle-total-float", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, total_steps=10.0), ValueError),
    ("onecycle-epochs-0", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, epochs=0, steps_per_epoch=3), ValueError),
    ("onecycle-pct-int", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, total_steps=10, pct_start=1), ValueError),
    ("onecycle-pct-above-1", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, total_steps=10, pct_start=1.5),
     ValueError),
    ("onecycle-anneal", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, total_steps=10, anneal_strategy="exp"),
     ValueError),
    ("onecycle-max_lr-per-group", lambda m, new: m.OneCycleLR(new(), max_lr=[1.0, 2.0], total_steps=10), ValueError),
    ("onecycle-momenta-per-group", lambda m, new: m.OneCycleLR(new(), max_lr=1.0, total_steps=10,
                                                               base_momentum=[0.8]), ValueError),
    ("plateau-factor-1", lambda m, new: m.ReduceLROnPlateau(new(), factor=1.0), ValueError),
    ("plateau-mode", lambda m, new: m.ReduceLROnPlateau(new(), mode="mean"), ValueError),
    ("plateau-threshold-mode", lambda m, new: m.ReduceLROnPlateau(new(), threshold_mode="ratio"), ValueError),
    ("plateau-min_lr-per-group", lambda m, new: m.ReduceLROnPlateau(new(), min_lr=[0.1, 0.2]), ValueError),
    ("plateau-not-an-optimizer", lambda m, new: m.ReduceLROnPlateau("sgd"), TypeError),
    ("sequential-empty", lambda m, new: m.SequentialLR(new(), [], milestones=[]), ValueError),
    ("sequential-milestones", lambda m, new: _sequential(m, new(), milestones=[3, 6]), ValueError),
    ("sequential-other-optimizer", lambda m, new: m.SequentialLR(new(), [m.StepLR(new(), 3)], milestones=[]),
     ValueError),
    ("sequential-plateau", lambda m, new: _sequential(m, new(), milestones=[3], inner="ReduceLROnPlateau"),
     ValueError),
]


def _sequential(module, optimizer, milestones, inner="StepLR"):
    made = module.ReduceLROnPlateau(optimizer) if inner == "ReduceLROnPlateau" else module.StepLR(optimizer, 2)
    return module.SequentialLR(optimizer, [module.ExponentialLR(optimizer, 0.9), made], milestones=milestones)


@pytest.mark.parametrize("case_id,make,error", ERRORS, ids=[case[0] for case in ERRORS])
def test_bad_arguments_raise(case_id, make, error):
    with pytest.raises(error):
        make(lr_scheduler, _our_optimizer)


@pytest.mark.parametrize("case_id,make,error", ERRORS, ids=[case[0] for case in ERRORS])
def test_bad_arguments_raise_the_same_in_torch(case_id, make, error):
    torch = pytest.importorskip("torch")
    with pytest.raises(error):
        make(torch.optim.lr_scheduler, lambda: _torch_optimizer(torch))


class _Plain(optim.Optimizer):
    """An optimizer with neither momentum nor betas (as torch's Adagrad)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))

    def _update(self, param, grad, state, group, tensor):
        param -= group["lr"] * grad


def test_onecycle_cycles_momentum_only_where_the_optimizer_has_some():
    optimizer = _Plain([minigrad.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match="momentum"):
        lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)
    scheduler = lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10, cycle_momentum=False)
    scheduler.step()
    assert set(optimizer.param_groups[0]) == {"params", "lr", "initial_lr", "max_lr", "min_lr"}


def test_onecycle_refuses_to_cycle_a_missing_momentum_in_torch_too():
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.Adagrad([torch.zeros(2, requires_grad=True)])
    assert "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults
    with pytest.raises(ValueError, match="momentum"):
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=10)


def test_the_torch_names_are_there():
    for name in ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR",
                 "SequentialLR", "ReduceLROnPlateau", "LambdaLR", "LRScheduler"):
        scheduler_class = getattr(minigrad.optim.lr_scheduler, name)
        assert issubclass(scheduler_class, lr_scheduler.LRScheduler)
