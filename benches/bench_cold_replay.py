"""T5: cold replay of a 100k-record pool: store-level (loaded engine) and engine-level (both engines).

In ``--quick`` mode these run at 10k records.
"""

from __future__ import annotations

import apsw
import orjson
import pytest
import workload
from support import POOL, Pool, store_class, tag

from fastpool import _sql

ROUNDS = 3


@pytest.mark.sizes(100_000)
def test_cold_snapshot(benchmark, pool: Pool):
    """T5: new store object + first snapshot (read, decode, apply, sort every record) + close."""
    tag(benchmark, "T5", "cold snapshot", "fastpool", pool.size)
    cls = store_class()

    def cold() -> object:
        with cls(pool.path) as store:
            return store.snapshot(pool.pool_id)

    snapshot = benchmark.pedantic(cold, rounds=ROUNDS, warmup_rounds=1)
    assert snapshot.cursor.sequence == pool.records
    if benchmark.stats:
        benchmark.extra_info["records_per_s"] = round(pool.records / benchmark.stats.stats.median)


@pytest.mark.sizes(100_000)
def test_raw_scan(benchmark, pool: Pool):
    """T5 reference: a new connection reads the pool's rows and orjson.loads each payload, nothing else."""
    tag(benchmark, "T5", "cold snapshot", "raw", pool.size)

    def scan() -> int:
        db = apsw.Connection(str(pool.path), flags=apsw.SQLITE_OPEN_READONLY)
        count = 0
        for _, _, text in db.execute(_sql.ROWS_AFTER, (pool.pool_id, 0)):
            orjson.loads(text)
            count += 1
        db.close()
        return count

    assert benchmark.pedantic(scan, rounds=ROUNDS, warmup_rounds=1) == pool.records


@pytest.mark.sizes(100_000)
def test_engine_replay(benchmark, engine, pool_size: int, pool_rows):
    """T5 engine-level: replay_rows (decode + apply) of every row, then the first snapshot."""
    rows = pool_rows(pool_size)
    tag(benchmark, "T5", "engine replay_rows + snapshot", "engine", len(rows), engine=engine.__name__)

    def replay(state) -> object:
        engine.replay_rows(state, rows)
        return state.snapshot()

    snapshot = benchmark.pedantic(replay, setup=lambda: ((engine.PoolState(POOL),), {}), rounds=ROUNDS, warmup_rounds=1)
    assert snapshot.cursor.sequence == len(rows)


@pytest.mark.sizes(100_000)
def test_engine_apply(benchmark, engine, pool_size: int):
    """Engine-level: PoolState.apply of every pre-decoded payload of the pool (no JSON)."""
    payloads = list(enumerate(workload.pool_payloads(POOL, pool_size)[0], 1))
    tag(benchmark, "T5", "engine apply only", "engine", len(payloads), engine=engine.__name__)

    def apply_all(state) -> None:
        apply = state.apply
        for seq, payload in payloads:
            apply(payload, seq)

    benchmark.pedantic(apply_all, setup=lambda: ((engine.PoolState(POOL),), {}), rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.parametrize("kind", ["run_message", "wake", "member_joined"])
def test_engine_decode_payload(benchmark, engine, kind: str, pool_rows):
    """Engine-level: decode_payload of one typical record of the given kind."""
    text = next(payload for _, k, payload in pool_rows(10_000) if k == kind)
    tag(benchmark, "T5", f"engine decode_payload {kind}", "engine", None, engine=engine.__name__)
    assert engine.decode_payload(text).TYPE == kind
    benchmark(engine.decode_payload, text)
