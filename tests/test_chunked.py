"""``ChunkedTuple`` behaves as the tuple of its items, and snapshots share its chunks."""

from __future__ import annotations

import pickle
import sys
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpool import (
    AgentPoolMember,
    AgentPoolStoreConfig,
    AgentPoolStoredMessage,
    ChunkedTuple,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageStatus,
    PoolOpened,
    RunAddress,
    RunMessage,
)


def chunked(items: list[int], cuts: list[int]) -> ChunkedTuple[int]:
    """``items`` split at ``cuts`` into chunks of any sizes (none empty)."""
    bounds = sorted({0, len(items), *(cut for cut in cuts if 0 < cut < len(items))})
    chunks = tuple(tuple(items[a:b]) for a, b in zip(bounds, bounds[1:]))
    return ChunkedTuple._of_chunks(chunks, len(items))


lists = st.lists(st.integers(0, 9), max_size=30)
cut_lists = st.lists(st.integers(0, 30), max_size=8)
indices = st.integers(-35, 35)
maybe = st.one_of(st.none(), indices)


@settings(max_examples=300, deadline=None)
@given(items=lists, cuts=cut_lists, other_cuts=cut_lists, probe=st.integers(0, 10))
def test_it_reads_as_the_tuple_of_its_items(
    items: list[int], cuts: list[int], other_cuts: list[int], probe: int
) -> None:
    seq, same = chunked(items, cuts), tuple(items)
    assert len(seq) == len(same) and list(seq) == items and list(reversed(seq)) == items[::-1]
    assert (probe in seq) == (probe in same) and seq.count(probe) == same.count(probe)
    assert seq == same and same == seq and not (seq != same)
    assert seq == chunked(items, other_cuts) and seq == ChunkedTuple(items)
    assert hash(seq) == hash(same) and repr(seq) == repr(same)
    assert seq != items and items != seq  # like a tuple, never equal to a list
    assert seq != (*items, 0) and chunked([*items, 0], cuts) != seq
    assert pickle.loads(pickle.dumps(seq)) == same
    if probe in same:
        assert seq.index(probe) == same.index(probe)
    else:
        with pytest.raises(ValueError):
            seq.index(probe)


@settings(max_examples=300, deadline=None)
@given(items=lists, cuts=cut_lists, index=indices, start=maybe, stop=maybe, step=st.sampled_from([None, 1, 2, -1, -3]))
def test_indexing_and_slicing_match_the_tuple(
    items: list[int], cuts: list[int], index: int, start: int | None, stop: int | None, step: int | None
) -> None:
    seq, same = chunked(items, cuts), tuple(items)
    if -len(same) <= index < len(same):
        assert seq[index] == same[index]
    else:
        with pytest.raises(IndexError):
            seq[index]
    window = slice(start, stop, step)
    assert seq[window] == same[window] and type(seq[window]) is tuple
    bounds = (start or 0, len(same) if stop is None else stop)
    for value in set(items):
        expected = same.index(value, *bounds) if value in same[slice(*bounds)] else None
        if expected is None:
            with pytest.raises(ValueError):
                seq.index(value, *bounds)
        else:
            assert seq.index(value, *bounds) == expected


def _message(key: str, status: MessageStatus) -> MessageRecorded:
    message = RunMessage(
        message_id=key, from_="run.a", to=RunAddress.run("run.b"), content_ref="content", idempotency_key=f"idem.{key}"
    )
    return MessageRecorded(
        stored=AgentPoolStoredMessage(message=message, receipt=MessageReceipt(message_id=key, status=status))
    )


# A change: a message key and status, or (None) a member key joining or leaving.
changes = st.lists(
    st.tuples(st.sampled_from(["m", "j", "l"]), st.integers(0, 40), st.booleans()), min_size=1, max_size=120
)


@settings(max_examples=60, deadline=None)
@given(steps=changes)
def test_sorted_views_with_small_chunks_equal_a_sort(engine: Any, steps: list[Any]) -> None:
    """Chunks of 2 to 4 items: inserts, replacements, removals and splits in every position."""
    with mock.patch.object(sys.modules[engine.PoolState.__module__], "CHUNK", 2):
        _replay_changes(engine, steps)


def _replay_changes(engine: Any, steps: list[Any]) -> None:
    state = engine.PoolState("pool.chunks")
    state.apply(PoolOpened(config=AgentPoolStoreConfig()), 1)
    for sequence, (kind, number, snap) in enumerate(steps, 2):
        key = f"k.{number:02d}"
        if kind == "m":
            status = MessageStatus.DELIVERED if snap else MessageStatus.ACCEPTED
            state.apply(_message(key, status), sequence)
        elif kind == "j":
            state.apply(MemberJoined(member=AgentPoolMember(run_id=key, agent_id="agent.a")), sequence)
        else:
            state.apply(MemberLeft(member=AgentPoolMember(run_id=key, agent_id="agent.a")), sequence)
        if snap or sequence == len(steps) + 1:
            snapshot = state.snapshot()
            assert snapshot.messages == tuple(state.messages[k] for k in sorted(state.messages))
            assert snapshot.members == tuple(state.members[k] for k in sorted(state.members))
            assert all(snapshot.messages._chunks)  # no empty chunk


def test_a_snapshot_after_one_change_shares_every_other_chunk(engine: Any) -> None:
    state = engine.PoolState("pool.share")
    state.apply(PoolOpened(config=AgentPoolStoreConfig()), 1)
    for number in range(2000):
        state.apply(_message(f"msg.{number:05d}", MessageStatus.ACCEPTED), number + 2)
    before = state.snapshot().messages
    state.apply(_message("msg.01000", MessageStatus.DELIVERED), 2002)
    after = state.snapshot().messages
    assert (
        after[1000].receipt.status is MessageStatus.DELIVERED and before[1000].receipt.status is MessageStatus.ACCEPTED
    )
    kept = [a is b for a, b in zip(before._chunks, after._chunks)]
    assert len(kept) >= 4 and kept.count(False) == 1
