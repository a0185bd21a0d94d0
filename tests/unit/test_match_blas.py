"""blas.accumulate: c += z @ a in place on strided float32 views, against float64."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.match import blas


def _ref(c, z, a):
    return c.astype(np.float64) + z.astype(np.float64) @ a.astype(np.float64)


@pytest.mark.parametrize("fallback", [False, True])
def test_column_and_row_blocks_are_updated_in_place_and_nothing_else(monkeypatch, fallback):
    if fallback:
        monkeypatch.setattr(blas, "_sgemm", lambda: None)
    else:
        assert blas.available()
    rng = np.random.default_rng(0)
    acc = rng.standard_normal((9, 40), dtype=np.float32)
    stage = rng.standard_normal((13, 25), dtype=np.float32)
    zext = rng.standard_normal((9, 30), dtype=np.float32)
    before = acc.copy()
    # rows 2..7, columns 11..21 of the accumulator += z[2:7, 4:17] @ stage[:, 5:15]
    c, z, a = acc[2:7, 11:21], zext[2:7, 4:17], stage[:, 5:15]
    expected = _ref(c, z, a)
    blas.accumulate(c, z, a)
    np.testing.assert_allclose(acc[2:7, 11:21], expected, rtol=1e-5, atol=1e-5)
    outside = np.ones_like(acc, bool)
    outside[2:7, 11:21] = False
    np.testing.assert_array_equal(acc[outside], before[outside])


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 7, 3), (5, 1, 4), (4, 6, 1)])
def test_degenerate_shapes(shape):
    rows, k, units = shape
    rng = np.random.default_rng(1)
    acc = rng.standard_normal((rows + 2, units + 3), dtype=np.float32)
    z = rng.standard_normal((rows, k + 2), dtype=np.float32)[:, 1 : k + 1]
    a = rng.standard_normal((k, units + 5), dtype=np.float32)[:, 2 : units + 2]
    c = acc[1 : rows + 1, 1 : units + 1]
    expected = _ref(c, z, a)
    blas.accumulate(c, z, a)
    np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)


def test_bad_operands_are_refused_before_any_write():
    acc = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        blas.accumulate(acc, np.ones((4, 3), np.float32), np.ones((2, 6), np.float32))
    with pytest.raises(ValueError, match="float32"):
        blas.accumulate(acc, np.ones((4, 3)), np.ones((3, 6), np.float32))
    with pytest.raises(ValueError, match="contiguous rows"):
        blas.accumulate(acc, np.ones((3, 4), np.float32).T, np.ones((3, 6), np.float32))
    assert not acc.any()
