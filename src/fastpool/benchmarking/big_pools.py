"""``fastpool bench``'s big-pool rows: T10 (a million-record pool opened by a new process) and
T11 (short watch tails).

T10 runs in a subprocess (``python -m fastpool.benchmarking.big_pools PATH``), so that its
RSS is a new process's: the first ``message_receipt``, ``wake_registration`` and ``wake``
(ms each, the first including the store's set-up of the pool), the peak RSS after them, then
the first ``snapshot`` (the full replay). The million-record file is written once and kept
in the temporary directory (``fastpool-bench/``) for later runs, keyed by what shapes it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw

from .. import __version__, _sql
from .._compat import engine as default_engine
from ..model import PoolOpened
from ..sqlite import SqliteAgentPoolStore
from . import targets, workload

POOL = "pool.bench"
BIG = 1_000_000
WATCH_BACK = 10  # watch(pool, last - WATCH_BACK)
WATCH_TAIL = "watch tail"
RUST_HOST = ", pool a Rust host wrote, read once by a fastpool writer"
_SCHEMA_KEY = f"{__version__}-{_sql.SCHEMA_VERSION}-{_sql.POINT_INDEX_VERSION}"


def big_pool(
    records: int = BIG, progress: Callable[[str], None] = lambda _: None, rust_host: bool = False
) -> tuple[Path, int]:
    """The cached file of a ``records``-record pool of the bench's workload (written if missing),
    indexed for point reads as its writers would have left it (``rust_host``: written by a Rust
    host, then read once by a fastpool writer); and its message count."""
    folder = Path(tempfile.gettempdir()) / "fastpool-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"pool-{records}-{'rust-' if rust_host else ''}{_SCHEMA_KEY}.sqlite"
    done = path.with_suffix(".json")
    if done.exists() and path.exists():
        return path, int(json.loads(done.read_text())["messages"])
    progress(f"T10: writing a pool of {records:,} records (kept in {folder} for later runs)")
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    SqliteAgentPoolStore(path).close()  # fastpool's tables and markers
    info = _write_rows(path, records)
    with SqliteAgentPoolStore(path) as store:
        if rust_host:
            store.snapshot(POOL)  # the one read, a full replay
        else:
            store.build_point_index()
    done.write_text(json.dumps({"records": records, "messages": info.messages, "wakes": info.wakes}))
    return path, info.messages


def _write_rows(path: Path, records: int) -> workload.PoolInfo:
    """The workload's records, streamed into the file in one transaction (no journal: a scratch file)."""
    info = workload.PoolInfo(POOL, records=1)

    def rows() -> Iterator[tuple[str, int, str, str]]:
        yield POOL, 1, "pool_opened", default_engine.dumps(PoolOpened(config=workload.CONFIG))
        stream = workload.steps(POOL)
        while info.records < records:
            payload = info.observe(*next(stream))
            yield POOL, info.records, payload.TYPE, default_engine.dumps(payload)

    db = apsw.Connection(str(path))
    try:
        db.execute("PRAGMA journal_mode = OFF").fetchall()
        db.execute("PRAGMA synchronous = OFF")
        with db:
            db.executemany(_sql.INSERT, rows())
        db.execute("PRAGMA journal_mode = WAL").fetchall()
    finally:
        db.close()
    return info


def _peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, which starts anew at exec (getrusage's ru_maxrss
    keeps the high-water mark of the forked parent's pages, the whole bench process's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: an upper bound


def cold_open(path: str | os.PathLike[str], messages: int) -> dict[str, float]:
    """In this (new) process: the first point reads, the peak RSS after them, the first snapshot."""
    figures: dict[str, float] = {}
    with SqliteAgentPoolStore(path) as store:
        i = messages // 2
        for name, call in (
            ("message_receipt", lambda: store.message_receipt(POOL, workload.message_key(i))),
            ("wake_registration", lambda: store.wake_registration(POOL, workload.wake_key(i // 2))),
            ("wake", lambda: store.wake(POOL, workload.condition_id(i // 2 + 1))),
        ):
            start = time.perf_counter()
            found = call()
            figures[f"first {name}"] = (time.perf_counter() - start) * 1e3
            assert found is not None
        figures["peak RSS"] = _peak_rss_mb()
        start = time.perf_counter()
        store.snapshot(POOL)
        figures["first snapshot"] = time.perf_counter() - start
    return figures


def run(bench: Any, median_per_call: Callable[..., float]) -> None:
    """Add the T10 and T11 rows to ``bench.results`` (a ``runner.Bench``)."""
    system = "c" if "c" in bench.engines else "py"
    env = dict(os.environ, FASTPOOL_NO_EXTENSIONS="" if system == "c" else "1")
    for rust_host in (False, True):
        path, messages = big_pool(progress=bench.progress, rust_host=rust_host)
        bench.progress(f"T10: a new process opens the {BIG:,}-record pool")
        out = subprocess.run(
            [sys.executable, "-m", __name__, str(path), str(messages)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for measure, value in json.loads(out).items():
            unit = "MB" if measure == "peak RSS" else "s" if measure == "first snapshot" else "ms"
            bench.results.add("T10", f"{measure}{RUST_HOST if rust_host else ''}", BIG, system, value, unit)
    path, _ = big_pool(progress=bench.progress)
    rounds, inner = (3, 300) if bench.quick else (7, 2000)
    for size in (*bench.sizes, BIG):
        source = path if size == BIG else bench.template(size)[0]
        after = max(0, max(size, 2) - WATCH_BACK)  # a pool of size N holds max(N, 2) records
        bench.progress(f"T11: watch(pool, last - {WATCH_BACK}) N={size:,}")
        for name, engine in bench.engines.items():
            with SqliteAgentPoolStore(source, readonly=True, engine=engine) as store:
                tail = len(list(store.watch(POOL, after)))
                assert tail == max(size, 2) - after, tail
                value = median_per_call(lambda: list(store.watch(POOL, after)), inner=inner, rounds=rounds)
                bench.results.add("T11", WATCH_TAIL, size, name, value)


def verdicts(results: Any) -> list[tuple[str, str, str]]:
    """(target, figure, met?) lines of the T10 and T11 rows."""
    lines = []
    for row in results.rows:
        if row.target == "T10":
            goal = {"MB": targets.T10_RSS, "s": targets.T10_SNAPSHOT}.get(row.unit, targets.T10_POINT_READ)
            text = f"{row.measure} N={row.size:,} (new process, {row.system}): {row.value:,.2f} {row.unit}"
            lines.append(("T10", text, "met" if goal.met(row.value) else "NOT met"))
        elif row.target == "T11" and row.measure == WATCH_TAIL:
            text = f"watch(pool, last - {WATCH_BACK}) N={row.size:,} ({row.system}): {row.value:.2f} µs"
            lines.append(("T11", text, "met" if targets.T11_WATCH.met(row.value) else "NOT met"))
    return lines


if __name__ == "__main__":
    print(json.dumps(cold_open(sys.argv[1], int(sys.argv[2]))))
