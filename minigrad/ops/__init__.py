"""All tensor ops, by family. Each op is a Function (forward + backward side by side)
plus the plain function users call; Tensor methods route here."""
from .broadcast import broadcast_shapes, broadcast_to, expand, sum_to
from .cumulative import cumprod, cumsum
from .einsum import einsum
from .elementwise import (abs, add, allclose, cast, clamp, clip, clone, cos, div, eq, erf, exp, expm1, ge, gelu, gt,
                          isclose, isfinite, isinf, isnan, le, log, log1p, logical_and, logical_not, logical_or, lt,
                          masked_fill, maximum, minimum, mul, ne, neg, pow, relu, rsqrt, sigmoid, sign, sin, sqrt, sub,
                          tanh, to_device, where)
from .indexing import array_index, gather, getitem, index_select, masked_select, nonzero, scatter, scatter_add
from .linalg import bmm, dot, matmul, mm, outer
from .norm import norm
from .ordering import argsort, sort, topk
from .reduction import all, amax, amin, any, argmax, argmin, logsumexp, max, mean, min, prod, std, sum, var
from .reorder import flip, roll
from .shape import (cat, chunk, concatenate, flatten, movedim, narrow, permute, repeat, repeat_interleave, reshape,
                    split, squeeze, stack, swapaxes, transpose, unbind, unsqueeze, view)
from .softmax import log_softmax, softmax
from .triangular import tril, triu
