"""``fastpool bench``: the performance targets T1-T9, measured side by side in one process
(``--db postgresql://…``: T12 instead, ``postgres.py``); the bounds are ``targets.py``'s.

Systems: fastpool with the compiled engine (``c``) and the pure twin (``py``), the seed's
algorithm (``seed``, ``seed_baseline.py``) and the raw SQLite limit (``raw``: one APSW
``BEGIN IMMEDIATE`` one-row insert of the same payload; for T5 a scan of the same rows with
``orjson.loads`` of each; for T8 the JSON the records hold). Every figure is the median of
several rounds; inputs are built before the clock starts. Pools are filled with the
realistic workload of ``workload.py`` and copied per system, so each starts equal.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import apsw

from .. import _replay_py, _sql, wire
from .._open import backend_of
from ..enums import MessageStatus
from ..errors import InvalidInput
from ..sqlite import SqliteAgentPoolStore
from . import agent_pool, big_pools, postgres, replay, targets, workload
from .seed_baseline import SeedAgentPoolStore

POOL = "pool.bench"
FULL_SIZES = (0, 10_000, 100_000)
QUICK_SIZES = (0, 10_000)
T4_SIZE = T7_SIZE = 10_000


@dataclass
class Row:
    """One measured figure: target, what, pool size, system, value and unit."""

    target: str
    measure: str
    size: int | None
    system: str
    value: float
    unit: str


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def add(self, target: str, measure: str, size: int | None, system: str, value: float, unit: str = "us") -> float:
        self.rows.append(Row(target, measure, size, system, value, unit))
        return value

    def get(self, target: str, measure: str, size: int | None, system: str) -> float | None:
        for row in self.rows:
            if (row.target, row.measure, row.size, row.system) == (target, measure, size, system):
                return row.value
        return None


class Progress:
    """Progress lines on stderr, only when it is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"\r\033[K{text}", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def engines() -> dict[str, ModuleType]:
    """The engines to compare: the compiled one when it is built, and the pure twin."""
    found: dict[str, ModuleType] = {}
    try:
        from .. import _replay

        found["c"] = _replay
    except ImportError:
        pass
    found["py"] = _replay_py
    return found


def median_per_call(call: Callable[[], Any], *, inner: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean time of ``inner`` back-to-back calls, in µs."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(inner):
            call()
        samples.append((time.perf_counter_ns() - start) / inner / 1000)
    return statistics.median(samples)


class Bench:
    def __init__(self, folder: Path, sizes: tuple[int, ...], quick: bool, progress: Progress) -> None:
        self.folder = folder
        self.sizes = sizes
        self.quick = quick
        self.progress = progress
        self.engines = engines()
        self.results = Results()
        self._templates: dict[int, tuple[Path, workload.PoolInfo]] = {}
        self._copies = 0

    # -- pools ------------------------------------------------------------------------------

    def template(self, size: int) -> tuple[Path, workload.PoolInfo]:
        if size not in self._templates:
            self.progress(f"writing a pool of {size:,} records")
            path = self.folder / f"template-{size}.sqlite"
            # A file as fastpool's writers leave it: its tables and markers (so appends keep the
            # point-read index, as they do in a host's file), then the records, indexed.
            SqliteAgentPoolStore(path).close()
            self._templates[size] = (path, workload.write_pool(path, POOL, size))
            with SqliteAgentPoolStore(path) as store:
                store.build_point_index()
        return self._templates[size]

    def copy(self, size: int) -> tuple[Path, workload.PoolInfo]:
        source, info = self.template(size)
        self._copies += 1
        target = self.folder / f"copy-{self._copies}.sqlite"
        shutil.copyfile(source, target)
        # Flush the copy now: otherwise its writeback (100 MB at N=100k) lands on the
        # timed commits that follow, whichever system they belong to.
        os.sync()
        return target, info

    def fresh_messages(self, info: workload.PoolInfo, count: int) -> list[tuple[Any, Any]]:
        """``count`` (message, receipt) pairs not in the pool yet."""
        pairs = []
        for offset in range(count):
            i = info.messages + offset
            message = workload.message(i, 0, 1, POOL)
            pairs.append((message, workload.receipt(message, MessageStatus.ACCEPTED, (workload.run_id(1),), i)))
        return pairs

    # -- targets ----------------------------------------------------------------------------

    def appends(self, size: int) -> None:
        """T1: ``record_message`` per engine against the raw SQLite limit, rounds interleaved.

        The limit is the same row inserted by APSW alone (one ``BEGIN IMMEDIATE`` one-row
        ``INSERT`` ``COMMIT``, same pragmas, payload encoded before the clock starts) into
        another copy of the same pool. Each round times every system back to back, so a
        slow spell of a shared machine falls on all of them alike.
        """
        from ..model import AgentPoolStoredMessage, MessageRecorded

        rounds, inner = (9, 50) if self.quick else (21, 100)
        calls: dict[str, Callable[[], Any]] = {}
        closers: list[Callable[[], None]] = []

        path, info = self.copy(size)
        texts = iter(
            [
                wire.encode(MessageRecorded(stored=AgentPoolStoredMessage(message=message, receipt=receipt)))
                for message, receipt in self.fresh_messages(info, inner * rounds)
            ]
        )
        db = apsw.Connection(str(path))
        db.execute("PRAGMA journal_mode=WAL").fetchall()
        db.execute("PRAGMA synchronous=NORMAL")
        sequence = iter(range(info.records + 1, 10**9))

        def insert() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                _sql.INSERT,
                (POOL, next(sequence), "run_message", next(texts)),
            )
            db.execute("COMMIT")

        calls["raw"] = insert
        closers.append(db.close)
        for name, engine in self.engines.items():
            path, info = self.copy(size)
            store = SqliteAgentPoolStore(path, engine=engine)
            store.snapshot(POOL)  # warm
            calls[name] = _appender(store, self.fresh_messages(info, inner * rounds))
            closers.append(store.close)
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for number in range(rounds):
            self.progress(f"T1 at N={size:,}: round {number + 1}/{rounds}")
            for name, call in calls.items():
                samples[name].append(median_per_call(call, inner=inner, rounds=1))
        for name, values in samples.items():
            self.results.add("T1", "record_message", size, name, statistics.median(values))
        for close in closers:
            close()

    def lookups(self, size: int) -> None:
        """T2 and T3 for each engine at one pool size: warm point lookups and snapshots."""
        for name, engine in self.engines.items():
            self.progress(f"T2-T3 at N={size:,}, engine {name}")
            path, info = self.copy(size)
            store = SqliteAgentPoolStore(path, engine=engine)
            store.snapshot(POOL)  # warm
            rounds = 9 if self.quick else 21
            message_key = workload.message_key(info.messages // 2)
            wake_key, condition = workload.wake_key(info.wakes // 2), workload.condition_id(info.wakes // 2)
            for measure, call in (
                ("message_receipt", lambda: store.message_receipt(POOL, message_key)),
                ("wake_registration", lambda: store.wake_registration(POOL, wake_key)),
                ("wake", lambda: store.wake(POOL, condition)),
            ):
                self.results.add("T2", measure, size, name, median_per_call(call, inner=2000, rounds=rounds))
            snapshot = median_per_call(lambda: store.snapshot(POOL), inner=2000, rounds=rounds)
            self.results.add("T3", "warm snapshot", size, name, snapshot)
            store.close()

    def after_other_append(self, size: int) -> None:
        """T4: a snapshot right after another store object appended one record."""
        for name, engine in self.engines.items():
            self.progress(f"T4 at N={size:,}, engine {name}")
            path, info = self.copy(size)
            writer = SqliteAgentPoolStore(path, engine=engine)
            reader = SqliteAgentPoolStore(path, engine=engine)
            reader.snapshot(POOL)
            rounds = 31 if self.quick else 101
            samples = []
            for message, receipt in self.fresh_messages(info, rounds):
                writer.record_message(POOL, message, receipt)
                start = time.perf_counter_ns()
                reader.snapshot(POOL)
                samples.append((time.perf_counter_ns() - start) / 1000)
            self.results.add("T4", "snapshot after another store appended", size, name, statistics.median(samples))
            writer.close()
            reader.close()

    def cold_replay(self, size: int) -> None:
        """T5: a new store object's first snapshot of a filled pool, as records/s, and the raw
        limit: a new connection's scan of the same rows with ``orjson.loads`` of each."""
        for name, engine in {**self.engines, "raw": None}.items():
            rounds = 1 if name == "py" or size >= 100_000 else 3
            samples = []
            for _ in range(rounds):
                self.progress(f"T5 cold replay of {size:,} records, {name}")
                path, info = self.copy(size)
                gc.collect()
                start = time.perf_counter()
                if engine is None:
                    replay.scan(path)
                else:
                    with SqliteAgentPoolStore(path, engine=engine) as store:
                        store.snapshot(POOL)
                samples.append(info.records / (time.perf_counter() - start))
            self.results.add("T5", "cold replay", size, name, statistics.median(samples), "records/s")

    def memory(self, size: int) -> None:
        """T8: bytes the cached state of a pool holds per record (tracemalloc, in a new process)."""
        name, engine = next(iter(self.engines.items()))
        self.progress(f"T8 memory at N={size:,}")
        path, info = self.copy(size)
        held, json_bytes = replay.held_bytes(path, engine)
        self.results.add("T8", "cached state per record", size, name, held / info.records, "bytes")
        self.results.add("T8", "JSON per record", size, "raw", json_bytes / info.records, "bytes")

    def seed(self, size: int) -> None:
        """T7: the seed's algorithm on the same pool (a handful of calls: each replays everything)."""
        self.progress(f"T7 seed baseline at N={size:,}")
        path, info = self.copy(size)
        store = SeedAgentPoolStore(str(path))
        pairs = iter(self.fresh_messages(info, 10))
        message_key = workload.message_key(info.messages // 2)
        calls = 3
        self.results.add(
            "T1",
            "record_message",
            size,
            "seed",
            median_per_call(lambda: store.record_message(POOL, *next(pairs)), inner=1, rounds=calls),
        )
        self.results.add(
            "T2",
            "message_receipt",
            size,
            "seed",
            median_per_call(lambda: store.message_receipt(POOL, message_key), inner=1, rounds=calls),
        )
        self.results.add(
            "T3", "warm snapshot", size, "seed", median_per_call(lambda: store.snapshot(POOL), inner=1, rounds=calls)
        )
        store.close()

    def processes(self) -> None:
        """T6: 4 processes × K record_message into one pool at once, against one process alone.

        Three runs of each, alternated, and the median kept: how four writers share two
        cores is the noisiest figure here.
        """
        per_process = 500 if self.quick else 2500
        rates: dict[int, list[float]] = {1: [], 4: []}
        for run in range(3):
            for workers in (1, 4):
                self.progress(f"T6 run {run + 1}/3: {workers} process(es) × {per_process} record_message")
                path, _ = self.copy(0)
                total = per_process * workers
                elapsed, errors = _run_writers(path, workers, per_process)
                with SqliteAgentPoolStore(path, readonly=True) as store:
                    cursors = [record.cursor.sequence for record in store.watch(POOL)]
                expected = list(range(1, 2 + 1 + total))  # pool_opened, pool_created, then the writes
                gap_free = self.results.checks.get(f"T6 {workers} processes gap-free", True)
                self.results.checks[f"T6 {workers} processes gap-free"] = gap_free and cursors == expected
                failed = self.results.checks.get(f"T6 {workers} processes errors", 0)
                self.results.checks[f"T6 {workers} processes errors"] = failed + errors
                rates[workers].append(total / elapsed)
        system = "c" if "c" in self.engines else "py"
        for workers, values in rates.items():
            self.results.add("T6", f"{workers} process(es) aggregate", 0, system, statistics.median(values), "ops/s")
        self.results.checks["T6 4-process / 1-process ratios"] = [
            round(four / one, 2) for one, four in zip(rates[1], rates[4])
        ]

    def coordinator(self) -> None:
        """AP: ``AgentPool.send`` (and ``AsyncAgentPool.send``) per second beside the store-only loop."""
        sends = 300 if self.quick else 2000
        self.progress(f"AP: {sends} sends per loop, {len(agent_pool.LOOPS)} loops × 3 rounds")
        system = "c" if "c" in self.engines else "py"
        for name, (wall, _cpu) in agent_pool.measure(sends, 3, 0).items():
            self.results.add("AP", name, 0, system, wall, "sends/s")

    def run(self) -> Results:
        for size in self.sizes:
            self.appends(size)
            self.lookups(size)
        self.after_other_append(T4_SIZE)
        for size in self.sizes:
            if size:
                self.cold_replay(size)
        self.processes()
        if T7_SIZE in self.sizes:
            self.seed(T7_SIZE)
        self.memory(max(self.sizes))
        largest = max(self.sizes)
        replay.measure(
            self.results.add, self.folder, largest, self.engines, self.template(largest)[0], self.quick, self.progress
        )
        self.coordinator()
        self.many_pools()
        self.group_commit()
        self.async_host_loop()
        big_pools.run(self, median_per_call)  # T10, T11
        self.progress.done()
        return self.results

    # -- throughput: many pools, group commit, the async store --------------------------------

    def _store_with_pools(self, name: str, pools: list[str], synchronous: str) -> tuple[Path, Path]:
        """A new file with ``pools`` opened, and a copy of it for the raw inserts."""
        path = self.folder / f"{name}.sqlite"
        with SqliteAgentPoolStore(path, synchronous=synchronous) as store:
            with store.transaction():
                for pool_id in pools:
                    store.open_pool(pool_id, workload.CONFIG)
        raw = self.folder / f"{name}-raw.sqlite"
        shutil.copyfile(path, raw)
        os.sync()
        return path, raw

    def many_pools(self) -> None:
        """T1m: ``record_message`` rotating over ``T1M_POOLS`` pools (and T1 at synchronous=full,
        one pool), each against the raw insert doing the same in the same run, rounds interleaved."""
        system = _best(self.engines)
        for synchronous in ("normal", "full"):
            for pools_count, target in ((T1M_POOLS, "T1m"), (1, "T1")):
                if target == "T1" and synchronous == "normal":
                    continue  # T1 proper, measured above
                pools = [f"pool.many.{n:03d}" for n in range(pools_count)]
                path, raw_path = self._store_with_pools(f"{target}-{synchronous}", pools, synchronous)
                rounds, inner = _rounds(self.quick, synchronous)
                appends = [(pools[i % pools_count], *_pair(pools[i % pools_count], i)) for i in range(rounds * inner)]
                db = _raw_connection(raw_path, synchronous)
                raw = _raw_appender(db, appends, {})
                store = SqliteAgentPoolStore(path, synchronous=synchronous)
                for pool_id in pools:
                    store.snapshot(pool_id)  # warm
                upcoming = iter(appends)
                calls: dict[str, Callable[[], Any]] = {
                    "raw": raw,
                    system: lambda: store.record_message(*next(upcoming)),
                }
                samples: dict[str, list[float]] = {name: [] for name in calls}
                for number in range(rounds):
                    self.progress(f"{target}, {pools_count} pool(s), synchronous={synchronous}: round {number + 1}")
                    for name, call in calls.items():
                        samples[name].append(median_per_call(call, inner=inner, rounds=1))
                for name, values in samples.items():
                    self.results.add(target, _t1m_measure(pools_count, synchronous), 0, name, statistics.median(values))
                store.close()
                db.close()

    def group_commit(self) -> None:
        """T9: appends/s of ``T9_WRITERS`` threads, and of as many aio tasks, through one store,
        against one caller appending serially (and the raw insert), at both synchronous
        levels; p50/p99 latency per call. Rounds interleaved, medians."""
        system = _best(self.engines)
        for synchronous in ("normal", "full"):
            per_writer = (
                (40 if synchronous == "normal" else 8) if self.quick else (250 if synchronous == "normal" else 30)
            )
            total = per_writer * T9_WRITERS
            path, raw_path = self._store_with_pools(f"T9-{synchronous}", [POOL], synchronous)
            db = _raw_connection(raw_path, synchronous)
            store = SqliteAgentPoolStore(path, synchronous=synchronous)
            store.snapshot(POOL)
            rates: dict[str, list[float]] = {"raw": [], "serial": [], "threads": [], "tasks": []}
            latencies: dict[str, list[float]] = {"threads": [], "tasks": []}
            first = 0
            sequences: dict[str, int] = {}  # the raw file's last sequence per pool
            rounds = 3
            for number in range(rounds):
                self.progress(f"T9 group commit, synchronous={synchronous}: round {number + 1}/{rounds}")
                serial_count = total if synchronous == "normal" else max(total // 4, 40)
                appends = [(POOL, *_pair(POOL, first + i)) for i in range(serial_count)]
                first += serial_count
                raw = _raw_appender(db, appends, sequences)
                rates["raw"].append(1e6 / median_per_call(raw, inner=serial_count, rounds=1))
                upcoming = iter(appends)
                serial = median_per_call(lambda: store.record_message(*next(upcoming)), inner=serial_count, rounds=1)
                rates["serial"].append(1e6 / serial)
                for mode in ("threads", "tasks"):
                    work = [
                        [_pair(POOL, first + k * per_writer + i) for i in range(per_writer)] for k in range(T9_WRITERS)
                    ]
                    first += total
                    rate, waited = (_threads_appending if mode == "threads" else _tasks_appending)(store, work)
                    rates[mode].append(rate)
                    latencies[mode].extend(waited)
            for name, values in rates.items():
                self.results.add("T9", _t9_measure(name, synchronous), 0, system, statistics.median(values), "ops/s")
            for mode, values in latencies.items():
                values.sort()
                for label, quantile in (("p50", 0.5), ("p99", 0.99)):
                    value = values[min(len(values) - 1, int(len(values) * quantile))] * 1e6
                    self.results.add("T9", _t9_measure(mode, synchronous, label), 0, system, value)
            store.close()
            db.close()

    def async_host_loop(self) -> None:
        """The async store in an agent host's send loop (issue 16): per message, a receipt
        check, then ``record_message`` accepted and delivered; ``AIO_TASKS`` tasks through
        ``AsyncAgentPoolStore`` against one caller through the sync store, rounds interleaved;
        and a warm ``message_receipt`` through the async API."""
        system = _best(self.engines)
        count = 500 if self.quick else 2500
        sync_path, _ = self._store_with_pools("aio-sync", [POOL], "normal")
        async_path, _ = self._store_with_pools("aio-async", [POOL], "normal")
        rates: dict[str, list[float]] = {"sync": [], "async": []}
        first = 0
        for number in range(3):
            self.progress(f"async host loop: round {number + 1}/3")
            sends = [_send(first + i) for i in range(count)]
            first += count
            with SqliteAgentPoolStore(sync_path) as store:
                store.snapshot(POOL)
                started = time.perf_counter()
                for message, accepted, delivered in sends:
                    if store.message_receipt(POOL, message.idempotency_key) is None:
                        store.record_message(POOL, message, accepted)
                        store.record_message(POOL, message, delivered)
                rates["sync"].append(count / (time.perf_counter() - started))
            rates["async"].append(asyncio.run(_async_sends(async_path, sends)))
        self.results.add("AIO", AIO_SYNC, 0, system, statistics.median(rates["sync"]), "msg/s")
        self.results.add("AIO", AIO_ASYNC, 0, system, statistics.median(rates["async"]), "msg/s")
        read = asyncio.run(_async_cached_read(async_path, 9 if self.quick else 21))
        self.results.add("AIO", AIO_READ, 0, system, read)


# -- throughput workloads (T1m, T9; the async store); their bounds are targets.py's
T1M_POOLS = 300
T9_WRITERS = 16  # threads, and aio tasks
AIO_TASKS = 50


AIO_SYNC, AIO_ASYNC = "host loop, sync store, 1 caller", f"host loop, async store, {AIO_TASKS} tasks"
AIO_READ = "warm message_receipt, async store"


def _t1m_measure(pools: int, synchronous: str) -> str:
    return (
        f"record_message, {pools} pools, {synchronous}" if pools > 1 else f"record_message, synchronous={synchronous}"
    )


def _t9_measure(writers: str, synchronous: str, latency: str = "") -> str:
    """The T9 row of ``writers`` ("raw", "serial", "threads", "tasks"), its appends/s or a latency."""
    who = {"raw": "raw insert", "serial": "1 caller", "threads": f"{T9_WRITERS} threads"}.get(
        writers, f"{T9_WRITERS} aio tasks"
    )
    return f"{who} {latency}, {synchronous}" if latency else f"{who}, {synchronous}"


def _best(engines: dict[str, ModuleType]) -> str:
    return "c" if "c" in engines else "py"


def _rounds(quick: bool, synchronous: str) -> tuple[int, int]:
    """(rounds, calls per round) of an append measurement: fewer at synchronous=full (each a sync)."""
    if synchronous == "full":
        return (5, 10) if quick else (9, 20)
    return (9, 50) if quick else (21, 100)


def _pair(pool_id: str, i: int) -> tuple[Any, Any]:
    """Fresh message ``i`` of ``pool_id`` and its accepted receipt."""
    message = workload.message(10**6 + i, 0, 1, pool_id)
    return message, workload.receipt(message, MessageStatus.ACCEPTED, (workload.run_id(1),), i)


def _send(i: int) -> tuple[Any, Any, Any]:
    """A send of the host loop: the message, its accepted and its delivered receipt."""
    message, accepted = _pair(POOL, i)
    return message, accepted, workload.receipt(message, MessageStatus.DELIVERED, (workload.run_id(1),), i)


def _payload_text(message: Any, receipt: Any) -> str:
    from ..model import AgentPoolStoredMessage, MessageRecorded

    return wire.encode(MessageRecorded(stored=AgentPoolStoredMessage(message=message, receipt=receipt)))


def _raw_connection(path: Path, synchronous: str) -> apsw.Connection:
    db = apsw.Connection(str(path))
    db.execute("PRAGMA journal_mode=WAL").fetchall()
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    return db


def _raw_appender(
    db: apsw.Connection, appends: list[tuple[str, Any, Any]], sequences: dict[str, int]
) -> Callable[[], None]:
    """The raw limit for ``appends`` ((pool, message, receipt), encoded before the clock): each
    call one ``BEGIN IMMEDIATE`` one-row insert ``COMMIT`` at the pool's next sequence (the
    last ones in ``sequences``)."""
    rows = iter([(pool_id, _payload_text(message, receipt)) for pool_id, message, receipt in appends])

    def insert() -> None:
        pool_id, text = next(rows)
        sequences[pool_id] = sequences.get(pool_id, 1) + 1  # each pool holds its pool_opened
        db.execute("BEGIN IMMEDIATE")
        db.execute(_sql.INSERT, (pool_id, sequences[pool_id], "run_message", text))
        db.execute("COMMIT")

    return insert


def _threads_appending(store: SqliteAgentPoolStore, work: list[list[tuple[Any, Any]]]) -> tuple[float, list[float]]:
    """Appends/s of one thread per list of ``work`` appending at once, and each call's seconds."""
    waited: list[float] = []
    barrier = threading.Barrier(len(work) + 1)

    def append(pairs: list[tuple[Any, Any]]) -> None:
        mine = []
        barrier.wait()
        for message, receipt in pairs:
            started = time.perf_counter()
            store.record_message(POOL, message, receipt)
            mine.append(time.perf_counter() - started)
        waited.extend(mine)

    threads = [threading.Thread(target=append, args=(pairs,)) for pairs in work]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(map(len, work)) / (time.perf_counter() - started), waited


def _tasks_appending(store: SqliteAgentPoolStore, work: list[list[tuple[Any, Any]]]) -> tuple[float, list[float]]:
    """``_threads_appending`` with one asyncio task per list, through ``AsyncAgentPoolStore``."""
    from ..aio import AsyncAgentPoolStore

    waited: list[float] = []

    async def main() -> float:
        wrapper = AsyncAgentPoolStore(store)

        async def append(pairs: list[tuple[Any, Any]]) -> None:
            for message, receipt in pairs:
                started = time.perf_counter()
                await wrapper.record_message(POOL, message, receipt)
                waited.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(append(pairs) for pairs in work))
        elapsed = time.perf_counter() - started
        wrapper._executor.shutdown(wait=False)  # the store stays open for the next round
        return sum(map(len, work)) / elapsed

    return asyncio.run(main()), waited


async def _async_sends(path: Path, sends: list[tuple[Any, Any, Any]]) -> float:
    """Messages/s of ``AIO_TASKS`` tasks running the host loop over ``sends`` through the async store."""
    from ..aio import AsyncAgentPoolStore

    async with AsyncAgentPoolStore(SqliteAgentPoolStore(path)) as store:
        await store.snapshot(POOL)
        share = len(sends) // AIO_TASKS

        async def task(k: int) -> None:
            for message, accepted, delivered in sends[k * share : (k + 1) * share]:
                if await store.message_receipt(POOL, message.idempotency_key) is None:
                    await store.record_message(POOL, message, accepted)
                    await store.record_message(POOL, message, delivered)

        started = time.perf_counter()
        await asyncio.gather(*(task(k) for k in range(AIO_TASKS)))
        return share * AIO_TASKS / (time.perf_counter() - started)


async def _async_cached_read(path: Path, rounds: int) -> float:
    """µs of a warm ``message_receipt`` through the async store: median of ``rounds`` means."""
    from ..aio import AsyncAgentPoolStore

    async with AsyncAgentPoolStore(SqliteAgentPoolStore(path)) as store:
        key = (await store.snapshot(POOL)).messages[0].message.idempotency_key
        await store.message_receipt(POOL, key)
        samples = []
        for _ in range(rounds):
            started = time.perf_counter_ns()
            for _ in range(2000):
                await store.message_receipt(POOL, key)
            samples.append((time.perf_counter_ns() - started) / 2000 / 1000)
        return statistics.median(samples)


def _appender(store: SqliteAgentPoolStore, pairs: list[tuple[Any, Any]]) -> Callable[[], Any]:
    """A call that records the next prepared (message, receipt) pair."""
    upcoming = iter(pairs)
    return lambda: store.record_message(POOL, *next(upcoming))


def _writer(path: str, first: int, count: int, start_at: float, queue: Any) -> None:
    """One T6 writer process: waits for the common start time, then appends ``count`` messages."""
    store = SqliteAgentPoolStore(path)
    pairs = []
    for i in range(first, first + count):
        message = workload.message(i, 0, 1, POOL)
        pairs.append((message, workload.receipt(message, MessageStatus.ACCEPTED, (workload.run_id(1),), i)))
    errors = 0
    time.sleep(max(0.0, start_at - time.time()))
    for message, receipt in pairs:
        try:
            store.record_message(POOL, message, receipt)
        except Exception:  # counted, not raised: T6 reports errors
            errors += 1
    queue.put((time.time(), errors))
    store.close()


def _run_writers(path: Path, workers: int, per_process: int) -> tuple[float, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start_at = time.time() + 1.5  # time for every child to start and build its inputs
    children = [
        context.Process(target=_writer, args=(str(path), 10**6 + k * per_process, per_process, start_at, queue))
        for k in range(workers)
    ]
    for child in children:
        child.start()
    try:
        finished = [queue.get(timeout=300) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    return max(end for end, _ in finished) - start_at, sum(errors for _, errors in finished)


# -- reporting ---------------------------------------------------------------------------------


def _verdicts(results: Results, sizes: tuple[int, ...]) -> list[tuple[str, str, str]]:
    """(target, figure, met?) lines comparing medians with the SPEC targets (``targets.py``)."""
    lines = []
    best = "c" if any(row.system == "c" for row in results.rows) else "py"
    for size in sizes:
        raw = results.get("T1", "record_message", size, "raw")
        t1 = results.get("T1", "record_message", size, best)
        if raw and t1:
            lines.append(("T1", f"record_message N={size:,}: {t1 / raw:.2f} × raw insert", _met(targets.T1, t1 / raw)))
        for measure in ("message_receipt", "wake_registration", "wake"):
            value = results.get("T2", measure, size, best)
            if value is not None:
                lines.append(("T2", f"{measure} N={size:,}: {value:.2f} µs", _met(targets.T2, value)))
        t3 = results.get("T3", "warm snapshot", size, best)
        if t3 is not None:
            lines.append(("T3", f"warm snapshot N={size:,}: {t3:.2f} µs", _met(targets.T3, t3)))
    t4 = results.get("T4", "snapshot after another store appended", T4_SIZE, best)
    if t4 is not None:
        text = f"snapshot after another store's append N={T4_SIZE:,}: {t4:.1f} µs"
        lines.append(("T4", text, _met(targets.T4, t4)))
    for size in sizes:
        c, py = results.get("T5", "cold replay", size, "c"), results.get("T5", "cold replay", size, "py")
        scan = results.get("T5", "cold replay", size, "raw")
        if c is not None and py is not None and scan is not None:
            text = f"cold replay N={size:,}: {c:,.0f} records/s = {scan / c:.2f} × the raw scan's time"
            text += f", {c / py:.1f} × pure"
            met = targets.T5_RAW.met(scan / c) and targets.T5_PURE.met(c / py)
            lines.append(("T5", text, "met" if met else "NOT met"))
    one = results.get("T6", "1 process(es) aggregate", 0, best)
    four = results.get("T6", "4 process(es) aggregate", 0, best)
    if one and four:
        ok = (
            targets.T6.met(four / one)
            and results.checks.get("T6 4 processes gap-free")
            and not results.checks.get("T6 4 processes errors")
        )
        lines.append(
            (
                "T6",
                f"4 processes: {four:,.0f} ops/s = {four / one:.2f} × one process "
                f"(runs: {results.checks.get('T6 4-process / 1-process ratios')}), "
                f"gap-free {results.checks.get('T6 4 processes gap-free')}, "
                f"errors {results.checks.get('T6 4 processes errors')}",
                "met" if ok else "NOT met",
            )
        )
    for target, measure, goal in (
        ("T1", "record_message", targets.T7_WRITE),
        ("T2", "message_receipt", targets.T7_READ),
        ("T3", "warm snapshot", targets.T7_READ),
    ):
        seed, ours = results.get(target, measure, T7_SIZE, "seed"), results.get(target, measure, T7_SIZE, best)
        if seed and ours:
            text = f"{measure} N={T7_SIZE:,}: {seed / ours:,.0f} × faster than the seed"
            lines.append(("T7", text, _met(goal, seed / ours)))
    for row in results.rows:
        if row.target == "T8" and row.measure == "cached state per record" and row.system != "raw":
            json_bytes = results.get("T8", "JSON per record", row.size, "raw")
            text = f"cached state at N={row.size:,}: {row.value:,.0f} bytes per record"
            if json_bytes:
                ratio = row.value / json_bytes
                lines.append(("T8", f"{text} = {ratio:.2f} × its JSON", _met(targets.T8, ratio)))
            else:
                lines.append(("T8", text, "reported"))
    system = "c" if results.get("AP", "AgentPool.send", 0, "c") else "py"
    alone = results.get("AP", agent_pool.STORE_ALONE, 0, system)
    for measure in ("AgentPool.send", agent_pool.DURABLE, f"AsyncAgentPool.send, {agent_pool.TASKS} tasks"):
        value = results.get("AP", measure, 0, system)
        if value and alone:
            text = f"{measure}: {value:,.0f} sends/s = {value / alone:.2f} × the store-only loop"
            goal = targets.AP_DURABLE if measure == agent_pool.DURABLE else targets.AP_SEND
            lines.append(("AP", text, _met(goal, value / alone)))
    durable, tasks = (
        results.get("AP", measure, 0, system) for measure in (agent_pool.DURABLE, agent_pool.DURABLE_TASKS)
    )
    if durable and tasks:
        text = f"{agent_pool.DURABLE_TASKS}: {tasks:,.0f} sends/s = {tasks / durable:.2f} × {agent_pool.DURABLE}"
        lines.append(("AP", text, _met(targets.AP_DURABLE_TASKS, tasks / durable)))
    if sizes:  # none in bench --db's table (T12 only)
        lines += replay.verdicts(results.get, max(sizes))
    lines += _throughput_verdicts(results, best) + big_pools.verdicts(results)
    return lines + _postgres_verdicts(results)


def _postgres_verdicts(results: Results) -> list[tuple[str, str, str]]:
    """T12's lines: each figure against the raw limit measured beside it."""
    lines = []

    def get(measure: str, system: str = postgres.SYSTEM) -> float | None:
        return results.get("T12", measure, None, system)

    append, insert = get(postgres.APPEND), get(postgres.APPEND, "raw")
    if append and insert:
        text = f"record_message: {append / insert:.2f} × a raw INSERT transaction"
        lines.append(("T12", text, _met(targets.T12_APPEND, append / insert)))
    round_trip = get(postgres.ROUND_TRIP, "raw")
    for measure in (postgres.LINEAR_RECEIPT, postgres.LINEAR_SNAPSHOT, postgres.AFTER_APPEND):
        value = get(measure)
        if value and round_trip:
            goal = targets.T12_AFTER_APPEND if measure == postgres.AFTER_APPEND else targets.T12_READ
            lines.append(
                ("T12", f"{measure}: {value / round_trip:.2f} × one round trip", _met(goal, value / round_trip))
            )
    for measure in (postgres.NOTIFIED_RECEIPT, postgres.NOTIFIED_SNAPSHOT):
        value = get(measure)
        if value is not None:
            lines.append(("T12", f"{measure}: {value:.2f} µs", _met(targets.T12_NOTIFIED_READ, value)))
    one, eight = get(postgres.WRITERS[1]), get(postgres.WRITERS[8])
    if one and eight:
        text = f"8 writer processes on 8 pools: {eight:,.0f} records/s = {eight / one:.2f} × one process"
        lines.append(("T12", text, _met(targets.T12_WRITERS, eight / one)))
    return lines


def _throughput_verdicts(results: Results, best: str) -> list[tuple[str, str, str]]:
    """The lines for T1m, T1 at synchronous=full, T9 and the async store."""
    lines = []
    for synchronous in ("normal", "full"):
        for target, pools, goal in (("T1m", T1M_POOLS, targets.T1M), ("T1", 1, targets.T1)):
            measure = _t1m_measure(pools, synchronous)
            ours, raw = results.get(target, measure, 0, best), results.get(target, measure, 0, "raw")
            if ours and raw:
                verdict = _met(goal, ours / raw) if synchronous == "normal" else "reported"
                lines.append((target, f"{measure}: {ours / raw:.2f} × raw insert", verdict))
    for synchronous, goal in (("normal", targets.T9_NORMAL), ("full", targets.T9_FULL)):
        serial = results.get("T9", _t9_measure("serial", synchronous), 0, best)
        for writers in ("threads", "tasks"):
            many = results.get("T9", _t9_measure(writers, synchronous), 0, best)
            p50 = results.get("T9", _t9_measure(writers, synchronous, "p50"), 0, best)
            p99 = results.get("T9", _t9_measure(writers, synchronous, "p99"), 0, best)
            if serial and many and p50 is not None and p99 is not None:
                text = (
                    f"{_t9_measure(writers, synchronous)}: {many / serial:.2f} × one serial caller, "
                    f"p50 {p50:,.0f} µs, p99 {p99:,.0f} µs"
                )
                lines.append(("T9", text, _met(goal, many / serial)))
    sync, tasks = results.get("AIO", AIO_SYNC, 0, best), results.get("AIO", AIO_ASYNC, 0, best)
    if sync and tasks:
        text = f"{AIO_ASYNC} / {AIO_SYNC}: {tasks / sync:.2f}"
        lines.append(("AIO", text, _met(targets.AIO_LOOP, tasks / sync)))
    read = results.get("AIO", AIO_READ, 0, best)
    if read is not None:
        lines.append(("AIO", f"{AIO_READ}: {read:.2f} µs", _met(targets.AIO_READ, read)))
    return lines


def _met(goal: targets.Goal, value: float) -> str:
    return "met" if goal.met(value) else "NOT met"


def format_table(results: Results, sizes: tuple[int, ...]) -> str:
    systems = [s for s in ("c", "py", "seed", "raw") if any(row.system == s for row in results.rows)]
    keys: list[tuple[str, str, int | None, str]] = []
    for row in results.rows:
        key = (row.target, row.measure, row.size, row.unit)
        if key not in keys:
            keys.append(key)
    width = max([40, *(len(measure) for _, measure, _, _ in keys)])
    header = f"{'target':<6} {'measure':<{width}} {'N':>8} " + " ".join(f"{s:>12}" for s in systems) + "  unit"
    lines = [header, "-" * len(header)]
    for target, measure, size, unit in keys:
        cells = []
        for system in systems:
            value = results.get(target, measure, size, system)
            cells.append(f"{'':>12}" if value is None else f"{_number(value):>12}")
        size_text = "" if size is None else f"{size:,}"
        lines.append(f"{target:<6} {measure:<{width}} {size_text:>8} " + " ".join(cells) + f"  {unit}")
    lines.append("")
    lines.append("against the SPEC targets (medians; c = compiled engine where built):")
    for target, text, verdict in _verdicts(results, sizes):
        lines.append(f"  {target}  {text}  [{verdict}]")
    return "\n".join(lines)


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def plot(results: Results, target_file: str) -> None:
    """Cost per call against pool size, log-log, one panel per target."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise SystemExit("fastpool bench --plot needs matplotlib: pip install 'fastpool[bench]'") from error
    panels = [("T1", "record_message"), ("T2", "message_receipt"), ("T3", "warm snapshot")]
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 4.5))
    for axis, (target, measure) in zip(axes, panels):
        for system, style in (("c", "o-"), ("py", "s--"), ("seed", "^:"), ("raw", "x-.")):
            points = sorted(
                (max(row.size or 0, 1), row.value)
                for row in results.rows
                if row.target == target and row.system == system and row.measure == measure
            )
            if points:
                axis.plot(
                    *zip(*points),
                    style,
                    label={
                        "c": "fastpool (compiled)",
                        "py": "fastpool (pure)",
                        "seed": "seed algorithm",
                        "raw": "raw APSW insert",
                    }[system],
                )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_title(f"{target}: {measure}")
        axis.set_xlabel("records in the pool (N=0 drawn at 1)")
        axis.set_ylabel("µs per call (median)")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target_file, dpi=110)


def machine() -> str:
    """The machine and versions a run measured."""
    python, sqlite = platform.python_version(), apsw.sqlite_lib_version()
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {python}, SQLite {sqlite}"


def postgres_results(conninfo: str, quick: bool, progress: Progress) -> tuple[str, Results]:
    """T12 on the server ``conninfo`` reaches: what it is, and the figures."""
    server, figures = postgres.measure(conninfo, 500 if quick else 2000, progress)
    progress.done()
    return server, t12_results(figures)


def t12_results(figures: list[postgres.Figure]) -> Results:
    """``postgres.measure``'s figures as the rows ``format_table`` prints."""
    results = Results()
    for measure, system, value, unit in figures:
        results.add("T12", measure, None, system, value, unit)
    return results


def main(args: argparse.Namespace) -> int:
    if args.db is not None:
        return _main_postgres(args)
    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    progress = Progress()
    with tempfile.TemporaryDirectory(prefix="fastpool-bench-") as folder:
        results = Bench(Path(folder), sizes, args.quick, progress).run()
    print(f"fastpool bench ({'quick' if args.quick else 'full'}) on {machine()}")
    print(format_table(results, sizes))
    _write_json(args, results, sizes)
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def _main_postgres(args: argparse.Namespace) -> int:
    """``fastpool bench --db postgresql://…``: T12 only (the SQLite targets run on temporary files)."""
    backend, conninfo = backend_of(args.db)
    if backend != "postgres":
        raise InvalidInput(f"--db: expected a postgresql:// URL (the SQLite targets need none), got {args.db!r}")
    if args.sizes or args.plot:
        raise InvalidInput("--sizes and --plot are for the SQLite targets; bench --db measures T12 only")
    server, results = postgres_results(conninfo, args.quick, Progress())
    print(f"fastpool bench ({'quick' if args.quick else 'full'}, {server}) on {machine()}")
    print(format_table(results, ()))
    _write_json(args, results, ())
    return 0


def _write_json(args: argparse.Namespace, results: Results, sizes: tuple[int, ...]) -> None:
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine(),
                    "sizes": sizes,
                    "rows": [asdict(row) for row in results.rows],
                    "checks": results.checks,
                },
                indent=2,
            )
        )
