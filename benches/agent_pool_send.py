"""``AgentPool.send`` (accepted + delivered) per second, sync and async, beside store-only send loops.

Run it as a script (each figure is a whole loop of sends, not a pytest benchmark)::

    python benches/agent_pool_send.py [--sends 2000] [--rounds 5] [--size 0]

Every round runs each loop in turn on a fresh copy of one file (a pool with two members and
``--size`` earlier messages), with its messages built before the clock starts; a loop sends
each message once, from ``run.a`` to ``run.b``, over a ``SqliteAgentPoolStore``
(``synchronous=normal``). The figures are medians over the rounds of sends per second, by
the wall clock and by this process's CPU time (steadier on a shared machine).

* ``store: accepted + delivered``: what a host writes with the store alone, as the README's
  store example: ``record_message_once`` (accepted) then ``record_message`` (delivered);
* ``store: AgentPool.send's calls``: the store calls ``send`` makes, and nothing else: the
  dedupe lookup, three membership lookups, and per transition an event sequence (a write
  transaction of its own, as in Rust) and the record;
* ``AgentPool.send``: the coordinator, which also builds and appends two journal records and
  publishes two events (in-memory journal and bus) and matches the registered wakes (none);
* ``AgentPool.send, open_runtime(file)``: the coordinator on the durable runtime of the same
  file (journal rows and archived frames beside the pool's records), one commit per send;
* ``raw SQL: a durable send's statements``: the statements that send runs, through APSW in one
  transaction, their JSON made before the clock starts (the file's own cost: a bound for
  the durable send);
* ``AsyncAgentPool.send, 50 tasks``: the in-memory runtime's coordinator from 50 tasks (a
  thread hop per call);
* ``AsyncAgentPool.send, open_runtime(file)``: the durable runtime's, awaited one after
  another, and from 50 tasks at once (the calls that arrive together share one commit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import fastpool
except ImportError:  # a checkout that is not installed: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastpool

from fastpool.benchmarking.agent_pool import DURABLE, STORE_ALONE, measure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000, help="messages sent per loop")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median is reported)")
    parser.add_argument("--size", type=int, default=0, help="messages in the pool before the loops")
    args = parser.parse_args(argv)
    engine = "compiled" if fastpool.USE_EXTENSIONS else "pure-Python"
    print(f"fastpool {fastpool.__version__}, {engine} engine: {args.sends} sends x {args.rounds} rounds,", end=" ")
    print(f"a pool of {args.size} messages before")
    figures = measure(args.sends, args.rounds, args.size)
    alone, durable = figures[STORE_ALONE], figures[DURABLE]
    print(f"{'sends per second':56} {'wall':>8} {'cpu':>8}   of the store alone   of {DURABLE}")
    print(f"{'':56} {'':8} {'':8}   {'wall':>7} {'cpu':>7}   {'wall':>7} {'cpu':>7}")
    for name, (wall, cpu) in figures.items():
        print(
            f"{name:56} {wall:8,.0f} {cpu:8,.0f}   {wall / alone[0]:7.1%} {cpu / alone[1]:7.1%}"
            f"   {wall / durable[0]:7.1%} {cpu / durable[1]:7.1%}"
        )


if __name__ == "__main__":
    main()
