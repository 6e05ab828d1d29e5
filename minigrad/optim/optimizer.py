"""The Optimizer base class: parameter groups, per-parameter state, and saving/resuming both.

An optimizer holds `param_groups` (lists of parameters that share hyper-parameters,
e.g. `optimizer.param_groups[0]["lr"]`, which schedulers rewrite) and `state`
(per parameter: momentum buffers, moment estimates, step counts). Subclasses only
write `_update`, which changes one parameter's raw array in place (or returns a row
kernel that does, so that all parameters' kernels share the threads in one pass); the
base class walks the groups, skips parameters without a gradient and runs everything
under no_grad so that no update is ever recorded in a graph.
"""
from ..autograd import no_grad
from ..tensor import Tensor


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.param_groups = []
        self.state = {}  # parameter -> dict of its optimizer state (Tensors on its device, numbers)
        params = list(params) if not isinstance(params, Tensor) else [params]
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add parameters with their own hyper-parameters (missing ones come from the defaults)."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__} can only optimize leaf tensors (a Parameter, "
                                 "or a tensor made with requires_grad=True)")
            if id(p) in seen:
                raise ValueError("a parameter appears in more than one parameter group")
            seen.add(id(p))
        for name, value in self.defaults.items():
            group.setdefault(name, value)
        self.param_groups.append(group)

    # -- one training step -------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Forget the gradients (set_to_none frees them; False fills them with zeros instead)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.data[...] = 0

    def step(self, closure=None):
        """Update every parameter that has a gradient; with a closure, re-evaluate the loss first."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad

            with enable_grad():
                loss = closure()
        jobs = {}  # backend -> row kernels returned by _update, run together below
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad._backend is not p._backend:
                        raise RuntimeError(f"gradient on {p.grad.device} for a parameter on {p.device}")
                    state = self.state.setdefault(p, {})
                    job = self._update(p.data, p.grad.data, state, group, p)
                    if job is not None:
                        jobs.setdefault(p._backend, []).append(job)
                    p._bump_version()
            for backend, backend_jobs in jobs.items():
                backend.parallel_for_each(backend_jobs, passes=self._passes_per_element)
        return loss

    _passes_per_element = 1  # how many elementwise passes a returned row kernel makes (sizes thread blocks)

    def _update(self, param, grad, state, group, tensor):
        """Change the raw array `param` in place from `grad` (raw), `state` and the group's settings.

        Either do it now and return None, or return a job (kernel, rows, row_size) that does it row
        block by row block, kernel(start, stop): step() runs every parameter's job in one thread-pool
        pass (Backend.parallel_for_each), like torch's multi-tensor "foreach" optimizers."""
        raise NotImplementedError

    @staticmethod
    def _state_buffer(tensor, array):
        """Wrap a raw array made with `tensor.xp` as optimizer state living on the parameter's device."""
        return Tensor._make(array, tensor._backend)

    # -- saving and resuming -------------------------------------------------------------------
    def state_dict(self):
        """{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}, as PyTorch lays it out.

        Parameters are named by their position over all groups, so the dict can be loaded
        into a fresh optimizer built over a fresh model with the same structure.
        """
        index_of = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(saved)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index_of[id(p)]] = dict(self.state[p])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and state; tensors are copied onto each parameter's device.

        Everything is checked before anything changes, so that a mismatched or tampered state
        (another model's, a hand-edited file) is refused here, with a ValueError naming the
        parameter, instead of failing or silently misbehaving at the next step(): the groups
        must match this optimizer's (as many, with as many parameters, each index once), each
        hyper-parameter must be the kind of value this optimizer's is, and each parameter's
        state must hold exactly what this optimizer's first step would store for it, tensors
        of the parameter's shape and step counts that are ints >= 0.
        """
        groups, saved_state = self._checked(state_dict)
        self.state = {}
        for saved, own in zip(groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    own[key] = tuple(value) if isinstance(value, list) and key == "betas" else value
            for saved_index, p in zip(saved["params"], own["params"]):
                if saved_index in saved_state:
                    self.state[p] = {name: self._moved(value, p) for name, value in saved_state[saved_index].items()}

    _SCHEDULE_KEYS = ("initial_lr",)  # what a learning-rate schedule adds to a group: a saved group may have it

    def _checked(self, state_dict):
        """(param_groups, {index: state}) of a state dict that fits this optimizer; ValueError otherwise."""
        if not isinstance(state_dict, dict):
            raise ValueError(f"an optimizer state should be a dict, not {type(state_dict).__name__}")
        for key in state_dict:
            if key not in ("state", "param_groups"):
                raise ValueError(f"optimizer state has unknown key {key!r:.60}")
        for key, kind, called in (("param_groups", (list, tuple), "list"), ("state", dict, "dict")):
            if key not in state_dict:
                raise ValueError(f"optimizer state has no {key!r}")
            if not isinstance(state_dict[key], kind):
                raise ValueError(f"optimizer state: {key!r} is a {type(state_dict[key]).__name__}, not a {called}")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        owners = {}  # saved index -> (parameter, the group's settings once loaded)
        for number, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), (list, tuple)):
                raise ValueError(f"parameter group {number} should be a dict with a list of 'params', got "
                                 f"{saved!r:.60}")
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"parameter group {number} has {len(saved['params'])} parameters in the "
                                 f"loaded state but {len(own['params'])} here")
            settings = dict(own)
            for key, value in saved.items():
                if key == "params":
                    continue
                if key not in own and not (key in self._SCHEDULE_KEYS and value_fits(0.0, value)):
                    raise ValueError(f"parameter group {number}: unknown hyper-parameter {key!r:.60}")
                if key in own and not value_fits(own[key], value):
                    raise ValueError(f"parameter group {number}: {key} {value!r:.60} does not fit this "
                                     f"optimizer's {own[key]!r}")
                settings[key] = tuple(value) if isinstance(value, list) else value
            for index, p in zip(saved["params"], own["params"]):
                if type(index) is not int:
                    raise ValueError(f"parameter group {number}: parameter index {index!r:.60} is not an int")
                if index in owners:
                    raise ValueError(f"parameter group {number} lists parameter {index} twice")
                owners[index] = p, settings
        checked = {}
        first_steps = {}
        for key, entry in state_dict["state"].items():
            index = int(key) if isinstance(key, str) and key.isdigit() else key
            if type(index) is not int:
                raise ValueError(f"optimizer state has parameter index {key!r:.60}, not an int")
            if index not in owners:
                raise ValueError(f"optimizer state has state for parameter {index}, but its groups hold only "
                                 f"{len(owners)} parameters")
            if not isinstance(entry, dict):
                raise ValueError(f"parameter {index}: its state is a {type(entry).__name__}, not a dict")
            p, settings = owners[index]
            where = (id(settings), p.dtype, p.ndim, p._backend)
            if where not in first_steps:
                first_steps[where] = self._first_step_state(p, settings)
            self._check_parameter_state(index, entry, p, first_steps[where])
            checked[index] = entry
        return groups, checked

    def _first_step_state(self, p, group):
        """What this optimizer's first step stores for a parameter like p with `group`'s settings: that step
        taken on a one-element stand-in (same dtype, device and number of dimensions). None if it cannot be
        (an optimizer whose _update needs more), and then only the generic checks apply."""
        xp = p.xp
        stand_in = Tensor._make(xp.zeros((1,) * p.ndim, dtype=p.dtype), p._backend)
        stand_in.grad = Tensor._make(xp.zeros((1,) * p.ndim, dtype=p.dtype), p._backend)
        state = {}
        try:
            with no_grad():
                self._update(stand_in.data, stand_in.grad.data, state, group, stand_in)  # a returned job is not run
        except Exception:
            return None
        return state

    @staticmethod
    def _check_parameter_state(index, entry, p, expected):
        """Parameter `index`'s saved state against `expected` (a first step's state, or None if unknown)."""
        if expected is not None:
            for name in entry:
                if name not in expected:
                    raise ValueError(f"parameter {index}: unknown state {name!r:.60}")
            for name in expected:
                if name not in entry:
                    raise ValueError(f"parameter {index}: no {name!r} in its state")
        for name, value in entry.items():
            like = expected[name] if expected is not None else value
            if isinstance(like, Tensor):
                if not isinstance(value, Tensor):
                    raise ValueError(f"parameter {index}: {name} is a {type(value).__name__}, not a tensor")
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"parameter {index}: {name} has shape {tuple(value.shape)}, the parameter "
                                     f"{tuple(p.shape)}")
                if (value.dtype.kind == "f") != (like.dtype.kind == "f") or value.dtype.kind not in "biuf":
                    raise ValueError(f"parameter {index}: {name} has dtype {value.dtype}, this optimizer keeps "
                                     f"{like.dtype}")
            elif isinstance(value, Tensor):
                raise ValueError(f"parameter {index}: {name} is a Tensor, not a number")
            elif name == "step" or type(like) is int:
                if type(value) is not int or not 0 <= value < 2**63:
                    raise ValueError(f"parameter {index}: {name} {value!r:.60} is not a step count (an int >= 0)")
            elif not value_fits(like, value):
                raise ValueError(f"parameter {index}: {name} {value!r:.60} does not fit this optimizer's {like!r}")

    @staticmethod
    def _moved(value, p):
        """A private copy of a state value on p's device (floating state in p's dtype, as PyTorch casts)."""
        if not isinstance(value, Tensor):
            return value
        dtype = p.dtype if value.dtype.kind == "f" else value.dtype
        with no_grad():
            moved = value.detach().to(p.device, dtype)
        array = moved.data.copy() if moved.data is value.data else moved.data
        return Tensor._make(array, p._backend)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"


def value_fits(own, saved):
    """Whether a loaded value `saved` can stand in for the setting `own`: a bool for a bool, a number for a
    number, a string for a string, a list or tuple of as many fitting items for a sequence, any plain value
    for None. How loaders check hyper-parameters and schedule states."""
    if isinstance(own, bool):
        return isinstance(saved, bool)
    if isinstance(own, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool)
    if isinstance(own, str):
        return isinstance(saved, str)
    if isinstance(own, (list, tuple)):
        return isinstance(saved, (list, tuple)) and len(saved) == len(own) and all(map(value_fits, own, saved))
    if own is None:
        return saved is None or isinstance(saved, (bool, int, float, str))
    return False
