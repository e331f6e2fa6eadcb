"""Issue 23's long-running targets of ``open_runtime(file)``, measured as a host would meet them.

Run it as a script (it takes a few minutes; nothing here is a pass/fail unit test)::

    python benches/runtime_targets.py [--sends 120000] [--checkpoint 20000] [--wakes 20] [--postgres default|nofsync]

``--postgres`` measures ``open_runtime("postgresql://…")`` on a throwaway cluster
(tests/pg_server.py) instead of a file: ``default`` keeps the server's durability settings,
``nofsync`` is the test suite's cluster (fsync off: the memory figures in minutes, not hours).

* RSS growth from ``--checkpoint`` to ``--sends`` sends through ``AgentPool.send`` on one
  durable runtime (target: at most 25 MB);
* ``suspend_until`` with no matching event after those sends, and a ``poll_wake`` of it:
  the median of ``--wakes`` registrations (target: at most 1 ms);
* a wake triggered by another process's send, returned by ``wait_wake``: the median delay
  from the sender's commit to ``wait_wake``'s return, over ``--wakes`` wakes, sync and
  async (target: at most 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

try:
    import fastpool
except ImportError:  # a checkout that is not installed: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastpool

from fastpool import (
    AgentPool,
    AgentPoolMember,
    EventFilter,
    EventKind,
    RunAddress,
    RunMessage,
    WakeCondition,
    open_runtime,
)
from fastpool.aio import AsyncAgentPool

POOL = "pool.targets"
# Another process: waits for a line on stdin, sends one message, prints the time.time() it returned.
SENDER = """
import sys, time
from fastpool import AgentPool, RunAddress, RunMessage, open_runtime
with open_runtime(sys.argv[1], **({"schema": sys.argv[3]} if sys.argv[3] else {})) as runtime:
    pool = AgentPool(sys.argv[2], runtime=runtime)
    for line in sys.stdin:
        n = line.strip()
        pool.send(RunMessage(message_id=f"x.{n}", from_="run.a", to=RunAddress.run("run.b"),
                             content_ref=f"c.{n}", idempotency_key=f"x.{n}"))
        print(time.time(), flush=True)
"""


def message(n: int) -> RunMessage:
    return RunMessage(
        message_id=f"m.{n}", from_="run.a", to=RunAddress.run("run.b"), content_ref=f"c.{n}", idempotency_key=f"k.{n}"
    )


def rss_mb() -> float:
    """This process's resident set now (Linux's /proc), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def wake(condition_id: str, kind: EventKind) -> WakeCondition:
    return WakeCondition(
        condition_id=condition_id, run_id="run.b", filter=EventFilter(kinds=(kind,)), idempotency_key=condition_id
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=120_000)
    parser.add_argument("--checkpoint", type=int, default=20_000)
    parser.add_argument("--wakes", type=int, default=20)
    parser.add_argument("--postgres", choices=["default", "nofsync"], help="a throwaway PostgreSQL cluster, not a file")
    parser.add_argument("--store-alone", help=argparse.SUPPRESS)  # the child of the RSS comparison: its target
    parser.add_argument("--schema", default="", help=argparse.SUPPRESS)  # ...and its schema (PostgreSQL)
    args = parser.parse_args(argv)
    if args.store_alone is not None:
        print(store_alone_growth(args.store_alone, args.schema, args.checkpoint, args.sends))
        return
    engine = "compiled" if fastpool.USE_EXTENSIONS else "pure-Python"
    print(
        f"fastpool {fastpool.__version__}, {engine} engine, open_runtime({'postgresql' if args.postgres else 'file'})"
    )
    with tempfile.TemporaryDirectory() as folder, ExitStack() as cleanup:
        if args.postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from pg_server import TEST_SETTINGS, PostgresServer, find_bindir

            bindir = find_bindir()
            if bindir is None:
                sys.exit("no PostgreSQL server binaries")
            server = PostgresServer(bindir, {} if args.postgres == "default" else TEST_SETTINGS).start()
            cleanup.callback(server.destroy)
            target, alone_target, schema = server.conninfo, server.conninfo, "host"
        else:
            target, alone_target, schema = str(Path(folder) / "host.sqlite"), str(Path(folder) / "alone.sqlite"), ""
        options = {"schema": schema} if schema else {}
        # The same sends through the store alone, in a process of its own: what the store's own state grows by.
        command = [sys.executable, __file__, f"--sends={args.sends}", f"--checkpoint={args.checkpoint}"]
        alone_schema = "alone" if schema else ""
        alone = subprocess.run(
            [*command, f"--store-alone={alone_target}", f"--schema={alone_schema}"], capture_output=True, check=True
        )
        alone_growth = float(alone.stdout)
        with open_runtime(target, **options) as runtime:
            pool = AgentPool(POOL, runtime=runtime)
            for run_id in ("run.a", "run.b"):
                pool.join_run(AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
            started = time.perf_counter()
            for n in range(args.checkpoint):
                pool.send(message(n))
            at_checkpoint = rss_mb()
            for n in range(args.checkpoint, args.sends):
                pool.send(message(n))
            grown = rss_mb() - at_checkpoint
            took = time.perf_counter() - started
            print(f"{args.sends:,} sends in {took:.1f} s ({args.sends / took:,.0f}/s)")
            print(
                f"RSS growth from {args.checkpoint:,} to {args.sends:,} sends: {grown:.1f} MB (target <= 25 MB);",
                end="",
            )
            print(f" the store alone (record_message_once + record_message) {alone_growth:.1f} MB")
            registering, polling = [], []
            for n in range(args.wakes):
                t0 = time.perf_counter()
                pool.suspend_until("run.b", wake(f"w.none.{n}", EventKind.RUN_COMPLETED))
                t1 = time.perf_counter()
                pool.poll_wake(f"w.none.{n}")
                registering.append(t1 - t0)
                polling.append(time.perf_counter() - t1)
            register, poll = statistics.median(registering) * 1e3, statistics.median(polling) * 1e3
            print(f"after {args.sends:,} sends, no matching event: suspend_until {register:.3f} ms,", end="")
            print(f" poll_wake {poll:.3f} ms (median of {args.wakes}; target <= 1 ms)")
        print(f"wait_wake woken by another process's send (median of {args.wakes}; target <= 50 ms):")
        for mode in ("sync", "async"):
            delays = wake_delays(target, schema, args.wakes, mode)
            print(f"  {mode:5}: median {statistics.median(delays) * 1e3:.1f} ms, max {max(delays) * 1e3:.1f} ms")


def store_alone_growth(target: str, schema: str, checkpoint: int, sends: int) -> float:
    """MB of RSS growth from ``checkpoint`` to ``sends`` accepted + delivered pairs through the store alone
    (its default options)."""
    with fastpool.open_store(target, **({"schema": schema} if schema else {})) as store:
        store.open_pool(POOL, fastpool.AgentPoolStoreConfig())
        for run_id in ("run.a", "run.b"):
            store.join_member(POOL, AgentPoolMember(run_id=run_id, agent_id=f"agent.{run_id}"))
        at_checkpoint = 0.0
        for n in range(sends):
            if n == checkpoint:
                at_checkpoint = rss_mb()
            sent = message(n)
            accepted = fastpool.MessageReceipt(
                message_id=sent.message_id, status=fastpool.MessageStatus.ACCEPTED, delivered_to=("run.b",)
            )
            store.record_message_once(POOL, sent, accepted)
            store.record_message(POOL, sent, accepted.replace(status=fastpool.MessageStatus.DELIVERED))
        return rss_mb() - at_checkpoint


def wake_delays(target: str, schema: str, count: int, mode: str) -> list[float]:
    """Seconds from another process's send returning to ``wait_wake`` returning, per wake."""
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, target, POOL, schema], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sender.stdin is not None and sender.stdout is not None
    delays = []
    try:
        with open_runtime(target, **({"schema": schema} if schema else {})) as runtime:
            pool = AgentPool(POOL, runtime=runtime)
            for n in range(count):
                condition_id = f"w.{mode}.{n}"
                # A wake that only this round's send triggers: new events only.
                condition = wake(condition_id, EventKind.RUN_MESSAGE_DELIVERED).replace(
                    policy_refs=(fastpool.WAKE_ON_NEW_EVENTS,)
                )
                pool.suspend_until("run.b", condition)

                def trigger(line: str = f"{mode}.{n}\n") -> None:
                    sender.stdin.write(line)  # type: ignore[union-attr]
                    sender.stdin.flush()  # type: ignore[union-attr]

                # The send is asked for once the wait has begun.
                if mode == "sync":
                    threading.Timer(0.05, trigger).start()
                    pool.wait_wake(condition_id, timeout=10)
                else:

                    async def wait(condition_id: str = condition_id) -> None:
                        async with AsyncAgentPool(pool) as wrapper:  # a wrapper lives on one loop
                            asyncio.get_running_loop().call_later(0.05, trigger)
                            await wrapper.wait_wake(condition_id, timeout=10)

                    asyncio.run(wait())
                returned = time.time()
                sent = float(sender.stdout.readline())
                delays.append(returned - sent)
    finally:
        sender.stdin.close()
        sender.wait(timeout=30)
    return delays


if __name__ == "__main__":
    main()
