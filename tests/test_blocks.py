"""Passes a block of rows at a time give what the whole-column expression gives."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import simkit.blocks as blocks


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocks, "ROWS_AT_ONCE", 3)


@given(st.lists(st.integers(0, 40), max_size=30), st.integers(0, 50))
def test_bincount_is_numpy_s(values: list[int], minlength: int) -> None:
    array = np.array(values, dtype=np.int32)
    got = blocks.bincount(array, minlength=minlength)
    assert got.dtype == np.int64
    assert got.tolist() == np.bincount(array, minlength=minlength).tolist()


@given(st.lists(st.integers(-100, 100), max_size=30))
def test_map_blocks_is_the_whole_expression(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    got = blocks.map_blocks(lambda b: b * 3 - 1, array, np.int32)
    assert got.dtype == np.int32 and got.tolist() == (array * 3 - 1).tolist()


def test_spans_cover_the_rows_once_in_order() -> None:
    assert list(blocks.spans(7)) == [(0, 3), (3, 6), (6, 7)]
    assert list(blocks.spans(0)) == []


@given(st.lists(st.integers(-(2**62), 2**62), max_size=60), st.integers(1, 8))
def test_sort_in_place_is_numpy_s_sort(values: list[int], apart: int) -> None:
    # Halves sorted on two threads, then merged: the same array as one sort.
    array = np.array(values, dtype=np.int64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "_SORT_APART", apart)
        patch.setattr(blocks, "cpus", lambda: 2)
        blocks.sort_in_place(array)
    assert array.tolist() == sorted(values)


@given(st.lists(st.lists(st.integers(0, 999), max_size=6), max_size=25), st.integers(1, 5), st.integers(1, 2))
def test_sort_grouped_in_place_is_numpy_s_sort(groups: list[list[int]], piece: int, threads: int) -> None:
    # Keys group * 1000 + x, the groups in order and the x in any order within each: sorted
    # a few whole groups at a time (pieces of 1 to 5 values here), the same array as one sort.
    group = np.array([g for g, xs in enumerate(groups) for _ in xs], dtype=np.int64)
    keys = np.array([g * 1000 + x for g, xs in enumerate(groups) for x in xs], dtype=np.int64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "_SORT_PIECE", piece)
        patch.setattr(blocks, "cpus", lambda: 2)
        blocks.sort_grouped_in_place(keys, group, threads)
    assert keys.tolist() == sorted(g * 1000 + x for g, xs in enumerate(groups) for x in xs)


def test_sort_grouped_in_place_wants_a_group_per_value() -> None:
    with pytest.raises(ValueError, match="3 values but 2 groups"):
        blocks.sort_grouped_in_place(np.array([3, 2, 1]), np.array([0, 0]))


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2)), max_size=30))
def test_bincount_cells_is_a_table_of_numpy_s_bincount(cells: list[tuple[int, int]]) -> None:
    row = np.array([r for r, _ in cells], dtype=np.int32)
    column = np.array([c for _, c in cells], dtype=np.int8)
    got = blocks.bincount_cells(row, column, width=3, rows=5)
    expected = np.bincount(row.astype(np.int64) * 3 + column, minlength=15).reshape(5, 3)
    assert got.dtype == np.int64 and got.tolist() == expected.tolist()


@given(
    st.lists(st.tuples(st.integers(-50, 50), st.booleans()), max_size=40),
    st.integers(0, 3),
    st.sampled_from([1, 2]),
)
def test_compress_is_numpy_s_boolean_index(rows: list[tuple[int, bool]], extra: int, threads: int) -> None:
    values = np.array([v for v, _ in rows], dtype=np.int64)
    keep = np.array([k for _, k in rows], dtype=np.bool_)
    got = blocks.compress(values, keep, threads, extra=extra)
    assert got.dtype == values.dtype and len(got) == int(keep.sum()) + extra
    assert got[: len(got) - extra].tolist() == values[keep].tolist()
