"""Module and Parameter: how layers own their weights, sub-layers and buffers.

Assigning a Parameter, a Module or (via register_buffer) a tensor to an attribute
registers it, so that parameters(), state_dict(), to(device) and train()/eval()
can walk the whole tree of a model without being told what is in it.
"""
import types
import warnings
from collections import OrderedDict, namedtuple

import minigrad
from minigrad import Tensor
from minigrad.autograd.hooks import BackwardHook, RemovableHandle

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A tensor that a Module trains: a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        source = data.detach() if isinstance(data, Tensor) else data
        super().__init__(source, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class _Registry(OrderedDict):
    """One of a module's tables (parameters, sub-modules, buffers), mirrored into the module's own
    __dict__ so that reading `module.weight` is a plain attribute lookup.

    PyTorch keeps them out of __dict__ and finds them in a __getattr__ fallback: Python code on
    every access, about as long as a small op, and one decoding step makes some 80 of them. Every
    write to the table (assignment, register_*, or `module._parameters[name] = p` as
    functional-call code does) updates the mirror, so the two never disagree.
    """

    def __init__(self, attributes=None, items=()):
        super().__init__()
        self.attributes = attributes  # the owning module's __dict__ (None while unpickling)
        for name, value in items:
            self[name] = value

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        if self.attributes is not None:
            self.attributes[name] = value

    def __delitem__(self, name):
        super().__delitem__(name)
        if self.attributes is not None:
            self.attributes.pop(name, None)

    def pop(self, name, *default):
        if name in self:
            value = self[name]
            del self[name]
            return value
        return super().pop(name, *default)

    def popitem(self, last=True):
        name, value = super().popitem(last)
        if self.attributes is not None:
            self.attributes.pop(name, None)
        return name, value

    def clear(self):
        while self:
            self.popitem()


_REGISTRIES = ("_parameters", "_modules", "_buffers")
_NO_HOOKS = types.MappingProxyType({})  # a module's hook tables until it registers one


class Module:
    """Base class of every layer and model."""

    # Hook tables, as torch names them (handle id -> hook); a module gets its own on first registration.
    _forward_pre_hooks = _forward_pre_hooks_with_kwargs = _NO_HOOKS
    _forward_hooks = _forward_hooks_with_kwargs = _NO_HOOKS
    _backward_hooks = _NO_HOOKS

    def __init__(self):
        for registry in _REGISTRIES:
            object.__setattr__(self, registry, _Registry(self.__dict__))
        object.__setattr__(self, "training", True)

    def __setstate__(self, state):
        """copy.deepcopy and pickle: the tables are rebuilt around this module's own __dict__ (the copied
        ones still point at the dict they were copied with)."""
        self.__dict__.update(state)
        for registry in _REGISTRIES:
            self.__dict__[registry] = _Registry(self.__dict__, state[registry].items())

    # -- registration by assignment --------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning attributes of a Module")
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            raise TypeError(f"cannot assign a {type(value).__name__} to parameter {name!r} of "
                            f"{type(self).__name__}: wrap it in nn.Parameter (or assign None)")
        if value is None and (name in self._parameters or name in self._modules or name in self._buffers):
            for registry in (self._parameters, self._modules, self._buffers):
                if name in registry:
                    registry[name] = None  # stays registered, like an absent bias in PyTorch
            return
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

    def __getattr__(self, name):  # only reached when `name` is neither an attribute nor registered
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
        """Register a Parameter, or None: a slot that stays registered but empty (an absent bias, say), as in torch."""
        if parameter is None:
            for registry in (self._modules, self._buffers):
                registry.pop(name, None)
            self._parameters[name] = None
            return
        setattr(self, name, parameter)

    def add_module(self, name, module):
        setattr(self, name, module)

    # -- walking the tree -----------------------------------------------------------
    def named_modules(self, prefix="", memo=None):
        """(dotted name, module) for self and every descendant; a module reused twice is listed once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        return (module for _, module in self.named_modules())

    def named_children(self):
        return ((name, child) for name, child in self._modules.items() if child is not None)

    def children(self):
        return (child for _, child in self.named_children())

    def get_submodule(self, target):
        """The module at a dotted path such as "encoder.layers.0.self_attn" ("" is self)."""
        module = self
        for part in target.split(".") if target else ():
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking for {target!r})")
            module = module._modules[part]
        return module

    def apply(self, fn):
        """Call fn on every submodule (children first) and on self; used for custom initialisation."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

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
        """Switch training behaviour (dropout) on or off here and in every submodule."""
        object.__setattr__(self, "training", bool(mode))
        for child in self.children():
            child.train(mode)
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
        """Move (and/or cast) every parameter and buffer in place; returns self.

        Accepts to(device), to(dtype) and to(device, dtype); a dtype applies to floating
        tensors only (integer buffers such as token ids keep theirs).
        """
        if device is not None and not isinstance(device, (str, minigrad.backend.Backend)):
            device, dtype = None, device

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
    def _named_state(self):
        """(dotted name, registry, slot, tensor) for every parameter and persistent buffer."""
        for module_name, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent", set())
            for registry in (module._parameters, module._buffers):
                for name, tensor in registry.items():
                    if tensor is not None and name not in skip:
                        yield (f"{module_name}.{name}" if module_name else name), tensor

    def state_dict(self, prefix="", keep_vars=False):
        """Name -> tensor for every parameter and persistent buffer (the model's own data, not copies).

        The tensors are detached views of the live values: save them (minigrad.save) or
        copy them before training on, as with PyTorch.
        """
        state = OrderedDict()
        for name, tensor in self._named_state():
            state[prefix + name] = tensor if keep_vars else tensor.detach()
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the parameters and buffers, in place (casting to their dtype and device).

        Every problem is reported at once: missing keys and unexpected keys (errors with
        strict=True; returned either way) and shape mismatches (always errors). Nothing
        is copied unless everything fits.
        """
        own = OrderedDict(self._named_state())
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        mismatched = []
        for key, tensor in own.items():
            if key in state_dict:
                shape = tuple(getattr(state_dict[key], "shape", ()))
                if shape != tuple(tensor.shape):
                    mismatched.append(f"{key}: checkpoint has shape {shape}, the model {tuple(tensor.shape)}")
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise RuntimeError(f"error(s) loading state_dict into {type(self).__name__}:\n  " + "\n  ".join(problems))
        with minigrad.no_grad():
            for key, tensor in own.items():
                if key in state_dict:
                    value = state_dict[key]
                    value = value.detach() if isinstance(value, Tensor) else minigrad.tensor(value)
                    tensor.data[...] = value.to(tensor.device).data  # copies and casts into the live array
                    tensor._bump_version()
        return IncompatibleKeys(missing, unexpected)

    # -- calling and printing -----------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if self._forward_pre_hooks or self._forward_hooks or self._backward_hooks:
            return self._call_with_hooks(args, kwargs)
        return self.forward(*args, **kwargs)

    # -- hooks (handles from minigrad/autograd/hooks.py) -------------------------------
    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args) runs before forward and may return new args (a non-tuple is wrapped in
        one); with_kwargs=True: hook(module, args, kwargs) may return (new_args, new_kwargs)."""
        return self._register_hook("_forward_pre_hooks", hook, prepend,
                                   "_forward_pre_hooks_with_kwargs" if with_kwargs else None)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """hook(module, args, output) runs after forward and may return a new output;
        with_kwargs=True: hook(module, args, kwargs, output)."""
        return self._register_hook("_forward_hooks", hook, prepend,
                                   "_forward_hooks_with_kwargs" if with_kwargs else None)

    def register_full_backward_hook(self, hook, prepend=False):
        """hook(module, grad_input, grad_output) runs once the gradients of the module's positional
        inputs are known (None for non-Tensors); it may return replacements for grad_input.
        grad_output holds the gradients of the outputs (None for an output no gradient reached)."""
        return self._register_hook("_backward_hooks", hook, prepend)

    def _register_hook(self, table_name, hook, prepend, kwargs_table_name=None):
        tables = [table_name] + ([kwargs_table_name] if kwargs_table_name else [])
        for name in tables:
            if name not in self.__dict__:
                self.__dict__[name] = OrderedDict()
        table = self.__dict__[table_name]
        handle = RemovableHandle(table, extra_dict=[self.__dict__[name] for name in tables[1:]])
        table[handle.id] = hook
        if prepend:
            table.move_to_end(handle.id, last=False)
        if kwargs_table_name:
            self.__dict__[kwargs_table_name][handle.id] = True
        return handle

    def _call_with_hooks(self, args, kwargs):
        """__call__ with hooks, in the order of torch's Module._call_impl."""
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), "
                                           f"but got {result}.")
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        backward_hook = None
        if self._backward_hooks:
            backward_hook = BackwardHook(self, list(self._backward_hooks.values()))
            args = backward_hook.setup_input_hook(args)
        output = self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_hooks.items()):
            if hook_id in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs, output)
            else:
                result = hook(self, args, output)
            if result is not None:
                output = result
        if backward_hook is not None:
            if not isinstance(output, (Tensor, tuple)):
                warnings.warn("For backward hooks to be called, module output should be a Tensor or a tuple of "
                              f"Tensors but received {type(output)}", stacklevel=2)
            output = backward_hook.setup_output_hook(output)
        return output

    def extra_repr(self):
        return ""

    def num_parameters(self, trainable_only=False):
        """How many numbers the model learns (a parameter shared by two layers counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def __repr__(self):
        """PyTorch's nested layout, each module followed by its parameter count."""
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        lines = []
        for name, child in self._modules.items():
            if child is not None:
                lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        if len(extra_lines) > 1:  # one entry a line (ParameterList, ParameterDict), before the children, as torch
            lines, extra = extra_lines + lines, ""
        head = f"{type(self).__name__}({extra}"
        text = head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"
        count = self.num_parameters()
        return text + (f"  # {count:,} parameters" if count else "")
