"""Learning-rate schedules: each step() writes a new lr into every parameter group.

`last_epoch` counts the scheduler.step() calls so far (0 right after construction),
i.e. the index of the optimizer update about to run. Call `optimizer.step()` then
`scheduler.step()` once per training step, as in PyTorch.
"""
import math


class LRScheduler:
    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for index, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param group {index} has no 'initial_lr' to resume a schedule from")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, step, base_lr):
        """The learning rate of the update with index `step` (0 for the first update)."""
        raise NotImplementedError

    def get_lr(self):
        return [self.lr_at(self.last_epoch, base_lr) for base_lr in self.base_lrs]

    def step(self):
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = list(values)

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

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]


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
