"""einsum: Einstein summation, written with sum, permute, reshape and matmul.

Supported: any number of operands, each subscript a letter (a-z, A-Z), "..." for
broadcast leading dims (summed when the output leaves it out), the explicit form
"ij,jk->ik" and the implicit one "ij,jk" (output: the letters seen once, in
alphabetical order, after the "..." dims). That
covers every contraction a Transformer writes: "bhqd,bhkd->bhqk", "bhqk,bhkd->bhqd",
"bij,bjk->bik", "ij,jk->ik", "...ij,...jk->...ik", "i,i->", "i,j->ij", "bi,bi->b",
"ij->ji", "ij->". A letter's sizes must agree across operands, or be 1 on one side
(broadcast, as in PyTorch). Not supported, with a clear error: a letter repeated in
one operand ("ii->i", a diagonal) or in the output, and the sublist form
einsum(a, [0, 1], b, [1, 2]).

Two operands at a time (left to right): letters only one operand has and the output
does not are summed out first; the rest become batch dims (in both and in the
output), the contracted dims (in both, not kept) and each side's own kept dims, so
that one batched matmul does the work. Gradients and second derivatives are those
of the Tensor ops it is made of.
"""
from ..tensor import Tensor
from .promotion import promote
from .reduction import sum

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Labeled:
    """A tensor and the label of each of its dims (letters, and stand-ins for the dims of "...")."""

    def __init__(self, tensor, labels):
        self.tensor, self.labels = tensor, labels

    def size(self, label):
        return self.tensor.shape[self.labels.index(label)]

    def sum_out(self, labels):
        axes = tuple(i for i, label in enumerate(self.labels) if label in labels)
        if not axes:
            return self
        return _Labeled(sum(self.tensor, axes), [label for label in self.labels if label not in labels])

    def arranged(self, order, shape):
        """The tensor with its dims put in `order` and reshaped to `shape`."""
        tensor = self.tensor.permute(*[self.labels.index(label) for label in order])
        return tensor.reshape(shape)


def _split(equation):
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    return inputs.split(","), (output if arrow else None)


def _parse_subscripts(subscripts, ndim, where):
    """Letters of one operand, its "..." expanded into stand-ins (integers, counted from the right)."""
    head, dots, tail = subscripts.partition("...")
    if "..." in tail:
        raise ValueError(f"einsum: {where} has more than one '...'")
    for letter in head + tail:
        if letter not in _LETTERS:
            raise ValueError(f"einsum: {where} has {letter!r}; subscripts must be letters a-z, A-Z or '...'")
    named = len(head) + len(tail)
    if (dots and named > ndim) or (not dots and named != ndim):
        raise ValueError(f"einsum: {where} has subscripts {subscripts!r} for a tensor of {ndim} dims")
    return list(head) + list(range(ndim - named - 1, -1, -1)) + list(tail)


def _check_no_repeats(labels, where):
    repeated = sorted({label for label in labels if labels.count(label) > 1}, key=str)
    if repeated:
        raise ValueError(f"einsum: {where} repeats {repeated[0]!r}; diagonals (a letter twice in one operand) and "
                         "repeated output letters are not supported")


def _output_labels(output, operands):
    """The output's labels: "..." dims first (as many as the operand with the most), then the letters."""
    dots = list(range(max(len([label for label in o.labels if isinstance(label, int)]) for o in operands) - 1,
                      -1, -1))
    if output is None:  # implicit: the letters that appear once, alphabetically
        letters = [label for o in operands for label in o.labels if isinstance(label, str)]
        return dots + sorted({letter for letter in letters if letters.count(letter) == 1})
    head, has_dots, tail = output.partition("...")
    for letter in head + tail:
        if letter not in _LETTERS:
            raise ValueError(f"einsum: the output has {letter!r}; subscripts must be letters a-z, A-Z or '...'")
    labels = list(head) + (dots if has_dots else []) + list(tail)  # without "...", its dims are summed
    _check_no_repeats(labels, "the output")
    seen = {label for o in operands for label in o.labels}
    for letter in head + tail:
        if letter not in seen:
            raise ValueError(f"einsum: the output letter {letter!r} is in no operand")
    return labels


def _contract(a, b, keep):
    """One operand from two: the labels in `keep` (a list, in the order wanted) stay, the others go."""
    a = a.sum_out([label for label in a.labels if label not in keep and label not in b.labels])
    b = b.sum_out([label for label in b.labels if label not in keep and label not in a.labels])
    shared = [label for label in a.labels if label in b.labels]
    for label in shared:
        if a.size(label) != b.size(label) and 1 not in (a.size(label), b.size(label)):
            raise ValueError(f"einsum: subscript {label!r} has size {a.size(label)} in one operand and "
                             f"{b.size(label)} in another (shapes {a.tensor.shape} and {b.tensor.shape})")
    # A contracted letter of size 1 on one side is broadcast: sum_j a_j b_j = a_0 * sum_j b_j.
    broadcast = [label for label in shared if label not in keep and a.size(label) != b.size(label)]
    a, b = a.sum_out(broadcast), b.sum_out(broadcast)
    batch = [label for label in keep if label in shared]
    contracted = [label for label in shared if label not in keep and label not in broadcast]
    own_a = [label for label in a.labels if label not in shared]
    own_b = [label for label in b.labels if label not in shared]
    rows, inner, columns = _size(a, own_a), _size(a, contracted), _size(b, own_b)
    left = a.arranged(batch + own_a + contracted, [a.size(label) for label in batch] + [rows, inner])
    right = b.arranged(batch + contracted + own_b, [b.size(label) for label in batch] + [inner, columns])
    product = left @ right  # batch dims of size 1 on one side broadcast here
    shape = product.shape[:len(batch)] + tuple(a.size(label) for label in own_a) + tuple(
        b.size(label) for label in own_b)
    return _Labeled(product.reshape(shape), batch + own_a + own_b)


def _size(operand, labels):
    size = 1
    for label in labels:
        size *= operand.size(label)
    return size


def einsum(equation, *operands):
    """Einstein summation over the operands as `equation` says (see the module docstring for the forms)."""
    if not isinstance(equation, str):
        raise TypeError("einsum: the first argument must be the equation string; the sublist form "
                        "einsum(a, [0, 1], b, [1, 2]) is not supported")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    subscripts, output = _split(equation)
    if len(subscripts) != len(operands):
        raise ValueError(f"einsum: the equation {equation!r} names {len(subscripts)} operands, got {len(operands)}")
    for i, x in enumerate(operands):
        if not isinstance(x, Tensor):
            raise TypeError(f"einsum: operand {i} is a {type(x).__name__}, not a tensor")
    operands = promote(*operands) if len({x.dtype for x in operands}) > 1 else operands
    labeled = []
    for i, (letters, x) in enumerate(zip(subscripts, operands)):
        labels = _parse_subscripts(letters, x.ndim, f"operand {i}")
        _check_no_repeats(labels, f"operand {i}")
        labeled.append(_Labeled(x, labels))
    result_labels = _output_labels(output, labeled)
    result = labeled[0]
    for position in range(1, len(labeled)):
        later = [label for o in labeled[position + 1:] for label in o.labels if label not in result_labels]
        result = _contract(result, labeled[position], result_labels + later)
    result = result.sum_out([label for label in result.labels if label not in result_labels])
    return result.arranged(result_labels, [result.size(label) for label in result_labels])


__all__ = ["einsum"]
