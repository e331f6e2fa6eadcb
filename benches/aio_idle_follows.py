"""What idle ``fastpool.aio`` follows cost: CPU of the process, and the latency of a write.

Run it as a script (it is not a pytest benchmark: it measures a whole process over seconds)::

    python benches/aio_idle_follows.py [--follows 1000] [--seconds 5] [--writes 200] [--gap 0.002]

A file store with one pool per follow plus one pool that is written to. It reports:

* the CPU the process uses (``time.process_time`` delta over wall time, all threads) with
  no follow, then with ``--follows`` idle ``async for`` follows, one per pool;
* the median (and 90th percentile) latency of ``await store.record_message(...)`` into the
  written pool, without and with the idle follows (none of them follows that pool); the
  writes are ``--gap`` seconds apart, so that they span several poll intervals, and the
  CPU share of the process while they run is reported too;
* that every follow still delivers: one record appended to each followed pool by another
  store object reaches its follow, once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from fastpool import (
    AgentPoolStoreConfig,
    AgentPoolStoreRecord,
    MessageReceipt,
    MessageStatus,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
)
from fastpool.aio import AsyncAgentPoolStore

WRITTEN = "pool.written"
CONFIG = AgentPoolStoreConfig()


def followed(i: int) -> str:
    return f"pool.followed.{i:05d}"


def message(n: int) -> tuple[RunMessage, MessageReceipt]:
    sent = RunMessage(
        message_id=f"msg.{n:06d}",
        from_="run.a",
        to=RunAddress.run("run.b"),
        content_ref=f"content.{n:06d}",
        idempotency_key=f"key.{n:06d}",
    )
    return sent, MessageReceipt(message_id=sent.message_id, status=MessageStatus.ACCEPTED)


async def cpu_share(seconds: float) -> float:
    """The share of one core the whole process used while this task slept ``seconds``."""
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def write_latencies(store: AsyncAgentPoolStore, first: int, count: int, gap: float) -> tuple[list[float], float]:
    """``count`` writes, ``gap`` seconds apart (so that they span several poll intervals):
    their latencies, and the share of a core the process used meanwhile."""
    latencies = []
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(first, first + count):
        await asyncio.sleep(gap)
        sent, receipt = message(n)
        started = time.perf_counter()
        await store.record_message(WRITTEN, sent, receipt)
        latencies.append(time.perf_counter() - started)
    return latencies, (time.process_time() - cpu) / (time.perf_counter() - wall)


def summary(latencies: list[float], cpu: float) -> str:
    ordered = sorted(latencies)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return f"median {statistics.median(ordered) * 1e3:7.3f} ms   p90 {p90 * 1e3:7.3f} ms   CPU {cpu * 100:5.1f} %"


async def follow(store: AsyncAgentPoolStore, pool_id: str, start: float, got: list[AgentPoolStoreRecord]) -> None:
    await asyncio.sleep(start)  # a host starts its follows over time, not all in one instant
    async for record in store.follow(pool_id, 1):
        got.append(record)


async def run(path: Path, follows: int, seconds: float, writes: int, gap: float) -> None:
    async with await AsyncAgentPoolStore.open(path) as store:
        await store.open_pool(WRITTEN, CONFIG)
        await write_latencies(store, 0, 20, gap)  # warm-up
        idle = await cpu_share(seconds)
        print(f"CPU, no follow:                {idle * 100:6.2f} % of a core")
        alone, alone_cpu = await write_latencies(store, 20, writes, gap)

        got: list[list[AgentPoolStoreRecord]] = [[] for _ in range(follows)]
        starts = [0.05 * i / follows for i in range(follows)]  # spread over one poll interval
        tasks = [asyncio.ensure_future(follow(store, followed(i), starts[i], got[i])) for i in range(follows)]
        await asyncio.sleep(1.0)  # every follow has made its first read and is waiting
        busy = await cpu_share(seconds)
        print(f"CPU, {follows} idle follows:     {busy * 100:6.2f} % of a core")
        beside, beside_cpu = await write_latencies(store, 20 + writes, writes, gap)
        print(f"record_message, no follow:     {summary(alone, alone_cpu)}")
        print(f"record_message, {follows} follows: {summary(beside, beside_cpu)}")
        ratio = statistics.median(beside) / statistics.median(alone)
        print(f"median latency ratio:          {ratio:6.2f} x")

        started = time.perf_counter()
        with SqliteAgentPoolStore(path) as other, other.transaction():
            for i in range(follows):
                other.record_pool_created(followed(i))
        while sum(map(len, got)) < follows and time.perf_counter() - started < 30:
            await asyncio.sleep(0.01)
        delivered = sum(len(records) == 1 and records[0].cursor.sequence == 2 for records in got)
        print(
            f"delivered:                     {delivered}/{follows} follows got their record once "
            f"({time.perf_counter() - started:.2f} s after the commit began)"
        )
    await asyncio.wait_for(asyncio.gather(*tasks), 10)  # close() ended every follow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--follows", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--gap", type=float, default=0.002, help="seconds between two timed writes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fastpool-aio-") as folder:
        path = Path(folder) / "follows.sqlite"
        with SqliteAgentPoolStore(path) as setup, setup.transaction():
            for i in range(args.follows):
                setup.open_pool(followed(i), CONFIG)
        asyncio.run(run(path, args.follows, args.seconds, args.writes, args.gap))


if __name__ == "__main__":
    main()
