"""Replay state: exact membership against a plain set, compact storage, bounded size."""

from __future__ import annotations

from hypothesis import given, strategies as st

from gonggi_gateway.replay import MAX_RANGES, SeqSet


def test_consecutive_seqs_collapse_into_the_low_water_mark() -> None:
    s = SeqSet()
    assert all(s.add(seq) for seq in range(100))
    assert (s.low, s.starts, s.ends) == (100, [], [])
    assert not s.add(42)
    assert s.ranges_blob() == b""


def test_gaps_are_kept_exactly() -> None:
    s = SeqSet()
    for seq in (0, 1, 2, 5, 6, 9):
        assert s.add(seq)
    assert (s.low, s.starts, s.ends) == (3, [5, 9], [6, 9])
    assert 4 not in s and 3 not in s and 7 not in s
    assert s.add(4) and s.add(3)  # late arrivals fill the gap ...
    assert (s.low, s.starts, s.ends) == (7, [9], [9])  # ... and the mark moves up
    assert not s.add(5)


def test_storage_round_trip() -> None:
    s = SeqSet()
    for seq in (0, 3, 4, 10, 2**32 - 1):
        s.add(seq)
    blob = s.ranges_blob()
    assert len(blob) == 8 * 3
    again = SeqSet.from_row(s.low, blob)
    assert again == s


def test_too_many_gaps_give_up_the_oldest() -> None:
    s = SeqSet()
    for i in range(MAX_RANGES + 1):
        s.add(2 * i + 1)  # every other seq missing: one range per gap
    assert len(s.starts) == MAX_RANGES
    assert s.low == 2  # seq 0 is given up: it would read as a duplicate now
    assert 0 in s and 2 not in s


@given(st.lists(st.integers(0, 300), max_size=300))
def test_matches_a_plain_set(seqs: list[int]) -> None:
    s, model = SeqSet(), set()
    for seq in seqs:
        assert s.add(seq) == (seq not in model)
        model.add(seq)
    assert all((x in s) == (x in model) for x in range(302))
    assert all(a <= b for a, b in zip(s.starts, s.ends))
    assert all(b + 1 < a for b, a in zip(s.ends, s.starts[1:]))  # disjoint, not adjacent
    assert SeqSet.from_row(s.low, s.ranges_blob()) == s
