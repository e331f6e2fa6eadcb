"""The seed's algorithm in Python, on purpose: the baseline that target T7 is measured against.

``SeedAgentPoolStore`` is a line-by-line port of the Rust crate's ``SqliteAgentPoolStore``
(``shared/seed/agent_pool.rs.txt``). It keeps that design's costs, because measuring them is
its job:

* stdlib ``sqlite3``, one connection behind a ``threading.Lock``, WAL;
* every append is a DEFERRED transaction that reads ``COALESCE(MAX(seq), 0) + 1`` and inserts;
* every read (and every write the seed checks first) replays the *whole* pool: read all
  rows, parse the JSON, decode the payload, apply it to a fresh state, sort for the snapshot.

It is not handicapped where the seed is not slow: payloads are decoded and encoded by
fastpool's own engine (``engine.from_plain`` / ``engine.to_plain``), the JSON is what
``fastpool.wire.encode`` writes byte for byte, and ``synchronous = NORMAL`` matches
fastpool's default. Files are interchangeable with fastpool's and the Rust crate's.
Ids are taken as given (Rust's typed ids are validated when the caller builds them).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    CompiledEventFilter,
    InvalidInput,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    PoolCreated,
    PoolOpened,
    RetryClassification,
    RunMessage,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
    _sql,
)
from fastpool._compat import engine
from fastpool._schema import UNION, Spec
from fastpool.model import PAYLOAD_TYPES

__all__ = ["SeedAgentPoolStore"]

_PAYLOAD = Spec(UNION, PAYLOAD_TYPES)
_IST, _HCN = AgentErrorKind.INVALID_STATE_TRANSITION, AgentErrorKind.HOST_CONFIGURATION_NEEDED
_RN, _NR = RetryClassification.REPAIR_NEEDED, RetryClassification.NOT_RETRYABLE


def _sqlite_error(error: Exception) -> AgentError:
    return AgentError(_IST, _RN, f"sqlite agent pool store failure: {error}")


def _serde_error(error: Exception) -> AgentError:
    reason = error.message if isinstance(error, AgentError) else error
    return AgentError(_IST, _RN, f"sqlite agent pool store serialization failure: {reason}")


class _PoolReplay:
    """``PoolReplay``: a pool's state, rebuilt from scratch on every call."""

    def __init__(self) -> None:
        self.config: AgentPoolStoreConfig | None = None
        self.created = False
        self.members: dict[str, AgentPoolMember] = {}
        self.messages: dict[str, AgentPoolStoredMessage] = {}
        self.message_dedupe: dict[str, MessageReceipt] = {}
        self.wakes: dict[str, AgentPoolStoredWake] = {}
        self.wake_dedupe: dict[str, WakeRegistration] = {}
        self.cursor: int | None = None

    def apply(self, payload: Any) -> None:
        kind = payload.TYPE
        if kind == "pool_opened":
            if self.config is not None and self.config != payload.config:
                raise AgentError(_IST, _RN, "sqlite agent pool store contains conflicting pool open records")
            self.config = payload.config
        elif kind == "pool_created":
            self.created = True
        elif kind == "member_joined":
            self.members[payload.member.run_id] = payload.member
        elif kind == "member_left":
            self.members.pop(payload.member.run_id, None)
        elif kind == "run_message":
            stored = payload.stored
            self.message_dedupe[stored.message.idempotency_key] = stored.receipt
            self.messages[stored.message.message_id] = stored
        else:  # wake
            stored = payload.stored
            self.wake_dedupe[stored.condition.idempotency_key] = stored.registration
            self.wakes[stored.condition.condition_id] = stored

    def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        config = self.config
        if config is None:
            raise AgentError(
                _HCN, RetryClassification.HOST_CONFIGURATION_NEEDED, "sqlite agent pool store has not opened this pool"
            )
        members = tuple([self.members[key] for key in sorted(self.members)])  # BTreeMap order
        return AgentPoolSnapshot(
            pool_id=pool_id,
            created=self.created,
            members=members,
            topics=tuple(sorted({topic for member in members for topic in member.topics})),
            message_policy=config.message_policy,
            wake_policy=config.wake_policy,
            policy_refs=config.policy_refs,
            messages=tuple([self.messages[key] for key in sorted(self.messages)]),
            wakes=tuple([self.wakes[key] for key in sorted(self.wakes)]),
            cursor=None if self.cursor is None else AgentPoolStoreCursor(sequence=self.cursor),
        )


class SeedAgentPoolStore:
    """The Rust seed's ``SqliteAgentPoolStore``, ported as is (full replay on every call)."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            for statement in (
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = NORMAL",
                *_sql.RUST_TABLES,  # the Rust crate's DDL, as the seed runs it
            ):
                self._connection.execute(statement)
        except sqlite3.Error as error:
            raise _sqlite_error(error) from error

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> SeedAgentPoolStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ the seed's private helpers

    def _append_record(self, pool_id: str, payload: Any) -> AgentPoolStoreCursor:
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN")  # rusqlite's transaction(): DEFERRED
                try:
                    (next_seq,) = connection.execute(
                        "SELECT COALESCE(MAX(seq), 0) + 1 FROM agent_pool_records WHERE pool_id = ?", (pool_id,)
                    ).fetchone()
                    payload_json = json.dumps(engine.to_plain(payload), separators=(",", ":"), ensure_ascii=False)
                    connection.execute(
                        _sql.INSERT,
                        (pool_id, next_seq, payload.TYPE, payload_json),
                    )
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:  # as when rusqlite drops an uncommitted Transaction
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise _sqlite_error(error) from error
        return AgentPoolStoreCursor(sequence=next_seq)

    def _records_after(self, pool_id: str, start_after: int) -> list[tuple[int, Any]]:
        with self._lock:
            try:
                rows = self._connection.execute(
                    "SELECT seq, payload_json FROM agent_pool_records WHERE pool_id = ? AND seq > ? ORDER BY seq ASC",
                    (pool_id, start_after),
                ).fetchall()
            except sqlite3.Error as error:
                raise _sqlite_error(error) from error
            records = []
            for seq, payload_json in rows:
                try:
                    payload = engine.from_plain(_PAYLOAD, json.loads(payload_json), "payload")
                except (ValueError, TypeError, InvalidInput) as error:  # JSONDecodeError is a ValueError
                    raise _serde_error(error) from None
                records.append((seq, payload))
        return records

    def _replay(self, pool_id: str) -> _PoolReplay:
        replay = _PoolReplay()
        for seq, payload in self._records_after(pool_id, 0):
            replay.cursor = seq
            replay.apply(payload)
        return replay

    # ------------------------------------------------------------ AgentPoolStore

    def open_pool(self, pool_id: str, config: AgentPoolStoreConfig) -> AgentPoolSnapshot:
        existing = self._replay(pool_id).config
        if existing is not None:
            if existing != config:
                raise AgentError(_IST, _RN, "sqlite agent pool store config conflicts with existing pool")
        else:
            self._append_record(pool_id, PoolOpened(config=config))
        return self.snapshot(pool_id)

    def snapshot(self, pool_id: str) -> AgentPoolSnapshot:
        return self._replay(pool_id).snapshot(pool_id)

    def record_pool_created(self, pool_id: str) -> AgentPoolStoreCursor:
        return self._append_record(pool_id, PoolCreated())

    def join_member(self, pool_id: str, member: AgentPoolMember) -> AgentPoolStoreCursor:
        self.snapshot(pool_id)
        return self._append_record(pool_id, MemberJoined(member=member))

    def leave_member(self, pool_id: str, run_id: str) -> tuple[AgentPoolMember, AgentPoolStoreCursor]:
        member = self._replay(pool_id).members.get(run_id)
        if member is None:
            raise AgentError(_IST, _NR, "run is not a member of this agent pool")
        return member, self._append_record(pool_id, MemberLeft(member=member))

    def message_receipt(self, pool_id: str, idempotency_key: str) -> MessageReceipt | None:
        return self._replay(pool_id).message_dedupe.get(idempotency_key)

    def record_message(self, pool_id: str, message: RunMessage, receipt: MessageReceipt) -> AgentPoolStoreCursor:
        self.snapshot(pool_id)
        stored = AgentPoolStoredMessage(message=message, receipt=receipt)
        return self._append_record(pool_id, MessageRecorded(stored=stored))

    def wake_registration(self, pool_id: str, idempotency_key: str) -> WakeRegistration | None:
        return self._replay(pool_id).wake_dedupe.get(idempotency_key)

    def wake(self, pool_id: str, condition_id: str) -> AgentPoolStoredWake | None:
        return self._replay(pool_id).wakes.get(condition_id)

    def record_wake(
        self,
        pool_id: str,
        condition: WakeCondition,
        compiled_filter: CompiledEventFilter,
        registration: WakeRegistration,
    ) -> AgentPoolStoreCursor:
        self.snapshot(pool_id)
        stored = AgentPoolStoredWake(condition=condition, compiled_filter=compiled_filter, registration=registration)
        return self._append_record(pool_id, WakeRecorded(stored=stored))

    def watch(self, pool_id: str, cursor: AgentPoolStoreCursor | None = None) -> Iterator[AgentPoolStoreRecord]:
        # Like Rust's AgentPoolStoreStream: loaded up front, never sees later records.
        records = self._records_after(pool_id, 0 if cursor is None else cursor.sequence)
        return iter(
            [
                AgentPoolStoreRecord(pool_id=pool_id, cursor=AgentPoolStoreCursor(sequence=seq), payload=payload)
                for seq, payload in records
            ]
        )

    def next_event_sequence(self, pool_id: str) -> int:
        with self._lock:
            connection = self._connection
            try:
                connection.execute("BEGIN")
                try:
                    connection.execute(
                        "INSERT OR IGNORE INTO agent_pool_event_seq (pool_id, seq) VALUES (?, 0)", (pool_id,)
                    )
                    connection.execute("UPDATE agent_pool_event_seq SET seq = seq + 1 WHERE pool_id = ?", (pool_id,))
                    (seq,) = connection.execute(
                        "SELECT seq FROM agent_pool_event_seq WHERE pool_id = ?", (pool_id,)
                    ).fetchone()
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:  # as when rusqlite drops an uncommitted Transaction
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise _sqlite_error(error) from error
        return int(seq)
