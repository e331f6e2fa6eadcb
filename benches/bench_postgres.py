"""T12, PostgreSQL side by side with its raw limits, in one run (medians, microseconds).

    python benches/bench_postgres.py [--db postgresql://…] [--server default|nofsync] [--n 2000]

Without ``--db`` it starts a throwaway cluster (tests/pg_server.py): ``default`` keeps the
server's durability defaults (fsync on, synchronous_commit on), ``nofsync`` is the test
suite's cluster (fsync off), which shows the CPU and round-trip costs alone.

Rows: one round trip (``SELECT 1``) and a raw one-row INSERT transaction through psycopg,
both through its libpq layer (``pgconn``, prepared) and its cursor layer; ``record_message``;
warm ``message_receipt`` and unchanged ``snapshot`` in both consistency modes; ``snapshot``
after another process appended one record (linearizable), and how long a notified store
takes to see that record; 1, 2 and 8 writer processes on their own pools (records/s).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import TEST_SETTINGS, PostgresServer, find_bindir  # noqa: E402
from store_helpers import CONFIG, message, receipt  # noqa: E402

from fastpool import AgentPoolStoredMessage, MessageRecorded, PostgresAgentPoolStore, wire  # noqa: E402

POOL = "pool.bench"  # appended to
READ_POOL = "pool.read"  # only read while timed


def interleaved(functions: dict[str, Any], n: int, rounds: int = 7) -> dict[str, float]:
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


def timed_rows(conninfo: str, schema: str, n: int) -> dict[str, float]:
    """The per-call rows, measured interleaved."""
    import psycopg

    connection = psycopg.connect(conninfo, autocommit=True)
    # A logged table like the store's (a TEMP table would skip the WAL flush at commit).
    raw = f"{schema}_raw"
    connection.execute(
        f"CREATE TABLE {raw} (pool_id text, seq bigint, kind text, payload_json text, PRIMARY KEY (pool_id, seq))"
    )
    pgconn, cursor = connection.pgconn, connection.cursor()
    pgconn.prepare(b"one", b"SELECT 1")
    pgconn.prepare(b"insert", f"INSERT INTO {raw} VALUES ($1, $2, $3, $4)".encode())
    stored = AgentPoolStoredMessage(message=message("msg.raw"), receipt=receipt("msg.raw"))
    payload = wire.encode(MessageRecorded(stored=stored))  # what record_message writes
    counter = iter(range(1, 10**9))

    def raw_transaction() -> None:
        with connection.transaction():
            cursor.execute(
                f"INSERT INTO {raw} VALUES (%s, %s, %s, %s)", ("p", next(counter), "k", payload), prepare=True
            )

    linear = PostgresAgentPoolStore(conninfo, schema=schema)
    for pool_id in (POOL, READ_POOL):
        linear.open_pool(pool_id, CONFIG)
        linear.record_message(pool_id, message("msg.1"), receipt("msg.1"))

    def append() -> None:
        k = next(counter)
        linear.record_message(POOL, message(f"msg.{k}"), receipt(f"msg.{k}"))

    functions = {
        "round trip: SELECT 1 (pgconn, prepared)": lambda: pgconn.exec_prepared(b"one", []),
        "round trip: SELECT 1 (cursor)": lambda: cursor.execute("SELECT 1", prepare=True),
        "raw INSERT transaction (pgconn, prepared, autocommit)": lambda: pgconn.exec_prepared(
            b"insert", [b"p", str(next(counter)).encode(), b"run_message", payload.encode()]
        ),
        "raw INSERT transaction (cursor, BEGIN/COMMIT)": raw_transaction,
        "record_message (append)": append,
    }
    functions["warm message_receipt (linearizable)"] = lambda: linear.message_receipt(READ_POOL, "key.msg.1")
    functions["unchanged snapshot (linearizable)"] = lambda: linear.snapshot(READ_POOL)
    # A notified store's listener thread wakes on every append, this process's included, so
    # its rows are a second group (with the append again, beside them).
    notified = PostgresAgentPoolStore(conninfo, schema=schema, consistency="notified")
    second = {
        "record_message with a notified store in the process": append,
        "warm message_receipt (notified)": lambda: notified.message_receipt(READ_POOL, "key.msg.1"),
        "unchanged snapshot (notified)": lambda: notified.snapshot(READ_POOL),
    }
    try:
        rows = interleaved(functions, n)
        notified.snapshot(READ_POOL)
        return rows | interleaved(second, n)
    finally:
        linear.close()
        notified.close()
        connection.execute(f"DROP TABLE {raw}")
        connection.close()


def _append_worker(conninfo: str, schema: str, pool_id: str, requests: Any, done: Any) -> None:
    with PostgresAgentPoolStore(conninfo, schema=schema) as store:
        while requests.get() is not None:
            store.record_pool_created(pool_id)
            done.put(time.perf_counter())


def _writer(conninfo: str, schema: str, pool_id: str, count: int, barrier: Any, results: Any) -> None:
    with PostgresAgentPoolStore(conninfo, schema=schema) as store:
        store.open_pool(pool_id, CONFIG)
        barrier.wait()
        started = time.perf_counter()
        for n in range(count):
            store.record_message(pool_id, message(f"msg.{n}"), receipt(f"msg.{n}"))
        results.put(time.perf_counter() - started)


def writers(conninfo: str, schema: str, processes: int, count: int) -> float:
    """Aggregate records/s of ``processes`` writers, each on its own pool."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes + 1), context.Queue()
    children = [
        context.Process(target=_writer, args=(conninfo, schema, f"pool.w{i}.{processes}", count, barrier, results))
        for i in range(processes)
    ]
    for child in children:
        child.start()
    barrier.wait()
    started = time.perf_counter()
    for _ in children:
        results.get(timeout=300)
    elapsed = time.perf_counter() - started
    for child in children:
        child.join()
    return processes * count / elapsed


def process_rows(conninfo: str, schema: str, n: int) -> dict[str, float]:
    """The rows that need other processes."""
    rows: dict[str, float] = {}
    linear = PostgresAgentPoolStore(conninfo, schema=schema)
    notified = PostgresAgentPoolStore(conninfo, schema=schema, consistency="notified")
    # Another process appends one record; this one then takes a snapshot.
    context = multiprocessing.get_context("spawn")
    requests, done = context.Queue(), context.Queue()
    child = context.Process(target=_append_worker, args=(conninfo, schema, POOL, requests, done))
    child.start()
    after_append, lags = [], []
    for _ in range(300):
        requests.put(1)
        acknowledged = done.get(timeout=60)
        started = time.perf_counter()
        linear.snapshot(POOL)
        after_append.append((time.perf_counter() - started) * 1e6)
        target = linear.snapshot(POOL).cursor
        while notified.snapshot(POOL).cursor != target:
            pass
        lags.append((time.perf_counter() - acknowledged) * 1e6)
    requests.put(None)
    child.join()
    rows["snapshot after another process's append (linearizable)"] = statistics.median(after_append)
    rows["notified store sees another process's append (lag from its ack)"] = statistics.median(lags)
    linear.close()
    notified.close()
    count = max(200, n // 4)
    rows["1 writer process, records/s"] = writers(conninfo, schema, 1, count)
    rows["2 writer processes on 2 pools, records/s"] = writers(conninfo, schema, 2, count)
    rows["8 writer processes on 8 pools, records/s"] = writers(conninfo, schema, 8, count)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="a PostgreSQL URL (default: start a throwaway cluster)")
    parser.add_argument("--server", choices=["default", "nofsync"], default="default")
    parser.add_argument("--n", type=int, default=2000, help="calls per timed run")
    args = parser.parse_args()
    server = None
    conninfo = args.db
    if conninfo is None:
        bindir = find_bindir()
        if bindir is None:
            sys.exit("no PostgreSQL server binaries: pass --db")
        server = PostgresServer(bindir, {} if args.server == "default" else TEST_SETTINGS).start()
        conninfo = server.conninfo
    try:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        rows = timed_rows(conninfo, schema, args.n) | process_rows(conninfo, schema, args.n)
    finally:
        if server is not None:
            server.destroy()
    width = max(len(name) for name in rows)
    print(f"PostgreSQL T12 ({args.server if args.db is None else args.db}), µs per call unless stated")
    for name, value in rows.items():
        print(f"  {name:<{width}}  {value:10.1f}")


if __name__ == "__main__":
    main()
