"""``record_message_once`` against ``record_message`` with several processes on one file.

Run it as a script (it is not a pytest benchmark: it times whole processes)::

    python benches/record_once_processes.py [--processes 4] [--count 1000] [--rounds 3]

Each round runs every mode once, in turn, on a new file (one opened pool), and each mode
starts its processes together behind a barrier:

* ``record_message``: every process records ``--count`` messages of its own (distinct keys);
* ``record_message_once``: the same messages through ``record_message_once``;
* ``once, shared keys``: every process sends the same ``--count`` messages with
  ``record_message_once`` (each key recorded once, the others deduplicated);
* ``check-then-act, shared``: the same, as ``message_receipt`` and then ``record_message``
  when it found none: the racy pattern, for the count of keys it records twice.

It prints, per mode, the median over the rounds of calls per second (all processes' calls
over the wall time from the barrier to the last process's end), the records in the file and
the keys recorded more than once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fastpool import (
    AgentPoolStoreConfig,
    MessageReceipt,
    MessageStatus,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
)

POOL = "pool.once"
MODES = ("record_message", "record_message_once", "once, shared keys", "check-then-act, shared")


def message(name: str) -> tuple[RunMessage, MessageReceipt]:
    sent = RunMessage(
        message_id=f"msg.{name}",
        from_="run.a",
        to=RunAddress.run("run.b"),
        content_ref=f"content.{name}",
        idempotency_key=f"key.{name}",
    )
    return sent, MessageReceipt(message_id=sent.message_id, status=MessageStatus.ACCEPTED, delivered_to=("run.b",))


def worker(path: str, mode: str, process: int, count: int, barrier: Any, results: Any) -> None:
    shared = mode in MODES[2:]
    calls = [message(f"{n:05d}" if shared else f"{process}.{n:05d}") for n in range(count)]
    with SqliteAgentPoolStore(path) as store:
        store.snapshot(POOL)  # warm, as a running host's store is
        barrier.wait(timeout=60)
        started = time.perf_counter()
        for sent, receipt in calls:
            if mode == "record_message":
                store.record_message(POOL, sent, receipt)
            elif mode == "check-then-act, shared":
                if store.message_receipt(POOL, sent.idempotency_key) is None:
                    store.record_message(POOL, sent, receipt)
            else:
                store.record_message_once(POOL, sent, receipt)
        results.put((started, time.perf_counter()))


def run(mode: str, processes: int, count: int, directory: Path) -> tuple[float, int, int]:
    """One mode once: (calls per second, records in the pool, keys recorded more than once)."""
    path = directory / f"{mode.replace(' ', '_').replace(',', '')}.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, AgentPoolStoreConfig())
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    children = [
        context.Process(target=worker, args=(str(path), mode, p, count, barrier, results)) for p in range(processes)
    ]
    for child in children:
        child.start()
    spans = [results.get(timeout=300) for _ in children]
    for child in children:
        child.join()
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    with SqliteAgentPoolStore(path) as store:
        keys = Counter(record.payload.stored.message.idempotency_key for record in store.watch(POOL, 1))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return processes * count / wall, sum(keys.values()), sum(1 for n in keys.values() if n > 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--count", type=int, default=1000, help="calls per process")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    measured: dict[str, list[tuple[float, int, int]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(options.rounds):
            for mode in MODES:
                measured[mode].append(run(mode, options.processes, options.count, Path(directory)))
    print(f"{options.processes} processes x {options.count} calls, median of {options.rounds} rounds")
    print(f"{'mode':<26}{'calls/s':>10}   per round: calls/s (records, keys recorded more than once)")
    for mode, rows in measured.items():
        rates = [rate for rate, _, _ in rows]
        per_round = ", ".join(f"{rate:,.0f} ({records:,}, {twice:,})" for rate, records, twice in rows)
        print(f"{mode:<26}{statistics.median(rates):>10,.0f}   {per_round}")
    plain, once = (statistics.median(rate for rate, _, _ in measured[mode]) for mode in MODES[:2])
    print(f"record_message_once / record_message (distinct keys): {once / plain:.3f}")


if __name__ == "__main__":
    main()
