"""Differential replay: generated record streams, valid and malformed, through both engines.

Both engines must reach equal states, snapshots and errors; and replaying a stream in
pieces, taking snapshots in between (what a store's incremental catch-up does), must
end exactly where a cold replay of the whole stream ends.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpool import (
    AgentError,
    AgentPoolMember,
    AgentPoolStoreConfig,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    EventFilter,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageStatus,
    PolicyRef,
    PoolCreated,
    PoolOpened,
    RunAddress,
    RunMessage,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
    WakeRegistrationStatus,
    wire,
)

STORE_NAME = "differential agent pool store"  # the engines word their errors with the state's store name
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Few distinct keys, so that records replace, re-join, leave and dedupe each other.
runs = st.sampled_from(["run.a", "run.c", "run.é", "run.00", "run.13", "run.30", "run.42", "run.58", "run.99"])
messages = st.sampled_from(["msg.1", "msg.2", "msg.3", "msg.00", "msg.31", "msg.58", "msg.99"])
keys = st.sampled_from(["idem.1", "idem.2", 'idem "3"'])
topics = st.lists(st.sampled_from(["topic.x", "topic.y", "topic.ζ"]), max_size=2)
configs = st.sampled_from([AgentPoolStoreConfig(), AgentPoolStoreConfig(policy_refs=(PolicyRef.new("policy.p"),))])

members = st.builds(lambda run, topic: AgentPoolMember(run_id=run, agent_id="agent." + run, topics=topic), runs, topics)
stored_messages = st.builds(
    lambda message_id, run, key, status: AgentPoolStoredMessage(
        message=RunMessage(
            message_id=message_id, from_=run, to=RunAddress.run("run.b"), content_ref="content", idempotency_key=key
        ),
        receipt=MessageReceipt(message_id=message_id, status=status, delivered_to=(run,)),
    ),
    messages,
    runs,
    keys,
    st.sampled_from(list(MessageStatus)),
)


def _wake(condition_id: str, run: str, key: str, status: WakeRegistrationStatus) -> AgentPoolStoredWake:
    condition = WakeCondition(condition_id=condition_id, run_id=run, filter=EventFilter.run(run), idempotency_key=key)
    return AgentPoolStoredWake(
        condition=condition,
        compiled_filter=condition.compile_envelope_filter(),
        registration=WakeRegistration(condition_id=condition_id, run_id=run, status=status),
    )


stored_wakes = st.builds(
    _wake, st.sampled_from(["wake.1", "wake.2"]), runs, keys, st.sampled_from(list(WakeRegistrationStatus))
)
payloads = st.one_of(
    st.builds(lambda config: PoolOpened(config=config), configs),
    st.just(PoolCreated()),
    st.builds(lambda member: MemberJoined(member=member), members),
    st.builds(lambda member: MemberLeft(member=member), members),
    st.builds(lambda stored: MessageRecorded(stored=stored), stored_messages),
    st.builds(lambda stored: WakeRecorded(stored=stored), stored_wakes),
)
valid_rows = st.builds(lambda payload: (payload.TYPE, wire.encode(payload)), payloads)
# Rows a damaged or hand-edited file can hold.
malformed_rows = st.sampled_from(
    [
        ("run_message", '{"type":"run_message","stored":'),  # bad JSON
        ("pool_gone", '{"type":"pool_gone"}'),  # unknown type
        ("member_joined", '{"type":"member_joined","member":{"run_id":"run.a"}}'),  # missing field
        ("member_joined", '{"type":"member_joined","member":{"run_id":"","agent_id":"a"}}'),  # invalid id
        ("member_left", '{"type":"pool_created"}'),  # kind column disagrees
        ("pool_opened", wire.encode(PoolOpened(config=AgentPoolStoreConfig(policy_refs=(PolicyRef.new("x"),))))),
    ]
)


def _row(payload: Any) -> tuple[str, str]:
    return payload.TYPE, wire.encode(payload)


# Every stream starts with an opened pool that already holds many members and messages,
# so that later changes are few against the sorted views and take the incremental path.
OPENED = [_row(PoolOpened(config=AgentPoolStoreConfig()))]
CROWD = [
    _row(MemberJoined(member=AgentPoolMember(run_id=f"run.{n:02d}", agent_id="agent.crowd", topics=(f"topic.{n}",))))
    for n in range(0, 60, 2)
] + [
    _row(
        MessageRecorded(
            stored=AgentPoolStoredMessage(
                message=RunMessage(
                    message_id=f"msg.{n:02d}",
                    from_="run.00",
                    to=RunAddress.run("run.02"),
                    content_ref="content",
                    idempotency_key=f"idem.{n:02d}",
                ),
                receipt=MessageReceipt(message_id=f"msg.{n:02d}", status=MessageStatus.ACCEPTED),
            )
        )
    )
    for n in range(0, 60, 2)
]
streams = st.lists(st.one_of(valid_rows, valid_rows, valid_rows, malformed_rows), max_size=40).map(
    lambda rows: OPENED + CROWD + rows
)


def _numbered(rows: list[tuple[str, str]], start: int = 1) -> list[tuple[int, str, str]]:
    return [(start + index, kind, text) for index, (kind, text) in enumerate(rows)]


TOPICS = ("topic.x", "topic.y", "topic.ζ", "topic.0", "topic.none")


def _lookups(state: Any) -> tuple[Any, ...]:
    """The routing lookups, in wire form."""
    members = [wire.encode(member) for member in state.sorted_members()]
    by_topic = {topic: [m.run_id for m in state.topic_members(topic)] for topic in TOPICS}
    return members, state.sorted_topics(), by_topic


def _state(state: Any) -> dict[str, Any]:
    """Everything a store reads from a state, in comparable (wire) form; the lookups are read
    first (so that they catch the sorted views up) and must agree with the snapshot."""
    lookups = _lookups(state) if state.config is not None else None
    snapshot = state.snapshot()
    if snapshot is not None:
        assert lookups == (
            [wire.encode(member) for member in snapshot.members],
            snapshot.topics,
            {topic: [m.run_id for m in snapshot.members if topic in m.topics] for topic in TOPICS},
        )
    return {
        "cursor": state.cursor,
        "snapshot": None if snapshot is None else wire.encode(snapshot),
        "receipts": {key: wire.encode(value) for key, value in state.message_dedupe.items()},
        "registrations": {key: wire.encode(value) for key, value in state.wake_dedupe.items()},
        "wakes": {key: wire.encode(value) for key, value in state.wakes.items()},
        "members": sorted(state.members),
    }


def _replay(engine: Any, rows: list[tuple[int, str, str]], cuts: list[int]) -> tuple[Any, dict[str, Any]]:
    """Replay ``rows`` in the pieces ``cuts`` marks, snapshotting after each piece."""
    state = engine.PoolState("pool.diff", STORE_NAME)
    error = None
    bounds = [0, *sorted(cut for cut in cuts if 0 < cut < len(rows)), len(rows)]
    for piece, (begin, end) in enumerate(zip(bounds, bounds[1:])):
        try:
            engine.replay_rows(state, rows[begin:end])
        except AgentError as failure:
            error = (type(failure).__name__, failure.kind, failure.retry, failure.message)
            break
        # Between pieces, as a store serving reads would: a snapshot, or (every other piece) the
        # lookups alone, which leave the snapshot to be built later from the views they refreshed.
        if piece % 2:
            _lookups(state)
        else:
            state.snapshot()
    return error, _state(state)


@SETTINGS
@given(stream=streams)
def test_both_engines_reach_the_same_state_or_error(c_engine: Any, py_engine: Any, stream: list[Any]) -> None:
    rows = _numbered(stream)
    assert _replay(c_engine, rows, []) == _replay(py_engine, rows, [])


@SETTINGS
@given(stream=streams, cuts=st.lists(st.integers(0, 40), max_size=6))
def test_catching_up_in_pieces_equals_a_cold_replay(engine: Any, stream: list[Any], cuts: list[int]) -> None:
    rows = _numbered(stream)
    # A cut right after the crowd, then cuts among the generated rows: what follows is
    # applied to warm sorted views, a few keys at a time.
    crowd = len(OPENED + CROWD)
    assert _replay(engine, rows, [crowd] + [crowd + cut for cut in cuts]) == _replay(engine, rows, [])


@SETTINGS
@given(stream=st.lists(valid_rows, min_size=1, max_size=40), cuts=st.lists(st.integers(0, 40), max_size=6))
def test_valid_streams_replay_without_error_and_snapshots_are_sorted(
    engine: Any, stream: list[Any], cuts: list[int]
) -> None:
    rows = _numbered(OPENED + CROWD + stream)
    cuts = [len(OPENED + CROWD) + cut for cut in cuts]
    # A second pool_opened with a different config is the one valid-looking row that must fail.
    configs_seen = {text for kind, text in stream if kind == PoolOpened.TYPE} - {rows[0][2]}
    error, state = _replay(engine, rows, cuts)
    if configs_seen:
        assert error is not None and error[3] == f"{STORE_NAME} contains conflicting pool open records"
        return
    assert error is None
    snapshot = orjson.loads(state["snapshot"])
    assert snapshot["cursor"] == {"sequence": len(rows)}
    for field, key in (("members", "run_id"), ("messages", None), ("wakes", None)):
        items = snapshot.get(field, [])
        ids = [
            item[key]
            if key
            else (item.get("message") or item["condition"]).get("message_id") or item["condition"]["condition_id"]
            for item in items
        ]
        assert ids == sorted(ids) and len(ids) == len(set(ids))
    topics = {topic for member in snapshot["members"] for topic in member.get("topics", [])}
    assert snapshot["topics"] == sorted(topics)
