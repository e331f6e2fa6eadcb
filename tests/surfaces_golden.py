"""The runner of the golden surface scenarios (``fixtures/surfaces``, written by the Rust build).

One rule for every line: a ``call`` is ``Cls.open(path)`` or ``obj.method(**kwargs)`` (bundle:
``getattr(bundle, accessor)().method``), each argument decoded by the method's annotation
(model classes through ``fastpool.wire``); a ``result``, ``error``, ``row`` or ``pragma`` line
must then match exactly. ``host SQL`` notes are run on the file through APSW.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import orjson
from helpers import FIXTURES

from fastpool import wire
from fastpool._schema import Model
from fastpool.errors import AgentError
from fastpool.store_model import ContentResolutionError
from fastpool.surfaces._json import dumps_value

SURFACES = FIXTURES / "surfaces"

#: ``row`` lines come from ``SELECT * FROM <table> ORDER BY <key>`` (README, "Rows").
ROW_ORDER = {
    "run_journal_records": "run_id, journal_seq",
    "event_archive_frames": "seq",
    "sqlite_sequence": "name",
    "checkpoints": "run_id, checkpoint_id",
    "content": "content_ref",
    "tool_execution_records": "run_id, tool_call_id, journal_seq",
    "provider_arguments": "content_ref",
    "agent_pool_records": "pool_id, seq",
    "agent_pool_event_seq": "pool_id",
    "sqlite_master": "rowid",
}
HOST_SQL = "host SQL (not a store call): "


def scenarios(surface: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(name, lines)`` of each scenario in ``<surface>.jsonl``."""
    out: list[tuple[str, list[dict[str, Any]]]] = []
    with (SURFACES / f"{surface}.jsonl").open(encoding="utf-8") as handle:
        for text in handle:
            line = json.loads(text)
            if line["line"] == "scenario":
                out.append((line["scenario"], []))
            out[-1][1].append(line)
    return out


def encode(value: Any) -> str:
    """A result as Rust writes its ``ok_json``."""
    if isinstance(value, Model):
        return wire.encode(value)
    if isinstance(value, list):
        return "[" + ",".join(encode(item) for item in value) + "]"
    return dumps_value(value)


def decode_argument(annotation: Any, value: Any) -> Any:
    """An argument's Rust JSON as the method's annotation says."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if value is None:
            return None
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if isinstance(annotation, type) and issubclass(annotation, Model):
        return wire.decode(annotation, orjson.dumps(value))
    if annotation is bytes:
        return bytes(value)
    assert annotation in (str, int, bool), annotation
    return value


def dump_table(path: Path, table: str) -> list[list[tuple[str, Any]]]:
    """A table's rows as ``row`` lines hold them (BLOBs as lowercase hex), read through APSW."""
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        columns = "type, name, tbl_name, rootpage, sql" if table == "sqlite_master" else "*"
        cursor = db.execute(f"SELECT {columns} FROM {table} ORDER BY {ROW_ORDER[table]}")
        try:
            names = [column[0] for column in cursor.getdescription()]
        except apsw.ExecutionCompleteError:  # no rows
            return []
        rows = cursor.fetchall()
    finally:
        db.close()
    return [[(name, v.hex() if isinstance(v, bytes) else v) for name, v in zip(names, row)] for row in rows]


class SqliteTarget:
    """Where a scenario's ``store.sqlite`` lives: a file in the test's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "store.sqlite"

    def open(self, cls: Any, name: str) -> Any:
        self.path = self.directory / Path(name).name
        return cls.open(self.path)

    def dump(self, table: str, columns: list[str]) -> list[list[tuple[str, Any]]]:
        return dump_table(self.path, table)

    def pragma(self, name: str) -> Any:
        db = apsw.Connection(str(self.path))
        try:
            return db.execute(f"PRAGMA {name}").fetchall()[0][0]
        finally:
            db.close()

    def host_sql(self, sql: str) -> None:
        db = apsw.Connection(str(self.path))
        try:
            for statement in sql.split(";"):
                if statement.strip():
                    db.execute(statement).fetchall()
        finally:
            db.close()


class Runner:
    """Plays one scenario's lines on a target (``SqliteTarget``, or a PostgreSQL schema)."""

    def __init__(self, classes: dict[str, Any], target: Any) -> None:
        self.classes = classes
        self.target = target
        self.opened: list[Any] = []
        self.obj: Any = None
        self.outcome: tuple[str, Any] = ("none", None)
        self.checked = 0

    def close(self) -> None:
        for obj in self.opened:
            obj.close()
        self.opened.clear()

    def play(self, lines: list[dict[str, Any]]) -> int:
        """Run every line; return how many lines were checked against fastpool's answers."""
        index = 0
        while index < len(lines):
            line = lines[index]
            kind = line["line"]
            if kind == "call":
                self.call(line)
            elif kind == "result":
                assert self.outcome[0] == "ok", (line["step"], self.outcome)
                expected = line["ok_json"]
                result = self.outcome[1]
                if line["method"].endswith("frames_after") and expected.isdigit():  # README: a count there
                    assert len(result) == int(expected)
                else:
                    assert encode(result) == expected, (line["step"], line["method"])
                self.checked += 1
            elif kind == "error":
                self.check_error(line)
            elif kind == "row":
                block = [line]
                while index + 1 < len(lines) and lines[index + 1]["line"] == "row":
                    if lines[index + 1]["table"] != line["table"]:
                        break
                    index += 1
                    block.append(lines[index])
                expected_rows = [list(row["columns"].items()) for row in block]
                assert self.target.dump(line["table"], list(line["columns"])) == expected_rows, line["table"]
                self.checked += len(block)
            elif kind == "pragma":
                assert self.target.pragma(line["name"]) == line["value"], line["name"]
                self.checked += 1
            elif kind == "note" and line["text"].startswith(HOST_SQL):
                sql = line["text"].removeprefix(HOST_SQL)
                if "journal_mode" in sql:
                    self.close()  # leaving WAL needs the file to itself (Rust adapters hold no connection)
                self.target.host_sql(sql)
            index += 1
        return self.checked

    def call(self, line: dict[str, Any]) -> None:
        args = json.loads(line["args_json"])
        method: str = line["method"]
        try:
            if method.endswith("open"):
                self.obj = self.target.open(self.classes[line["surface"]], args["path"])
                self.opened.append(self.obj)
                self.outcome = ("ok", None)
                return
            target = self.obj
            if "()." in method:
                accessor, method = method.split("().")
                target = getattr(target, accessor)()
            function = getattr(target, method)
            hints = typing.get_type_hints(function)
            kwargs = {name: decode_argument(hints[name], value) for name, value in args.items()}
            self.outcome = ("ok", function(**kwargs))
        except AgentError as error:
            self.outcome = ("error", error)

    def check_error(self, line: dict[str, Any]) -> None:
        status, error = self.outcome
        assert status == "error", (line["step"], self.outcome)
        assert type(error).__name__ == line["error_type"], line["step"]
        assert wire.encode(error) == line["err_json"], line["step"]
        assert str(error) == line["display"], line["step"]
        if isinstance(error, ContentResolutionError):
            assert wire.encode(error.to_agent_error()) == line["to_agent_error_json"], line["step"]
        else:
            assert (error.kind.value, error.retry.value) == (line["kind"], line["retry"]), line["step"]
        self.checked += 1


def run_scenario(classes: dict[str, Any], lines: list[dict[str, Any]], target: Any) -> int:
    """Play a scenario on ``target``; the number of lines checked."""
    runner = Runner(classes, target)
    try:
        return runner.play(lines)
    finally:
        runner.close()


def all_scenarios(surfaces: list[str]) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    for surface in surfaces:
        for name, lines in scenarios(surface):
            yield surface, name, lines


def checked_lines(lines: list[dict[str, Any]]) -> int:
    """How many lines of a scenario the runner checks."""
    return sum(line["line"] in ("result", "error", "row", "pragma") for line in lines)


#: SQLite's own: what a PostgreSQL twin has no counterpart for.
SQLITE_ONLY_TABLES = ("sqlite_master", "sqlite_sequence")


def portable_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A scenario as any backend plays it: up to its storage-failure tail (SQL run on the
    SQLite file), without pragmas and SQLite's own tables."""
    kept = []
    for line in lines:
        if line["line"] == "note" and line["text"].startswith(HOST_SQL):
            break
        if line["line"] == "pragma" or (line["line"] == "row" and line["table"] in SQLITE_ONLY_TABLES):
            continue
        kept.append(line)
    return kept
