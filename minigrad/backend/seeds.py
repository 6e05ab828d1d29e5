"""The seeds `manual_seed` gave: a backend made later starts its generator from them.

Apart from the registry so that a backend can read its seed without importing the registry
(which imports the backends).
"""
_DEFAULT_SEED = 0
_seeds = {}             # device -> seed given by manual_seed; "*" for every device


def seed_for(device):
    return _seeds.get(device, _seeds.get("*", _DEFAULT_SEED))


def set_seed_for_all(seed):
    """Forget per-device seeds: every device, made now or later, starts from `seed`."""
    _seeds.clear()
    _seeds["*"] = int(seed)
