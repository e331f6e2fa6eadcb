"""T1: ``record_message`` against a raw APSW one-row ``BEGIN IMMEDIATE`` insert, N = 0 / 10k / 100k."""

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
