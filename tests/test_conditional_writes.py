"""The conditional writes ``AgentPool`` builds on: ``record_pool_created_once`` and ``expected=``.

``record_message_once(..., expected=r)`` appends only while ``r`` is the receipt in effect under
the key; ``record_wake_once(..., expected=r)`` only while ``r`` is the wake's stored registration;
``record_pool_created_once`` only while the pool is not created. Each check runs in the write
transaction, so a second store object holding an older view cannot win: tested on every store,
and with two store objects on one file (and one PostgreSQL schema).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from store_helpers import CONFIG, PgTarget, make_case, message, receipt, wake_args

from fastpool import (
    AgentError,
    AgentErrorKind,
    InvalidInput,
    MessageStatus,
    SqliteAgentPoolStore,
    WakeRegistrationStatus,
)

POOL = "pool.conditional"
KINDS = ("memory", "file", "postgres", "postgres_notified")


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    pg = None
    if request.param.startswith("postgres"):
        pg = PgTarget(request.getfixturevalue("pg_server").conninfo, request.getfixturevalue("pg_schema"))
    case = make_case(request.param, tmp_path, pg)
    case.store.open_pool(POOL, CONFIG)
    yield case.store
    case.close()


def kinds(store: Any) -> Counter[str]:
    return Counter(record.payload.TYPE for record in store.watch(POOL))


def test_pool_created_once(store: Any) -> None:
    first = store.record_pool_created_once(POOL)
    assert first is not None and first.sequence == 2
    assert store.record_pool_created_once(POOL) is None
    assert store.snapshot(POOL).created
    assert kinds(store)["pool_created"] == 1
    store.record_pool_created(POOL)  # the unconditional write still appends
    assert kinds(store)["pool_created"] == 2


def test_pool_created_once_on_a_pool_not_opened(store: Any) -> None:
    with pytest.raises(AgentError) as caught:
        store.record_pool_created_once("pool.never")
    assert caught.value.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED
    with pytest.raises(InvalidInput, match="pool_id"):
        store.record_pool_created_once("")


def test_message_compare_and_append(store: Any) -> None:
    sent = message("m.1")
    accepted, cursor = store.record_message_once(POOL, sent, receipt("m.1"))
    assert cursor is not None
    delivered = receipt("m.1", MessageStatus.DELIVERED, ("run.b",))
    assert store.record_message_once(POOL, sent, delivered, expected=accepted)[1] is not None
    # accepted is no longer in effect: the second delivery is refused, the one in effect returned
    assert store.record_message_once(POOL, sent, delivered, expected=accepted) == (delivered, None)
    assert store.message_receipt(POOL, "key.m.1") == delivered
    assert kinds(store)["run_message"] == 2


def test_message_compare_and_append_answers_another_message_without_raising(store: Any) -> None:
    store.record_message(POOL, message("m.other", key="key.shared"), receipt("m.other"))
    stale = receipt("m.1")
    found, cursor = store.record_message_once(POOL, message("m.1", key="key.shared"), receipt("m.1"), expected=stale)
    assert (found, cursor) == (receipt("m.other"), None)
    # without expected, a key recorded for another message id stays an error
    with pytest.raises(InvalidInput, match="already recorded for message_id 'm.other'"):
        store.record_message_once(POOL, message("m.1", key="key.shared"), receipt("m.1"))


def test_message_expected_needs_a_recorded_key(store: Any) -> None:
    with pytest.raises(InvalidInput, match="expected: no receipt is recorded"):
        store.record_message_once(POOL, message("m.1"), receipt("m.1"), expected=receipt("m.1"))
    with pytest.raises(InvalidInput, match="expected: expected MessageReceipt"):
        store.record_message_once(POOL, message("m.1"), receipt("m.1"), expected="accepted")
    assert kinds(store)["run_message"] == 0


def test_wake_compare_and_append_on_the_stored_status(store: Any) -> None:
    cond, compiled, registered = wake_args("w.1")
    store.record_wake_once(POOL, cond, compiled, registered)
    cancelled = registered.replace(status=WakeRegistrationStatus.CANCELLED)
    triggered = registered.replace(status=WakeRegistrationStatus.TRIGGERED)
    assert store.record_wake_once(POOL, cond, compiled, cancelled, expected=registered)[1] is not None
    # the trigger read the wake as registered; the cancel came first: no trigger after it
    assert store.record_wake_once(POOL, cond, compiled, triggered, expected=registered) == (cancelled, None)
    assert store.wake(POOL, "w.1").registration == cancelled
    assert kinds(store)["wake"] == 2


def test_wake_expected_is_by_condition_not_by_key(store: Any) -> None:
    # Re-registered under a new key, the wake's stored registration is the new one.
    cond, compiled, first = wake_args("w.1", key="key.old")
    store.record_wake_once(POOL, cond, compiled, first)
    renewed, _, second = wake_args("w.1", key="key.new")
    second = second.replace(journal_cursor="journal.9")
    store.record_wake_once(POOL, renewed, compiled, second)
    triggered = first.replace(status=WakeRegistrationStatus.TRIGGERED)
    assert store.record_wake_once(POOL, cond, compiled, triggered, expected=first) == (second, None)


def test_wake_expected_needs_a_stored_wake(store: Any) -> None:
    cond, compiled, registered = wake_args("w.1")
    with pytest.raises(InvalidInput, match="expected: condition 'w.1' has no stored wake"):
        store.record_wake_once(POOL, cond, compiled, registered, expected=registered)


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_a_second_store_object_cannot_win_with_an_older_view(kind: str, tmp_path: Path, request: Any) -> None:
    if kind == "file":
        path = tmp_path / "two.sqlite"
        first, second = SqliteAgentPoolStore(path), SqliteAgentPoolStore(path)
        closers = [first.close, second.close]
    else:
        target = PgTarget(request.getfixturevalue("pg_server").conninfo, request.getfixturevalue("pg_schema"))
        first, second = target.store(), target.store()
        closers = [first.close, second.close, target.close]
    try:
        first.open_pool(POOL, CONFIG)
        cond, compiled, registered = wake_args("w.1")
        first.record_wake_once(POOL, cond, compiled, registered)
        assert second.wake(POOL, "w.1").registration == registered  # the second object's view
        sent = message("m.1")
        accepted, _ = first.record_message_once(POOL, sent, receipt("m.1"))
        assert second.message_receipt(POOL, "key.m.1") == accepted
        assert second.record_pool_created_once(POOL) is not None
        # The first object moves everything on; the second still holds the older view.
        cancelled = registered.replace(status=WakeRegistrationStatus.CANCELLED)
        first.record_wake_once(POOL, cond, compiled, cancelled, expected=registered)
        delivered = receipt("m.1", MessageStatus.DELIVERED, ("run.b",))
        first.record_message_once(POOL, sent, delivered, expected=accepted)
        assert first.record_pool_created_once(POOL) is None
        triggered = registered.replace(status=WakeRegistrationStatus.TRIGGERED)
        assert second.record_wake_once(POOL, cond, compiled, triggered, expected=registered) == (cancelled, None)
        assert second.record_message_once(POOL, sent, delivered, expected=accepted) == (delivered, None)
        assert second.record_pool_created_once(POOL) is None
        assert [r.payload.TYPE for r in second.watch(POOL)] == [
            "pool_opened",
            "wake",
            "run_message",
            "pool_created",
            "wake",
            "run_message",
        ]
    finally:
        for close in closers:
            close()
