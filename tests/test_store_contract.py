"""The ``AgentPoolStore`` contract (SPEC §5.2), written once and run against every arrangement.

``stores`` is parametrized over ``store_helpers.STORE_KINDS``: the in-memory store, one file
store, two store objects on one file (writes through one, reads through the other), a
store reopened after close (writes, close, a new object reads), and PostgreSQL stores (one,
one in notified mode, two objects). Error messages are exact; the in-memory store's lack
the leading "sqlite ", PostgreSQL's say "postgres ".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES
from store_helpers import (
    CONFIG,
    OTHER_CONFIG,
    STORE_KINDS,
    PgTarget,
    ReopeningStore,
    StoreCase,
    make_case,
    member,
    message,
    receipt,
    wake_args,
)

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolSnapshot,
    AgentPoolStore,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    ChunkedTuple,
    EventFilter,
    InvalidInput,
    MemberJoined,
    MemberLeft,
    MessageRecorded,
    MessageStatus,
    PoolCreated,
    PoolOpened,
    RetryClassification,
    SqliteAgentPoolStore,
    WakeRecorded,
    WakeRegistrationStatus,
    wire,
)

POOL = "pool.contract"
OTHER_POOL = "pool.other"

NOT_OPENED = "agent pool store has not opened this pool"
CONFLICT = "agent pool store config conflicts with existing pool"
NOT_A_MEMBER = "run is not a member of this agent pool"


@pytest.fixture(params=STORE_KINDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """One arrangement of stores (``StoreCase``); closed after the test."""
    pg = None
    if request.param.startswith("postgres"):
        server = request.getfixturevalue("pg_server")
        pg = PgTarget(server.conninfo, request.getfixturevalue("pg_schema"))
    case = make_case(request.param, tmp_path, pg)
    yield case
    case.close()


@pytest.fixture
def store(stores: StoreCase) -> Any:
    """The object the test calls (a store, or a wrapper over two store objects)."""
    return stores.store


@pytest.fixture
def opened(store: Any) -> Any:
    """``store`` with ``POOL`` opened on the default config (cursor 1)."""
    store.open_pool(POOL, CONFIG)
    return store


def rust_error_json(case: str) -> str:
    """The serde JSON of an error the Rust SQLite store returned (fixtures ``wire/errors.jsonl``)."""
    with (FIXTURES / "wire" / "errors.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["case"] == case:
                return str(row["json"])
    raise LookupError(case)


def assert_error(
    error: BaseException, kind: AgentErrorKind, retry: RetryClassification, message: str, **ids: str
) -> None:
    """The error as Rust's (``display``), and ``str()`` naming ``ids`` after it."""
    assert type(error) is AgentError, f"expected a plain AgentError, got {type(error).__name__}: {error!r}"
    assert (error.kind, error.retry, error.message, error.variant) == (kind, retry, message, "Classified")
    assert error.display == f"{kind.value}: {message}"
    assert error.ids == ids
    named = ", ".join(f"{key}={value!r}" for key, value in ids.items())
    assert str(error) == (f"{error.display} ({named})" if ids else error.display)


def cursors(store: Any, pool_id: str = POOL, after: Any = None) -> list[int]:
    return [record.cursor.sequence for record in store.watch(pool_id, after)]


def sequence(cursor: AgentPoolStoreCursor) -> int:
    assert type(cursor) is AgentPoolStoreCursor
    return cursor.sequence


# ------------------------------------------------------------------------- the arrangements


def test_every_arrangement_is_an_agent_pool_store(stores: StoreCase) -> None:
    if stores.name in ("memory", "file"):
        assert isinstance(stores.store, AgentPoolStore)
    for name in (
        "open_pool",
        "snapshot",
        "record_pool_created",
        "join_member",
        "leave_member",
        "message_receipt",
        "record_message",
        "record_message_once",
        "wake_registration",
        "wake",
        "record_wake",
        "record_wake_once",
        "watch",
        "next_event_sequence",
        "members",
        "member",
        "topics",
        "topic_members",
    ):
        assert callable(getattr(stores.store, name))


def test_reopened_arrangement_really_reopens(tmp_path: Path) -> None:
    store = ReopeningStore(tmp_path / "pools.sqlite")
    try:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a"))
        assert store.opened == 1
        assert store.snapshot(POOL).cursor == AgentPoolStoreCursor(sequence=2)
        assert store.opened == 2
        store.record_pool_created(POOL)
        assert [r.cursor.sequence for r in store.watch(POOL)] == [1, 2, 3]
        assert store.opened == 4
    finally:
        store.close()


# ------------------------------------------------------------------------- cursors, open_pool


def test_open_pool_new_appends_pool_opened_at_cursor_1(stores: StoreCase, store: Any) -> None:
    snapshot = store.open_pool(POOL, OTHER_CONFIG)

    assert type(snapshot) is AgentPoolSnapshot
    assert snapshot == AgentPoolSnapshot(
        pool_id=POOL,
        created=False,
        members=(),
        topics=(),
        message_policy=OTHER_CONFIG.message_policy,
        wake_policy=OTHER_CONFIG.wake_policy,
        policy_refs=OTHER_CONFIG.policy_refs,
        messages=(),
        wakes=(),
        cursor=AgentPoolStoreCursor(sequence=1),
    )
    assert store.snapshot(POOL) == snapshot
    records = list(store.watch(POOL))
    assert records == [
        AgentPoolStoreRecord(
            pool_id=POOL, cursor=AgentPoolStoreCursor(sequence=1), payload=PoolOpened(config=OTHER_CONFIG)
        )
    ]
    if stores.durable:
        assert stores.raw_counts() == (1, 0)


def test_open_pool_with_equal_config_appends_nothing(store: Any) -> None:
    first = store.open_pool(POOL, CONFIG)
    again = store.open_pool(POOL, CONFIG)
    assert again == first
    assert again.cursor == AgentPoolStoreCursor(sequence=1)

    store.join_member(POOL, member("run.a"))
    reopened = store.open_pool(POOL, CONFIG)  # an opened pool returns its current snapshot
    assert reopened.cursor == AgentPoolStoreCursor(sequence=2)
    assert reopened.members == (member("run.a"),)
    assert cursors(store) == [1, 2]
    assert [type(r.payload) for r in store.watch(POOL)] == [PoolOpened, MemberJoined]


def test_open_pool_with_different_config_is_a_conflict(stores: StoreCase, store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a"))

    with pytest.raises(AgentError) as raised:
        store.open_pool(POOL, OTHER_CONFIG)

    assert_error(
        raised.value,
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        stores.message(CONFLICT),
        pool_id=POOL,
    )
    if stores.sqlite:
        assert wire.encode(raised.value) == rust_error_json("sqlite_open_pool_config_conflict")
    assert cursors(store) == [1, 2]
    assert store.snapshot(POOL).message_policy == CONFIG.message_policy
    # The other direction conflicts too, and another pool may use the other config.
    store.open_pool(OTHER_POOL, OTHER_CONFIG)
    with pytest.raises(AgentError) as raised:
        store.open_pool(OTHER_POOL, CONFIG)
    assert raised.value.message == stores.message(CONFLICT)


def test_cursors_start_at_1_and_rise_by_1_for_every_write(store: Any) -> None:
    assert store.open_pool(POOL, CONFIG).cursor == AgentPoolStoreCursor(sequence=1)
    returned = [
        sequence(store.record_pool_created(POOL)),
        sequence(store.join_member(POOL, member("run.a"))),
        sequence(store.join_member(POOL, member("run.b"))),
        sequence(store.record_message(POOL, message("msg.1"), receipt("msg.1"))),
        sequence(store.record_wake(POOL, *wake_args("wake.1"))),
        sequence(store.leave_member(POOL, "run.a")[1]),
        sequence(store.record_pool_created(POOL)),
    ]
    assert returned == [2, 3, 4, 5, 6, 7, 8]
    assert store.snapshot(POOL).cursor == AgentPoolStoreCursor(sequence=8)
    assert cursors(store) == list(range(1, 9))
    # Another pool has its own cursors, starting at 1 again.
    assert store.open_pool(OTHER_POOL, CONFIG).cursor == AgentPoolStoreCursor(sequence=1)
    assert sequence(store.join_member(OTHER_POOL, member("run.a"))) == 2
    assert store.snapshot(POOL).cursor == AgentPoolStoreCursor(sequence=8)


# ------------------------------------------------------------------------- unopened pools

UNOPENED_WRITES = {
    "snapshot": lambda s: s.snapshot(POOL),
    "record_pool_created": lambda s: s.record_pool_created(POOL),
    "join_member": lambda s: s.join_member(POOL, member("run.a")),
    "leave_member": lambda s: s.leave_member(POOL, "run.a"),
    "record_message": lambda s: s.record_message(POOL, message("msg.1"), receipt("msg.1")),
    "record_wake": lambda s: s.record_wake(POOL, *wake_args("wake.1")),
    "record_message_once": lambda s: s.record_message_once(POOL, message("msg.1"), receipt("msg.1")),
    "record_wake_once": lambda s: s.record_wake_once(POOL, *wake_args("wake.1")),
    "next_event_sequence": lambda s: s.next_event_sequence(POOL),
}


@pytest.mark.parametrize("call", list(UNOPENED_WRITES), ids=list(UNOPENED_WRITES))
@pytest.mark.parametrize("other_pool_open", [False, True], ids=["empty", "other_pool_open"])
def test_unopened_pool_snapshot_and_writes_fail_closed(
    stores: StoreCase, store: Any, call: str, other_pool_open: bool
) -> None:
    if other_pool_open:
        store.open_pool(OTHER_POOL, CONFIG)
        store.join_member(OTHER_POOL, member("run.a"))

    for _ in range(2):  # a second attempt fails the same way (nothing half-written by the first)
        with pytest.raises(AgentError) as raised:
            UNOPENED_WRITES[call](store)
        assert_error(
            raised.value,
            AgentErrorKind.HOST_CONFIGURATION_NEEDED,
            RetryClassification.HOST_CONFIGURATION_NEEDED,
            stores.message(NOT_OPENED),
            pool_id=POOL,
        )
    if stores.sqlite:
        assert wire.encode(raised.value) == rust_error_json("sqlite_snapshot_unopened")
    if stores.durable:
        assert stores.raw_counts() == ((2, 0) if other_pool_open else (0, 0))

    # Nothing was written: once opened, the pool holds only its PoolOpened record and its
    # event sequence was never allocated.
    assert store.open_pool(POOL, CONFIG).cursor == AgentPoolStoreCursor(sequence=1)
    snapshot = store.snapshot(POOL)
    assert (snapshot.created, snapshot.members, snapshot.messages, snapshot.wakes) == (False, (), (), ())
    assert [type(r.payload) for r in store.watch(POOL)] == [PoolOpened]
    assert store.next_event_sequence(POOL) == 1


def test_unopened_pool_lookups_return_none_and_watch_yields_nothing(store: Any) -> None:
    store.open_pool(OTHER_POOL, CONFIG)
    store.join_member(OTHER_POOL, member("run.a", topics=("topic.a",)))
    store.record_message(OTHER_POOL, message("msg.1"), receipt("msg.1"))
    store.record_wake(OTHER_POOL, *wake_args("wake.1"))

    # The other pool has exactly these keys; the unopened one must not leak them.
    assert store.message_receipt(POOL, "key.msg.1") is None
    assert store.wake_registration(POOL, "wake-key.wake.1") is None
    assert store.wake(POOL, "wake.1") is None
    assert store.members(POOL) == ()
    assert store.member(POOL, "run.a") is None
    assert store.topics(POOL) == ()
    assert store.topic_members(POOL, "topic.a") == ()
    assert list(store.watch(POOL)) == []
    assert list(store.watch(POOL, 0)) == []
    assert list(store.watch(POOL, AgentPoolStoreCursor.start())) == []
    # ... while the opened pool answers them.
    assert store.message_receipt(OTHER_POOL, "key.msg.1") == receipt("msg.1")
    assert store.wake(OTHER_POOL, "wake.1") is not None
    assert store.members(OTHER_POOL) == (member("run.a", topics=("topic.a",)),)
    assert store.topic_members(OTHER_POOL, "topic.a") == store.members(OTHER_POOL)


# ------------------------------------------------------------------------- members


def test_leave_member_of_a_non_member_is_an_error_and_writes_nothing(stores: StoreCase, store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a"))
    store.leave_member(POOL, "run.a")

    for run_id in ("run.never", "run.a"):  # never joined; joined and already left
        with pytest.raises(AgentError) as raised:
            store.leave_member(POOL, run_id)
        assert_error(
            raised.value,
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.NOT_RETRYABLE,
            NOT_A_MEMBER,
            pool_id=POOL,
            run_id=run_id,
        )
    if stores.sqlite:
        assert wire.encode(raised.value) == rust_error_json("sqlite_leave_member_not_member")
        assert stores.raw_counts() == (3, 0)
    assert cursors(store) == [1, 2, 3]
    assert store.snapshot(POOL).cursor == AgentPoolStoreCursor(sequence=3)


def test_leave_member_returns_the_current_member_and_the_cursor(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a", "agent.old", ("topic.old",)))
    store.join_member(POOL, member("run.b"))
    current = member("run.a", "agent.new", ("topic.new",))
    store.join_member(POOL, current)  # a re-join replaces the member

    left, cursor = store.leave_member(POOL, "run.a")

    assert left == current
    assert cursor == AgentPoolStoreCursor(sequence=5)
    records = list(store.watch(POOL, 4))
    assert [(r.cursor.sequence, r.payload) for r in records] == [(5, MemberLeft(member=current))]
    snapshot = store.snapshot(POOL)
    assert snapshot.members == (member("run.b"),)
    assert snapshot.topics == ()
    # A member who left may join again.
    assert store.join_member(POOL, member("run.a")).sequence == 6
    assert [m.run_id for m in store.snapshot(POOL).members] == ["run.a", "run.b"]


def test_record_pool_created_appends_on_every_call_and_sets_created(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    assert store.snapshot(POOL).created is False

    assert store.record_pool_created(POOL) == AgentPoolStoreCursor(sequence=2)
    assert store.snapshot(POOL).created is True
    assert store.record_pool_created(POOL) == AgentPoolStoreCursor(sequence=3)
    assert store.snapshot(POOL).created is True
    assert [(r.cursor.sequence, r.payload) for r in store.watch(POOL)][1:] == [(2, PoolCreated()), (3, PoolCreated())]
    assert store.open_pool(POOL, CONFIG).created is True


# ------------------------------------------------------------------------- messages and wakes


def test_record_message_latest_transition_wins_by_id_and_by_key(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    first = message("msg.1", key="key.shared")
    accepted = receipt("msg.1", MessageStatus.ACCEPTED, ("run.b",))
    delivered = receipt("msg.1", MessageStatus.DELIVERED, ("run.b",))

    assert store.message_receipt(POOL, "key.shared") is None
    assert store.record_message(POOL, first, accepted).sequence == 2
    assert store.message_receipt(POOL, "key.shared") == accepted
    assert store.record_message(POOL, first, delivered).sequence == 3
    assert store.message_receipt(POOL, "key.shared") == delivered
    assert store.snapshot(POOL).messages == (AgentPoolStoredMessage(message=first, receipt=delivered),)

    # Another message under the same key: both kept by id, the key maps to the latest.
    second = message("msg.2", key="key.shared")
    failed = receipt("msg.2", MessageStatus.FAILED)
    assert store.record_message(POOL, second, failed).sequence == 4
    assert store.message_receipt(POOL, "key.shared") == failed
    assert store.snapshot(POOL).messages == (
        AgentPoolStoredMessage(message=first, receipt=delivered),
        AgentPoolStoredMessage(message=second, receipt=failed),
    )

    # Never rejected: an older status and an exact repeat are recorded too (dedupe is the caller's).
    assert store.record_message(POOL, first, accepted).sequence == 5
    assert store.record_message(POOL, first, accepted).sequence == 6
    assert store.message_receipt(POOL, "key.shared") == accepted
    assert store.snapshot(POOL).messages[0].receipt == accepted
    assert [type(r.payload) for r in store.watch(POOL, 1)] == [MessageRecorded] * 5
    assert list(store.watch(POOL, 5))[0].payload == MessageRecorded(
        stored=AgentPoolStoredMessage(message=first, receipt=accepted)
    )
    assert store.message_receipt(POOL, "key.unknown") is None


def test_record_wake_latest_transition_wins_by_id_and_by_key(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    registered = wake_args("wake.1", WakeRegistrationStatus.REGISTERED, key="wake-key.shared")
    triggered = wake_args("wake.1", WakeRegistrationStatus.TRIGGERED, key="wake-key.shared")

    assert store.wake(POOL, "wake.1") is None
    assert store.wake_registration(POOL, "wake-key.shared") is None
    assert store.record_wake(POOL, *registered).sequence == 2
    assert store.wake(POOL, "wake.1") == AgentPoolStoredWake(
        condition=registered[0], compiled_filter=registered[1], registration=registered[2]
    )
    assert store.wake_registration(POOL, "wake-key.shared") == registered[2]
    assert store.record_wake(POOL, *triggered).sequence == 3
    assert store.wake(POOL, "wake.1").registration.status == WakeRegistrationStatus.TRIGGERED
    assert store.wake_registration(POOL, "wake-key.shared") == triggered[2]

    other = wake_args("wake.2", WakeRegistrationStatus.CANCELLED, key="wake-key.shared")
    assert store.record_wake(POOL, *other).sequence == 4
    assert store.wake_registration(POOL, "wake-key.shared") == other[2]
    assert store.wake(POOL, "wake.1").registration == triggered[2]
    assert [w.condition.condition_id for w in store.snapshot(POOL).wakes] == ["wake.1", "wake.2"]

    # Never rejected: going back to registered, twice.
    assert store.record_wake(POOL, *registered).sequence == 5
    assert store.record_wake(POOL, *registered).sequence == 6
    assert store.wake(POOL, "wake.1").registration.status == WakeRegistrationStatus.REGISTERED
    assert store.wake_registration(POOL, "wake-key.shared") == registered[2]
    assert [type(r.payload) for r in store.watch(POOL, 1)] == [WakeRecorded] * 5
    assert store.wake(POOL, "wake.unknown") is None


# ------------------------------------------------------------------------- idempotent writes

REUSED = "idempotency_key: 'key.shared' is already recorded for"


def test_record_message_once_appends_a_new_key_and_returns_the_receipt_in_effect_for_a_known_one(
    stores: StoreCase, store: Any
) -> None:
    store.open_pool(POOL, CONFIG)
    first = message("msg.1", key="key.shared")
    accepted = receipt("msg.1", MessageStatus.ACCEPTED, ("run.b",))
    delivered = receipt("msg.1", MessageStatus.DELIVERED, ("run.b",))

    assert store.record_message_once(POOL, first, accepted) == (accepted, AgentPoolStoreCursor(sequence=2))
    # The same message again (a retried send, even with another status): nothing appended.
    assert store.record_message_once(POOL, first, accepted) == (accepted, None)
    assert store.record_message_once(POOL, first, delivered) == (accepted, None)
    assert cursors(store) == [1, 2]
    # The receipt in effect is the latest recorded under the key, by any write.
    store.record_message(POOL, first, delivered)
    assert store.record_message_once(POOL, first, accepted) == (delivered, None)
    # Another key appends, at the next cursor.
    second = message("msg.2")
    assert store.record_message_once(POOL, second, receipt("msg.2")) == (receipt("msg.2"), AgentPoolStoreCursor.new(4))

    assert cursors(store) == [1, 2, 3, 4]
    assert [r.payload for r in store.watch(POOL, 1)] == [
        MessageRecorded(stored=AgentPoolStoredMessage(message=first, receipt=accepted)),
        MessageRecorded(stored=AgentPoolStoredMessage(message=first, receipt=delivered)),
        MessageRecorded(stored=AgentPoolStoredMessage(message=second, receipt=receipt("msg.2"))),
    ]
    assert store.message_receipt(POOL, "key.shared") == delivered
    if stores.sqlite:
        assert stores.raw_counts() == (4, 0)


def test_record_wake_once_appends_a_new_key_and_returns_the_registration_in_effect_for_a_known_one(
    stores: StoreCase, store: Any
) -> None:
    store.open_pool(POOL, CONFIG)
    registered = wake_args("wake.1", WakeRegistrationStatus.REGISTERED, key="wake-key.shared")
    triggered = wake_args("wake.1", WakeRegistrationStatus.TRIGGERED, key="wake-key.shared")

    assert store.record_wake_once(POOL, *registered) == (registered[2], AgentPoolStoreCursor(sequence=2))
    assert store.record_wake_once(POOL, *registered) == (registered[2], None)
    assert store.record_wake_once(POOL, *triggered) == (registered[2], None)
    store.record_wake(POOL, *triggered)
    assert store.record_wake_once(POOL, *registered) == (triggered[2], None)
    other = wake_args("wake.2")
    assert store.record_wake_once(POOL, *other) == (other[2], AgentPoolStoreCursor(sequence=4))

    assert cursors(store) == [1, 2, 3, 4]
    assert store.wake(POOL, "wake.1") == AgentPoolStoredWake(
        condition=triggered[0], compiled_filter=triggered[1], registration=triggered[2]
    )
    assert store.wake_registration(POOL, "wake-key.shared") == triggered[2]
    if stores.sqlite:
        assert stores.raw_counts() == (4, 0)


def test_a_key_reused_for_another_message_or_condition_is_invalid_input_and_writes_nothing(
    stores: StoreCase, store: Any
) -> None:
    store.open_pool(POOL, CONFIG)
    store.record_message_once(POOL, message("msg.1", key="key.shared"), receipt("msg.1"))
    store.record_wake_once(POOL, *wake_args("wake.1", key="key.shared"))  # the maps are separate

    with pytest.raises(InvalidInput) as raised:
        store.record_message_once(POOL, message("msg.2", key="key.shared"), receipt("msg.2"))
    assert raised.value.message == (
        "message.idempotency_key: 'key.shared' is already recorded for message_id 'msg.1'; "
        "this message has message_id 'msg.2'"
    )
    with pytest.raises(InvalidInput) as raised:
        store.record_wake_once(POOL, *wake_args("wake.2", key="key.shared"))
    assert raised.value.message == (
        "condition.idempotency_key: 'key.shared' is already recorded for condition_id 'wake.1'; "
        "this condition has condition_id 'wake.2'"
    )
    # A receipt (registration) of another message (condition) than the one given.
    with pytest.raises(InvalidInput) as raised:
        store.record_message_once(POOL, message("msg.3"), receipt("msg.4"))
    assert raised.value.message == "receipt.message_id: 'msg.4' differs from message.message_id 'msg.3'"
    condition, compiled, registration = wake_args("wake.3")
    with pytest.raises(InvalidInput) as raised:
        store.record_wake_once(POOL, condition, compiled, registration.replace(condition_id="wake.4"))
    assert raised.value.message == "registration.condition_id: 'wake.4' differs from condition.condition_id 'wake.3'"

    assert cursors(store) == [1, 2, 3]
    assert store.message_receipt(POOL, "key.shared") == receipt("msg.1")
    assert store.message_receipt(POOL, "key.msg.3") is None
    assert store.wake(POOL, "wake.3") is None
    if stores.sqlite:
        assert stores.raw_counts() == (3, 0)


def test_record_once_inside_a_transaction_sees_the_transactions_own_writes(tmp_path: Path) -> None:
    with SqliteAgentPoolStore(tmp_path / "pools.sqlite") as store:
        store.open_pool(POOL, CONFIG)
        with store.transaction():
            assert store.record_message_once(POOL, message("msg.1"), receipt("msg.1"))[1] == AgentPoolStoreCursor.new(2)
            assert store.record_message_once(POOL, message("msg.1"), receipt("msg.1")) == (receipt("msg.1"), None)
        assert cursors(store) == [1, 2]


# ------------------------------------------------------------------------- routing lookups


def assert_lookups_match_the_snapshot(store: Any, pool_id: str = POOL) -> None:
    """Every lookup (called before the snapshot, so that it is the one catching up) equals
    the snapshot's fields."""
    members, topics = store.members(pool_id), store.topics(pool_id)
    by_topic = {topic: store.topic_members(pool_id, topic) for topic in (*topics, "topic.none")}
    by_run = {run_id: store.member(pool_id, run_id) for run_id in ("run.a", "run.b", "run.c", "run.none")}
    snapshot = store.snapshot(pool_id)
    assert (members, topics) == (snapshot.members, snapshot.topics)
    assert type(members) is tuple and type(topics) is tuple
    for topic, found in by_topic.items():
        assert type(found) is tuple
        assert found == tuple(m for m in snapshot.members if topic in m.topics)
    current = {m.run_id: m for m in snapshot.members}
    assert by_run == {run_id: current.get(run_id) for run_id in by_run}


def test_lookups_equal_the_snapshot_after_every_write(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    assert_lookups_match_the_snapshot(store)
    writes = [
        lambda: store.join_member(POOL, member("run.b", topics=("topic.z", "topic.a", "topic.z"))),
        lambda: store.join_member(POOL, member("run.a", topics=("topic.a",))),
        lambda: store.record_message(POOL, message("msg.1"), receipt("msg.1")),
        lambda: store.join_member(POOL, member("run.c", topics=("Topic.B", "topic.z"))),
        lambda: store.join_member(POOL, member("run.b", "agent.second", topics=("topic.new",))),  # re-join
        lambda: store.record_wake(POOL, *wake_args("wake.1")),
        lambda: store.leave_member(POOL, "run.a"),
        lambda: store.record_pool_created(POOL),
        lambda: store.leave_member(POOL, "run.c"),
        lambda: store.leave_member(POOL, "run.b"),
        lambda: store.join_member(POOL, member("run.a", topics=("topic.a", "topic.b"))),
    ]
    for write in writes:
        write()
        assert_lookups_match_the_snapshot(store)
    assert store.members(POOL) == (member("run.a", topics=("topic.a", "topic.b")),)
    assert store.topic_members(POOL, "topic.b") == store.members(POOL)


def test_lookups_sort_by_run_id_and_deduplicate(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    for run_id in ("run.é", "run.b", "run.10", "run.Z", "run.9"):
        store.join_member(POOL, member(run_id, topics=("topic.t", "topic.t")))

    assert [m.run_id for m in store.members(POOL)] == ["run.10", "run.9", "run.Z", "run.b", "run.é"]
    assert store.topics(POOL) == ("topic.t",)
    assert store.topic_members(POOL, "topic.t") == store.members(POOL)  # each member once
    assert store.member(POOL, "run.é") == member("run.é", topics=("topic.t", "topic.t"))


# ------------------------------------------------------------------------- snapshot


def test_snapshot_members_one_per_run_sorted_with_last_join_winning(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    # Python str order (= Rust's byte order): uppercase < digits-in-place < lowercase < non-ASCII.
    for run_id in ("run.é", "run.b", "run.10", "run.Z", "run.9", "run.a"):
        store.join_member(POOL, member(run_id, f"agent.{run_id}"))
    store.join_member(POOL, member("run.b", "agent.second"))
    store.join_member(POOL, member("run.b", "agent.third"))

    snapshot = store.snapshot(POOL)

    assert [m.run_id for m in snapshot.members] == ["run.10", "run.9", "run.Z", "run.a", "run.b", "run.é"]
    assert [m.run_id for m in snapshot.members] == sorted(m.run_id for m in snapshot.members)
    assert snapshot.members[4] == member("run.b", "agent.third")
    assert snapshot.cursor == AgentPoolStoreCursor(sequence=9)


def test_snapshot_topics_are_the_sorted_union_of_current_members_topics(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a", topics=("topic.z", "topic.a", "topic.z")))
    store.join_member(POOL, member("run.b", topics=("topic.m", "topic.a")))
    assert store.snapshot(POOL).topics == ("topic.a", "topic.m", "topic.z")

    store.leave_member(POOL, "run.a")  # takes topic.z away; topic.a stays with run.b
    assert store.snapshot(POOL).topics == ("topic.a", "topic.m")

    store.join_member(POOL, member("run.b", topics=("topic.new",)))  # a re-join replaces the topics
    assert store.snapshot(POOL).topics == ("topic.new",)

    store.join_member(POOL, member("run.c", topics=("Topic.B", "topic.new")))
    assert store.snapshot(POOL).topics == ("Topic.B", "topic.new")

    store.leave_member(POOL, "run.b")
    store.leave_member(POOL, "run.c")
    assert store.snapshot(POOL).topics == ()


def test_snapshot_messages_and_wakes_sorted_by_id(store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    for message_id in ("msg.c", "msg.B", "msg.a", "msg.10", "msg.2"):
        store.record_message(POOL, message(message_id), receipt(message_id))
    for condition_id in ("wake.z", "wake.A", "wake.é", "wake.1"):
        store.record_wake(POOL, *wake_args(condition_id))
    store.record_message(POOL, message("msg.a"), receipt("msg.a", MessageStatus.DELIVERED, ("run.b",)))

    snapshot = store.snapshot(POOL)

    assert [m.message.message_id for m in snapshot.messages] == ["msg.10", "msg.2", "msg.B", "msg.a", "msg.c"]
    assert snapshot.messages[3].receipt.status == MessageStatus.DELIVERED
    assert [w.condition.condition_id for w in snapshot.wakes] == ["wake.1", "wake.A", "wake.z", "wake.é"]


def test_snapshot_uses_tuples_everywhere(store: Any) -> None:
    store.open_pool(POOL, OTHER_CONFIG)
    store.join_member(POOL, member("run.a", topics=("topic.a",)))
    store.record_message(POOL, message("msg.1"), receipt("msg.1", MessageStatus.DELIVERED, ("run.b",)))
    store.record_wake(POOL, *wake_args("wake.1"))

    snapshot = store.snapshot(POOL)

    for value in (
        snapshot.members,
        snapshot.topics,
        snapshot.policy_refs,
        snapshot.members[0].topics,
        snapshot.members[0].policy_refs,
        snapshot.message_policy.required_policy_refs,
        snapshot.messages[0].receipt.delivered_to,
        snapshot.wakes[0].compiled_filter.indexed_fields,
        snapshot.wakes[0].condition.filter.run_ids,
    ):
        assert type(value) is tuple
    # The two that grow with the pool share structure between snapshots (ChunkedTuple).
    assert type(snapshot.messages) is ChunkedTuple and type(snapshot.wakes) is ChunkedTuple
    assert snapshot.policy_refs == OTHER_CONFIG.policy_refs
    assert snapshot.message_policy == OTHER_CONFIG.message_policy
    assert snapshot.wake_policy == OTHER_CONFIG.wake_policy
    # Immutable: a snapshot handed out is not changed by later writes.
    store.join_member(POOL, member("run.b"))
    assert [m.run_id for m in snapshot.members] == ["run.a"]
    assert snapshot.cursor == AgentPoolStoreCursor(sequence=4)


# ------------------------------------------------------------------------- watch


def fill(store: Any) -> None:
    """POOL gets records 1..6, OTHER_POOL records 1..3, interleaved."""
    store.open_pool(POOL, CONFIG)
    store.open_pool(OTHER_POOL, OTHER_CONFIG)
    store.record_pool_created(POOL)
    store.join_member(OTHER_POOL, member("run.x"))
    store.join_member(POOL, member("run.a"))
    store.record_message(POOL, message("msg.1"), receipt("msg.1"))
    store.record_wake(OTHER_POOL, *wake_args("wake.x"))
    store.record_wake(POOL, *wake_args("wake.1"))
    store.leave_member(POOL, "run.a")


def test_watch_yields_the_pools_records_in_order(store: Any) -> None:
    fill(store)

    records = list(store.watch(POOL))

    assert all(type(r) is AgentPoolStoreRecord for r in records)
    assert [r.pool_id for r in records] == [POOL] * 6
    assert [r.cursor.sequence for r in records] == [1, 2, 3, 4, 5, 6]
    assert [type(r.payload) for r in records] == [
        PoolOpened,
        PoolCreated,
        MemberJoined,
        MessageRecorded,
        WakeRecorded,
        MemberLeft,
    ]
    assert records[0].payload == PoolOpened(config=CONFIG)
    assert records[5].payload == MemberLeft(member=member("run.a"))
    other = list(store.watch(OTHER_POOL))
    assert [(r.pool_id, r.cursor.sequence, type(r.payload)) for r in other] == [
        (OTHER_POOL, 1, PoolOpened),
        (OTHER_POOL, 2, MemberJoined),
        (OTHER_POOL, 3, WakeRecorded),
    ]
    assert other[0].payload == PoolOpened(config=OTHER_CONFIG)


@pytest.mark.parametrize(
    "after, expected",
    [
        (None, [1, 2, 3, 4, 5, 6]),
        (0, [1, 2, 3, 4, 5, 6]),
        (AgentPoolStoreCursor.start(), [1, 2, 3, 4, 5, 6]),
        (3, [4, 5, 6]),
        (AgentPoolStoreCursor.new(3), [4, 5, 6]),
        (5, [6]),
        (6, []),
        (AgentPoolStoreCursor.new(6), []),
        (100, []),
    ],
    ids=["None", "0", "cursor_start", "3", "cursor_3", "5", "6_last", "cursor_6", "beyond"],
)
def test_watch_yields_records_after_the_cursor(store: Any, after: Any, expected: list[int]) -> None:
    fill(store)
    assert cursors(store, POOL, after) == expected


def test_watch_default_cursor_is_none(store: Any) -> None:
    fill(store)
    assert list(store.watch(POOL)) == list(store.watch(POOL, None)) == list(store.watch(POOL, 0))


def test_a_finished_watch_does_not_see_later_records(store: Any) -> None:
    fill(store)
    iterator = iter(store.watch(POOL, 4))
    assert [r.cursor.sequence for r in iterator] == [5, 6]

    store.record_pool_created(POOL)

    assert next(iterator, None) is None
    assert cursors(store, POOL, 4) == [5, 6, 7]  # a new watch does


# ------------------------------------------------------------------------- event sequences


def test_next_event_sequence_counts_per_pool_independent_of_cursors(stores: StoreCase, store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    store.open_pool(OTHER_POOL, CONFIG)

    assert [store.next_event_sequence(POOL) for _ in range(3)] == [1, 2, 3]
    store.join_member(POOL, member("run.a"))
    store.record_pool_created(POOL)
    assert store.next_event_sequence(POOL) == 4
    assert store.next_event_sequence(OTHER_POOL) == 1
    assert store.next_event_sequence(POOL) == 5
    assert store.next_event_sequence(OTHER_POOL) == 2

    # Allocating an event sequence appends no record.
    assert store.snapshot(POOL).cursor == AgentPoolStoreCursor(sequence=3)
    assert cursors(store) == [1, 2, 3]
    assert cursors(store, OTHER_POOL) == [1]
    if stores.durable:
        assert stores.raw_counts() == (4, 2)


# ------------------------------------------------------------------------- bad input

# Invalid ids and the rule text the error must contain.
INVALID_IDS = [
    ("", "identifier is empty"),
    ("\x00", "identifier contains control character at byte 0"),
    ("pool.\nx", "identifier contains control character at byte 5"),
    ("é\x85", "identifier contains control character at byte 2"),  # C1, after a 2-byte character
    ("p" * 513, "identifier length 513 exceeds max 512"),
    ("é" * 257, "identifier length 514 exceeds max 512"),
]
# Values of the wrong type for an id argument.
WRONG_TYPE_IDS = [5, None, b"pool.contract", ["pool.contract"], 1.5]


def _all_calls(pool_id: Any) -> dict[str, Any]:
    return {
        "open_pool": lambda s: s.open_pool(pool_id, CONFIG),
        "snapshot": lambda s: s.snapshot(pool_id),
        "record_pool_created": lambda s: s.record_pool_created(pool_id),
        "join_member": lambda s: s.join_member(pool_id, member("run.z")),
        "leave_member": lambda s: s.leave_member(pool_id, "run.a"),
        "message_receipt": lambda s: s.message_receipt(pool_id, "key.msg.1"),
        "record_message": lambda s: s.record_message(pool_id, message("msg.z"), receipt("msg.z")),
        "wake_registration": lambda s: s.wake_registration(pool_id, "wake-key.wake.1"),
        "wake": lambda s: s.wake(pool_id, "wake.1"),
        "record_wake": lambda s: s.record_wake(pool_id, *wake_args("wake.z")),
        "watch": lambda s: s.watch(pool_id),
        "next_event_sequence": lambda s: s.next_event_sequence(pool_id),
        "record_message_once": lambda s: s.record_message_once(pool_id, message("msg.z"), receipt("msg.z")),
        "record_wake_once": lambda s: s.record_wake_once(pool_id, *wake_args("wake.z")),
        "members": lambda s: s.members(pool_id),
        "member": lambda s: s.member(pool_id, "run.a"),
        "topics": lambda s: s.topics(pool_id),
        "topic_members": lambda s: s.topic_members(pool_id, "topic.a"),
    }


METHODS = list(_all_calls(POOL))


class BadInputChecker:
    """Fills POOL with one of everything (records 1..5), then checks that each bad call raises
    ``InvalidInput`` naming the argument and that nothing at all was written."""

    def __init__(self, stores: StoreCase) -> None:
        self.stores = stores
        store = self.store = stores.store
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, member("run.a"))
        store.record_message(POOL, message("msg.1"), receipt("msg.1"))
        store.record_wake(POOL, *wake_args("wake.1"))
        store.record_pool_created(POOL)
        self.snapshot = store.snapshot(POOL)
        self.counts = stores.raw_counts()

    def check(self, call: Any, argument: str, rule: str | None = None) -> None:
        with pytest.raises(InvalidInput) as raised:
            result = call(self.store)
            list(result)  # a lazy iterator would only fail here, which is too late
        error = raised.value
        assert isinstance(error, AgentError) and isinstance(error, ValueError)
        assert (error.kind, error.retry) == (AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.NOT_RETRYABLE)
        assert argument in error.message, f"{error.message!r} does not name {argument!r}"
        if rule is not None:
            assert rule in error.message, f"{error.message!r} does not state {rule!r}"
        assert self.store.snapshot(POOL) == self.snapshot
        assert cursors(self.store) == [1, 2, 3, 4, 5]
        assert self.stores.raw_counts() == self.counts

    def finish(self) -> None:
        """No event sequence was allocated and no other pool appeared."""
        assert self.store.next_event_sequence(POOL) == 1
        if self.stores.durable:
            assert self.stores.raw_counts() == (5, 1)


@pytest.mark.parametrize("method", METHODS)
def test_invalid_or_wrong_type_pool_id_is_invalid_input(stores: StoreCase, method: str) -> None:
    checker = BadInputChecker(stores)
    for value, rule in INVALID_IDS:
        checker.check(_all_calls(value)[method], "pool_id", rule)
    for value in WRONG_TYPE_IDS:
        checker.check(_all_calls(value)[method], "pool_id")
    checker.finish()


WRONG_ARGUMENTS: dict[str, list[tuple[Any, str]]] = {
    # method: [(call, the argument the message must name), ...]
    "open_pool": [
        (lambda s: s.open_pool(POOL, {"message_policy": {}}), "config"),
        (lambda s: s.open_pool(POOL, None), "config"),
        (lambda s: s.open_pool(POOL, member("run.a")), "config"),
    ],
    "join_member": [
        (lambda s: s.join_member(POOL, {"run_id": "run.z", "agent_id": "agent.z"}), "member"),
        (lambda s: s.join_member(POOL, None), "member"),
        (lambda s: s.join_member(POOL, "run.z"), "member"),
    ],
    "leave_member": [
        (lambda s: s.leave_member(POOL, 7), "run_id"),
        (lambda s: s.leave_member(POOL, None), "run_id"),
        (lambda s: s.leave_member(POOL, member("run.a")), "run_id"),
    ],
    "message_receipt": [
        (lambda s: s.message_receipt(POOL, 1), "idempotency_key"),
        (lambda s: s.message_receipt(POOL, None), "idempotency_key"),
    ],
    "record_message": [
        (lambda s: s.record_message(POOL, wire.loads(wire.encode(message("msg.z"))), receipt("msg.z")), "message"),
        (lambda s: s.record_message(POOL, None, receipt("msg.z")), "message"),
        (lambda s: s.record_message(POOL, receipt("msg.z"), message("msg.z")), "message"),
        (lambda s: s.record_message(POOL, message("msg.z"), "accepted"), "receipt"),
        (lambda s: s.record_message(POOL, message("msg.z"), None), "receipt"),
        (lambda s: s.record_message(POOL, message("msg.z"), wire.loads(wire.encode(receipt("msg.z")))), "receipt"),
    ],
    "wake_registration": [
        (lambda s: s.wake_registration(POOL, 3), "idempotency_key"),
        (lambda s: s.wake_registration(POOL, None), "idempotency_key"),
    ],
    "wake": [
        (lambda s: s.wake(POOL, None), "condition_id"),
        (lambda s: s.wake(POOL, b"wake.1"), "condition_id"),
    ],
    "record_wake": [
        (
            lambda s: s.record_wake(POOL, wire.loads(wire.encode(wake_args("wake.z")[0])), *wake_args("wake.z")[1:]),
            "condition",
        ),
        (lambda s: s.record_wake(POOL, None, *wake_args("wake.z")[1:]), "condition"),
        (
            lambda s: s.record_wake(POOL, wake_args("wake.z")[0], EventFilter(), wake_args("wake.z")[2]),
            "compiled_filter",
        ),
        (lambda s: s.record_wake(POOL, wake_args("wake.z")[0], None, wake_args("wake.z")[2]), "compiled_filter"),
        (lambda s: s.record_wake(POOL, *wake_args("wake.z")[:2], "registered"), "registration"),
        (lambda s: s.record_wake(POOL, *wake_args("wake.z")[:2], None), "registration"),
    ],
    "record_message_once": [
        (lambda s: s.record_message_once(POOL, None, receipt("msg.z")), "message"),
        (lambda s: s.record_message_once(POOL, receipt("msg.z"), message("msg.z")), "message"),
        (lambda s: s.record_message_once(POOL, message("msg.z"), None), "receipt"),
        (lambda s: s.record_message_once(POOL, message("msg.z"), receipt("msg.y")), "receipt.message_id"),
        (lambda s: s.record_message_once(POOL, message("msg.z", key="key.msg.1"), receipt("msg.z")), "key.msg.1"),
    ],
    "record_wake_once": [
        (lambda s: s.record_wake_once(POOL, None, *wake_args("wake.z")[1:]), "condition"),
        (lambda s: s.record_wake_once(POOL, wake_args("wake.z")[0], None, wake_args("wake.z")[2]), "compiled_filter"),
        (lambda s: s.record_wake_once(POOL, *wake_args("wake.z")[:2], None), "registration"),
        (lambda s: s.record_wake_once(POOL, *wake_args("wake.z")[:2], wake_args("wake.y")[2]), "registration"),
        (lambda s: s.record_wake_once(POOL, *wake_args("wake.z", key="wake-key.wake.1")), "wake-key.wake.1"),
    ],
    "member": [(lambda s: s.member(POOL, None), "run_id"), (lambda s: s.member(POOL, 5), "run_id")],
    "topic_members": [
        (lambda s: s.topic_members(POOL, None), "topic"),
        (lambda s: s.topic_members(POOL, ("topic.a",)), "topic"),
    ],
    "watch": [
        (lambda s: s.watch(POOL, -1), "cursor"),
        (lambda s: s.watch(POOL, "3"), "cursor"),
        (lambda s: s.watch(POOL, 1.0), "cursor"),
        (lambda s: s.watch(POOL, True), "cursor"),
        (lambda s: s.watch(POOL, {"sequence": 1}), "cursor"),
    ],
}


@pytest.mark.parametrize("method", list(WRONG_ARGUMENTS))
def test_wrong_argument_type_is_invalid_input_naming_it(stores: StoreCase, method: str) -> None:
    checker = BadInputChecker(stores)
    for call, argument in WRONG_ARGUMENTS[method]:
        checker.check(call, argument)
    checker.finish()


ID_ARGUMENTS = {
    "leave_member": (lambda s, v: s.leave_member(POOL, v), "run_id"),
    "message_receipt": (lambda s, v: s.message_receipt(POOL, v), "idempotency_key"),
    "wake_registration": (lambda s, v: s.wake_registration(POOL, v), "idempotency_key"),
    "wake": (lambda s, v: s.wake(POOL, v), "condition_id"),
    "member": (lambda s, v: s.member(POOL, v), "run_id"),
    "topic_members": (lambda s, v: s.topic_members(POOL, v), "topic"),
}


@pytest.mark.parametrize("method", list(ID_ARGUMENTS))
def test_invalid_id_argument_is_invalid_input_naming_it(stores: StoreCase, method: str) -> None:
    call, argument = ID_ARGUMENTS[method]
    checker = BadInputChecker(stores)
    for value, rule in INVALID_IDS:
        checker.check(lambda s: call(s, value), argument, rule)  # noqa: B023 - called at once
    checker.finish()


def test_valid_unusual_ids_are_accepted(store: Any) -> None:
    prefix = 'pool ☃ "quoted" \\ \u00a0\u2028\u200b\ufeff '  # no character of category Cc
    pool_id = prefix + "x" * (512 - len(prefix.encode("utf-8")))  # exactly the 512-byte limit
    assert len(pool_id.encode("utf-8")) == 512
    store.open_pool(pool_id, CONFIG)
    store.join_member(pool_id, member("run 🙂"))
    assert store.snapshot(pool_id).members == (member("run 🙂"),)
    assert store.leave_member(pool_id, "run 🙂")[1].sequence == 3
    assert cursors(store, pool_id) == [1, 2, 3]


# ------------------------------------------------------------------------- deleting


def test_delete_pool_removes_it_and_it_reads_as_never_opened(stores: StoreCase, store: Any) -> None:
    store.open_pool(POOL, CONFIG)
    store.join_member(POOL, member("run.a", topics=("topic.a",)))
    store.record_message(POOL, message("msg.1"), receipt("msg.1"))
    assert store.next_event_sequence(POOL) == 1
    store.open_pool(OTHER_POOL, CONFIG)
    # Warm every cache of the reading side, so that the deletion has something to invalidate.
    assert store.message_receipt(POOL, "key.msg.1") == receipt("msg.1")
    assert len(cursors(store)) == 3 and store.snapshot(POOL).cursor.sequence == 3

    assert store.delete_pool(POOL) == (3, 3, 1)

    with pytest.raises(AgentError) as raised:
        store.snapshot(POOL)
    assert raised.value.pool_id == POOL and raised.value.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED
    with pytest.raises(AgentError):
        store.join_member(POOL, member("run.b"))
    assert store.message_receipt(POOL, "key.msg.1") is None
    assert (store.members(POOL), store.member(POOL, "run.a"), store.topics(POOL)) == ((), None, ())
    assert cursors(store) == []
    assert store.delete_pool(POOL) == (0, 0, None)  # again: nothing there, not an error
    # Opened again, it starts afresh: cursor 1, event sequence 1; the other pool is untouched.
    assert store.open_pool(POOL, OTHER_CONFIG).cursor.sequence == 1
    assert store.join_member(POOL, member("run.b")).sequence == 2
    assert [m.run_id for m in store.members(POOL)] == ["run.b"]
    assert store.next_event_sequence(POOL) == 1
    assert cursors(store, OTHER_POOL) == [1]
    if stores.durable:
        assert stores.raw_counts() == (3, 1)
