"""Hooks: your functions, run by the engine on a gradient as it passes, and the handles that remove them.

    handle = tensor.register_hook(fn)   # fn(grad) -> None, or a gradient to use instead
    handle.remove()                     # (or: `with handle:` removes it on leaving the block)

A non-leaf tensor's hooks are kept on its node (`tensor.grad_fn`) and run on the gradient of
the node's output, summed over all its consumers, before the node's backward uses it. A leaf's
hooks run on the gradient summed over the pass, before it is added into `.grad`. Hooks run in the
order they were registered, each given the previous one's result; `retain_grad()` keeps the final
value (in PyTorch too it always runs last). `minigrad.grad()` returns the hooked gradients as well.

When no hook is registered they cost one None check per node (a node's `_grad_hooks`) and one
check of an empty dict per backward (for leaves).
"""
import itertools
import weakref
from collections import OrderedDict

from ..tensor import Tensor


class RemovableHandle:
    """What every register_*hook returns: `remove()` takes the hook out of the table(s) it is in."""

    _next_id = itertools.count()

    def __init__(self, hooks_dict, *, extra_dict=None):
        self.hooks_dict_ref = weakref.ref(hooks_dict)  # a handle does not keep a module's tables alive
        self.id = next(RemovableHandle._next_id)
        extra = () if extra_dict is None else extra_dict if isinstance(extra_dict, (list, tuple)) else (extra_dict,)
        self.extra_dict_refs = tuple(weakref.ref(table) for table in extra)

    def remove(self):
        for ref in (self.hooks_dict_ref,) + self.extra_dict_refs:
            table = ref()
            if table is not None:
                table.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class GradHooks:
    """The hooks on one tensor's gradient (in registration order) and, for a non-leaf, the tensor
    that asked for retain_grad()."""

    __slots__ = ("hooks", "retained")

    def __init__(self):
        self.hooks = OrderedDict()  # handle id -> fn(grad)
        self.retained = None  # weak reference to the output tensor that keeps its .grad

    def __call__(self, grad):
        for hook in tuple(self.hooks.values()):  # a copy: a hook may remove itself
            result = hook(grad)
            if result is not None:
                if not isinstance(result, Tensor):
                    raise TypeError(f"a tensor hook returned a {type(result).__name__}; "
                                    "it must return None or a Tensor")
                if result.shape != grad.shape:
                    raise RuntimeError(f"a tensor hook changed the shape of the gradient from {tuple(grad.shape)} "
                                       f"to {tuple(result.shape)}")
                grad = result
        if self.retained is not None:
            output = self.retained()
            if output is not None:
                output.grad = grad if output.grad is None else output.grad + grad
        return grad


# Leaves have no node to hold their hooks: they are kept here, by id (Tensors compare elementwise,
# so they cannot be dict keys by value), and forgotten when the leaf is freed.
leaf_hooks = {}  # id(leaf) -> (weak reference to the leaf, GradHooks)


def grad_hooks(tensor):
    """The GradHooks of a tensor (made on first use): on its node, or in `leaf_hooks` for a leaf."""
    node = tensor.grad_fn
    if node is not None:
        if node._grad_hooks is None:
            node._grad_hooks = GradHooks()
        return node._grad_hooks
    entry = leaf_hooks.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        entry = leaf_hooks[id(tensor)] = (weakref.ref(tensor, _forget_leaf), GradHooks())
    return entry[1]


def _forget_leaf(ref):
    for key, (entry_ref, _) in list(leaf_hooks.items()):
        if entry_ref is ref:
            del leaf_hooks[key]


def leaf_grad_hooks(leaf):
    """The GradHooks registered on a leaf, or None."""
    entry = leaf_hooks.get(id(leaf))
    return entry[1] if entry is not None and entry[0]() is leaf else None


def register_tensor_hook(tensor, hook):
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    hooks = grad_hooks(tensor).hooks
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle
