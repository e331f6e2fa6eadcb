"""fastpool's performance targets, T1–T12: the one table ``fastpool bench`` and ``benches/`` read.

Each ``Goal`` is one bound of a target: a figure is at most (``≤``) or at least (``≥``) a
limit, in a unit or as a ratio to a reference measured in the same run. Every bound of SPEC's
table is here, also those of targets that neither runner measures yet (T10, T11).

>>> T1.met(1.25), T1.met(1.4), str(T1)
(True, False, '≤ 1.3 × a raw APSW one-row BEGIN IMMEDIATE insert')
>>> T12_WRITERS.met(2.4), str(T12_WRITERS)
(True, '≥ 2 × one writer process')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """One bound: ``target`` (``"T1"``), ``limit``, ``at_most`` (``≤``; else ``≥``), ``unit``
    (``"×"`` for a ratio to ``of``, else ``"µs"``, ``"ms"``, ``"s"``, ``"MB"``)."""

    target: str
    limit: float
    at_most: bool
    unit: str
    of: str = ""

    def met(self, value: float) -> bool:
        """Whether a measured figure (in ``unit``) meets this bound."""
        return value <= self.limit if self.at_most else value >= self.limit

    def __str__(self) -> str:
        limit = f"{self.limit:,g}"
        bound = f"{'≤' if self.at_most else '≥'} {limit}"
        return f"{bound} × {self.of}" if self.unit == "×" else f"{bound} {self.unit}"


T1 = Goal("T1", 1.3, True, "×", "a raw APSW one-row BEGIN IMMEDIATE insert")
T1M = Goal("T1m", 1.5, True, "×", "the raw insert, rotating over 300 pools")
T2 = Goal("T2", 2, True, "µs")
T3 = Goal("T3", 2, True, "µs")
T4 = Goal("T4", 100, True, "µs")
T5_RAW = Goal("T5", 1.5, True, "×", "a raw scan + orjson.loads of the same rows")
T5_PURE = Goal("T5", 2, False, "×", "the pure twin")
T6 = Goal("T6", 0.75, False, "×", "one process (aggregate of 4)")
T7_WRITE = Goal("T7", 500, False, "×", "the seed")
T7_READ = Goal("T7", 10_000, False, "×", "the seed")
T8 = Goal("T8", 0.5, True, "×", "the JSON bytes of the records")
T9_NORMAL = Goal("T9", 4, False, "×", "one serial caller at synchronous=normal")
T9_FULL = Goal("T9", 10, False, "×", "one serial caller at synchronous=full")
T10_POINT_READ = Goal("T10", 10, True, "ms")
T10_RSS = Goal("T10", 100, True, "MB")
T10_SNAPSHOT = Goal("T10", 1, True, "s")
T11_WATCH = Goal("T11", 10, True, "µs")
T11_SNAPSHOT = Goal("T11", 5, True, "µs")
#: Issue 17: ``AgentPool.send`` (accepted + delivered) beside a host's store-only send loop.
AP_SEND = Goal("AP", 0.7, False, "×", "the store-only send loop")
#: Issue 23: ``AgentPool.send`` on ``open_runtime(file)`` beside the store-only loop, and
#: ``AsyncAgentPool.send`` from 50 tasks on it beside the sync ``AgentPool.send`` with one caller.
AP_DURABLE = Goal("AP", 1.0, False, "×", "the store-only send loop")
AP_DURABLE_TASKS = Goal("AP", 1.0, False, "×", "the sync AgentPool.send on open_runtime(file)")
#: Issue 16: the host loop through the async store with 50 tasks, and a cached read through it.
AIO_LOOP = Goal("AIO", 0.8, False, "×", "the sync store with one caller")
AIO_READ = Goal("AIO", 3, True, "µs")
T12_APPEND = Goal("T12", 1.5, True, "×", "a raw one-row INSERT transaction")
T12_READ = Goal("T12", 1.2, True, "×", "one round trip")
T12_NOTIFIED_READ = Goal("T12", 2, True, "µs")
T12_AFTER_APPEND = Goal("T12", 3, True, "×", "one round trip")
T12_WRITERS = Goal("T12", 2, False, "×", "one writer process")
