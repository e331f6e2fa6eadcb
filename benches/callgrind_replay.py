"""Instruction counts (valgrind's callgrind) of the cold replay, the append path and warm reads.

Timings on these 2-core machines vary by ±30 %; instruction counts do not, so they compare
two variants of the engine exactly (counts are not time: cache misses cost nothing here).

    python benches/callgrind_replay.py [--engine c|py] [--mix bench|rust] [--records N]
                                       [--appends K] [--keep DIR]

writes a pool of N records (default 10,000) natively into a file fastpool made (its tables,
then the records, indexed), then runs this file under
``valgrind --tool=callgrind`` for each measure twice, once doing only the setup and once
doing the work too, and prints the difference per record (or per append):

* ``cold replay``: a new ``SqliteAgentPoolStore``'s first ``snapshot`` (scan, decode,
  apply, sort), against opening the store alone;
* ``append``: K ``record_message`` calls on a warm store (``synchronous="normal"``; the
  commit's fsync is the kernel's, which callgrind does not count), against making the
  same K payloads alone;
* ``raw``: T1's raw limit for the same K appends, ``BEGIN IMMEDIATE``, the one-row
  ``INSERT`` of the payload's JSON and ``COMMIT`` through APSW, against encoding the K
  payloads alone;
* ``read``: 50 K warm ``message_receipt`` calls (T2), against the store warmed alone; ``read2``:
  the same calls alternating with a second pool's (the cache's recency order then moves).

``--keep DIR`` keeps the callgrind.out files there, for ``callgrind_annotate``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

POOL = "pool.bench"
OTHER = "pool.other"


def child(measure: str, path: str, engine_name: str, count: int, work: bool) -> None:
    """What runs under callgrind: the setup, and the measured work when ``work``."""
    from fastpool import _replay_py
    from fastpool.benchmarking import workload
    from fastpool.enums import MessageStatus
    from fastpool.sqlite import SqliteAgentPoolStore

    if engine_name == "c":
        from fastpool import _replay as engine
    else:
        engine = _replay_py
    if measure == "cold":
        with SqliteAgentPoolStore(path, engine=engine) as store:
            if work:
                store.snapshot(POOL)
        return
    if measure == "raw":
        from fastpool import _sql
        from fastpool.benchmarking import runner

        db = runner._raw_connection(Path(path), "normal")
        last = db.execute("SELECT MAX(seq) FROM agent_pool_records WHERE pool_id = ?", (POOL,)).fetchall()[0][0]
        for i in range(count):
            message = workload.message(10**6 + i, 0, 1, POOL)
            text = runner._payload_text(message, workload.receipt(message, MessageStatus.ACCEPTED, (), i))
            if work:
                db.execute("BEGIN IMMEDIATE")
                db.execute(_sql.INSERT, (POOL, last + 1 + i, "run_message", text))
                db.execute("COMMIT")
        db.close()
        return
    with SqliteAgentPoolStore(path, engine=engine, synchronous="normal") as store:
        store.snapshot(POOL)
        if measure in ("read", "read2"):
            key = store.snapshot(POOL).messages[0].message.idempotency_key
            reads = [(POOL, key)] * 50 * count
            if measure == "read2":
                message = workload.message(10**6, 0, 1, OTHER)
                store.open_pool(OTHER, workload.CONFIG)
                store.record_message(OTHER, message, workload.receipt(message, MessageStatus.ACCEPTED, (), 0))
                reads[1::2] = [(OTHER, message.idempotency_key)] * (len(reads) // 2)
            for pool_id, key in reads[:2]:
                store.message_receipt(pool_id, key)  # both cached and current before the work
            if work:
                for pool_id, key in reads:
                    store.message_receipt(pool_id, key)
            return
        for i in range(count):
            message = workload.message(10**6 + i, 0, 1, POOL)
            receipt = workload.receipt(message, MessageStatus.ACCEPTED, (), i)
            if work:
                store.record_message(POOL, message, receipt)


def instructions(args: argparse.Namespace, measure: str, path: Path, work: bool, out: Path) -> int:
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        measure,
        str(path),
        args.engine,
        str(args.appends),
        "1" if work else "0",
    ]
    # One hash seed: dict probes (and so instruction counts) vary with it by a few per cent.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in callgrind's output:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        measure, path, engine_name, count, work = sys.argv[2:7]
        child(measure, path, engine_name, int(count), work == "1")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("c", "py"), default="c")
    parser.add_argument("--mix", choices=("bench", "rust"), default="bench")
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    from fastpool.benchmarking import rust_mix, workload
    from fastpool.sqlite import SqliteAgentPoolStore

    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "pool.sqlite"
        # A file as fastpool's writers leave it, as the bench's: its tables, the records, indexed.
        SqliteAgentPoolStore(template).close()
        if args.mix == "bench":
            workload.write_pool(template, POOL, args.records)
        else:
            workload.write_payloads(template, POOL, rust_mix.rust_mix_payloads(POOL, args.records))
        with SqliteAgentPoolStore(template) as store:
            store.build_point_index()
        keep = args.keep or Path(folder)
        keep.mkdir(parents=True, exist_ok=True)
        reads = 50 * args.appends
        measures = (
            ("cold", args.records, "record"),
            ("append", args.appends, "append"),
            ("raw", args.appends, "append"),
            ("read", reads, "read"),
            ("read2", reads, "read"),
        )
        for measure, per, unit in measures:
            counts = []
            for work in (False, True):
                path = Path(folder) / f"{measure}-{int(work)}.sqlite"
                shutil.copyfile(template, path)
                out = keep / f"callgrind.out.{args.engine}.{args.mix}.{measure}.{'work' if work else 'setup'}"
                counts.append(instructions(args, measure, path, work, out))
            per_item = (counts[1] - counts[0]) / per
            where = f"engine={args.engine} mix={args.mix} N={args.records:,}"
            print(f"{measure:6s} {where}: {per_item:,.0f} instructions per {unit}")


if __name__ == "__main__":
    main()
