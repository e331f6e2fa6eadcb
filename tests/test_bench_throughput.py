"""``fastpool bench``'s throughput rows (T1m, T1 at synchronous=full, T9, the async store): the
measurements run (quick) and give one figure per row, the files they wrote hold every record
once, gap-free, and the verdicts compare each figure with its threshold."""

from __future__ import annotations

from pathlib import Path

from fastpool import SqliteAgentPoolStore
from fastpool.benchmarking import runner


def test_the_throughput_measurements_give_every_row_and_leave_gap_free_pools(tmp_path: Path) -> None:
    bench = runner.Bench(tmp_path, (0,), True, runner.Progress())
    bench.many_pools()
    bench.group_commit()
    bench.async_host_loop()
    rows = {(row.target, row.measure, row.system): row.value for row in bench.results.rows}
    best = runner._best(bench.engines)
    for synchronous in ("normal", "full"):
        assert rows[("T1m", runner._t1m_measure(runner.T1M_POOLS, synchronous), "raw")] > 0
        assert rows[("T1m", runner._t1m_measure(runner.T1M_POOLS, synchronous), best)] > 0
        for writers in ("raw", "serial", "threads", "tasks"):
            assert rows[("T9", runner._t9_measure(writers, synchronous), best)] > 0
        for writers in ("threads", "tasks"):
            p50 = rows[("T9", runner._t9_measure(writers, synchronous, "p50"), best)]
            assert 0 < p50 <= rows[("T9", runner._t9_measure(writers, synchronous, "p99"), best)]
    assert rows[("T1", runner._t1m_measure(1, "full"), "raw")] > 0
    assert all(rows[("AIO", measure, best)] > 0 for measure in (runner.AIO_SYNC, runner.AIO_ASYNC, runner.AIO_READ))
    for name in ("T1m-normal", "T9-full", "aio-async"):
        with SqliteAgentPoolStore(tmp_path / f"{name}.sqlite", readonly=True) as store:
            for pool_id, count, last in store.pools():
                assert count == last, f"{name}: {pool_id} has gaps"
                messages = store.snapshot(pool_id).messages
                assert len(messages) == (count - 1 if name != "aio-async" else (count - 1) // 2)


def test_the_throughput_verdicts_hold_each_figure_against_its_threshold() -> None:
    results = runner.Results()
    add = results.add
    add("T1m", runner._t1m_measure(runner.T1M_POOLS, "normal"), 0, "c", 15.0)
    add("T1m", runner._t1m_measure(runner.T1M_POOLS, "normal"), 0, "raw", 10.0)
    add("T9", runner._t9_measure("serial", "full"), 0, "c", 1000.0, "ops/s")
    add("T9", runner._t9_measure("threads", "full"), 0, "c", 9990.0, "ops/s")
    add("T9", runner._t9_measure("threads", "full", "p50"), 0, "c", 700.0)
    add("T9", runner._t9_measure("threads", "full", "p99"), 0, "c", 900.0)
    add("AIO", runner.AIO_SYNC, 0, "c", 1000.0, "msg/s")
    add("AIO", runner.AIO_ASYNC, 0, "c", 800.0, "msg/s")
    add("AIO", runner.AIO_READ, 0, "c", 3.5)
    lines = {text.split(":")[0]: verdict for _, text, verdict in runner._throughput_verdicts(results, "c")}
    assert lines == {
        runner._t1m_measure(runner.T1M_POOLS, "normal"): "met",  # 1.50 ≤ 1.5
        runner._t9_measure("threads", "full"): "NOT met",  # 9.99 < 10
        f"{runner.AIO_ASYNC} / {runner.AIO_SYNC}": "met",  # 0.80 ≥ 0.8
        runner.AIO_READ: "NOT met",  # 3.5 µs > 3
    }
