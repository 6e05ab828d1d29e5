"""Module and Parameter: how layers own their weights, sub-layers and buffers.

Assigning a Parameter, a Module or (via register_buffer) a tensor to an attribute
registers it, so that parameters(), state_dict(), to(device) and train()/eval()
can walk the whole tree of a model without being told what is in it.
"""
from collections import OrderedDict

import minigrad
from minigrad import Tensor


class Parameter(Tensor):
    """A tensor that a Module trains: a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        source = data.detach() if isinstance(data, Tensor) else data
        super().__init__(source, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer and model."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration by assignment --------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning attributes of a Module")
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()):
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for registry in ("_parameters", "_modules", "_buffers"):
            found = self.__dict__.get(registry, {})
            if name in found:
                return found[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules, self._buffers):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor, persistent=True):
        """A tensor that belongs to the module (moves with it, is saved) but is not trained."""
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)
        setattr(self, name, tensor)

    def register_parameter(self, name, parameter):
        setattr(self, name, parameter)

    def add_module(self, name, module):
        setattr(self, name, module)

    # -- walking the tree -----------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, child) for name, child in self._modules.items() if child is not None)

    def children(self):
        return (child for _, child in self.named_children())

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, parameter) pairs; a parameter shared by two layers is listed once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, parameter in module._parameters.items():
                if parameter is None or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                yield (f"{module_name}.{name}" if module_name else name), parameter

    def parameters(self, recurse=True):
        return (parameter for _, parameter in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buffer

    def buffers(self):
        return (buffer for _, buffer in self.named_buffers())

    # -- modes and gradients --------------------------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for parameter in self.parameters():
            if set_to_none:
                parameter.grad = None
            elif parameter.grad is not None:
                parameter.grad.data[...] = 0

    def requires_grad_(self, requires_grad=True):
        for parameter in self.parameters():
            parameter.requires_grad_(requires_grad)
        return self

    # -- devices and dtypes ----------------------------------------------------------
    def _apply(self, convert):
        for module in self.modules():
            for name, parameter in module._parameters.items():
                if parameter is not None:
                    parameter.data = convert(parameter).data
                    if parameter.grad is not None:
                        parameter.grad = convert(parameter.grad)
                    parameter._backend = minigrad.backend.backend_of_array(parameter.data)
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = convert(buffer)
        return self

    def to(self, device=None, dtype=None):
        """Move (and/or cast) every parameter and buffer in place; returns self."""
        def convert(t):
            with minigrad.no_grad():
                if dtype is not None and t.dtype.kind != "f":
                    return t.to(device) if device is not None else t
                return t.detach().to(device, dtype)
        return self._apply(convert)

    def float(self):
        return self.to(dtype=minigrad.float32)

    def double(self):
        return self.to(dtype=minigrad.float64)

    # -- state -----------------------------------------------------------------------
    def state_dict(self):
        """Name -> tensor for every parameter and persistent buffer (shared ones under each name)."""
        state = OrderedDict()
        for module_name, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent", set())
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None and name not in skip:
                        state[f"{module_name}.{name}" if module_name else name] = tensor.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values in; with strict, any missing/unexpected key or shape mismatch is an error listing them all."""
        own = self.state_dict()
        targets = {}
        for module_name, module in self.named_modules():
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    targets[f"{module_name}.{name}" if module_name else name] = (registry, name, tensor)
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        mismatched = [f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(own[key].shape)}"
                      for key in own if key in state_dict and tuple(state_dict[key].shape) != tuple(own[key].shape)]
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise RuntimeError(f"error loading state_dict into {type(self).__name__}: " + " | ".join(problems))
        for key, value in state_dict.items():
            if key not in targets:
                continue
            _, _, tensor = targets[key]
            value = value if isinstance(value, Tensor) else minigrad.tensor(value)
            with minigrad.no_grad():
                tensor.data = value.to(tensor.device, tensor.dtype).data.copy()
                tensor._bump_version()
        return missing, unexpected

    # -- calling and printing -----------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self):
        return ""

    def num_parameters(self):
        return sum(p.numel() for p in self.parameters())

    def __repr__(self):
        lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {child_repr}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
