"""The benchmark verdicts of ``fastpool bench`` and of ``benches/`` come from one table of SPEC §6's
targets (``fastpool.benchmarking.targets``): figures just inside an old, looser bound fail."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fastpool.benchmarking import targets
from fastpool.benchmarking.runner import Results, _verdicts

BENCHES = Path(__file__).resolve().parents[1] / "benches"


def verdicts(results: Results, sizes: tuple[int, ...] = (0,)) -> dict[str, str]:
    return {text: verdict for _, text, verdict in _verdicts(results, sizes)}


def test_t1_is_met_at_1_3_times_the_raw_insert_not_1_5() -> None:
    results = Results()
    results.add("T1", "record_message", 0, "raw", 10.0)
    results.add("T1", "record_message", 0, "c", 14.0)
    results.add("T1", "record_message", 10_000, "raw", 10.0)
    results.add("T1", "record_message", 10_000, "c", 12.9)
    assert verdicts(results, (0, 10_000)) == {
        "record_message N=0: 1.40 × raw insert": "NOT met",
        "record_message N=10,000: 1.29 × raw insert": "met",
    }


def test_t6_needs_three_quarters_of_one_process() -> None:
    results = Results()
    results.add("T6", "1 process(es) aggregate", 0, "c", 1000.0, "ops/s")
    results.add("T6", "4 process(es) aggregate", 0, "c", 600.0, "ops/s")
    results.checks.update({"T6 4 processes gap-free": True, "T6 4 processes errors": 0})
    [(text, verdict)] = verdicts(results).items()
    assert text.startswith("4 processes: 600 ops/s = 0.60 × one process") and verdict == "NOT met"


def test_t5_is_set_against_the_raw_scan_and_the_pure_twin() -> None:
    results = Results()
    for system, rate in (("raw", 450_000.0), ("c", 320_000.0), ("py", 20_000.0)):
        results.add("T5", "cold replay", 100_000, system, rate, "records/s")
    [(text, verdict)] = verdicts(results, (100_000,)).items()
    assert text == "cold replay N=100,000: 320,000 records/s = 1.41 × the raw scan's time, 16.0 × pure"
    assert verdict == "met"
    results.rows[0].value = 500_000.0  # now 1.56 × the raw scan
    assert list(verdicts(results, (100_000,)).values()) == ["NOT met"]


def test_t8_is_set_against_the_json_bytes() -> None:
    results = Results()
    results.add("T8", "cached state per record", 100_000, "c", 600.0, "bytes")
    results.add("T8", "JSON per record", 100_000, "raw", 1000.0, "bytes")
    assert verdicts(results, (100_000,)) == {
        "cached state at N=100,000: 600 bytes per record = 0.60 × its JSON": "NOT met"
    }


@pytest.fixture
def support(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCHES))
    import support

    yield support
    sys.modules.pop("support", None)
    sys.modules.pop("workload", None)


def bench(target: str, op: str, system: str, n: int | None, median: float, **extra: Any) -> SimpleNamespace:
    info = {"target": target, "op": op, "system": system, "n": n, **extra}
    return SimpleNamespace(extra_info=info, stats=SimpleNamespace(median=median))


def test_the_benches_summary_reads_the_same_table(support: Any) -> None:
    lines = support.summary(
        [
            bench("T1", "record_message", "fastpool", 0, 14e-6),
            bench("T1", "record_message", "raw", 0, 10e-6),
            bench("T4", "snapshot after foreign append", "fastpool", 10_000, 50e-6),
        ]
    )
    assert lines == [
        f"T1 record_message N=0: 14 µs = 1.40 × raw insert (10 µs); target {targets.T1}: NOT met",
        f"T4 snapshot after foreign append N=10000: 50 µs; target {targets.T4}: met",
    ]


def test_t10_and_t11_verdicts_use_the_spec_bounds() -> None:
    results = Results()
    results.add("T10", "first message_receipt", 1_000_000, "c", 9.5, "ms")
    results.add("T10", "peak RSS", 1_000_000, "c", 101.0, "MB")
    results.add("T10", "first snapshot", 1_000_000, "c", 0.9, "s")
    results.add("T11", "watch tail", 10_000, "py", 10.5)
    results.add("T11", "first snapshot after a cold replay", 10_000, "c", 21.0)  # replay.py's line, not a watch
    assert verdicts(results) == {
        "first message_receipt N=1,000,000 (new process, c): 9.50 ms": "met",
        "peak RSS N=1,000,000 (new process, c): 101.00 MB": "NOT met",
        "first snapshot N=1,000,000 (new process, c): 0.90 s": "met",
        "watch(pool, last - 10) N=10,000 (py): 10.50 µs": "NOT met",
    }
