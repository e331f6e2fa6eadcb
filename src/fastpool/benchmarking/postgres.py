"""T12 on PostgreSQL, side by side with its raw limits in one run: ``fastpool bench --db
postgresql://…`` and ``benches/bench_postgres.py`` (which can start a throwaway server).

Rows (medians, microseconds per call unless stated): one round trip (``SELECT 1``) and a raw
one-row INSERT transaction through psycopg, both through its libpq layer (``pgconn``,
prepared, as the store sends its statements) and its cursor layer; ``record_message``; warm
``message_receipt`` and unchanged ``snapshot`` in both consistency modes; ``snapshot`` after
another process appended one record (linearizable), and how long a notified store takes to
see that record; 1, 2 and 8 writer processes on their own pools (records/s). Everything runs
in a schema of its own, dropped at the end; inputs are built before the clock starts.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .. import wire
from .._compat import USE_EXTENSIONS
from .._pg_errors import translate
from ..enums import MessageStatus
from ..model import AgentPoolStoredMessage, MessageReceipt, MessageRecorded, RunMessage
from ..postgres import PostgresAgentPoolStore, _driver
from . import workload

POOL = "pool.bench"  # appended to
READ_POOL = "pool.read"  # only read while timed
SYSTEM = "c" if USE_EXTENSIONS else "py"  # the engine the stores use

# The measures, as the table names them (the verdicts find them by these names).
ROUND_TRIP = "round trip: SELECT 1 (libpq, prepared)"
APPEND = "record_message"  # its raw figure: the INSERT transaction (libpq, prepared, autocommit)
RAW_CURSOR = "raw INSERT transaction (cursor layer)"
LINEAR_RECEIPT = "warm message_receipt (linearizable)"
LINEAR_SNAPSHOT = "unchanged snapshot (linearizable)"
NOTIFIED_APPEND = "record_message, a notified store beside"
NOTIFIED_RECEIPT = "warm message_receipt (notified)"
NOTIFIED_SNAPSHOT = "unchanged snapshot (notified)"
AFTER_APPEND = "snapshot after another process appended"
NOTIFIED_LAG = "notified store sees it, from the ack"
WRITERS = {count: f"{count} writer process{'es' if count > 1 else ''}, own pools" for count in (1, 2, 8)}

#: One measured figure: (measure, system, value, unit).
Figure = tuple[str, str, float, str]


def interleaved(functions: dict[str, Callable[[], Any]], n: int, rounds: int = 7) -> dict[str, float]:
    """Mean microseconds per call of each function, median over ``rounds`` rounds that run
    every function in turn (``n`` calls each), so a noisy neighbour hits them all alike."""
    for function in functions.values():
        for _ in range(min(n, 200)):
            function()
    runs: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            for _ in range(n):
                function()
            runs[name].append((time.perf_counter() - started) / n * 1e6)
    return {name: statistics.median(values) for name, values in runs.items()}


def _pairs(first: int, count: int) -> Iterator[tuple[RunMessage, MessageReceipt]]:
    """``count`` (message, receipt) pairs of new messages, built now (before any clock starts)."""
    pairs = []
    for i in range(first, first + count):
        message = workload.message(i)
        pairs.append((message, workload.receipt(message, MessageStatus.ACCEPTED, (workload.run_id(1),), i)))
    return iter(pairs)


def _timed_rows(conninfo: str, schema: str, n: int) -> list[Figure]:
    """The per-call rows, measured interleaved."""
    import psycopg

    connection = psycopg.connect(conninfo, autocommit=True)
    # A logged table like the store's (a TEMP table would skip the WAL flush at commit).
    raw = f'"{schema}".raw_insert'
    connection.execute(
        f"CREATE TABLE {raw} (pool_id text, seq bigint, kind text, payload_json text, PRIMARY KEY (pool_id, seq))"
    )
    pgconn, cursor = connection.pgconn, connection.cursor()
    pgconn.prepare(b"one", b"SELECT 1")
    pgconn.prepare(b"insert", f"INSERT INTO {raw} VALUES ($1, $2, $3, $4)".encode())
    message, receipt = next(_pairs(0, 1))
    payload = wire.encode(MessageRecorded(stored=AgentPoolStoredMessage(message=message, receipt=receipt)))
    counter = iter(range(1, 10**9))

    def raw_transaction() -> None:
        with connection.transaction():
            cursor.execute(
                f"INSERT INTO {raw} VALUES (%s, %s, %s, %s)", ("p", next(counter), "run_message", payload), prepare=True
            )

    linear = PostgresAgentPoolStore(conninfo, schema=schema)
    notified = None
    for pool_id in (POOL, READ_POOL):
        linear.open_pool(pool_id, workload.CONFIG)
        linear.record_message(pool_id, message, receipt)
    appends = _pairs(1, 2 * (min(n, 200) + 7 * n))  # two groups below append, each warm-up + 7 rounds

    def append() -> None:
        linear.record_message(POOL, *next(appends))

    key = workload.message_key(0)
    first = {
        ROUND_TRIP: lambda: pgconn.exec_prepared(b"one", []),
        "raw INSERT (libpq, prepared, autocommit)": lambda: pgconn.exec_prepared(
            b"insert", [b"p", str(next(counter)).encode(), b"run_message", payload.encode()]
        ),
        RAW_CURSOR: raw_transaction,
        APPEND: append,
        LINEAR_RECEIPT: lambda: linear.message_receipt(READ_POOL, key),
        LINEAR_SNAPSHOT: lambda: linear.snapshot(READ_POOL),
    }
    try:
        measured = interleaved(first, n)
        # A notified store's listener thread wakes on every append, this process's included, so
        # its rows are a second group (with the append again, beside them).
        notified = PostgresAgentPoolStore(conninfo, schema=schema, consistency="notified")
        notified.snapshot(READ_POOL)
        second = {
            NOTIFIED_APPEND: append,
            NOTIFIED_RECEIPT: lambda: notified.message_receipt(READ_POOL, key),
            NOTIFIED_SNAPSHOT: lambda: notified.snapshot(READ_POOL),
        }
        measured |= interleaved(second, n)
    finally:
        linear.close()
        if notified is not None:
            notified.close()
        connection.close()
    raw_insert = measured.pop("raw INSERT (libpq, prepared, autocommit)")
    figures = [(ROUND_TRIP, "raw", measured.pop(ROUND_TRIP), "us"), (APPEND, "raw", raw_insert, "us")]
    figures.append((RAW_CURSOR, "raw", measured.pop(RAW_CURSOR), "us"))
    return figures + [(name, SYSTEM, value, "us") for name, value in measured.items()]


def _append_worker(conninfo: str, schema: str, pool_id: str, requests: Any, done: Any) -> None:
    """Appends one record each time it is asked; puts the time of each acknowledgement."""
    with PostgresAgentPoolStore(conninfo, schema=schema) as store:
        while requests.get() is not None:
            store.record_pool_created(pool_id)
            done.put(time.perf_counter())


def _writer(conninfo: str, schema: str, pool_id: str, count: int, barrier: Any, results: Any) -> None:
    """One writer process: opens its own pool, waits for the others, appends ``count`` messages."""
    pairs = _pairs(0, count)
    with PostgresAgentPoolStore(conninfo, schema=schema) as store:
        store.open_pool(pool_id, workload.CONFIG)
        barrier.wait()
        for message, receipt in pairs:
            store.record_message(pool_id, message, receipt)
        results.put(None)


def _writers(conninfo: str, schema: str, processes: int, count: int, run: int) -> float:
    """Aggregate records/s of ``processes`` writers, each on a new pool of its own."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    children = [
        context.Process(
            target=_writer, args=(conninfo, schema, f"pool.w{i}.{processes}.{run}", count, barrier, results)
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        barrier.wait(timeout=120)
        started = time.perf_counter()
        for _ in children:
            results.get(timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    return processes * count / elapsed


def _process_rows(conninfo: str, schema: str, n: int, progress: Callable[[str], None]) -> list[Figure]:
    """The rows that need other processes."""
    linear = PostgresAgentPoolStore(conninfo, schema=schema)
    notified = PostgresAgentPoolStore(conninfo, schema=schema, consistency="notified")
    # Another process appends one record; this one then takes a snapshot.
    context = multiprocessing.get_context("spawn")
    requests, done = context.Queue(), context.Queue()
    child = context.Process(target=_append_worker, args=(conninfo, schema, POOL, requests, done))
    child.start()
    after_append, lags = [], []
    try:
        for _ in range(max(50, n // 8)):
            requests.put(1)
            acknowledged = done.get(timeout=60)
            started = time.perf_counter()
            linear.snapshot(POOL)
            after_append.append((time.perf_counter() - started) * 1e6)
            target = linear.snapshot(POOL).cursor
            while notified.snapshot(POOL).cursor != target:
                pass
            lags.append((time.perf_counter() - acknowledged) * 1e6)
    finally:
        requests.put(None)
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
        linear.close()
        notified.close()
    figures: list[Figure] = [
        (AFTER_APPEND, SYSTEM, statistics.median(after_append), "us"),
        (NOTIFIED_LAG, SYSTEM, statistics.median(lags), "us"),
    ]
    # Three runs of each, alternated, and the median kept: how 8 processes share the cores
    # (the server's among them) is the noisiest figure here, and a first run starts cold.
    count = max(500, n // 4)
    rates: dict[int, list[float]] = {processes: [] for processes in WRITERS}
    for run in range(3):
        for processes in WRITERS:
            progress(f"T12 run {run + 1}/3: {WRITERS[processes]}")
            rates[processes].append(_writers(conninfo, schema, processes, count, run))
    return figures + [
        (WRITERS[processes], SYSTEM, statistics.median(rates[processes]), "records/s") for processes in rates
    ]


def measure(conninfo: str, n: int, progress: Callable[[str], None]) -> tuple[str, list[Figure]]:
    """The server's version and the T12 figures, ``n`` calls per timed run."""
    psycopg = _driver()
    schema = f"fastpool_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            version = str(admin.execute("SHOW server_version").fetchall()[0][0])
            admin.execute(f'CREATE SCHEMA "{schema}"')
            try:
                progress("T12: per-call rows")
                figures = _timed_rows(conninfo, schema, n)
                progress("T12: another process's append")
                figures += _process_rows(conninfo, schema, n, progress)
            finally:
                admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    except psycopg.Error as error:  # the benchmark's own connections: as the store words its failures
        raise translate(error) from error
    return f"PostgreSQL {version}", figures
