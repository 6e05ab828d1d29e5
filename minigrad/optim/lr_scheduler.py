"""Learning-rate schedules: each step() writes a new lr into every parameter group.

The names, arguments and step-by-step values are those of torch.optim.lr_scheduler.
`last_epoch` counts the scheduler.step() calls so far (0 right after construction),
i.e. the index of the optimizer update about to run. Call `optimizer.step()` then
`scheduler.step()` once per training step (or epoch), as in PyTorch.

Two kinds of schedule, as in torch:

* closed form (LambdaLR, OneCycleLR, NoamLR, WarmupCosineLR): the lr of step t is a
  function of t and the group's initial settings alone (`lr_at` / `_closed_form_lr`);
* chainable (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR): each
  step() turns the group's *current* lr into the next one (`get_lr`). Alone, they give
  their textbook closed form; several stepped on one optimizer compose (each applies
  its change to the lr the previous one left), and an lr changed by hand carries on.

step(epoch) (deprecated in torch, accepted with a warning) jumps to `epoch` and uses
the closed form. ReduceLROnPlateau is driven by a metric instead: step(metric).
"""
import math
import warnings
from bisect import bisect_right
from collections import Counter

from .optimizer import Optimizer


def _per_group(name, optimizer, value):
    """One value per parameter group: a scalar is repeated, a list or tuple must have one per group."""
    count = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} must have one value per parameter group: {count} groups, "
                             f"{len(value)} values")
        return list(value)
    return [value] * count


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")


class LRScheduler:
    """The base of every schedule. A subclass gives either `lr_at(step, base_lr)` (a closed form,
    for one group from its initial lr) or overrides `_closed_form_lr` / `get_lr` (all groups)."""

    def __init__(self, optimizer, last_epoch=-1):
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param group {index} has no 'initial_lr' to resume a schedule from "
                                   "(load the optimizer's state_dict first)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """The step the constructor takes (to last_epoch + 1). During it `_is_initial` is true, and a
        chainable schedule then leaves the lr as it is, except where its own first step changes it."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def lr_at(self, step, base_lr):
        """The learning rate of the update with index `step` (0 for the first update)."""
        raise NotImplementedError

    def _closed_form_lr(self):
        """The lrs of all groups at `last_epoch`, from their initial lrs alone."""
        return [self.lr_at(self.last_epoch, base_lr) for base_lr in self.base_lrs]

    def get_lr(self):
        """The lrs of the step `last_epoch` has just reached (chainable schedules start from the current ones)."""
        return self._closed_form_lr()

    def _current_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def _scaled_lrs(self, factor):
        return [group["lr"] * factor for group in self.optimizer.param_groups]

    def step(self, epoch=None):
        self._step_count += 1
        if epoch is not None:
            warnings.warn("scheduler.step(epoch) is deprecated (as in torch): call step() once per step",
                          UserWarning, stacklevel=2)
            self._jump_to(epoch)
            return
        self.last_epoch += 1
        self._write(self.get_lr())

    def _jump_to(self, epoch):
        """Set last_epoch to `epoch` and the lrs to the closed form there (SequentialLR's restart)."""
        self.last_epoch = epoch
        self._write(self._closed_form_lr())

    def _write(self, values):
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def get_last_lr(self):
        """The learning rates of the groups, as last set by step()."""
        return list(self._last_lr)

    def state_dict(self):
        """Everything but the optimizer (and functions, which a checkpoint cannot hold)."""
        return {key: value for key, value in self.__dict__.items()
                if key != "optimizer" and not callable(value) and key != "lr_lambdas"}

    def load_state_dict(self, state_dict):
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """lr = initial_lr * lr_lambda(step), one function for all groups or one per group."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        count = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != count:
                raise ValueError(f"LambdaLR: {count} param groups but {len(lr_lambda)} lr_lambdas")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * count
        super().__init__(optimizer, last_epoch)

    def _closed_form_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]


# -- the chainable schedules of torch -----------------------------------------------------------
class StepLR(LRScheduler):
    """Multiply the lr by gamma every step_size steps: initial_lr * gamma ** (step // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        return base_lr * self.gamma ** (step // self.step_size)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return self._scaled_lrs(self.gamma)


class MultiStepLR(LRScheduler):
    """Multiply the lr by gamma at each milestone (a milestone listed k times multiplies by gamma ** k)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones = Counter(milestones)  # a dict {step: count}, as torch keeps it
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        passed = sum(count for milestone, count in self.milestones.items() if milestone <= step)
        return base_lr * self.gamma ** passed

    def get_lr(self):
        count = self.milestones.get(self.last_epoch, 0)  # .get: a loaded checkpoint holds a plain dict
        return self._scaled_lrs(self.gamma ** count) if count else self._current_lrs()


class ExponentialLR(LRScheduler):
    """Multiply the lr by gamma every step: initial_lr * gamma ** step."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        return base_lr * self.gamma ** step

    def get_lr(self):
        return self._current_lrs() if self._is_initial else self._scaled_lrs(self.gamma)


class LinearLR(LRScheduler):
    """Scale the lr by a factor going linearly from start_factor (step 0) to end_factor (step total_iters)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if not 0 < start_factor <= 1:
            raise ValueError(f"LinearLR: start_factor must be in (0, 1], got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"LinearLR: end_factor must be in [0, 1], got {end_factor}")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        change = self.end_factor - self.start_factor
        return base_lr * (self.start_factor + change * min(self.total_iters, step) / self.total_iters)

    def get_lr(self):
        step = self.last_epoch
        if step == 0:
            return self._scaled_lrs(self.start_factor)
        if self._is_initial or step > self.total_iters:
            return self._current_lrs()
        # factor(step) / factor(step - 1), with factor(s) = start + change * s / total_iters
        change = self.end_factor - self.start_factor
        return self._scaled_lrs(1.0 + change / (self.total_iters * self.start_factor + (step - 1) * change))


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the initial lr down to eta_min over T_max steps (then back up, and so on):

        lr(t) = eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    As in torch, each step rescales the current lr's distance to eta_min by the ratio
    of consecutive cosine terms (or, right after a minimum, where that ratio is 0/0,
    adds the first rise of the closed form), so it chains with other schedules.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2

    def get_lr(self):
        step, T_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if (step - 1 - T_max) % (2 * T_max) == 0:  # the previous step sat at a minimum
            rise = (1 - math.cos(math.pi / T_max)) / 2
            return [group["lr"] + (base_lr - eta_min) * rise
                    for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)]
        ratio = (1 + math.cos(math.pi * step / T_max)) / (1 + math.cos(math.pi * (step - 1) / T_max))
        return [ratio * (group["lr"] - eta_min) + eta_min for group in self.optimizer.param_groups]


# -- one cycle ----------------------------------------------------------------------------------
def _anneal_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start, end, pct):
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, "Super-Convergence", 2017), as torch and fastai run it.

    The lr rises from max_lr / div_factor to max_lr over the first pct_start of total_steps,
    then falls to initial_lr / final_div_factor by the last step (three_phase: it falls back
    to the initial lr symmetrically, then a third phase goes down to the minimum). Each phase
    interpolates by half a cosine (anneal_strategy='cos') or a straight line ('linear').
    With cycle_momentum the momentum (SGD's momentum, or Adam's first beta) moves the other
    way, between max_momentum and base_momentum. Not chainable: it sets the lr outright.
    Each group remembers its initial_lr, max_lr and min_lr (and momenta) in the optimizer,
    so the optimizer's state_dict carries them to a resumed run.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        _check_optimizer(optimizer)
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"OneCycleLR: total_steps must be a positive int, got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            for name, value in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch)):
                if not isinstance(value, int) or value <= 0:
                    raise ValueError(f"OneCycleLR: {name} must be a positive int, got {value}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR: give total_steps, or both epochs and steps_per_epoch")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"OneCycleLR: pct_start must be a float in [0, 1], got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self._anneal_func_type = anneal_strategy
        # Each phase: the step it ends at, and the group keys it goes from and to (lr, momentum).
        rise = float(pct_start * self.total_steps) - 1
        if three_phase:
            self._schedule_phases = [
                dict(end_step=rise, lr=("initial_lr", "max_lr"), momentum=("max_momentum", "base_momentum")),
                dict(end_step=float(2 * pct_start * self.total_steps) - 2, lr=("max_lr", "initial_lr"),
                     momentum=("base_momentum", "max_momentum")),
                dict(end_step=self.total_steps - 1, lr=("initial_lr", "min_lr"),
                     momentum=("max_momentum", "max_momentum")),
            ]
        else:
            self._schedule_phases = [
                dict(end_step=rise, lr=("initial_lr", "max_lr"), momentum=("max_momentum", "base_momentum")),
                dict(end_step=self.total_steps - 1, lr=("max_lr", "min_lr"),
                     momentum=("base_momentum", "max_momentum")),
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if last_epoch == -1:
            for group, peak in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("OneCycleLR: cycle_momentum needs an optimizer with momentum or betas")
            self.use_beta1 = "betas" in optimizer.defaults
            highs = _per_group("max_momentum", optimizer, max_momentum)
            lows = _per_group("base_momentum", optimizer, base_momentum)
            if last_epoch == -1:
                for group, high, low in zip(optimizer.param_groups, highs, lows):
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _closed_form_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: tried to step {step} times; total_steps is {self.total_steps}")
        anneal = _anneal_cos if self._anneal_func_type == "cos" else _anneal_linear
        start = 0.0
        for index, phase in enumerate(self._schedule_phases):  # the phase holding `step` (the last one past it)
            if step <= phase["end_step"] or index == len(self._schedule_phases) - 1:
                break
            start = phase["end_step"]
        pct = (step - start) / (phase["end_step"] - start)
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(anneal(group[phase["lr"][0]], group[phase["lr"][1]], pct))
            if self.cycle_momentum:
                self._set_momentum(group, anneal(group[phase["momentum"][0]], group[phase["momentum"][1]], pct))
        return lrs


# -- combining schedules and following a metric -------------------------------------------------
class SequentialLR(LRScheduler):
    """Run schedulers one after the other: schedulers[i] takes over at milestones[i - 1], restarting
    from its own step 0 (its closed form there), as torch's SequentialLR does."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers:
            raise ValueError("SequentialLR expects at least one scheduler")
        for index, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise TypeError(f"SequentialLR: scheduler {index} has no optimizer")
            if isinstance(scheduler, ReduceLROnPlateau):
                raise ValueError(f"SequentialLR: scheduler {index} is a ReduceLROnPlateau, whose step() needs "
                                 "a metric")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: scheduler {index} ({type(scheduler).__name__}) belongs to "
                                 "another optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                             f"got {len(milestones)}")
        self.optimizer = optimizer
        self._schedulers, self._milestones = schedulers, milestones
        self.last_epoch = last_epoch + 1
        # Undo what constructing the schedulers did, then let only the first one take its first step.
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self._undo_initial_steps(self)
        first = schedulers[bisect_right(milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    @staticmethod
    def _undo_initial_steps(scheduler):
        if isinstance(scheduler, SequentialLR):
            for inner in scheduler._schedulers:
                SequentialLR._undo_initial_steps(inner)
        else:
            scheduler.last_epoch -= 1

    def step(self):
        self.last_epoch += 1
        index = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._jump_to(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()

    def state_dict(self):
        """Its own counters and every inner scheduler's state_dict."""
        state = {key: value for key, value in self.__dict__.items() if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [scheduler.state_dict() for scheduler in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        inner = state.pop("_schedulers")
        self.__dict__.update(state)
        for scheduler, saved in zip(self._schedulers, inner):
            scheduler.load_state_dict(saved)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by `factor` once the metric given to step(metric) has not improved for more
    than `patience` steps.

    "Improved" means below best * (1 - threshold) (mode='min', threshold_mode='rel'), below
    best - threshold ('abs'), or above best * (1 + threshold) / best + threshold (mode='max').
    After a reduction, `cooldown` steps pass before bad steps count again. An lr never goes
    below min_lr (one value, or one per group), and a reduction smaller than eps is skipped.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got {factor}")
        if mode not in ("min", "max"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        self.factor = factor
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        self.patience, self.cooldown, self.eps = patience, cooldown, eps
        self.mode, self.threshold, self.threshold_mode = mode, threshold, threshold_mode
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self._reset()

    def _reset(self):
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    @property
    def in_cooldown(self):
        return self.cooldown_counter > 0

    def _is_better(self, value, best):
        if self.mode == "min":
            return value < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return value > (best * (self.threshold + 1.0) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics, epoch=None):
        current = float(metrics)  # a number or a 0-d tensor
        if epoch is not None:
            warnings.warn("ReduceLROnPlateau.step(metrics, epoch) is deprecated (as in torch)", UserWarning,
                          stacklevel=2)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad steps in the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self):
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):  # a group was added since construction
            if self.default_min_lr is None:
                raise RuntimeError(f"ReduceLROnPlateau: the optimizer has {len(groups)} param groups but "
                                   f"min_lr has {len(self.min_lrs)} values; set min_lrs to match")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, min_lr in zip(groups, self.min_lrs):
            old_lr = float(group["lr"])
            new_lr = max(old_lr * self.factor, min_lr)
            if old_lr - new_lr > self.eps:
                group["lr"] = new_lr


# -- schedules of their own ---------------------------------------------------------------------
class NoamLR(LRScheduler):
    """The warmup-then-inverse-square-root schedule of "Attention Is All You Need" (section 5.3).

        lr = factor * d_model^-0.5 * min(n^-0.5, n * warmup_steps^-1.5),  n = step + 1

    It rises linearly for warmup_steps updates, peaks at n = warmup_steps and then decays
    as 1/sqrt(n). n counts updates from 1, as the paper's step_num does, so no update
    runs with lr 0. The optimizer's own lr is ignored (the paper's lr is absolute).
    """

    def __init__(self, optimizer, d_model, warmup_steps, factor=1.0, last_epoch=-1):
        if warmup_steps <= 0:
            raise ValueError(f"NoamLR: warmup_steps must be positive, got {warmup_steps}")
        self.d_model, self.warmup_steps, self.factor = d_model, warmup_steps, factor
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        n = step + 1
        return self.factor * self.d_model ** -0.5 * min(n ** -0.5, n * self.warmup_steps ** -1.5)


class WarmupCosineLR(LRScheduler):
    """Linear warmup to the optimizer's lr, then half a cosine down to min_lr at total_steps.

    Update i (from 0) uses lr * (i + 1) / warmup_steps while i < warmup_steps, then
    min_lr + (lr - min_lr) * (1 + cos(pi * t)) / 2 with t = (i - warmup_steps) /
    (total_steps - warmup_steps), and min_lr once i >= total_steps.
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0, last_epoch=-1):
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"WarmupCosineLR: need 0 <= warmup_steps <= total_steps, got {warmup_steps}, "
                             f"{total_steps}")
        self.warmup_steps, self.total_steps, self.min_lr = warmup_steps, total_steps, min_lr
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step, base_lr):
        if step < self.warmup_steps:
            return base_lr * (step + 1) / self.warmup_steps
        if step >= self.total_steps:
            return self.min_lr
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
