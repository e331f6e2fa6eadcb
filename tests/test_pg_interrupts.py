"""A ``KeyboardInterrupt`` (or whatever a signal handler raises) landing anywhere in a
PostgreSQL store's write leaves the store usable: no transaction open, the write committed
or not as the next read tells, the cache equal to the tables.

The interrupt is injected by a profile function at the Nth point where CPython can deliver
a signal in fastpool's code (a Python function of fastpool entered, a C call made from
fastpool returned), for every N of one write: every such point is covered, one per run.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest
from pg_server import PostgresServer
from store_helpers import CONFIG, PgTarget, member, message, receipt

import fastpool
from fastpool import InvalidInput, PostgresAgentPoolStore

POOL = "pool.interrupted"
SOURCE = str(Path(fastpool.__file__).parent) + os.sep
NAME = "fastpool_interrupted"
LIVENESS = 10.0  # seconds: a generous bound for a notification's delivery (milliseconds)


class Interrupt:
    """A profile function raising ``KeyboardInterrupt`` at the ``at``-th signal point in fastpool."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.points = 0

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event in ("call", "c_return") and frame.f_code.co_filename.startswith(SOURCE):
            self.points += 1
            if self.points == self.at:
                raise KeyboardInterrupt  # CPython unsets the profile function: one per run


def interrupted(call: Callable[[], object], at: int) -> bool:
    """Run ``call`` with an interrupt at its ``at``-th point; whether it had so many points."""
    hook = Interrupt(at)
    raised = False
    sys.setprofile(hook)
    try:
        call()
    except KeyboardInterrupt:
        raised = True
    finally:
        sys.setprofile(None)
    fired = hook.points >= at
    assert raised == fired, f"point {at}: the interrupt was {'swallowed' if fired else 'invented'}"
    return fired


def session_states(pg: PgTarget) -> list[str]:
    """The states of the interrupted store's connections (``idle in transaction`` must never stay)."""
    return [row[0] for row in pg.query("SELECT state FROM pg_stat_activity WHERE application_name = ?", (NAME,))]


def message_ids(pg: PgTarget, pool_id: str) -> list[str]:
    rows = pg.query(
        "SELECT payload_json FROM agent_pool_records WHERE pool_id = ? AND kind = 'run_message' ORDER BY seq",
        (pool_id,),
    )
    return [re.findall(r'"message_id":"([^"]*)"', row[0])[0] for row in rows]


def run_everywhere(
    pg: PgTarget,
    engine: ModuleType,
    write: Callable[[PostgresAgentPoolStore, int], Any],
    *,
    behind: bool = False,
    consistency: str = "linearizable",
    **options: Any,
) -> tuple[int, int]:
    """Interrupt ``write(store, i)`` at each of its points in turn; after each, check the store
    and write again with it. ``behind``: another store appends first, so the write takes the
    locked path. Returns (interrupts injected, later writes that succeeded): one for each,
    and one after the run that ended without an interrupt."""
    conninfo = f"{pg.conninfo}?application_name={NAME}"
    store = PostgresAgentPoolStore(conninfo, schema=pg.schema, engine=engine, consistency=consistency, **options)
    other = pg.store(engine=engine)
    reader = pg.store(engine=engine)  # another object, whose cache only ever reads the tables
    later = 0
    try:
        store.open_pool(POOL, CONFIG)
        for at in range(1, 100_000):
            if behind:
                other.record_message(POOL, message(f"other{at}"), receipt(f"other{at}"))
            fired = interrupted(lambda: write(store, at), at)
            assert "idle in transaction" not in session_states(pg), f"point {at}"
            snapshot = store.snapshot(POOL)
            # A notified store may lag another store's write until its notification arrives.
            deadline = time.monotonic() + LIVENESS
            while consistency == "notified" and snapshot != reader.snapshot(POOL) and time.monotonic() < deadline:
                time.sleep(0.001)
                snapshot = store.snapshot(POOL)
            assert reader.snapshot(POOL) == snapshot, f"point {at}: the cache differs from the tables"
            in_snapshot = sorted(m.message.message_id for m in snapshot.messages)  # a snapshot sorts them by id
            assert in_snapshot == sorted(message_ids(pg, POOL)), f"point {at}"
            store.record_message(POOL, message(f"later{at}"), receipt(f"later{at}"))
            later += 1
            if not fired:
                assert f"m{at}" in in_snapshot
                return at - 1, later
    finally:
        store.close()
        other.close()
        reader.close()
    raise AssertionError("the write never ended")


@pytest.mark.parametrize("connected", [True, False], ids=["connected", "reconnecting"])
def test_record_message_interrupted_anywhere(pg: PgTarget, engine: ModuleType, connected: bool) -> None:
    def write(store: PostgresAgentPoolStore, i: int) -> None:
        if not connected:
            store._drop_session()  # the write connects, sets up and prepares its statements
        store.record_message(POOL, message(f"m{i}"), receipt(f"m{i}"))

    points, later = run_everywhere(pg, engine, write)
    print(f"record_message ({'connected' if connected else 'reconnecting'}): {points} points, {later} later writes")
    assert points >= 50 and later == points + 1


def test_record_message_behind_interrupted_anywhere(pg: PgTarget, engine: ModuleType) -> None:
    points, later = run_everywhere(
        pg, engine, lambda store, i: store.record_message(POOL, message(f"m{i}"), receipt(f"m{i}")), behind=True
    )
    print(f"record_message behind another writer: {points} points, {later} later writes succeeded")
    assert points >= 50 and later == points + 1


def test_record_message_notified_interrupted_anywhere(pg: PgTarget, engine: ModuleType) -> None:
    """With ``consistency="notified"`` reads trust the cache: a dropped one must be read again."""
    points, later = run_everywhere(
        pg,
        engine,
        lambda store, i: store.record_message(POOL, message(f"m{i}"), receipt(f"m{i}")),
        behind=True,
        consistency="notified",
    )
    print(f"record_message, notified: {points} points, {later} later writes succeeded")
    assert points >= 50 and later == points + 1


def test_record_message_once_interrupted_anywhere(pg: PgTarget, engine: ModuleType) -> None:
    def write(store: PostgresAgentPoolStore, i: int) -> None:
        store.record_message_once(POOL, message(f"m{i}"), receipt(f"m{i}"))

    points, later = run_everywhere(pg, engine, write, behind=True)
    print(f"record_message_once: {points} points, {later} later writes succeeded")
    assert points >= 50 and later == points + 1


@pytest.mark.parametrize("behind", [False, True], ids=["fast", "behind"])
def test_a_bounded_stores_trimming_write_interrupted_anywhere(
    pg: PgTarget, engine: ModuleType, behind: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``bounded_state``: a write that fills the key index and trims the state (every write
    does, with ``BATCH`` 1 here), then reads an old key back from the index."""
    monkeypatch.setattr(fastpool.postgres, "BATCH", 1)

    def write(store: PostgresAgentPoolStore, i: int) -> None:
        store.record_message_once(POOL, message(f"m{i}"), receipt(f"m{i}"))
        if i > 1:
            assert store.message_receipt(POOL, message("later1").idempotency_key) is not None  # written, forgotten

    points, later = run_everywhere(pg, engine, write, behind=behind, bounded_state=True)
    print(f"a trimming write ({'behind' if behind else 'fast'}): {points} points, {later} later writes succeeded")
    assert points >= 50 and later == points + 1


def test_a_transaction_of_two_writes_interrupted_anywhere(pg: PgTarget, engine: ModuleType) -> None:
    """``transaction()`` (the durable runtime's boundary): both writes or neither, wherever it is interrupted."""

    def write(store: PostgresAgentPoolStore, i: int) -> None:
        with store.transaction():
            store.record_message(POOL, message(f"m{i}"), receipt(f"m{i}"))
            store.record_message(POOL, message(f"n{i}"), receipt(f"n{i}"))

    points, later = run_everywhere(pg, engine, write, behind=True)
    print(f"transaction() with two writes: {points} points, {later} later writes succeeded")
    assert points >= 50 and later == points + 1
    stored = set(message_ids(pg, POOL))
    assert all((f"m{i}" in stored) == (f"n{i}" in stored) for i in range(1, points + 2))


def test_open_pool_interrupted_anywhere(pg: PgTarget, engine: ModuleType) -> None:
    def write(store: PostgresAgentPoolStore, i: int) -> None:
        store.open_pool(f"opened{i}", CONFIG)

    store = PostgresAgentPoolStore(f"{pg.conninfo}?application_name={NAME}", schema=pg.schema, engine=engine)
    try:
        for at in range(1, 100_000):
            fired = interrupted(lambda: write(store, at), at)
            assert "idle in transaction" not in session_states(pg), f"point {at}"
            opened = pg.query("SELECT count(*) FROM agent_pool_records WHERE pool_id = ?", (f"opened{at}",))[0][0]
            if opened:
                assert store.snapshot(f"opened{at}") is not None
            else:
                with pytest.raises(fastpool.AgentError, match="has not opened"):
                    store.snapshot(f"opened{at}")
            store.open_pool(f"opened{at}", CONFIG)  # the write again: it succeeds
            store.record_message(f"opened{at}", message("m"), receipt("m"))
            if not fired:
                break
    finally:
        store.close()
    print(f"open_pool: {at - 1} points")
    assert at > 50


@pytest.mark.parametrize("schema", ["pg_catalog", "information_schema", "pg_toast", "pg_mine"])
def test_system_schema_is_refused(pg_server: PostgresServer, schema: str) -> None:
    with pytest.raises(InvalidInput, match="schema: .* is a PostgreSQL system schema"):
        PostgresAgentPoolStore(pg_server.conninfo, schema=schema)


@pytest.mark.parametrize("conninfo", ["postgresql://host/db\0x", "dbname=a\0b", "postgresql://host/db\udcff"])
def test_a_conninfo_libpq_cannot_take_is_invalid_input(conninfo: str) -> None:
    with pytest.raises(InvalidInput, match="conninfo: "):
        PostgresAgentPoolStore(conninfo)
    with pytest.raises(InvalidInput, match="conninfo: "):
        fastpool.open_store(conninfo if "://" in conninfo else "postgresql://host/?" + conninfo)


def test_next_event_sequence_interrupted_anywhere(pg: PgTarget, engine: ModuleType) -> None:
    """Its pipeline (the pool's lock, then the counter) left half read by an interrupt: the next
    call still gets the next number, and the lock is not kept."""
    store = PostgresAgentPoolStore(f"{pg.conninfo}?application_name={NAME}", schema=pg.schema, engine=engine)
    other = pg.store()
    try:
        store.open_pool(POOL, CONFIG)
        last = store.next_event_sequence(POOL)
        for at in range(1, 100_000):
            before = last
            fired = interrupted(lambda: store.next_event_sequence(POOL), at)
            assert "idle in transaction" not in session_states(pg), f"point {at}"
            other.join_member(POOL, member(f"run.{at}"))  # takes the pool's lock: not held by the interrupted call
            last = store.next_event_sequence(POOL)
            # The interrupted call took a number or not (a pipeline already sent may still
            # commit after this process stopped reading it): the next call gets the next one.
            stored = pg.query("SELECT seq FROM agent_pool_event_seq WHERE pool_id = ?", (POOL,))[0][0]
            assert last == stored and last in (before + 1, before + 2), f"point {at}"
            if not fired:
                break
    finally:
        store.close()
        other.close()
    print(f"next_event_sequence: {at - 1} points")
    assert at > 10
