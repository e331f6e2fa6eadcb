"""The command line on every store it takes (SPEC §5.5, §7): PostgreSQL URLs (``--schema``),
``sqlite:///`` URLs, ``memory:`` for demo, and ``fastpool copy`` between any two of them.

The read commands give the same output on a PostgreSQL schema as on the SQLite file it was
copied from, through the same store primitives; ``copy`` moves the raw rows byte for byte
(payload text, kind, sequence numbers, the event sequence) and never writes into a pool the
destination has. Most commands run in-process (``cli.main``), ``watch --follow`` as a child.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import apsw
import pytest
from helpers import Run
from pg_server import PostgresServer
from store_helpers import CONFIG, PgTarget, message, receipt
from test_cli import BULK, FLOW, NEVER, NEVER_ROWS, LineReader, digest, never_lines
from writer_process import child_env

from fastpool import AgentPoolMember, SqliteAgentPoolStore, wire
from fastpool.benchmarking import postgres as pg_bench
from fastpool.benchmarking.runner import format_table, t12_results
from fastpool.cli import _shown
from fastpool.postgres import _key
from fastpool.verify import NO_INTEGRITY_CHECK

COPIED = {
    BULK: "pool 'pool.bulk é': 200 records, cursor 200, event sequence 198: copied and verified",
    "pool.flow": "pool 'pool.flow': 9 records, cursor 9, event sequence 8: copied and verified",
    NEVER: f"pool {NEVER!r}: 3 records, cursor 3, event sequence none: copied and verified",
}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A writable copy of the Rust-written fixture plus a pool nobody opened (as a Rust host writes it)."""
    path = tmp_path / "source" / "flow.sqlite"
    path.parent.mkdir()
    shutil.copyfile(FLOW, path)
    path.chmod(0o644)
    db = apsw.Connection(str(path))
    with db:
        for sequence, row in enumerate(NEVER_ROWS, 1):
            db.execute(
                "INSERT INTO agent_pool_records VALUES (?, ?, ?, ?)",
                (NEVER, sequence, row["type"], row["payload_json"]),
            )
    db.close()
    return path


def sqlite_rows(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every record row as stored (with the payload's storage class) and every event sequence row."""
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        records = db.execute(
            "SELECT pool_id, seq, kind, payload_json, typeof(payload_json) FROM agent_pool_records "
            "ORDER BY pool_id, seq"
        ).fetchall()
        events = db.execute("SELECT pool_id, seq FROM agent_pool_event_seq ORDER BY pool_id").fetchall()
    finally:
        db.close()
    return records, events


def pg_rows(pg: PgTarget) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The same rows of a PostgreSQL schema (its payloads are ``text``, like SQLite's)."""
    records = pg.query(
        "SELECT pool_id, seq, kind, payload_json, 'text' FROM agent_pool_records ORDER BY pool_id COLLATE \"C\", seq"
    )
    return records, pg.query('SELECT pool_id, seq FROM agent_pool_event_seq ORDER BY pool_id COLLATE "C"')


def execute(pg: PgTarget, statement: str) -> None:
    """A statement with no result rows in ``pg``'s schema."""
    import psycopg

    with psycopg.connect(pg.conninfo, autocommit=True) as connection:
        connection.execute(f'SET search_path TO "{pg.schema}"')
        connection.execute(statement)


def fill(pg: PgTarget, path: Path) -> None:
    """Copy every pool of the file at ``path`` into ``pg``'s schema through the stores' primitives."""
    with SqliteAgentPoolStore(path, readonly=True) as source, pg.store() as target:
        for pool_id, _, _ in source.pools():
            target._append_rows(pool_id, source._stream_rows(pool_id), source._event_sequence(pool_id))


# ------------------------------------------------------------------------------ copy


def test_round_trip_sqlite_postgres_sqlite_is_byte_identical(
    cli: Run, source: Path, pg: PgTarget, tmp_path: Path
) -> None:
    """The Rust-written file, its pool never opened included, to PostgreSQL and back: the same raw rows."""
    before = digest(source)
    code, out, err = cli("copy", str(source), pg.conninfo, "--dst-schema", pg.schema)
    assert (code, err) == (0, "")
    assert out.splitlines() == [*COPIED.values(), f"3 pools copied from {source} to {pg.conninfo} (schema {pg.schema})"]
    assert pg_rows(pg) == sqlite_rows(source)
    back = tmp_path / "back" / "pools.sqlite"
    code, out, err = cli("copy", pg.conninfo, f"sqlite://{back}", "--src-schema", pg.schema)
    assert (code, err) == (0, "")
    assert out.splitlines()[:-1] == list(COPIED.values())
    assert sqlite_rows(back) == sqlite_rows(source)
    assert digest(source) == before, "copy changed its source"
    db = apsw.Connection(str(back))
    # The destination is made as a store makes a new file: WAL, fastpool's format marker.
    assert db.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    assert db.execute("SELECT key, value FROM fastpool_meta ORDER BY key").fetchall() == [
        ("point_index", "1"),
        ("schema_version", "1"),
    ]
    db.close()


def test_sqlite_to_sqlite_copies_the_rust_fixture_byte_for_byte(cli: Run, tmp_path: Path) -> None:
    target = tmp_path / "copy.sqlite"
    code, out, _ = cli("copy", str(FLOW), str(target))
    assert code == 0 and out.splitlines()[:-1] == [COPIED[BULK], COPIED["pool.flow"]]
    assert sqlite_rows(target) == sqlite_rows(FLOW)
    with SqliteAgentPoolStore(target, readonly=True) as copied, SqliteAgentPoolStore(FLOW, readonly=True) as rust:
        for pool_id in (BULK, "pool.flow"):
            assert wire.encode(copied.snapshot(pool_id)) == wire.encode(rust.snapshot(pool_id))


def test_copy_of_one_pool(cli: Run, source: Path, pg: PgTarget) -> None:
    code, out, _ = cli("copy", str(source), pg.conninfo, "--dst-schema", pg.schema, "--pool", NEVER)
    assert code == 0 and out.splitlines() == [
        COPIED[NEVER],
        f"1 pool copied from {source} to {pg.conninfo} (schema {pg.schema})",
    ]
    records, _ = sqlite_rows(source)
    assert pg_rows(pg) == ([row for row in records if row[0] == NEVER], [])
    code, out, err = cli("copy", str(source), pg.conninfo, "--dst-schema", pg.schema, "--pool", "pool.unknown")
    assert (code, out) == (1, "")
    assert err == f"fastpool copy: error: {source}: no records of pool 'pool.unknown'\n"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_copy_refuses_a_pool_the_destination_has(cli: Run, backend: str, pg: PgTarget, tmp_path: Path) -> None:
    target, options = (
        (str(tmp_path / "dst.sqlite"), []) if backend == "sqlite" else (pg.conninfo, ["--dst-schema", pg.schema])
    )
    assert cli("copy", str(FLOW), target, *options, "--pool", "pool.flow")[0] == 0
    rows = pg_rows(pg) if backend == "postgres" else sqlite_rows(Path(target))
    for pool in ([], ["--pool", "pool.flow"]):
        code, out, err = cli("copy", str(FLOW), target, *options, *pool)
        assert (code, out) == (1, "")
        assert err == (
            f"fastpool copy: error: {target} already has pool 'pool.flow': "
            "copy never writes into an existing pool; nothing was copied "
            "(after an interrupted copy, --resume copies the rest)\n"
        )
        assert (pg_rows(pg) if backend == "postgres" else sqlite_rows(Path(target))) == rows, "nothing was written"


def many_pools(path: Path, pools: int, messages: int) -> list[str]:
    """A fastpool file with ``pools`` pools of ``messages`` messages each; their ids, sorted."""
    ids = [f"pool.{n:02d}" for n in range(pools)]
    with SqliteAgentPoolStore(path) as store:
        for pool_id in ids:
            store.open_pool(pool_id, CONFIG)
            for n in range(messages):
                store.record_message(pool_id, message(f"m{n}"), receipt(f"m{n}"))
            store.next_event_sequence(pool_id)
    return ids


def copy_child(*args: str) -> subprocess.Popen[str]:
    """``fastpool copy ARGS…`` in a child process whose stdout is unbuffered."""
    return subprocess.Popen(
        [sys.executable, "-m", "fastpool", "copy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**child_env(), "PYTHONUNBUFFERED": "1"},
    )


def test_copy_killed_mid_copy_is_finished_with_resume(cli: Run, pg: PgTarget, tmp_path: Path) -> None:
    """kill -9 while the copy waits inside pool.03's transaction (its lock held here): pools
    00-02 are whole at DST, 03 on are absent; a re-run is refused, ``--resume`` finishes."""
    source = tmp_path / "src.sqlite"
    ids = many_pools(source, 8, 50)
    pg.store().close()  # the schema's tables
    options = ("--dst-schema", pg.schema)
    holder = pg.query("SELECT pg_backend_pid()")[0][0]
    pg.query("SELECT pg_advisory_lock(?)", (_key(pg.schema, "pool.03"),))
    child = copy_child(str(source), pg.conninfo, *options)
    reader = LineReader(child)
    try:
        assert [reader.next(timeout=60) for _ in range(3)] == [
            f"pool 'pool.{n:02d}': 51 records, cursor 51, event sequence 1: copied and verified" for n in range(3)
        ]
        wait = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> ?"
        for _ in range(6000):  # the child waits for pool.03's lock
            if pg.query(wait, (holder,))[0][0]:
                break
            time.sleep(0.01)
        child.kill()
    finally:
        child.kill()
        child.wait()
        reader.thread.join()
        assert child.stdout is not None
        child.stdout.close()
        pg.query("SELECT pg_advisory_unlock(?)", (_key(pg.schema, "pool.03"),))
    assert child.returncode == -signal.SIGKILL
    assert {row[0] for row in pg_rows(pg)[0]} == set(ids[:3]), "each pool whole or absent"
    code, out, err = cli("copy", str(source), pg.conninfo, *options)
    assert (code, out) == (1, "")
    assert err == (
        f"fastpool copy: error: {pg.conninfo} already has 3 of the pools ('pool.00', 'pool.01', 'pool.02'): "
        "copy never writes into an existing pool; nothing was copied (after an interrupted copy, --resume "
        "copies the rest)\n"
    )
    code, out, err = cli("copy", str(source), pg.conninfo, *options, "--resume")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        *(f"pool 'pool.{n:02d}': already at {pg.conninfo}, equal up to cursor 51: skipped" for n in range(3)),
        *(f"pool 'pool.{n:02d}': 51 records, cursor 51, event sequence 1: copied and verified" for n in range(3, 8)),
        f"5 pools copied from {source} to {pg.conninfo} (schema {pg.schema}) (3 already there)",
    ]
    assert pg_rows(pg) == sqlite_rows(source), "every pool at DST equals the source"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_resume_refuses_a_pool_that_differs(cli: Run, backend: str, pg: PgTarget, tmp_path: Path) -> None:
    """A pool at DST with a record the source lacks, or short of one it has, is never skipped."""
    path = tmp_path / "dst.sqlite"
    target, options = (str(path), []) if backend == "sqlite" else (pg.conninfo, ["--dst-schema", pg.schema])
    shown = target if backend == "sqlite" else f"{target} (schema {pg.schema})"
    source = tmp_path / "src.sqlite"
    many_pools(source, 3, 5)
    assert cli("copy", str(source), target, *options, "--pool", "pool.01")[0] == 0
    code, out, err = cli("copy", str(source), target, *options, "--resume")
    assert code == 0 and out.splitlines()[-1] == f"2 pools copied from {source} to {shown} (1 already there)"
    code, out, err = cli("copy", str(source), target, *options, "--resume")
    assert code == 0 and out.splitlines()[-1] == f"0 pools copied from {source} to {shown} (3 already there)"
    store = SqliteAgentPoolStore(path) if backend == "sqlite" else pg.store()
    with store:
        store.record_message("pool.01", message("extra"), receipt("extra"))  # DST has one more
    with SqliteAgentPoolStore(source) as grown:
        grown.record_message("pool.02", message("extra"), receipt("extra"))  # SRC has one more
    rows = pg_rows(pg) if backend == "postgres" else sqlite_rows(path)
    code, out, err = cli("copy", str(source), target, *options, "--resume")
    assert (code, out) == (1, "")
    assert err == (
        f"fastpool copy: error: {target} already has pool 'pool.01' and it differs from {source}'s "
        "(up to cursor 6): --resume only skips a pool copied whole; nothing was copied\n"
    )
    code, out, err = cli("copy", str(source), target, *options, "--resume", "--pool", "pool.02")
    assert (code, out) == (1, "")
    assert "already has pool 'pool.02' and it differs" in err and "(up to cursor 7)" in err
    assert (pg_rows(pg) if backend == "postgres" else sqlite_rows(path)) == rows, "nothing was written"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_pool_with_only_an_event_sequence_is_refused_too(
    cli: Run, backend: str, pg: PgTarget, tmp_path: Path
) -> None:
    """No records, so the listing does not show it: the store's own check inside the transaction does."""
    path = tmp_path / "dst.sqlite"
    if backend == "sqlite":
        SqliteAgentPoolStore(path).close()
        db = apsw.Connection(str(path))
        db.execute("INSERT INTO agent_pool_event_seq VALUES ('pool.flow', 41)")
        db.close()
        target, options = str(path), []
    else:
        pg.store().close()
        execute(pg, "INSERT INTO agent_pool_event_seq VALUES ('pool.flow', 41)")
        target, options = pg.conninfo, ["--dst-schema", pg.schema]
    code, out, err = cli("copy", str(FLOW), target, *options)
    assert code == 1
    assert out.splitlines() == [COPIED[BULK]], "the pool before it is copied, in a transaction of its own"
    assert err == (
        f"fastpool copy: error: {backend} agent pool store already has pool 'pool.flow': "
        "a copy never writes into an existing pool\n"
    )
    records, events = pg_rows(pg) if backend == "postgres" else sqlite_rows(path)
    assert {row[0] for row in records} == {BULK}
    assert events == [(BULK, 198), ("pool.flow", 41)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_payload_that_is_not_text_stops_the_copy_of_its_pool(
    cli: Run, backend: str, source: Path, pg: PgTarget, tmp_path: Path
) -> None:
    """Record 150 of 200 is a BLOB: the 149 rows already sent are rolled back with the rest."""
    db = apsw.Connection(str(source))
    db.execute(
        "UPDATE agent_pool_records SET payload_json = CAST(payload_json AS BLOB) WHERE pool_id = ? AND seq = 150",
        (BULK,),
    )
    db.close()
    path = tmp_path / "dst.sqlite"
    target, options = (str(path), []) if backend == "sqlite" else (pg.conninfo, ["--dst-schema", pg.schema])
    code, out, err = cli("copy", str(source), target, *options)
    assert (code, out) == (1, "")
    assert err == (
        f"fastpool copy: error: pool {BULK!r} record 150: payload_json is not text "
        "(fastpool verify lists such records); nothing of this pool was copied\n"
    )
    assert (pg_rows(pg) if backend == "postgres" else sqlite_rows(path)) == ([], [])
    code, out, _ = cli("copy", str(source), target, *options, "--pool", "pool.flow")
    assert code == 0, "the store is usable after the rollback"


def test_copy_refuses_memory_a_missing_source_and_a_missing_pool(cli: Run, tmp_path: Path) -> None:
    for args in (("memory:", str(tmp_path / "a.sqlite")), (str(FLOW), "memory:")):
        code, out, err = cli("copy", *args)
        assert (code, out) == (1, "")
        assert (
            err == "fastpool copy: error: memory: starts empty and is gone when the command ends: only demo takes it\n"
        )
    code, _, err = cli("copy", str(tmp_path / "missing.sqlite"), str(tmp_path / "b.sqlite"))
    assert code == 1 and "no such database file" in err
    code, _, err = cli("copy", str(FLOW), str(tmp_path / "c.sqlite"), "--pool", "pool.unknown")
    assert code == 1 and "no records of pool 'pool.unknown'" in err
    assert list(tmp_path.iterdir()) == [], "nothing created"


# ------------------------------------------------------------------------------ the read commands on PostgreSQL


READS = [
    ("inspect",),
    ("inspect", "pool.flow", "--json"),
    ("inspect", BULK, "--json"),
    ("watch", "pool.flow", "--type", "run_message", "--status", "delivered"),
    ("export", "--run", "run.a"),
    ("watch", "pool.flow"),
    ("watch", BULK, "--from", "150"),
    ("export",),
    ("export", "--pool", "pool.flow"),
]


def test_read_commands_print_on_postgres_what_they_print_for_the_file(cli: Run, pg: PgTarget) -> None:
    fill(pg, FLOW)
    targets = [(str(FLOW),), (pg.conninfo, "--schema", pg.schema)]
    for command, *rest in READS:
        on_file = cli(command, str(FLOW), *rest)
        on_postgres = cli(command, pg.conninfo, *rest, "--schema", pg.schema)
        assert on_postgres == on_file and on_file[0] == 0 and on_file[1], (command, *rest)
    # The summary names the store it read, and is otherwise the same.
    summary = [cli("inspect", target, "pool.flow", *schema)[1].splitlines() for target, *schema in targets]
    assert summary[0][0] == f"pool 'pool.flow' in {FLOW}" and summary[0][1:] == summary[1][1:]
    assert cli("verify", str(FLOW))[1:] == ("2 pools, 209 records: clean\n", "")
    assert cli("verify", pg.conninfo, "--schema", pg.schema) == (
        0,
        f"{NO_INTEGRITY_CHECK}\n2 pools, 209 records: clean\n",
        "",
    )


def test_a_pool_never_opened_on_postgres(cli: Run, source: Path, pg: PgTarget) -> None:
    fill(pg, source)
    args = (pg.conninfo, "--schema", pg.schema)
    code, out, _ = cli("inspect", *args)
    assert code == 0 and [line for line in out.splitlines() if line.endswith("never opened")] == [
        f"{NEVER}         3         3  never opened"
    ]
    assert cli("watch", pg.conninfo, NEVER, "--schema", pg.schema)[1].splitlines() == never_lines()
    assert cli("export", *args, "--pool", NEVER)[1].splitlines() == never_lines()
    code, out, _ = cli("verify", *args)
    assert code == 1
    assert out.splitlines() == [
        f"pool {NEVER!r}: never opened: 3 records and no pool_opened among them",
        NO_INTEGRITY_CHECK,
        "3 pools, 212 records: 1 problem",
    ]
    code, out, err = cli("inspect", pg.conninfo, NEVER, "--schema", pg.schema)
    assert (code, out) == (1, "")
    assert err == f"fastpool inspect: error: postgres agent pool store has not opened this pool (pool_id={NEVER!r})\n"


def test_verify_lists_every_bad_record_on_postgres(cli: Run, pg: PgTarget) -> None:
    fill(pg, FLOW)
    execute(pg, "UPDATE agent_pool_records SET payload_json = '{\"type\": ' WHERE pool_id = 'pool.flow' AND seq = 3")
    execute(pg, f"UPDATE agent_pool_records SET kind = 'pool_created' WHERE pool_id = '{BULK}' AND seq = 17")
    execute(pg, f"DELETE FROM agent_pool_records WHERE pool_id = '{BULK}' AND seq = 100")
    code, out, _ = cli("verify", pg.conninfo, "--schema", pg.schema)
    assert code == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:-2]] == [
        f"pool {BULK!r} record 17",
        f"pool {BULK!r} record 101",
        "pool 'pool.flow' record 3",
    ]
    assert "kind column 'pool_created' disagrees" in lines[0] and "sequence gap: expected 100" in lines[1]
    assert lines[-2:] == [NO_INTEGRITY_CHECK, "2 pools, 208 records: 3 problems"]


def test_read_commands_never_create_a_schema(cli: Run, pg: PgTarget) -> None:
    for command, *rest in [*READS, ("verify",)]:
        code, out, err = cli(command, pg.conninfo, *rest, "--schema", pg.schema)
        assert (code, out) == (1, "")
        assert (
            err
            == f"fastpool {command}: error: postgres agent pool store schema {pg.schema!r} has no agent pool tables\n"
        )
    assert pg.query("SELECT count(*) FROM pg_namespace WHERE nspname = ?", (pg.schema,)) == [(0,)]


def test_the_default_schema_is_public(cli: Run, pg: PgTarget) -> None:
    public = PgTarget(pg.conninfo, "public")
    assert public.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    try:
        assert cli("copy", str(FLOW), pg.conninfo, "--pool", "pool.flow")[0] == 0
        assert public.query("SELECT count(*) FROM agent_pool_records") == [(9,)]
        assert [line.split() for line in cli("inspect", pg.conninfo)[1].splitlines()[1:]] == [
            ["pool.flow", "9", "9"],
            ["1", "pool"],
        ]
        assert cli("export", pg.conninfo)[1] == cli("export", str(FLOW), "--pool", "pool.flow")[1]
    finally:
        public.close()
        execute(public, "DROP TABLE IF EXISTS agent_pool_records, agent_pool_event_seq, fastpool_meta")


def test_watch_follow_on_postgres_prints_records_appended_later(pg: PgTarget) -> None:
    fill(pg, FLOW)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fastpool",
            "watch",
            pg.conninfo,
            "pool.flow",
            "--schema",
            pg.schema,
            "--from",
            "8",
            "--follow",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=child_env(),
    )
    reader = LineReader(follower)
    try:
        assert json.loads(reader.next(timeout=20))["cursor"] == {"sequence": 9}
        with pg.store() as store:
            for n in range(3):
                store.join_member("pool.flow", AgentPoolMember(run_id=f"run.follow.{n}", agent_id="agent.f"))
                line = json.loads(reader.next(timeout=10))
                assert (
                    line["cursor"] == {"sequence": 10 + n} and line["payload"]["member"]["run_id"] == f"run.follow.{n}"
                )
        assert follower.poll() is None, "--follow keeps running"
    finally:
        follower.kill()
        follower.wait()
        reader.thread.join(5)
        assert follower.stdout is not None and follower.stderr is not None
        follower.stdout.close()
        follower.stderr.close()


# ------------------------------------------------------------------------------ demo, URLs, options


def test_demo_on_postgres_then_inspect(cli: Run, pg: PgTarget) -> None:
    code, out, _ = cli("demo", pg.conninfo, "--schema", pg.schema, "--messages", "40")
    assert code == 0 and "snapshots agree: True" in out
    cursor = int(out.rstrip().splitlines()[-2].rpartition(" ")[2])
    code, out, _ = cli("inspect", pg.conninfo, "--schema", pg.schema)
    assert out.splitlines()[1].split() == ["pool.demo", str(cursor), str(cursor)]
    assert cli("verify", pg.conninfo, "--schema", pg.schema)[0] == 0


def test_demo_in_memory(cli: Run, tmp_path: Path) -> None:
    code, out, _ = cli("demo", "memory:", "--messages", "40")
    assert code == 0
    assert "observer (the same in-memory store) watched" in out and "snapshots agree: True" in out


def test_sqlite_urls_and_schema_options(cli: Run, tmp_path: Path) -> None:
    assert cli("inspect", f"sqlite://{FLOW}") == cli("inspect", str(FLOW))
    code, out, err = cli("inspect", str(FLOW), "--schema", "pools")
    assert (code, out) == (1, "")
    assert err == f"fastpool inspect: error: --schema: only a postgresql:// store has schemas, not {FLOW}\n"
    code, out, err = cli("export", "mysql://db/pools")
    assert (code, out) == (1, "")
    assert "unknown store URL scheme 'mysql'" in err
    assert cli("inspect", "memory:")[2].endswith("only demo takes it\n")


def test_messages_never_show_a_password() -> None:
    assert _shown("postgresql://app:s3cret@db.internal:5432/agents?sslmode=require&password=x") == (
        "postgresql://app:***@db.internal:5432/agents?sslmode=require&password=%2A%2A%2A"
    )
    assert _shown("postgres://db.internal/agents") == "postgres://db.internal/agents"
    assert _shown("pools.sqlite") == "pools.sqlite"


# ------------------------------------------------------------------------------ bench --db


def test_bench_db_takes_a_postgres_url_only(cli: Run, tmp_path: Path) -> None:
    code, out, err = cli("bench", "--db", str(tmp_path / "x.sqlite"))
    assert (code, out) == (1, "")
    assert err.startswith("fastpool bench: error: --db: expected a postgresql:// URL")
    code, _, err = cli("bench", "--db", "postgresql://localhost/x", "--plot", "x.png")
    assert code == 1 and "--sizes and --plot are for the SQLite targets" in err


def test_bench_db_on_a_server_that_is_not_there(cli: Run, pg_server: PostgresServer) -> None:
    code, out, err = cli("bench", "--db", "postgresql://postgres@127.0.0.1:1/postgres", "--quick")
    assert (code, out) == (1, "")
    assert err.startswith("fastpool bench: error: postgres agent pool store failure: connection failed")
    assert err.count("\n") == 1


def test_the_t12_per_call_rows_run(pg: PgTarget) -> None:
    """A smoke run of ``fastpool bench --db``'s in-process rows (a few calls each; the figures are not checked)."""
    execute(pg, f'CREATE SCHEMA "{pg.schema}"')
    figures = pg_bench._timed_rows(pg.conninfo, pg.schema, 5)
    systems = {(measure, system) for measure, system, _, _ in figures}
    assert {(pg_bench.APPEND, "raw"), (pg_bench.APPEND, pg_bench.SYSTEM), (pg_bench.ROUND_TRIP, "raw")} <= systems
    assert {measure for measure, _ in systems} >= {pg_bench.LINEAR_RECEIPT, pg_bench.NOTIFIED_SNAPSHOT}
    assert all(value > 0 for _, _, value, _ in figures)


def test_the_t12_table_is_printed(pg: PgTarget) -> None:
    """``bench --db``'s table on the rows its measurement gives (before, its verdicts took the
    largest of no pool sizes, and the run printed nothing)."""
    execute(pg, f'CREATE SCHEMA "{pg.schema}"')
    table = format_table(t12_results(pg_bench._timed_rows(pg.conninfo, pg.schema, 5)), ())
    lines = table.splitlines()
    assert lines[0].split() == ["target", "measure", "N", pg_bench.SYSTEM, "raw", "unit"]
    assert any(line.startswith(f"T12    {pg_bench.APPEND} ") for line in lines), table
    assert any(line.startswith("  T12  record_message: ") for line in lines), table


def test_a_file_name_sqlite_cannot_open_is_one_error_line(cli: Run, tmp_path: Path) -> None:
    """A name that is not UTF-8 (argv gives its bytes as lone surrogates): an error naming the
    path, not a traceback, from every command that opens a file."""
    bad = str(tmp_path / "a\udcffb.sqlite")
    shutil.copyfile(FLOW, os.fsencode(bad))
    for args in (
        ("inspect", bad),
        ("export", bad),
        ("verify", bad),
        ("watch", bad, "pool.flow"),
        ("copy", bad, str(tmp_path / "dst.sqlite")),
        ("copy", str(FLOW), str(tmp_path / "d\udcff.sqlite")),
    ):
        code, out, err = cli(*args)
        assert (code, out) == (1, ""), args
        assert err.startswith(f"fastpool {args[0]}: error: path: not valid Unicode text"), err
    assert sorted(os.listdir(tmp_path)) == ["a\udcffb.sqlite"], "nothing created"


def test_drop_on_postgres(cli: Run, pg: PgTarget) -> None:
    fill(pg, FLOW)
    code, out, err = cli("drop", pg.conninfo, "pool.flow", "--schema", pg.schema)
    assert (code, err) == (0, "")
    assert out == f"pool 'pool.flow': 9 records, cursor 9, event sequence 8: dropped from {pg.conninfo}\n"
    assert [row[0] for row in pg.query("SELECT DISTINCT pool_id FROM agent_pool_records")] == [BULK]
    assert pg.query("SELECT count(*) FROM agent_pool_event_seq WHERE pool_id = 'pool.flow'") == [(0,)]
