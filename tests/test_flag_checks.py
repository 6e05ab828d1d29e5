"""The numbers of the command line (transformer/flag_checks.py): each flag refuses what makes no
sense for it, in one line naming the flag and what it allows; flags not given are not checked."""
import math
import re

import pytest

from transformer.errors import UsageError
from transformer.flag_checks import FLAG_RULES, check_flags


@pytest.mark.parametrize("key, bad, good", [
    ("lr", [0.0, -1.0, math.nan, math.inf], [1e-9, 5.0]),
    ("clip", [-0.5, math.nan, math.inf], [0.0, 1.0]),
    ("dropout", [1.0, -0.1, math.nan], [0.0, 0.5]),
    ("steps", [0, -3], [1, 10]),
    ("save_every", [-1], [0, 5]),
    ("limit", [0, -1], [1]),
    ("examples", [-1], [0, 3]),
    ("time_budget", [0.0, math.nan], [0.5, math.inf]),
    ("epochs", [0.0, math.inf, math.nan], [0.5]),
])
def test_each_flag_allows_what_makes_sense(key, bad, good):
    flag = "--" + key.replace("_", "-")
    for value in good:
        check_flags({key: value})
    for value in bad:
        with pytest.raises(UsageError, match="^" + re.escape(f"{flag} must be {FLAG_RULES[key][0]}, got {value}") + "$"):
            check_flags({key: value})


def test_flags_not_given_and_other_keys_are_not_checked():
    check_flags({"lr": None, "steps": None, "command": "evaluate", "checkpoint": "x", "norm_first": False})
    with pytest.raises(UsageError, match="--beam must be at least 1, got 0"):
        check_flags({"beam": 0, "sentences": []})
