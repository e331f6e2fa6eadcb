"""Helpers the bench modules share (importable, unlike conftest): pools, tags, the target summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import workload

import fastpool
from fastpool import MessageStatus
from fastpool.benchmarking import targets

POOL = "pool.bench"


class Pool:
    """One benchmark's copy of a filled pool file: its path and what it holds."""

    def __init__(self, path: Path, info: workload.PoolInfo, size: int) -> None:
        self.path = path
        self.info = info
        self.pool_id = info.pool_id
        self.size = size  # the N asked for; a pool always has at least 2 records (opened, created)
        self.records = info.records
        self.issued = 0  # message_args() handed out so far

    def message_args(self) -> tuple[str, Any, Any]:
        """``record_message`` arguments for a message not in the pool yet (status accepted)."""
        i = self.info.messages + self.issued
        self.issued += 1
        msg = workload.message(i, 0, 1, self.pool_id)
        return self.pool_id, msg, workload.receipt(msg, MessageStatus.ACCEPTED, (workload.run_id(1),), i)

    def mid_message_key(self) -> str:
        """The idempotency key of a message recorded half-way (no such message at N = 0)."""
        return workload.message_key(self.info.messages // 2)

    def mid_wake(self) -> int:
        """The index of a wake recorded half-way (no such wake at N = 0)."""
        return self.info.wakes // 2


class Templates:
    """Filled pool files, written once per size per session (the 100k one takes seconds)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[int, tuple[Path, workload.PoolInfo]] = {}

    def get(self, size: int) -> tuple[Path, workload.PoolInfo]:
        if size not in self.built:
            path = self.root / f"template-{size}.sqlite"
            self.built[size] = (path, workload.write_pool(path, POOL, size))
        return self.built[size]


def store_class() -> Any:
    """``fastpool.SqliteAgentPoolStore``, or a skip while it does not exist."""
    cls = getattr(fastpool, "SqliteAgentPoolStore", None)
    if cls is None:
        pytest.skip("fastpool.SqliteAgentPoolStore does not exist yet")
    return cls


def tag(benchmark: Any, target: str, op: str, system: str, n: int | None = None, **extra: Any) -> None:
    """Put a benchmark in the group ``"<target> <op> N=<n>"`` and label it for the summary.

    ``system`` is ``fastpool`` (store level, loaded engine), ``raw`` (the SQLite limit),
    ``seed`` (the baseline) or ``engine`` (engine level; pass ``engine=<module name>``).
    """
    benchmark.group = f"{target} {op}" + ("" if n is None else f" N={n}")
    benchmark.extra_info.update(target=target, op=op, system=system, n=n, **extra)
    if system == "fastpool":
        benchmark.extra_info.setdefault("engine", fastpool._compat.engine.__name__)


# ---------------------------------------------------------------- the targets, side by side


def fmt(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


COMPILED, PURE = "fastpool._replay", "fastpool._replay_py"


def _verdict(goal: targets.Goal, value: float) -> str:
    return f"target {goal}: {'met' if goal.met(value) else 'NOT met'}"


def summary(benchmarks: list[Any]) -> list[str]:
    """One line per measured SPEC §6 figure: the medians set against their target (``targets.py``)."""
    figures: dict[tuple[Any, ...], dict[tuple[str, str | None], float]] = {}
    for bench in benchmarks:
        info = bench.extra_info
        if "target" in info and bench.stats:
            figure = figures.setdefault((info["target"], info["op"], info.get("n")), {})
            engine = info.get("engine") if info["system"] == "engine" else None
            figure[info["system"], engine] = float(bench.stats.median)
    lines = []
    for (target, op, n), medians in sorted(figures.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or 0)):
        size = "" if n is None else f" N={n}"
        fast, raw, seed = (medians.get((system, None)) for system in ("fastpool", "raw", "seed"))
        compiled, pure = medians.get(("engine", COMPILED)), medians.get(("engine", PURE))
        if target == "T1" and fast and raw:
            ratio = fast / raw
            lines.append(
                f"T1 {op}{size}: {fmt(fast)} = {ratio:.2f} × raw insert ({fmt(raw)}); {_verdict(targets.T1, ratio)}"
            )
        elif target in ("T2", "T3") and fast:
            goal = targets.T2 if target == "T2" else targets.T3
            lines.append(f"{target} {op}{size}: {fmt(fast)}; {_verdict(goal, fast * 1e6)}")
        elif target == "T4" and fast:
            lines.append(f"T4 {op}{size}: {fmt(fast)}; {_verdict(targets.T4, fast * 1e6)}")
        elif target == "T5" and fast and raw:
            ratio = fast / raw
            verdict = _verdict(targets.T5_RAW, ratio)
            lines.append(f"T5 {op}{size}: {fmt(fast)} = {ratio:.2f} × the raw scan ({fmt(raw)}); {verdict}")
        elif target == "T5" and (compiled or pure):
            parts = [
                f"{name} {fmt(t)}" + (f" ({n / t:,.0f} records/s)" if n else "")
                for name, t in (("compiled", compiled), ("pure", pure))
                if t
            ]
            ratio_text = (
                f" = {pure / compiled:.2f} ×; {_verdict(targets.T5_PURE, pure / compiled)}" if compiled and pure else ""
            )
            lines.append(f"T5 {op}{size}: " + ", ".join(parts) + ratio_text)
        elif target == "T7" and fast and seed:
            goal = targets.T7_WRITE if op == "record_message" else targets.T7_READ
            verdict = _verdict(goal, seed / fast)
            lines.append(f"T7 {op}{size}: seed {fmt(seed)} / fastpool {fmt(fast)} = {seed / fast:,.0f} ×; {verdict}")
    return lines
