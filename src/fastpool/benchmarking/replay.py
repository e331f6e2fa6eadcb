"""``fastpool bench``'s replay rows beside T5's: cold replay of the Rust bench mix
(``rust_mix.py``) against its raw scan + ``orjson.loads`` floor, the first ``snapshot``
after a cold replay (T11), a ``snapshot`` right after one appended record (the targets' last
bullet, issue 16: ≤ 20 µs at 50k messages) and the bytes its cached state holds (T8, with
``held_bytes``, which the bench mix's T8 row uses too). ``runner.py`` calls ``measure`` and
``verdicts``.
"""

from __future__ import annotations

import gc
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import apsw
import orjson

from .. import _sql
from ..enums import MessageStatus
from ..sqlite import SqliteAgentPoolStore
from . import targets, workload
from .rust_mix import rust_mix_payloads

POOL = "pool.bench"
RUST_MIX = "cold replay, Rust mix"
FIRST_SNAPSHOT = "first snapshot after a cold replay"
AFTER_APPEND = "snapshot after one own append"
RUST_HELD = "cached state per record, Rust mix"
RUST_JSON = "JSON per record, Rust mix"
JSON_BYTES = "SELECT SUM(LENGTH(CAST(payload_json AS BLOB))) FROM agent_pool_records"
#: A snapshot after one append: at most this many µs (issue 16, at 50k messages).
AFTER_APPEND_GOAL = targets.Goal("I16", 20, True, "µs")


def scan(path: Path, pool_id: str = POOL) -> None:
    """T5's floor: a new connection reads every row of the pool and parses its JSON, nothing else."""
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    loads = orjson.loads
    for _, _, text in db.execute(_sql.ROWS_AFTER, (pool_id, 0)):
        loads(text)
    db.close()


def cold_replay(path: Path, engine: ModuleType | None) -> tuple[float, float]:
    """Seconds of a new store's first snapshot (``None``: the floor's scan), and µs of its second."""
    gc.collect()
    start = time.perf_counter()
    if engine is None:
        scan(path)
        return time.perf_counter() - start, 0.0
    with SqliteAgentPoolStore(path, engine=engine) as store:
        store.snapshot(POOL)
        middle = time.perf_counter_ns()
        store.snapshot(POOL)
        second = (time.perf_counter_ns() - middle) / 1000
    return time.perf_counter() - start - second / 1e6, second


# Run in a new process: the compiled reader's shared tables start empty there, so the objects
# they hold are counted, and no object decoded earlier in the bench is shared uncounted.
_HELD = """
import gc, importlib, sys, tracemalloc
from fastpool.sqlite import SqliteAgentPoolStore
engine = importlib.import_module(sys.argv[2])
gc.collect()
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
store = SqliteAgentPoolStore(sys.argv[1], engine=engine)
store.snapshot(sys.argv[3])
gc.collect()
print(tracemalloc.get_traced_memory()[0] - before)
"""


def held_bytes(path: Path, engine: ModuleType, pool_id: str = POOL) -> tuple[int, int]:
    """T8: the bytes (tracemalloc) a new process's cached state of the pool holds after its
    first ``snapshot``, and the JSON bytes of the records it covers."""
    done = subprocess.run(
        [sys.executable, "-c", _HELD, str(path), engine.__name__, pool_id], capture_output=True, text=True, check=True
    )
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    json_bytes: int = db.execute(JSON_BYTES).fetchall()[0][0]  # type: ignore[assignment]
    db.close()
    return int(done.stdout), json_bytes


def measure(
    add: Callable[..., Any],
    folder: Path,
    size: int,
    engines: dict[str, ModuleType],
    bench_pool: Path,
    quick: bool,
    progress: Callable[[str], None],
) -> None:
    """Add the rows (``add`` is ``Results.add``) at pool size ``size``; ``bench_pool`` is a
    ``size``-record pool of ``workload``'s mix, copied before it is written to."""
    progress(f"writing a Rust-mix pool of {size:,} records")
    path = folder / f"rust-mix-{size}.sqlite"
    if not path.exists():
        workload.write_payloads(path, POOL, rust_mix_payloads(POOL, size))
    for name, engine in {**engines, "raw": None}.items():
        rounds = 1 if name == "py" else 3
        progress(f"T5 cold replay of the Rust mix, {size:,} records, {name}")
        samples = [cold_replay(path, engine) for _ in range(rounds)]
        add("T5", RUST_MIX, size, name, size / statistics.median([s for s, _ in samples]), "records/s")
        if engine is not None:
            add("T11", FIRST_SNAPSHOT, size, name, statistics.median([us for _, us in samples]))
    name, engine = next(iter(engines.items()))
    progress(f"T8 memory of the Rust mix at N={size:,}")
    held, json_bytes = held_bytes(path, engine)
    records = size + 1  # and its pool_opened
    add("T8", RUST_HELD, size, name, held / records, "bytes")
    add("T8", RUST_JSON, size, "raw", json_bytes / records, "bytes")
    for name, engine in engines.items():
        progress(f"snapshot after one append at N={size:,}, engine {name}")
        copy = folder / f"append-{name}-{size}.sqlite"
        shutil.copyfile(bench_pool, copy)
        with SqliteAgentPoolStore(copy, engine=engine) as store:
            store.snapshot(POOL)
            took: list[float] = []
            for i in range(30 if quick else 100):
                message = workload.message(10**6 + i, 0, 1, POOL)
                store.record_message(POOL, message, workload.receipt(message, MessageStatus.DELIVERED, (), i))
                start = time.perf_counter_ns()
                store.snapshot(POOL)
                took.append((time.perf_counter_ns() - start) / 1000)
        add("I16", AFTER_APPEND, size, name, statistics.median(took))


def verdicts(get: Callable[[str, str, int | None, str], float | None], size: int) -> list[tuple[str, str, str]]:
    """(target, figure, met?) lines for the rows ``measure`` added (``get`` is ``Results.get``)."""
    lines = []
    c, py, raw = (get("T5", RUST_MIX, size, system) for system in ("c", "py", "raw"))
    if c and py and raw:
        text = f"cold replay, Rust mix, N={size:,}: {c:,.0f} records/s = {raw / c:.2f} × the raw scan's time"
        met = targets.T5_RAW.met(raw / c) and targets.T5_PURE.met(c / py)
        lines.append(("T5", f"{text}, {c / py:.1f} × pure", "met" if met else "NOT met"))
    best = "c" if c else "py"
    held, json_bytes = get("T8", RUST_HELD, size, best), get("T8", RUST_JSON, size, "raw")
    if held and json_bytes:
        ratio = held / json_bytes
        text = f"cached state, Rust mix, N={size:,}: {held:,.0f} bytes per record = {ratio:.2f} × its JSON"
        lines.append(("T8", text, "met" if targets.T8.met(ratio) else "NOT met"))
    first = get("T11", FIRST_SNAPSHOT, size, best)
    if first is not None:
        met = targets.T11_SNAPSHOT.met(first)
        lines.append(("T11", f"{FIRST_SNAPSHOT} N={size:,}: {first:.1f} µs", "met" if met else "NOT met"))
    after = get("I16", AFTER_APPEND, size, best)
    if after is not None:
        met = AFTER_APPEND_GOAL.met(after)
        lines.append(("I16", f"{AFTER_APPEND} N={size:,}: {after:.1f} µs", "met" if met else "NOT met"))
    return lines
