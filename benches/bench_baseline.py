"""T7: fastpool against the seed's algorithm (``baseline_seed``) at N = 10k, side by side.

The seed replays the whole pool on every call (~1 s at 10k records), so its rounds are few.
"""

from __future__ import annotations

import pytest
import workload
from support import Pool, tag

pytestmark = pytest.mark.sizes(10_000)
SEED_ROUNDS = 3
SYSTEMS = ["fastpool", "seed"]


@pytest.fixture(params=SYSTEMS)
def system(request: pytest.FixtureRequest, pool: Pool) -> tuple[str, object]:
    """The store under test: a warm fastpool store or the seed baseline, on the same pool file."""
    name = request.param
    return name, request.getfixturevalue("store" if name == "fastpool" else "seed_store")


def _run(benchmark, name: str, fn, *args) -> object:
    if name == "seed":
        return benchmark.pedantic(fn, args=args, rounds=SEED_ROUNDS)
    return benchmark(fn, *args)


def test_record_message(benchmark, system, pool: Pool):
    """T7: record_message of a new accepted message."""
    name, store = system
    tag(benchmark, "T7", "record_message", name, pool.size)
    rounds = SEED_ROUNDS if name == "seed" else 500
    benchmark.pedantic(store.record_message, setup=lambda: (pool.message_args(), {}), rounds=rounds)


def test_message_receipt(benchmark, system, pool: Pool):
    """T7: message_receipt of a key recorded mid-pool (warm for fastpool)."""
    name, store = system
    tag(benchmark, "T7", "message_receipt", name, pool.size)
    assert _run(benchmark, name, store.message_receipt, pool.pool_id, pool.mid_message_key()) is not None


def test_wake_registration(benchmark, system, pool: Pool):
    """T7: wake_registration of a key recorded mid-pool (warm for fastpool)."""
    name, store = system
    tag(benchmark, "T7", "wake_registration", name, pool.size)
    key = workload.wake_key(pool.mid_wake())
    assert _run(benchmark, name, store.wake_registration, pool.pool_id, key) is not None


def test_wake(benchmark, system, pool: Pool):
    """T7: wake of a condition recorded mid-pool (warm for fastpool)."""
    name, store = system
    tag(benchmark, "T7", "wake", name, pool.size)
    assert _run(benchmark, name, store.wake, pool.pool_id, workload.condition_id(pool.mid_wake())) is not None


def test_snapshot(benchmark, system, pool: Pool):
    """T7: snapshot with nothing new (warm for fastpool; a full replay for the seed)."""
    name, store = system
    tag(benchmark, "T7", "snapshot", name, pool.size)
    assert _run(benchmark, name, store.snapshot, pool.pool_id).cursor.sequence == pool.records
