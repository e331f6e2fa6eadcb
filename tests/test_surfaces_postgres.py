"""The PostgreSQL twins pass the golden surface scenarios: every result, error and table row
up to each scenario's storage-failure tail (which runs SQL on an SQLite file), in a
throwaway cluster (conftest ``pg_server``), one schema per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_server import PostgresServer
from surfaces_golden import ROW_ORDER, all_scenarios, checked_lines, portable_lines, run_scenario
from test_cli import ok

import fastpool
from fastpool.surfaces._sql import TABLES as SURFACE_TABLES

CLASSES: dict[str, Any] = {
    "run_journal": fastpool.PostgresRunJournal,
    "event_archive": fastpool.PostgresEventArchive,
    "checkpoint": fastpool.PostgresCheckpointStore,
    "content": fastpool.PostgresContentStore,
    "tool_execution": fastpool.PostgresToolExecutionStore,
    "provider_arguments": fastpool.PostgresProviderArgumentStore,
    "bundle": fastpool.PostgresStoreBundle,
}
CASES = list(all_scenarios(list(CLASSES)))


class PostgresTarget:
    """A scenario's store in one schema (every ``open`` of the scenario reaches the same one)."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self.conninfo, self.schema = conninfo, schema

    def open(self, cls: Any, name: str) -> Any:
        return cls.open(self.conninfo, schema=self.schema)

    def dump(self, table: str, columns: list[str]) -> list[list[tuple[str, Any]]]:
        """The golden row's columns of ``table`` (BYTEA as lowercase hex), in the row order of SQLite."""
        with psycopg.connect(self.conninfo) as connection:
            rows = connection.execute(
                f'SELECT {", ".join(columns)} FROM "{self.schema}".{table} ORDER BY {ROW_ORDER[table]}'
            ).fetchall()
        return [[(name, v.hex() if isinstance(v, bytes) else v) for name, v in zip(columns, row)] for row in rows]


@pytest.mark.parametrize(("surface", "name", "lines"), CASES, ids=[f"{s}/{n}" for s, n, _ in CASES])
def test_golden_scenario_on_postgres(
    surface: str, name: str, lines: list[dict[str, Any]], pg_server: PostgresServer, pg_schema: str
) -> None:
    portable = portable_lines(lines)
    assert run_scenario(CLASSES, portable, PostgresTarget(pg_server.conninfo, pg_schema)) == checked_lines(portable)


def test_open_bundle_picks_the_backend(pg_server: PostgresServer, pg_schema: str, tmp_path: Path) -> None:
    with fastpool.open_bundle(pg_server.conninfo, schema=pg_schema) as bundle:
        assert isinstance(bundle, fastpool.PostgresStoreBundle)
        assert isinstance(bundle.journal(), fastpool.PostgresRunJournal)
        assert isinstance(bundle.agent_pool(), fastpool.PostgresAgentPoolStore)
    for target in (tmp_path / "a.sqlite", f"sqlite://{tmp_path / 'b.sqlite'}"):
        with fastpool.open_bundle(target) as bundle:
            assert isinstance(bundle, fastpool.SqliteStoreBundle)
            assert isinstance(bundle.checkpoints(), fastpool.SqliteCheckpointStore)
    with pytest.raises(fastpool.InvalidInput):
        fastpool.open_bundle("memory:")


def test_inspect_lists_the_other_tables_of_a_schema(pg_server: PostgresServer, pg_schema: str) -> None:
    with fastpool.PostgresStoreBundle.open(pg_server.conninfo, schema=pg_schema) as bundle:
        bundle.provider_arguments().store_provider_arguments("provider.a", "call.1", "tool", "{}")
        bundle.provider_arguments().store_provider_arguments("provider.a", "call.2", "tool", "[]")
    lines = ok("inspect", pg_server.conninfo, "--schema", pg_schema).splitlines()
    at = lines.index("0 pools")
    shown = {table: int(rows) for table, rows in (line.split() for line in lines[at + 2 : -1])}
    assert list(shown) == list(SURFACE_TABLES)
    assert shown == {table: 2 if table == "provider_arguments" else 0 for table in SURFACE_TABLES}


def test_a_write_waiting_past_busy_timeout_fails_retryable(pg_server: PostgresServer, pg_schema: str) -> None:
    """Another host holds the schema's surface lock: the write gives up after busy_timeout."""
    from fastpool.surfaces._pg_db import PgSurfaceDb
    from fastpool.surfaces.archive import ARCHIVE_ID

    archive = fastpool.PostgresEventArchive(PgSurfaceDb.open(pg_server.conninfo, schema=pg_schema, busy_timeout=0.2))
    assert archive.frames_after(None) == []  # the tables exist, nothing in them
    with psycopg.connect(pg_server.conninfo) as other, other.transaction():
        other.execute("SELECT pg_advisory_xact_lock(%s)", [archive._db._lock_key])
        cursor = fastpool.ArchiveCursor(archive_id=ARCHIVE_ID, position="archive.1")
        with pytest.raises(fastpool.AgentError) as caught:
            archive.append_frame(_frame().replace(archive_cursor=cursor))
    assert caught.value.retry is fastpool.RetryClassification.RETRYABLE
    assert caught.value.message.startswith("postgres store error: ")
    assert archive.frames_after(None) == []
    archive.close()


def _frame() -> fastpool.EventFrame:
    from surface_workers import template

    return fastpool.wire.decode(fastpool.EventFrame, template("event_archive", "append_frame", "frame"))
