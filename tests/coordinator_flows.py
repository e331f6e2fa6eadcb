"""Replaying the golden coordinator flows (``fixtures/coordinator``, format in their README).

``Replay`` runs a flow's calls, host by host, on fastpool's ``AgentPool`` over one store (a
file with one ``SqliteAgentPoolStore`` object per host, or one shared ``InMemoryAgentPoolStore``)
and collects what they produced in the fixture's own line format: each call's result, the
journal records and events in the order they were appended and published, and at the end
the records, snapshot and event sequence of the pool. The test compares that with the
fixture, line for line.

An interleaving of the fixture (a ``port`` line noting ``interleave``) runs the next action
(another host's call, or a ``fail_next_append``) right after the same store call of ours: the
n-th call of that kind in the step, ``record_message_once`` counting as ``record_message``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import orjson
from helpers import FIXTURES

from fastpool import (
    AgentError,
    AgentPool,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolStoreCursor,
    AgentPoolWakePolicy,
    AgentRuntime,
    EventCursor,
    EventFilter,
    EventFrame,
    InMemoryAgentEventBus,
    InMemoryAgentPoolStore,
    InMemoryRunJournal,
    MessageStatus,
    PolicyRef,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
    open_runtime,
)
from fastpool._schema import ENUM, Spec

COORDINATOR = FIXTURES / "coordinator"
#: Every scenario carried in the repository; ``races`` shows Rust's races, which fastpool closes.
SCENARIOS = sorted(path.stem for path in COORDINATOR.glob("*.jsonl"))
PARITY_SCENARIOS = [name for name in SCENARIOS if name != "races"]
#: The flows of one host, without failing or missing ports: also byte for byte on ``open_runtime(file)``.
SINGLE_HOST_SCENARIOS = ["addressing", "basic_flow", "idempotency", "wake_lifecycle", "wake_matching"]

# How each method's arguments decode (the argument's JSON, the class or spec it is).
ARGUMENTS: dict[str, Any] = {
    "member": AgentPoolMember,
    "message": RunMessage,
    "condition": WakeCondition,
    "filter": EventFilter,
    "frame": EventFrame,
    "message_policy": AgentPoolMessagePolicy,
    "wake_policy": AgentPoolWakePolicy,
}


def load(scenario: str) -> list[dict[str, Any]]:
    path = COORDINATOR / f"{scenario}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"golden flow {path} not found (carried in tests/fixtures)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Journal(InMemoryRunJournal):
    """The host's journal, telling the replay each record it accepted."""

    def __init__(self, replay: Replay, host: str) -> None:
        super().__init__()
        self._replay, self._host = replay, host

    def append(self, record: Any) -> str:
        cursor = super().append(record)
        self._replay.produced("journal", self._host, cursor=cursor, record_json=self._replay.dumps(record))
        return cursor


class Bus(InMemoryAgentEventBus):
    """The host's bus, telling the replay each frame it stored."""

    def __init__(self, replay: Replay, host: str) -> None:
        super().__init__()
        self._replay, self._host = replay, host

    def publish(self, frame: EventFrame) -> None:
        super().publish(frame)
        stored = self.frames[-1]
        envelope = stored.event.envelope
        self._replay.produced(
            "event",
            self._host,
            event_seq=envelope.event_seq,
            event_id=envelope.event_id,
            kind=envelope.event_kind.value,
            frame_json=self._replay.dumps(stored),
        )


class RecordingStore:
    """A store that forwards every call and lets the replay act right after one returned."""

    def __init__(self, store: Any, after_call: Callable[[str], None]) -> None:
        self._store = store
        self._after_call = after_call

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self._after_call(name)
            return result

        return call


class Host:
    def __init__(self, replay: Replay, name: str) -> None:
        self.name = name
        self.journal = Journal(replay, name)
        self.bus: Any = Bus(replay, name)
        self.pool: AgentPool | None = None
        self.runtime: AgentRuntime | None = None
        if replay.kind == "runtime":  # the durable runtime: its journal and bus are read at the end
            self.runtime = open_runtime(replay.path, engine=replay.engine)
            replay.stores.append(self.runtime)
            self.bus = self.runtime.event_bus


class Replay:
    """One flow run on fastpool: ``run(lines)`` returns the lines it produced."""

    def __init__(self, engine: Any, kind: str, folder: Path, *, strict: bool = False) -> None:
        self.engine = engine
        self.kind = kind
        self.strict = strict
        self.path = folder / "flow.sqlite"
        self.memory = InMemoryAgentPoolStore(engine=engine) if kind == "memory" else None
        self.stores: list[Any] = []
        self.hosts: dict[str, Host] = {}
        self.lines: list[dict[str, Any]] = []
        self.steps: list[tuple[int, str]] = []  # the calls running, innermost last
        self.counts: Counter[tuple[int, str]] = Counter()
        self.interleaves: dict[tuple[int, str, int], Callable[[], None]] = {}

    # -------------------------------------------------------------------- encoding

    def dumps(self, value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(self.dumps(item) for item in value) + "]"
        if isinstance(value, AgentError):
            from fastpool import wire

            return wire.encode(value)
        return str(self.engine.dumps(value))

    def decode(self, target: Any, value: Any, path: str) -> Any:
        return self.engine.from_plain(target, value, path)

    def produced(self, line: str, host: str, **fields: Any) -> None:
        step, _ = self.steps[-1]
        self.lines.append({"line": line, "step": step, "host": host, **fields})

    # -------------------------------------------------------------------- interleavings

    def after_store_call(self, name: str) -> None:
        step, _ = self.steps[-1]
        op = name.removesuffix("_once")
        self.counts[(step, op)] += 1
        action = self.interleaves.pop((step, op, self.counts[(step, op)]), None)
        if action is not None:
            action()

    def plan_interleaves(self, lines: list[dict[str, Any]]) -> set[int]:
        """Register each interleaving of ``lines``; returns the indexes of the nested calls."""
        nested: set[int] = set()
        for index, line in enumerate(lines):
            if line["line"] != "port" or not line["note"].startswith("interleave"):
                continue
            step, op = line["step"], line["op"]
            ports = [
                other
                for other in lines[:index]
                if other["line"] == "port" and other["step"] == step and other["op"] == op
            ]
            action_line = lines[index + 1]
            if action_line["line"] == "call":
                nested.add(index + 1)
                self.interleaves[(step, op, len(ports))] = lambda call=action_line: self.call(call)
            else:
                assert action_line["op"] == "fail_next_append", action_line
                message = re.search(r'fail_next_append\("(.*)"\)', action_line["note"]).group(1)  # type: ignore[union-attr]
                host = self.hosts_by_step(lines, step)
                self.interleaves[(step, op, len(ports))] = lambda h=host, m=message: self.hosts[
                    h
                ].journal.fail_next_append(m)
        return nested

    @staticmethod
    def hosts_by_step(lines: list[dict[str, Any]], step: int) -> str:
        return next(line["host"] for line in lines if line["line"] == "call" and line["step"] == step)

    # -------------------------------------------------------------------- running

    def run(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nested = self.plan_interleaves(lines)
        for index, line in enumerate(lines):
            if line["line"] == "call" and index not in nested:
                self.call(line)
        pools = sorted({line["pool_id"] for line in lines if line["line"] in ("record", "snapshot", "event_seq")})
        for pool_id in pools:
            self.finish(pool_id)
        for store in self.stores:
            close = getattr(store, "close", None)
            if close is not None:
                close()
        return self.lines

    def store_for_host(self, host: Host) -> Any:
        if host.runtime is not None:
            return RecordingStore(host.runtime.store, self.after_store_call)
        if self.memory is not None:
            return RecordingStore(self.memory, self.after_store_call)
        store = SqliteAgentPoolStore(self.path, engine=self.engine)
        self.stores.append(store)
        return RecordingStore(store, self.after_store_call)

    def call(self, line: dict[str, Any]) -> None:
        step, host_name, method = line["step"], line["host"], line["method"]
        host = self.hosts.setdefault(host_name, Host(self, host_name))
        args = json.loads(line["args_json"])
        self.steps.append((step, host_name))
        try:
            try:
                result = self.invoke(host, method, args, line.get("ports"))
            except AgentError as error:
                self.produced(
                    "result",
                    host_name,
                    err_json=self.dumps(error),
                    display=error.display,
                    kind=error.kind.value,
                    retry=error.retry.value,
                )
            else:
                self.produced("result", host_name, ok_json=self.dumps(result))
        finally:
            self.steps.pop()

    def invoke(self, host: Host, method: str, args: dict[str, Any], ports: str | None) -> Any:
        if method == "build":
            runtime = host.runtime
            if runtime is None and ports != "no runtime":
                runtime = AgentRuntime(
                    journal=None if "no journal" in ports else host.journal,  # type: ignore[operator]
                    event_bus=None if "no event bus" in ports else host.bus,  # type: ignore[operator]
                )
            host.pool = AgentPool(
                args["pool_id"],
                runtime=runtime,
                store=self.store_for_host(host),
                message_policy=self.decode(AgentPoolMessagePolicy, args["message_policy"], "message_policy"),
                wake_policy=self.decode(AgentPoolWakePolicy, args["wake_policy"], "wake_policy"),
                policy_refs=[self.decode(PolicyRef, ref, "policy_refs") for ref in args["policy_refs"]],
                strict=self.strict,
            )
            return None
        if method == "bus.publish":
            host.bus.publish(self.decode(EventFrame, args["frame"], "frame"))
            return None
        pool = host.pool
        if pool is None:  # its build failed (strict=True refuses a runtime without a port)
            raise AgentError.host_configuration_needed(f"host {host.name} was not built")
        values = {
            name: self.decode(ARGUMENTS[name], value, name) if name in ARGUMENTS else value
            for name, value in args.items()
        }
        if method == "record_message_status":
            values["status"] = self.decode(Spec(ENUM, MessageStatus), values["status"], "status")
        if method == "watch_pool":
            cursor = values["cursor"]
            return list(
                pool.watch_pool(None if cursor is None else self.decode(AgentPoolStoreCursor, cursor, "cursor"))
            )
        if method == "subscribe":
            cursor = values["cursor"]
            values["cursor"] = None if cursor is None else self.decode(EventCursor, cursor, "cursor")
            return list(pool.subscribe(**values))
        return getattr(pool, method)(**values)

    def finish(self, pool_id: str) -> None:
        """The pool's final lines: every record, a snapshot from a fresh store object, the event sequence."""
        if self.memory is not None:
            store: Any = self.memory
            records = [(r.cursor.sequence, r.payload.TYPE, self.dumps(r.payload)) for r in store.watch(pool_id)]
        else:
            db = apsw.Connection(str(self.path))
            try:
                rows = db.execute(
                    "SELECT seq, kind, payload_json FROM agent_pool_records WHERE pool_id = ? ORDER BY seq", (pool_id,)
                ).fetchall()
                event_seq = db.execute("SELECT seq FROM agent_pool_event_seq WHERE pool_id = ?", (pool_id,)).fetchall()
            finally:
                db.close()
            records = [(seq, kind, text) for seq, kind, text in rows]
            store = SqliteAgentPoolStore(self.path, engine=self.engine)
            self.stores.append(store)
        for seq, kind, text in records:
            self.lines.append({"line": "record", "pool_id": pool_id, "seq": seq, "kind": kind, "payload_json": text})
        try:
            self.lines.append(
                {"line": "snapshot", "pool_id": pool_id, "snapshot_json": self.dumps(store.snapshot(pool_id))}
            )
        except AgentError as error:
            self.lines.append({"line": "snapshot", "pool_id": pool_id, "err_json": self.dumps(error)})
        if self.memory is not None:
            # The in-memory store shows its sequence only by allocating the next one.
            self.lines.append({"line": "event_seq", "pool_id": pool_id, "seq": store.next_event_sequence(pool_id) - 1})
        else:
            ((seq,),) = event_seq
            self.lines.append({"line": "event_seq", "pool_id": pool_id, "seq": seq})

    def archived(self) -> list[dict[str, Any]]:
        """The durable runtime's journal rows and archived frames, as the fixture's lines
        (without their step and host: the database does not say which call wrote them)."""
        db = apsw.Connection(str(self.path))
        try:
            journal = db.execute("SELECT journal_seq, record_json FROM run_journal_records ORDER BY journal_seq")
            lines = [{"line": "journal", "cursor": f"journal.{seq}", "record_json": text} for seq, text in journal]
            for seq, event_id, text in db.execute(
                "SELECT seq, event_id, frame_json FROM event_archive_frames ORDER BY seq"
            ):
                kind = orjson.loads(text)["event"]["envelope"]["event_kind"]
                lines.append(
                    {"line": "event", "event_seq": seq, "event_id": event_id, "kind": kind, "frame_json": text}
                )
        finally:
            db.close()
        return lines


def expected_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fixture's lines a replay reproduces: results, journal records, events and the final state."""
    keep = {"result", "journal", "event", "record", "snapshot", "event_seq"}
    return [line for line in lines if line["line"] in keep]


def canonical(line: dict[str, Any]) -> str:
    return orjson.dumps(line, option=orjson.OPT_SORT_KEYS).decode()
