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

    handle = leaf.register_post_accumulate_grad_hook(fn)   # fn(leaf), once leaf.grad is whole

nn.Module's hooks (register_forward_pre_hook, register_forward_hook, register_full_backward_hook)
return the same handles; the backward ones run through `BackwardHook` below.
"""
import itertools
import warnings
import weakref
from collections import OrderedDict

from ..tensor import Tensor
from .function import Function


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


# -- post-accumulate-grad hooks: run once a leaf's .grad holds this backward's whole gradient --------
# DistributedDataParallel starts a bucket's all-reduce from these while the rest of backward runs.
# While any is registered, the engine adds a leaf's gradient into .grad as soon as the last node
# that feeds it has run (see engine._run_backward), instead of after the whole pass.
post_accumulate_hooks = {}  # id(leaf) -> (weak reference to the leaf, OrderedDict of fn(leaf))


def register_post_accumulate_grad_hook(tensor, hook):
    if tensor.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    if not tensor.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    entry = post_accumulate_hooks.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        entry = post_accumulate_hooks[id(tensor)] = (weakref.ref(tensor, _forget_post_hooks), OrderedDict())
    handle = RemovableHandle(entry[1])
    entry[1][handle.id] = hook
    return handle


def _forget_post_hooks(ref, table=post_accumulate_hooks):  # the table bound here: it may run at exit
    for key, (entry_ref, _) in list(table.items()):
        if entry_ref is ref:
            del table[key]


def run_post_accumulate_hooks(leaf):
    entry = post_accumulate_hooks.get(id(leaf))
    if entry is not None and entry[0]() is leaf:
        for hook in tuple(entry[1].values()):
            hook(leaf)


# -- nn.Module's full backward hooks -------------------------------------------------------------
class BackwardHook:
    """Runs a module's full backward hooks, hook(module, grad_input, grad_output), as PyTorch's
    torch.utils.hooks.BackwardHook does (nn.Module.__call__ sets one up per call):

    the module's input tensors and its output tensors each pass through an identity node
    (`BackwardHookFunction`). The gradient reaches the outputs' node first, which records it as
    grad_output; the inputs' node runs once every gradient of the module's inputs is known, calls
    the hooks with grad_input (one entry per positional argument: None for non-Tensors) and sends
    on what they return in its place.
    """

    def __init__(self, module, user_hooks):
        self.module = module
        self.user_hooks = user_hooks
        self.grad_outputs = None
        self.n_inputs = self.n_outputs = -1
        self.input_tensors_index = self.output_tensors_index = None  # positions of the Tensors among them

    def setup_input_hook(self, args):
        args, self.input_tensors_index = self._apply_on_tensors(args, self._input_grads, materialize=True)
        self.n_inputs = len(args)
        return args

    def setup_output_hook(self, output):
        is_tuple = isinstance(output, tuple)
        outputs, self.output_tensors_index = self._apply_on_tensors(output if is_tuple else (output,),
                                                                    self._output_grads, materialize=False)
        self.n_outputs = len(outputs)
        return outputs if is_tuple else outputs[0]

    def _apply_on_tensors(self, args, on_grads, materialize):
        """Pass the Tensors among `args` through one identity node whose backward calls `on_grads`."""
        from .grad_mode import is_grad_enabled

        index = [i for i, arg in enumerate(args) if isinstance(arg, Tensor)]
        if not (any(args[i].requires_grad for i in index) and is_grad_enabled()):
            return args, None
        wrapped = list(args)
        for i, tensor in zip(index, BackwardHookFunction.apply(on_grads, materialize, *[args[i] for i in index])):
            wrapped[i] = tensor
        return tuple(wrapped), index

    def _output_grads(self, grads):
        self.grad_outputs = _pack_with_none(self.output_tensors_index, grads, self.n_outputs)
        if self.input_tensors_index is None:  # no input requires grad: the hooks run now, as in torch
            warnings.warn("Full backward hook is firing when gradients are computed with respect to module outputs "
                          "since no inputs require gradients.", stacklevel=2)
            grad_inputs = (None,) * self.n_inputs
            for hook in self.user_hooks:
                result = hook(self.module, grad_inputs, self.grad_outputs)
                if result is not None and not (isinstance(result, tuple) and all(g is None for g in result)):
                    raise RuntimeError("Backward hook for Modules where no input requires gradient should always "
                                       "return None or None for all gradients.")
            self.grad_outputs = None
        return grads

    def _input_grads(self, grads):
        if self.grad_outputs is None:  # a gradient reached the inputs without passing the outputs (double backward)
            return grads
        grad_inputs = _pack_with_none(self.input_tensors_index, grads, self.n_inputs)
        for hook in self.user_hooks:
            result = hook(self.module, grad_inputs, self.grad_outputs)
            if result is None:
                continue
            if len(result) != len(grad_inputs):
                raise RuntimeError(f"Backward hook returned an invalid number of grad_input, got {len(result)}, "
                                   f"but expected {len(grad_inputs)}")
            grad_inputs = result
        self.grad_outputs = None
        return tuple(grad_inputs[i] for i in self.input_tensors_index)


def _pack_with_none(index, values, size):
    packed = [None] * size
    for i, value in zip(index, values):
        packed[i] = value
    return tuple(packed)


class BackwardHookFunction(Function):
    """The identity on some tensors; its backward gives their gradients to `on_grads`, which may replace them."""

    @staticmethod
    def forward(ctx, on_grads, materialize, *tensors):
        ctx.on_grads = on_grads
        ctx.set_materialize_grads(materialize)
        ctx.mark_non_differentiable(*[t for t in tensors if not t.requires_grad])
        return tensors

    @staticmethod
    def backward(ctx, *grads):
        return (None, None) + tuple(ctx.on_grads(grads))
