"""The fast layer: kernels that minigrad.functional runs in place of composed primitive ops
(and optim.Adam in place of its whole-array update).

A reader learning autograd can skip this package. Each kernel computes what a function of
minigrad.functional composes from primitive ops (the reference, what the docs teach), in one
graph node that works on raw arrays, block by block on every core. Its forward and
`backward_arrays` are the fast path; its `backward` differentiates the reference composition
(through_reference.py; the dropouts write the reference's two multiplies directly), so
create_graph and second derivatives are the reference's. The engine picks which backward runs
(minigrad/autograd/engine.py); minigrad.functional picks the kernel unless reference mode is on
(`minigrad.set_reference_mode(True)` or MINIGRAD_REFERENCE=1).
tests/test_kernels.py checks every kernel against its reference.

    file              kernel                 replaces
    linear.py         Linear                 x @ weight.mT + bias
    layer_norm.py     LayerNorm              mean / var arithmetic
    residual_exit.py  DropoutAddLayerNorm    layer_norm(residual + dropout(x))
    dropout.py        Dropout, ReluDropout   x * keep * scale, after relu
    cross_entropy.py  CrossEntropy           log_softmax + gather + smoothing + reduction
    attention.py      Attention              split heads, q k^T, masked softmax, dropout, @ v, merge
    adam.py           adam_row_kernel        optim.Adam's whole-array update
    rows.py           row sums and means as GEMVs, shared by the kernels above
    dropout_mask.py   the keep masks of dropout, drawn in blocks on every core (Backend.keep_mask)
    thread_pool.py    parallel_for: row blocks of an elementwise kernel on a few threads

This file imports nothing: the backend imports thread_pool and dropout_mask from here, and the
kernels import minigrad.functional, which needs the backend.
"""
