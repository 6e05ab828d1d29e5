"""The numbers of the command line, checked before anything runs: one line that names the flag and
what it allows, instead of a NaN run, a ZeroDivisionError an hour in, or a value silently replaced.

argparse already makes sure an int flag is a whole number and a float flag a number, but not that
it makes sense: `--lr nan`, `--lr 0` (once read as "use the default"), `--clip -1`, `--save-every -5`,
`--limit 0` (once read as "no limit") all ran. FLAG_RULES holds what each numeric flag of
train.py's commands allows; check_flags() applies it to any dict of flag values (None: not given).
"""
from __future__ import annotations

import math

from .errors import UsageError


def _finite(value) -> bool:
    return isinstance(value, int) or math.isfinite(value)


_AT_LEAST_1 = ("at least 1", lambda v: v >= 1)
_AT_LEAST_0 = ("0 or more", lambda v: v >= 0)
_FRACTION = ("in [0, 1)", lambda v: _finite(v) and 0.0 <= v < 1.0)

# key (the flag without "--", "-" as "_") -> (what is allowed, whether a value is allowed)
FLAG_RULES = {
    **{key: _AT_LEAST_1 for key in ("d_model", "heads", "d_ff", "layers", "encoder_layers", "decoder_layers",
                                    "batch_size", "warmup", "max_len", "steps", "log_every", "train_size",
                                    "min_freq", "beam", "decode_batch_size", "limit")},
    **{key: _AT_LEAST_0 for key in ("valid_size", "examples", "seed")},
    "save_every": ("0 or more (0: only at the end)", lambda v: v >= 0),
    "eval_every": ("0 or more (0: only at the end)", lambda v: v >= 0),
    "dropout": _FRACTION,
    "label_smoothing": _FRACTION,
    "lr": ("a finite number above 0 (leave it out for the paper's rate)", lambda v: _finite(v) and v > 0),
    "clip": ("a finite number, 0 or more (0: no clipping)", lambda v: _finite(v) and v >= 0),
    "epochs": ("a finite number above 0", lambda v: _finite(v) and v > 0),
    "time_budget": ("a number of seconds above 0", lambda v: v > 0),
    "vocab_size": ("at least 5 (the 4 special tokens and a character)", lambda v: v >= 5),
    "n_best": _AT_LEAST_1,
    "length_penalty": ("a finite number, 0 or more (0: rank by log-probability)", lambda v: _finite(v) and v >= 0),
}


def check_flags(values: dict):
    """Raise UsageError for the first value in `values` that its FLAG_RULES entry does not allow.
    Keys without a rule, and None (a flag not given), are not checked."""
    for key, (allowed, ok) in FLAG_RULES.items():
        value = values.get(key)
        if value is not None and not isinstance(value, bool) and not ok(value):
            raise UsageError(f"--{key.replace('_', '-')} must be {allowed}, got {value}")
