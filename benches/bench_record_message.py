"""T1: ``record_message`` (and ``record_message_once``) against a raw APSW one-row ``BEGIN IMMEDIATE``
insert, N = 0 / 10k / 100k."""

from __future__ import annotations

import itertools

import apsw
from support import Pool, tag

from fastpool import wire
from fastpool.model import AgentPoolStoredMessage, MessageRecorded

ROUNDS = 1000
WARMUP = 50
_INSERT = "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)"


def test_record_message(benchmark, store, pool: Pool):
    """T1: fastpool record_message of a new accepted message (encode, append, commit, apply)."""
    tag(benchmark, "T1", "record_message", "fastpool", pool.size)
    benchmark.pedantic(
        store.record_message, setup=lambda: (pool.message_args(), {}), rounds=ROUNDS, warmup_rounds=WARMUP
    )
    assert store.snapshot(pool.pool_id).cursor.sequence == pool.records + pool.issued


def test_record_message_once(benchmark, store, pool: Pool):
    """T1: fastpool record_message_once of a new key (dedupe check and append in one transaction)."""
    tag(benchmark, "T1", "record_message_once", "fastpool", pool.size)
    benchmark.pedantic(
        store.record_message_once, setup=lambda: (pool.message_args(), {}), rounds=ROUNDS, warmup_rounds=WARMUP
    )
    assert store.snapshot(pool.pool_id).cursor.sequence == pool.records + pool.issued


def test_record_message_once_retried(benchmark, store, pool: Pool):
    """T1: fastpool record_message_once of a key already recorded (a retried send: nothing appended)."""
    tag(benchmark, "T1", "record_message_once (retry)", "fastpool", pool.size)
    args = pool.message_args()
    store.record_message_once(*args)
    benchmark(store.record_message_once, *args)
    assert store.snapshot(pool.pool_id).cursor.sequence == pool.records + 1


def test_raw_insert(benchmark, pool: Pool):
    """T1 reference: raw APSW BEGIN IMMEDIATE + one INSERT of a same-size row + COMMIT (WAL, synchronous=normal)."""
    tag(benchmark, "T1", "record_message", "raw", pool.size)
    db = apsw.Connection(str(pool.path))
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.execute("PRAGMA synchronous=NORMAL")
    _, message, receipt = pool.message_args()
    payload_json = wire.encode(MessageRecorded(stored=AgentPoolStoredMessage(message=message, receipt=receipt)))
    sequences = itertools.count(pool.records + 1)

    def insert(seq: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(_INSERT, (pool.pool_id, seq, "run_message", payload_json))
        db.execute("COMMIT")

    try:
        benchmark.pedantic(insert, setup=lambda: ((next(sequences),), {}), rounds=ROUNDS, warmup_rounds=WARMUP)
    finally:
        db.close()
