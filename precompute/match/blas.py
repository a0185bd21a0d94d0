"""`accumulate(c, z, a)`: c += z @ a in place, float32, through OpenBLAS's sgemm on strided views.

The engine multiplies column blocks of its accumulator (rows x units) by column blocks of a layer's
staged activations (stimuli x units) and row/column blocks of the standardised responses: numpy's
matmul has no "+=", and scipy's `blas.sgemm` wrapper copies any view that is not contiguous. So the
sgemm that scipy exports to Cython (`scipy.linalg.cython_blas`, its bundled OpenBLAS) is called
directly through ctypes with explicit leading dimensions: no copy, and the GIL is released for the
call, so two threads can each multiply their own blocks on one core each.

Row-major (rows x cols) with row stride `ld` is column-major (cols x rows) with leading dimension
`ld`, so c += z a (row-major) is, in Fortran terms, C^T += A^T Z^T with every operand untransposed.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

_F4 = np.dtype(np.float32).itemsize


@functools.cache
def _sgemm():
    """The Fortran sgemm of scipy's OpenBLAS as a ctypes function, or None where it cannot be found."""
    try:
        from scipy.linalg import cython_blas  # heavy: loaded on the first product

        capsule = cython_blas.__pyx_capi__["sgemm"]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        address = get_pointer(capsule, get_name(capsule))
    except (ImportError, AttributeError, KeyError, ValueError):  # an unusual scipy build: the numpy fallback
        return None
    if not address:
        return None
    p_int, p_float, ptr = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_float), ctypes.c_void_p
    prototype = ctypes.CFUNCTYPE(
        None,
        ctypes.c_char_p,
        ctypes.c_char_p,
        p_int,
        p_int,
        p_int,
        p_float,
        ptr,
        p_int,
        ptr,
        p_int,
        p_float,
        ptr,
        p_int,
    )
    return prototype(address)


def available() -> bool:
    """Whether the in-place sgemm is reachable (else `accumulate` falls back to numpy with a temporary)."""
    return _sgemm() is not None


def _leading(x: np.ndarray, name: str) -> int:
    """The row stride of a 2-D float32 view with contiguous rows, in elements."""
    if x.ndim != 2 or x.dtype != np.float32:
        raise ValueError(f"{name} must be a 2-D float32 array; got {x.ndim}-D {x.dtype}")
    if x.shape[1] > 1 and x.strides[1] != _F4:
        raise ValueError(f"{name} must have contiguous rows (a column block of a C-ordered array)")
    if x.shape[0] > 1 and (x.strides[0] % _F4 or x.strides[0] < x.shape[1] * _F4):
        raise ValueError(f"{name} has an unusable row stride {x.strides[0]}")
    return max(1, x.strides[0] // _F4 if x.shape[0] > 1 else x.shape[1])


def accumulate(c: np.ndarray, z: np.ndarray, a: np.ndarray) -> None:
    """c += z @ a in place (c: rows x units, z: rows x k, a: k x units; float32 views whose rows are
    contiguous, e.g. column blocks of C-ordered arrays)."""
    rows, units = c.shape
    if z.shape[0] != rows or a.shape[1] != units or z.shape[1] != a.shape[0]:
        raise ValueError(f"shapes do not match: c {c.shape} += z {z.shape} @ a {a.shape}")
    k = z.shape[1]
    if rows == 0 or units == 0 or k == 0:
        return
    ldc, ldz, lda = _leading(c, "c"), _leading(z, "z"), _leading(a, "a")
    if not c.flags.writeable:
        raise ValueError("c must be writeable")
    sgemm = _sgemm()
    if sgemm is None:
        c += z @ a
        return
    i = ctypes.c_int
    one = ctypes.c_float(1.0)
    sgemm(
        b"N",
        b"N",
        ctypes.byref(i(units)),
        ctypes.byref(i(rows)),
        ctypes.byref(i(k)),
        ctypes.byref(one),
        ctypes.c_void_p(a.ctypes.data),
        ctypes.byref(i(max(lda, units))),
        ctypes.c_void_p(z.ctypes.data),
        ctypes.byref(i(max(ldz, k))),
        ctypes.byref(one),
        ctypes.c_void_p(c.ctypes.data),
        ctypes.byref(i(max(ldc, units))),
    )
