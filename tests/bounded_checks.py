"""What both ``bounded_state`` suites (SQLite, PostgreSQL) do the same way: other writers'
records over old keys, and the writes whose checks need keys a trimmed state forgot."""

from __future__ import annotations

from typing import Any

import pytest

from fastpool import InvalidInput, MessageStatus, RunMessage, WakeRegistrationStatus
from fastpool.benchmarking import workload

OLD_MESSAGE = workload.message(3)
OLD_CONDITION = workload.wake_condition(2)


def move_old_records_on(other: Any, pool_id: str, info: workload.PoolInfo, message_step: int) -> None:
    """Another store object's writes over old keys: every ``message_step``-th message failed,
    every fifth wake registered again under another filter."""
    for i in range(0, info.messages, message_step):
        old = workload.message(i)
        other.record_message(pool_id, old, workload.receipt(old, MessageStatus.FAILED))
    for i in range(0, info.wakes, 5):
        c = workload.wake_condition(i)
        other.record_wake(pool_id, c, workload.compiled_filter("x"), workload.registration(c, journal=99))


def check_writes_on_forgotten_keys(store: Any, pool_id: str) -> None:
    """Writes whose checks read ``OLD_MESSAGE``'s and ``OLD_CONDITION``'s keys, forgotten by the
    pool's trimmed state: each is decided as a full state decides it; one record is appended."""
    old = OLD_MESSAGE
    # A retry of an old message is answered with the receipt in effect and appends nothing.
    found, written = store.record_message_once(pool_id, old, workload.receipt(old))
    assert written is None and found.status is MessageStatus.DELIVERED
    # The key reused for another message is refused, as the full state refuses it.
    other = RunMessage(
        message_id="msg.other", from_=old.from_, to=old.to, content_ref="c", idempotency_key=old.idempotency_key
    )
    with pytest.raises(InvalidInput, match="idempotency_key"):
        store.record_message_once(pool_id, other, workload.receipt(other))
    # An expected receipt compares with the stored one.
    delivered = store.message_receipt(pool_id, old.idempotency_key)
    found, written = store.record_message_once(
        pool_id, old, workload.receipt(old, MessageStatus.FAILED), expected=delivered
    )
    assert written is not None and store.message_receipt(pool_id, old.idempotency_key).status is MessageStatus.FAILED
    # Wakes: a retried registration, and a transition checked against the stored one.
    registration = workload.registration(OLD_CONDITION)
    found, written = store.record_wake_once(
        pool_id, OLD_CONDITION, workload.compiled_filter(OLD_CONDITION.run_id), registration
    )
    assert written is None and found.status is WakeRegistrationStatus.TRIGGERED
    with pytest.raises(InvalidInput, match="expected"):
        store.record_wake_once(
            pool_id,
            workload.wake_condition(10**6),
            workload.compiled_filter("run"),
            workload.registration(workload.wake_condition(10**6)),
            expected=registration,
        )
