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
        """Restore hyper-parameters and state; tensors are copied onto each parameter's device."""
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"loaded state has {len(groups)} parameter groups, this optimizer has "
                             f"{len(self.param_groups)}")
        for index, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(f"parameter group {index} has {len(saved['params'])} parameters in the "
                                 f"loaded state but {len(own['params'])} here")
        saved_state = {int(key): value for key, value in state_dict["state"].items()}
        self.state = {}
        for saved, own in zip(groups, self.param_groups):
            for key, value in saved.items():
                if key != "params":
                    own[key] = tuple(value) if isinstance(value, list) and key == "betas" else value
            for saved_index, p in zip(saved["params"], own["params"]):
                if saved_index in saved_state:
                    self.state[p] = {name: self._moved(value, p) for name, value in saved_state[saved_index].items()}

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
