"""Row sums and means as matrix products: the reductions the kernels make over short rows.

NumPy reduces a short last axis (a d_model of 256, the keys of attention) one row at a
time; a product with a constant column (one GEMV) makes the same sums in one BLAS call that
reads the matrix once, on every core. The columns are made once per device and shape.
"""


def row_sums(backend, rows):
    """Sum of each row of `rows` (..., n), kept as a column (..., 1)."""
    return rows @ backend.constant_column(rows.shape[-1], 1.0, rows.dtype)


def row_means(backend, rows):
    """Mean of each row of `rows` (..., n), kept as a column (..., 1)."""
    return rows @ mean_column(backend, rows.shape[-1], rows.dtype)


def mean_column(backend, length, dtype):
    """A (length, 1) column of 1 / length (rows @ it = the row means)."""
    return backend.constant_column(length, 1.0 / length, dtype)


def column_sums(backend, matrix):
    """matrix.sum(0) as a vector-matrix product: BLAS runs it on every core, NumPy's sum on one."""
    return backend.constant_column(matrix.shape[0], 1.0, matrix.dtype).reshape(-1) @ matrix
