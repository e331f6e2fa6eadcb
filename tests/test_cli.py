"""The ``fastpool`` command line (SPEC §7) as a user runs it: ``python -m fastpool ...`` in a
real subprocess, on real files: a writable copy of the Rust-written ``flow.sqlite`` fixture
(rollback journal, 2 pools, 209 records) and a WAL file the test makes through the store.

Output is compared with what the library says (``wire.encode`` of snapshots and records)
and with the golden fixture. The read commands (inspect, watch, export, verify) never
change the file, never create one and leave no ``-wal``/``-shm`` behind; errors are one
line on stderr with a non-zero status and no traceback; piped output carries no progress
or escape codes (and a terminal does get progress: the control that the check is live).
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from helpers import FIXTURES, NO_EXTENSIONS, load_jsonl
from writer_process import child_env, commits, start_writer, writer_payload

import fastpool
from fastpool import AgentPoolMember, AgentPoolStoreConfig, PolicyRef, SqliteAgentPoolStore, wire
from fastpool.model import MemberJoined, PoolOpened

FLOW = FIXTURES / "db" / "flow.sqlite"
EXPECTED = FIXTURES / "db" / "flow.expected.json"
BULK = "pool.bulk é"
#: Pools of the file the test makes: names with spaces and non-ASCII, of different lengths.
MADE = {"pool.a": 3, "pool with spaces ✓": 5, "pool.z": 1}
#: A pool the Rust store appended to without opening it (it lets record_pool_created through).
NEVER = "pool.never ✗"
PAYLOADS = {row["case"]: row for row in load_jsonl("payloads.jsonl")}
NEVER_ROWS = [
    PAYLOADS[case] for case in ("pool_created", "run_message_target_run_minimal", "wake_registered_flow_example")
]
READ_COMMANDS = ["inspect", "inspect-pool", "watch", "watch-from", "export", "export-pool", "verify"]


def fastpool_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fastpool", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=child_env(),
        timeout=timeout,
        check=False,
    )


def ok(*args: str) -> str:
    """Run a command that must succeed; its stdout. Piped, it writes nothing to stderr."""
    done = fastpool_cli(*args)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
    assert done.stderr == "", f"{args} wrote to stderr with output piped: {done.stderr!r}"
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    return done.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def expected_flow() -> dict[str, Any]:
    return dict(json.loads(EXPECTED.read_text(encoding="utf-8"))["pools"])


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    if not FLOW.is_file():
        pytest.fail(f"fixture {FLOW} not found (set FASTPOOL_FIXTURES)")
    folder = tmp_path / "flow"
    folder.mkdir()
    path = folder / "flow.sqlite"
    shutil.copyfile(FLOW, path)
    os.chmod(path, 0o644)  # the fixture is read-only; the copy is a user's ordinary file
    return path


@pytest.fixture
def made(tmp_path: Path) -> Path:
    """A WAL file written through the store and closed (so no -wal/-shm beside it)."""
    path = tmp_path / "made" / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        for pool_id, records in MADE.items():
            store.open_pool(pool_id, AgentPoolStoreConfig(policy_refs=(PolicyRef.new(f"policy.{len(pool_id)}"),)))
            for n in range(records - 1):
                store.join_member(
                    pool_id, AgentPoolMember(run_id=f"run.{n}", agent_id="agent.é", topics=(f"topic.{n}",))
                )
    assert listing(path.parent) == {path.name}
    return path


@pytest.fixture
def unopened(made: Path) -> Path:
    """``made`` plus raw rows, as a Rust host writes them, of a pool nobody opened."""
    db = apsw.Connection(str(made))
    with db:
        for sequence, row in enumerate(NEVER_ROWS, 1):
            db.execute(
                "INSERT INTO agent_pool_records VALUES (?, ?, ?, ?)",
                (NEVER, sequence, row["type"], row["payload_json"]),
            )
    db.close()
    return made


def never_lines() -> list[str]:
    """The JSON lines of NEVER's records, as the wire codec writes a record."""
    pool = json.dumps(NEVER, ensure_ascii=False)
    return [
        f'{{"pool_id":{pool},"cursor":{{"sequence":{sequence}}},"payload":{row["payload_json"]}}}'
        for sequence, row in enumerate(NEVER_ROWS, 1)
    ]


def read_command(name: str, path: Path, pool_id: str) -> tuple[str, ...]:
    return {
        "inspect": ("inspect", str(path)),
        "inspect-pool": ("inspect", str(path), pool_id),
        "watch": ("watch", str(path), pool_id),
        "watch-from": ("watch", str(path), pool_id, "--from", "1"),
        "export": ("export", str(path)),
        "export-pool": ("export", str(path), "--pool", pool_id),
        "verify": ("verify", str(path)),
    }[name]


def reading(path: Path) -> SqliteAgentPoolStore:
    """A store for the test's own expected answers, leaving the folder as it was: read-only on a
    rollback-journal file (a writable store would switch it to WAL), read-write on a WAL file
    (a read-only SQLite connection leaves the -wal/-shm it creates behind)."""
    wal = path.read_bytes()[18] == 2  # the header's file format write version: 2 means WAL
    return SqliteAgentPoolStore(path, readonly=not wal)


def parse_table(text: str) -> dict[str, tuple[int, int]]:
    lines = text.splitlines()
    assert re.fullmatch(r"pool\s+records\s+cursor", lines[0]), lines[0]
    assert re.fullmatch(rf"{len(lines) - 2} pools?", lines[-1]), lines[-1]
    rows = {}
    for line in lines[1:-1]:
        found = re.fullmatch(r"(.*?\S)\s+(\d+)\s+(\d+)(?:  never opened)?", line)
        assert found, line
        rows[found.group(1)] = (int(found.group(2)), int(found.group(3)))
    assert list(rows) == sorted(rows), "pools are listed in order"
    return rows


# -------------------------------------------------------------------- inspect


def test_inspect_lists_the_fixture_pools(flow: Path) -> None:
    assert parse_table(ok("inspect", str(flow))) == {BULK: (200, 200), "pool.flow": (9, 9)}


def test_inspect_lists_pools_made_through_the_store(made: Path) -> None:
    table = parse_table(ok("inspect", str(made)))
    assert table == {pool_id: (records, records) for pool_id, records in MADE.items()}
    with reading(made) as store:
        assert table == {pool_id: (count, last) for pool_id, count, last in store.pools()}


def test_inspect_marks_a_pool_never_opened(unopened: Path) -> None:
    out = ok("inspect", str(unopened))
    table = parse_table(out)
    assert table == {**{pool_id: (records, records) for pool_id, records in MADE.items()}, NEVER: (3, 3)}
    marked = [line for line in out.splitlines() if line.endswith("never opened")]
    assert len(marked) == 1 and marked[0].startswith(NEVER + " "), out
    done = fastpool_cli("inspect", str(unopened), NEVER)
    assert done.returncode == 1 and done.stdout == "", "a pool never opened has no snapshot"
    assert done.stderr == (
        f"fastpool inspect: error: sqlite agent pool store has not opened this pool (pool_id={NEVER!r})\n"
    )


def test_inspect_pool_prints_the_snapshot_as_json(flow: Path, made: Path) -> None:
    golden = expected_flow()
    for pool_id in (BULK, "pool.flow"):
        text = ok("inspect", str(flow), pool_id, "--json")
        assert text.endswith("\n") and text.count("\n") == 1
        with reading(flow) as store:
            snapshot = wire.encode(store.snapshot(pool_id))
        assert json.loads(text) == json.loads(snapshot)
        assert text.rstrip("\n") == snapshot == golden[pool_id]["snapshot_json"], "byte for byte, as Rust writes it"
    for pool_id in MADE:
        with reading(made) as store:
            assert ok("inspect", str(made), pool_id, "--json").rstrip("\n") == wire.encode(store.snapshot(pool_id))


def test_inspect_pool_prints_a_summary_a_person_reads(flow: Path) -> None:
    assert ok("inspect", str(flow), "pool.flow").splitlines() == [
        f"pool 'pool.flow' in {flow}",
        "  cursor 9, 9 records (5.0 kB of JSON), event sequence 8, created",
        "  records:  member_joined 2, pool_created 1, pool_opened 1, run_message 3, wake 2",
        "  messages: 2 (delivered 1, failed 1)",
        "  wakes:    1 (triggered 1)",
        "  members:  2: run.a (agent.a), run.b (agent.b)",
        "  topics:   0",
    ]
    done = fastpool_cli("inspect", str(flow), "--json")
    assert done.returncode == 1 and "name the POOL" in done.stderr


def test_watch_and_export_filter_by_type_run_and_status(flow: Path) -> None:
    def kinds_and_statuses(*args: str) -> list[tuple[str, str | None]]:
        found = []
        for line in ok(*args).splitlines():
            payload = json.loads(line)["payload"]
            stored = payload.get("stored", {})
            status = (stored.get("receipt") or stored.get("registration") or {}).get("status")
            found.append((payload["type"], status))
        return found

    assert kinds_and_statuses("watch", str(flow), "pool.flow", "--type", "wake") == [
        ("wake", "registered"),
        ("wake", "triggered"),
    ]
    assert kinds_and_statuses("watch", str(flow), "pool.flow", "--status", "delivered", "--status", "failed") == [
        ("run_message", "delivered"),
        ("run_message", "failed"),
    ]
    members = [json.loads(line)["payload"] for line in ok("export", str(flow), "--run", "run.b").splitlines()]
    assert members and all("run.b" in json.dumps(payload) for payload in members)
    assert ok("export", str(flow), "--pool", "pool.flow", "--type", "pool_opened", "--run", "run.a") == ""
    bad = fastpool_cli("watch", str(flow), "pool.flow", "--type", "message")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_help_describes_every_argument() -> None:
    for command in ("inspect", "watch", "verify", "export", "copy", "drop"):
        text = ok(command, "--help")
        described = re.findall(r"^  (db|pool|src|dst) +(\S.*)$", text, re.M)
        assert described and all(help_text for _, help_text in described), (command, text)


# -------------------------------------------------------------------- watch


def test_watch_prints_records_as_json_lines(flow: Path) -> None:
    golden = expected_flow()
    with reading(flow) as store:
        for pool_id in (BULK, "pool.flow"):
            lines = ok("watch", str(flow), pool_id).splitlines()
            records = [wire.encode(record) for record in store.watch(pool_id)]
            assert lines == records == golden[pool_id]["watch"]
            assert [json.loads(line)["cursor"]["sequence"] for line in lines] == list(range(1, len(lines) + 1))
        assert len(ok("watch", str(flow), BULK).splitlines()) == 200
        for start in (0, 1, 5, 8):
            lines = ok("watch", str(flow), "pool.flow", "--from", str(start)).splitlines()
            assert lines == [wire.encode(record) for record in store.watch("pool.flow", start)]
            assert len(lines) == 9 - start
        assert ok("watch", str(flow), "pool.flow", "--from", "9") == ""
        assert ok("watch", str(flow), "pool.flow", "--from", "100") == ""


def test_watch_prints_the_records_of_a_pool_never_opened(unopened: Path) -> None:
    assert ok("watch", str(unopened), NEVER).splitlines() == never_lines()
    assert ok("watch", str(unopened), NEVER, "--from", "2").splitlines() == never_lines()[2:]


@pytest.mark.parametrize("follow", [False, True], ids=["once", "follow"])
def test_watch_of_a_pool_with_no_records_is_an_error(made: Path, follow: bool) -> None:
    """Also with --follow: a misspelt pool name fails at once instead of waiting forever."""
    done = fastpool_cli("watch", str(made), "pool.unknown", *(["--follow"] if follow else []), timeout=20)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"fastpool watch: error: {made}: no records of pool 'pool.unknown'\n"


class LineReader:
    """Reads a child's stdout on a thread, so the test can wait for a line with a timeout."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert child.stdout is not None
        stream = child.stdout

        def pump() -> None:
            for line in stream:
                self.lines.put(line)
            self.lines.put(None)

        self.thread = threading.Thread(target=pump, daemon=True)
        self.thread.start()

    def next(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from the child within {timeout} s") from None
        assert line is not None, "the child closed its stdout"
        return line.rstrip("\n")


@pytest.mark.parametrize("replaced", [False, True], ids=["deleted", "replaced"])
def test_watch_follow_ends_with_an_error_when_its_file_is_deleted(made: Path, replaced: bool) -> None:
    """The open inode stays readable, so without a check the follower would wait forever."""
    follower = subprocess.Popen(
        [sys.executable, "-m", "fastpool", "watch", str(made), "pool.a", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=child_env(),
    )
    reader = LineReader(follower)
    try:
        for _ in range(MADE["pool.a"]):
            reader.next(timeout=20)
        for name in (made.name, made.name + "-wal", made.name + "-shm"):
            (made.parent / name).unlink(missing_ok=True)
        if replaced:
            SqliteAgentPoolStore(made).close()  # a new, empty store file at the same path
        assert follower.wait(timeout=60) == 1
        assert follower.stderr is not None
        assert follower.stderr.read() == (
            f"fastpool watch: error: {made}: the database file was deleted or replaced while watching it\n"
        )
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        reader.thread.join(5)
        assert follower.stdout is not None and follower.stderr is not None
        follower.stdout.close()
        follower.stderr.close()


@pytest.mark.parametrize("file", ["flow", "made"])
def test_watch_follow_prints_records_another_process_appends(file: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(file)
    pool_id = "pool.flow" if file == "flow" else "pool.a"
    with reading(path) as store:
        existing = [wire.encode(record) for record in store.watch(pool_id)]
    last = len(existing)
    # The child must take Ctrl-C as a terminal user's command does, even when this test runs
    # with SIGINT ignored (a background job): exec keeps an ignored signal ignored, so the
    # default is put back around the start (a caught signal reverts to default at exec).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        follower = subprocess.Popen(
            [sys.executable, "-m", "fastpool", "watch", str(path), pool_id, "--from", str(last - 1), "--follow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=child_env(),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    reader = LineReader(follower)
    try:
        assert reader.next(timeout=20) == existing[-1], "--from N prints the backlog after N first"
        writer = start_writer(path, pool_id, 3, pause=0.05)
        committed = commits(writer)
        assert sorted(committed) == [last + 1, last + 2, last + 3]
        for n in range(3):
            line = json.loads(reader.next(timeout=10))
            assert line["pool_id"] == pool_id and line["cursor"] == {"sequence": last + 1 + n}
            assert line["payload"] == json.loads(wire.encode(writer_payload(n)))
        assert follower.poll() is None, "--follow keeps running"
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)  # stops on Ctrl-C (a liveness bound, loose for a loaded machine)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
        reader.thread.join(5)
        assert follower.stdout is not None and follower.stderr is not None
        follower.stdout.close()
        stderr = follower.stderr.read()
        follower.stderr.close()
    assert follower.returncode in (0, 130), (follower.returncode, stderr)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert listing(path.parent) == {path.name}, "no -wal/-shm left behind once every connection closed"


# -------------------------------------------------------------------- export


def test_export_prints_every_record_of_every_pool(flow: Path) -> None:
    lines = ok("export", str(flow)).splitlines()
    assert len(lines) == 209
    rows = [json.loads(line) for line in lines]
    assert all(list(row) == ["pool_id", "cursor", "payload"] for row in rows)
    assert [(row["pool_id"], row["cursor"]["sequence"]) for row in rows] == [
        *[(BULK, n) for n in range(1, 201)],
        *[("pool.flow", n) for n in range(1, 10)],
    ]
    golden = expected_flow()
    assert lines == golden[BULK]["watch"] + golden["pool.flow"]["watch"]
    assert ok("export", str(flow), "--pool", "pool.flow").splitlines() == golden["pool.flow"]["watch"]
    assert ok("export", str(flow), "--pool", BULK).splitlines() == golden[BULK]["watch"]


def test_export_of_a_file_made_through_the_store(made: Path) -> None:
    with reading(made) as store:
        expected = [wire.encode(record) for pool_id in sorted(MADE) for record in store.watch(pool_id)]
    assert ok("export", str(made)).splitlines() == expected
    assert len(expected) == sum(MADE.values())


def test_export_includes_the_records_of_a_pool_never_opened(unopened: Path) -> None:
    with reading(unopened) as store:
        lines = {pool_id: [wire.encode(record) for record in store.watch(pool_id)] for pool_id in MADE}
    lines[NEVER] = never_lines()
    assert ok("export", str(unopened)).splitlines() == [line for pool_id in sorted(lines) for line in lines[pool_id]]
    assert ok("export", str(unopened), "--pool", NEVER).splitlines() == never_lines()
    done = fastpool_cli("export", str(unopened), "--pool", "pool.unknown")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"fastpool export: error: {unopened}: no records of pool 'pool.unknown'\n"


#: A pool of about 100 KB records, 109 MB in all: written in one transaction, exported in a second.
BIG_RECORDS = 1100
BIG_MEMBER = AgentPoolMember(
    run_id="run.big", agent_id="agent.big", topics=tuple(f"topic.{n:04d}." + "x" * 480 for n in range(200))
)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("big") / "big.sqlite"
    SqliteAgentPoolStore(path).close()
    joined = wire.encode(MemberJoined(member=BIG_MEMBER))
    db = apsw.Connection(str(path))
    with db:
        db.execute(
            "INSERT INTO agent_pool_records VALUES ('pool.big', 1, 'pool_opened', ?)",
            (wire.encode(PoolOpened(config=AgentPoolStoreConfig())),),
        )
        db.executemany(
            "INSERT INTO agent_pool_records VALUES ('pool.big', ?, 'member_joined', ?)",
            ((sequence, joined) for sequence in range(2, BIG_RECORDS + 1)),
        )
    db.close()
    assert path.stat().st_size >= 100 * 2**20
    yield path
    path.unlink()


#: ``python -m fastpool`` that reports its peak RSS (VmHWM: this process image's, from exec on;
#: ru_maxrss would include the forked parent's pages) on stderr.
MEASURED = """
import runpy, sys
sys.argv[0] = "fastpool"
try:
    runpy.run_module("fastpool", run_name="__main__", alter_sys=True)
finally:
    sys.stderr.write("".join(line for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["export", "watch"])
def test_export_and_watch_stream_in_flat_memory(big: Path, command: str, tmp_path: Path) -> None:
    """The peak RSS of the command on a pool of over 100 MB stays far below the pool's size."""
    args = ["export", str(big)] if command == "export" else ["watch", str(big), "pool.big"]
    out = tmp_path / "out.jsonl"
    with out.open("wb") as stdout:
        done = subprocess.run(
            [sys.executable, "-c", MEASURED, *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(r"VmHWM:\s+(\d+) kB\n", done.stderr)
    assert found, done.stderr
    peak, size = int(found.group(1)) * 1024, big.stat().st_size
    assert peak < size / 3, f"{command}: peak RSS {peak / 2**20:.0f} MiB on a {size / 2**20:.0f} MiB file"
    with out.open(encoding="utf-8") as lines:
        count = 0
        for count, line in enumerate(lines, 1):
            assert json.loads(line)["cursor"] == {"sequence": count}
    assert count == BIG_RECORDS
    assert line.rstrip("\n").endswith(f',"payload":{wire.encode(MemberJoined(member=BIG_MEMBER))}}}')
    out.unlink()


# -------------------------------------------------------------------- the read commands leave the file alone


@pytest.mark.parametrize("file", ["flow", "made"])
def test_read_commands_never_change_or_create_files(file: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(file)
    pool_id = "pool.flow" if file == "flow" else "pool.a"
    before, files = digest(path), listing(path.parent)
    stat = path.stat()
    for name in READ_COMMANDS:
        ok(*read_command(name, path, pool_id))
        assert digest(path) == before, f"{name} changed the file"
        assert listing(path.parent) == files, f"{name} left {listing(path.parent) - files} beside the file"
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


@pytest.mark.parametrize("name", READ_COMMANDS)
def test_read_commands_on_a_missing_file_fail_and_create_nothing(name: str, tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "pools.sqlite"
    done = fastpool_cli(*read_command(name, path, "pool.a"))
    command = name.split("-")[0]
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"fastpool {command}: error: ")
    assert "no such database file" in done.stderr
    assert "Traceback" not in done.stderr
    assert listing(tmp_path) == set(), "a read command created a file or folder"


@pytest.mark.parametrize("name", READ_COMMANDS)
def test_read_commands_on_a_non_database_file(name: str, tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("these are not the pools you are looking for\n" * 100, encoding="utf-8")
    before = digest(path)
    done = fastpool_cli(*read_command(name, path, "pool.a"))
    assert done.returncode == 1, done.stdout
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"fastpool {name.split('-')[0]}: error: ")
    assert "not a database" in done.stderr
    assert "Traceback" not in done.stderr
    assert digest(path) == before and listing(tmp_path) == {path.name}


def test_inspect_of_an_unopened_pool_is_an_error(flow: Path) -> None:
    done = fastpool_cli("inspect", str(flow), "pool.unknown")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        "fastpool inspect: error: sqlite agent pool store has not opened this pool (pool_id='pool.unknown')\n"
    )


# -------------------------------------------------------------------- demo


def demo_figures(out: str) -> dict[str, Any]:
    assert re.search(r"^\d+ agents joined pool\.demo", out, re.M), out
    assert re.search(r"^\d+ wake conditions registered", out, re.M), out
    assert re.search(r"snapshots agree: True", out), out
    sends = re.search(r"^(\d+) sends: (\d+) deduplicated by idempotency key", out, re.M)
    cursor = re.search(r"cursor (\d+)$", out, re.M)
    speed = re.search(
        r"^(\d+) coordinator calls \(\d+ journal records, \d+ events on the \w+\) in [\d.]+ s: ([\d,]+) calls/s$",
        out,
        re.M,
    )
    assert sends and cursor and speed, out
    assert int(speed.group(2).replace(",", "")) > 0
    return {"sends": int(sends.group(1)), "deduplicated": int(sends.group(2)), "cursor": int(cursor.group(1))}


def test_demo_on_a_temporary_file() -> None:
    out = ok("demo")
    figures = demo_figures(out)
    assert figures["sends"] == 600 and 0 < figures["deduplicated"] < 600
    # Its host store's counters: every record of the new file is an append of that store.
    counters = re.search(
        r"^host store's counters \(store.stats\(\)\): appends ([\d,]+), cache_hits ([\d,]+)", out, re.M
    )
    assert counters is not None, out
    assert int(counters.group(1).replace(",", "")) == figures["cursor"] and counters.group(2) != "0"


def test_demo_on_a_file_that_inspect_then_reads(tmp_path: Path) -> None:
    path = tmp_path / "demo" / "demo.sqlite"
    figures = demo_figures(ok("demo", str(path), "--messages", "300"))
    assert path.is_file()
    pools, _, surfaces = ok("inspect", str(path)).partition("\ntable ")
    assert parse_table(pools) == {"pool.demo": (figures["cursor"], figures["cursor"])}
    # open_runtime keeps the journal and the event archive beside the pool
    assert re.search(r"^run_journal_records\s+\d+$", surfaces, re.M), surfaces
    assert re.search(r"^event_archive_frames\s+\d+$", surfaces, re.M), surfaces
    with reading(path) as store:
        assert store.snapshot("pool.demo").cursor.sequence == figures["cursor"]
    ok("verify", str(path))
    # A second run on the same file repeats every send: the store deduplicates them all.
    again = demo_figures(ok("demo", str(path), "--messages", "300"))
    assert again["deduplicated"] == 300
    assert again["cursor"] > figures["cursor"]


# -------------------------------------------------------------------- usage


def test_help_lists_every_command() -> None:
    out = ok("--help")
    assert out.startswith("usage: fastpool")
    for command in ("bench", "demo", "inspect", "watch", "verify", "export"):
        assert re.search(rf"^\s+{command}\s", out, re.M), command
    assert "--follow" in ok("watch", "--help")
    assert "--quick" in ok("bench", "--help")
    assert "--version" in out


@pytest.mark.parametrize(
    "args",
    [(), ("inspect",), ("watch", "db.sqlite"), ("watch", "db.sqlite", "p", "--from", "-1"), ("frobnicate",)],
)
def test_usage_errors_exit_2_with_argparse_usage(args: tuple[str, ...], tmp_path: Path) -> None:
    done = fastpool_cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: fastpool") and "error:" in done.stderr
    assert "Traceback" not in done.stderr
    assert listing(tmp_path) == set()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--agents", "0"), "argument --agents: expected a whole number >= 1, got '0'"),
        (("--agents", "many"), "argument --agents: expected a whole number >= 1, got 'many'"),
        (("--messages", "-1"), "argument --messages: expected a whole number >= 0, got '-1'"),
    ],
)
def test_demo_refuses_bad_numbers_as_usage_errors(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    done = fastpool_cli("demo", str(tmp_path / "demo.sqlite"), *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("usage: fastpool demo")
    assert done.stderr.splitlines()[-1] == f"fastpool demo: error: {message}"
    assert listing(tmp_path) == set(), "nothing ran"


def version_line(env_changes: dict[str, str | None], *code: str) -> str:
    """``fastpool --version`` in a child with the environment changed (a value None: unset)."""
    env = child_env()
    env.pop("FASTPOOL_REQUIRE_EXTENSIONS", None)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    command = ["-c", "; ".join([*code, "import runpy", "runpy.run_module('fastpool', run_name='__main__')"])]
    done = subprocess.run(
        [sys.executable, *(command if code else ["-m", "fastpool"]), "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.count("\n") == 1
    return done.stdout.rstrip("\n")


def test_version_names_the_engine_loaded() -> None:
    version = f"fastpool {fastpool.__version__}"
    assert version_line({"FASTPOOL_NO_EXTENSIONS": "1"}) == (
        f"{version} (pure-Python engine: fastpool._replay_py, forced by FASTPOOL_NO_EXTENSIONS)"
    )
    # The compiled engine missing (sys.modules None: its import fails), as after a build without a compiler.
    missing = version_line({"FASTPOOL_NO_EXTENSIONS": None}, "import sys", "sys.modules['fastpool._replay'] = None")
    assert missing == f"{version} (pure-Python engine: fastpool._replay_py; the compiled engine is not installed)"
    if not NO_EXTENSIONS:  # in a pure-engine run the extension need not be built
        assert version_line({"FASTPOOL_NO_EXTENSIONS": None}) == f"{version} (compiled engine: fastpool._replay)"


def test_progress_goes_to_a_terminal_only(flow: Path) -> None:
    """Piped stderr stays empty (every ``ok`` run checks it); a terminal shows verify's progress."""
    assert ok("verify", str(flow)).splitlines() == ["2 pools, 209 records: clean"]
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fastpool", "verify", str(flow)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=child_env(),
            timeout=60,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    assert done.returncode == 0
    assert b"verify: 209/209" in shown, shown
    assert done.stdout.decode("utf-8").splitlines() == ["2 pools, 209 records: clean"], "progress never goes to stdout"


# -------------------------------------------------------------------- drop and verify's counts


def test_drop_deletes_one_pool_and_says_what_it_removed(made: Path, tmp_path: Path) -> None:
    with SqliteAgentPoolStore(made) as store:
        assert store.next_event_sequence("pool.a") == 1
    out = ok("drop", str(made), "pool.a")
    assert out == f"pool 'pool.a': 3 records, cursor 3, event sequence 1: dropped from {made}\n"
    assert "pool.a" not in parse_table(ok("inspect", str(made)))
    again = fastpool_cli("drop", str(made), "pool.a")
    assert again.returncode == 1
    assert again.stderr == f"fastpool drop: error: {made}: no records of pool 'pool.a'; nothing was dropped\n"
    missing = tmp_path / "missing.sqlite"
    assert fastpool_cli("drop", str(missing), "pool.a").returncode == 1 and not missing.exists()


def test_verify_counts_in_the_singular_too(tmp_path: Path) -> None:
    path = tmp_path / "one.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool("pool.one", AgentPoolStoreConfig())
    assert ok("verify", str(path)).splitlines()[-1] == "1 pool, 1 record: clean"
