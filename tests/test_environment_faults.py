"""The host's environment gets in the way: read-only files and directories, a lock held too long,
a closed store, an impossible path. Each failure is a clear ``AgentError`` whose retry class
tells the caller what to do (SPEC §5.2 "SQLite failures"), nothing is half-written, and the
store works again once the cause is gone.

File modes do not stop root: CAP_DAC_OVERRIDE lets it write a 0o444 file. So the read-only
scenarios run in a child process which, when the tests run as root, first drops
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from its capability bounding set and
re-executes itself, after which the kernel applies file modes to it like to any user. The
child checks that the modes are really enforced before it reports; if a sandbox forbids
dropping capabilities, only those scenarios are skipped, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import fastpool
from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolStoreConfig,
    EventFilter,
    InvalidInput,
    MessageReceipt,
    MessageStatus,
    RetryClassification,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    WakeCondition,
    WakeRegistration,
    WakeRegistrationStatus,
    wire,
)

POOL = "pool.env"
CONFIG = AgentPoolStoreConfig()
MEMBER = AgentPoolMember(run_id="run.a", agent_id="agent.a", topics=("topic.t",))
MESSAGE = RunMessage(
    message_id="m.1", from_="run.a", to=RunAddress.run("run.b"), content_ref="content.m.1", idempotency_key="key.m.1"
)
RECEIPT = MessageReceipt(message_id="m.1", status=MessageStatus.ACCEPTED)
CONDITION = WakeCondition(
    condition_id="wake.1", run_id="run.b", filter=EventFilter.run("run.a"), idempotency_key="key.w.1"
)
REGISTRATION = WakeRegistration(condition_id="wake.1", run_id="run.b", status=WakeRegistrationStatus.REGISTERED)
FAILURE_PREFIX = "sqlite agent pool store failure: "


def populate(path: Path) -> None:
    """``POOL`` with 4 records: opened, a member, a message, a wake."""
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
        store.join_member(POOL, MEMBER)
        store.record_message(POOL, MESSAGE, RECEIPT)
        store.record_wake(POOL, CONDITION, CONDITION.compile_envelope_filter(), REGISTRATION)


def raw_count(path: Path) -> int:
    db = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return int(db.execute("SELECT count(*) FROM agent_pool_records").fetchall()[0][0])
    finally:
        db.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_calls(store: Any) -> dict[str, Callable[[], Any]]:
    """Every method that appends (or allocates), each with arguments that would succeed on a writable file."""
    return {
        "open_pool(new)": lambda: store.open_pool("pool.new", CONFIG),
        "record_pool_created": lambda: store.record_pool_created(POOL),
        "join_member": lambda: store.join_member(POOL, AgentPoolMember(run_id="run.z", agent_id="agent.z")),
        "leave_member": lambda: store.leave_member(POOL, "run.a"),
        "record_message": lambda: store.record_message(
            POOL, MESSAGE.replace(message_id="m.2", idempotency_key="key.m.2"), RECEIPT.replace(message_id="m.2")
        ),
        "record_wake": lambda: store.record_wake(POOL, CONDITION, CONDITION.compile_envelope_filter(), REGISTRATION),
        "record_message_once(new key)": lambda: store.record_message_once(
            POOL, MESSAGE.replace(message_id="m.3", idempotency_key="key.m.3"), RECEIPT.replace(message_id="m.3")
        ),
        "record_wake_once(new key)": lambda: store.record_wake_once(
            POOL,
            CONDITION.replace(condition_id="wake.3", idempotency_key="key.w.3"),
            CONDITION.compile_envelope_filter(),
            REGISTRATION.replace(condition_id="wake.3"),
        ),
        "next_event_sequence": lambda: store.next_event_sequence(POOL),
    }


def once_outcome(result: tuple[Any, Any]) -> list[Any]:
    receipt, cursor = result
    return [wire.encode(receipt), None if cursor is None else cursor.sequence]


def read_calls(store: Any) -> dict[str, Callable[[], Any]]:
    """Every read, each with the answer it must give on the populated file (as wire JSON)."""
    return {
        "snapshot": lambda: store.snapshot(POOL).cursor.sequence,
        "open_pool(equal config)": lambda: store.open_pool(POOL, CONFIG).cursor.sequence,
        "message_receipt": lambda: wire.encode(store.message_receipt(POOL, "key.m.1")),
        "wake_registration": lambda: wire.encode(store.wake_registration(POOL, "key.w.1")),
        "wake": lambda: store.wake(POOL, "wake.1").registration.status.value,
        "watch": lambda: [r.cursor.sequence for r in store.watch(POOL)],
        "pools": lambda: [list(row) for row in store.pools()],
        # A key already recorded needs no write: answered as a read, like open_pool of an equal config.
        "record_message_once(known key)": lambda: once_outcome(store.record_message_once(POOL, MESSAGE, RECEIPT)),
        "members": lambda: [wire.encode(m) for m in store.members(POOL)],
        "topic_members": lambda: [m.run_id for m in store.topic_members(POOL, "topic.t")],
    }


EXPECTED_READS = {
    "snapshot": 4,
    "open_pool(equal config)": 4,
    "message_receipt": wire.encode(RECEIPT),
    "wake_registration": wire.encode(REGISTRATION),
    "wake": "registered",
    "watch": [1, 2, 3, 4],
    "pools": [[POOL, 4, 4]],
    "record_message_once(known key)": [wire.encode(RECEIPT), None],
    "members": [wire.encode(MEMBER)],
    "topic_members": ["run.a"],
}


def outcome(call: Callable[[], Any]) -> list[Any]:
    try:
        return ["ok", call()]
    except AgentError as error:
        return ["error", type(error).__name__, error.kind.value, error.retry.value, error.message]
    except Exception as error:  # noqa: BLE001 - a raw exception is what the tests look for
        return ["raw", type(error).__name__, str(error)]


def assert_reads_work(results: dict[str, list[Any]]) -> None:
    for name, want in EXPECTED_READS.items():
        assert results[name] == ["ok", want], f"{name}: {results[name]}"


def assert_writes_refused(results: dict[str, list[Any]], retry: RetryClassification) -> None:
    for name in write_calls(None):
        got = results[name]
        assert got[0] == "error", f"{name} did not fail: {got}"
        assert got[1] == "AgentError", f"{name}: {got}"
        assert got[3] == retry.value, f"{name}: retry {got[3]}, expected {retry.value}: {got}"
        assert got[4].startswith(FAILURE_PREFIX), f"{name}: {got}"


# -------------------------------------------------------------------- a child without DAC override

#: The scenario child: optionally drops the capabilities that bypass file modes, re-executes
#: itself, checks that the modes are enforced, then opens the store and runs every call.
SCENARIO = r"""
import ctypes, json, os, sys
args = json.loads(sys.argv[1])
if args["drop"]:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            print(json.dumps({"skip": "cannot drop capability %d: errno %d" % (cap, ctypes.get_errno())}))
            sys.exit(0)
    args["drop"] = False
    # The bounding set limits what the next program image gets, not this one.
    os.execv(sys.executable, [sys.executable, sys.argv[0], json.dumps(args)])
sys.path.insert(0, args["tests"])
import test_environment_faults as env
probe = args["probe"]
try:
    if os.path.isdir(probe):
        open(os.path.join(probe, "probe.tmp"), "w").close()
        os.unlink(os.path.join(probe, "probe.tmp"))
    else:
        open(probe, "ab").close()
    print(json.dumps({"skip": "file modes are not enforced for this process (uid %d)" % os.geteuid()}))
    sys.exit(0)
except OSError:  # EACCES (file modes) or EROFS (a read-only mount)
    pass
from fastpool import SqliteAgentPoolStore
report = {"open": env.outcome(lambda: SqliteAgentPoolStore(args["path"], **args["options"]))}
if report["open"][0] == "ok":
    store = report["open"][1]
    report["open"] = ["ok", None]
    for name, call in env.read_calls(store).items():
        report[name] = env.outcome(call)
    for name, call in env.write_calls(store).items():
        report[name] = env.outcome(call)
    if args["pause"]:  # the parent changes the file now
        print("paused", flush=True)
        sys.stdin.readline()
    for name, call in env.read_calls(store).items():
        report["after " + name] = env.outcome(call)
    store.close()
print(json.dumps(report))
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(fastpool.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def run_scenario(
    tmp_path: Path,
    path: Path,
    probe: Path,
    between: Callable[[], None] | None = None,
    prefix: tuple[str, ...] = (),
    **options: Any,
) -> dict[str, list[Any]]:
    """The scenario child's report; ``between`` runs after its writes and before its second
    reads; ``prefix`` is a command that runs the child (and must ``exec`` it)."""
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO, encoding="utf-8")
    args = {
        "drop": os.geteuid() == 0,
        "tests": str(Path(__file__).resolve().parent),
        "path": str(path),
        "probe": str(probe),
        "options": options,
        "pause": between is not None,
    }
    with subprocess.Popen(
        [*prefix, sys.executable, str(script), json.dumps(args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    ) as child:
        assert child.stdout is not None
        first = child.stdout.readline() if between is not None else ""
        if first == "paused\n":
            between()  # type: ignore[misc]
            first = ""
        out, err = child.communicate("\n", timeout=60)
    if prefix and not (first + out) and child.returncode != 0:
        pytest.skip(f"{prefix[0]} cannot run the scenario here: {err.strip()}")
    assert child.returncode == 0, err
    report: dict[str, list[Any]] = json.loads((first + out).strip().splitlines()[-1])
    if "skip" in report:
        pytest.skip(f"read-only scenario not enforceable here: {report['skip']}")
    return report


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[list[Path]]:
    """Paths whose modes a test took away; given back so the temporary tree can be removed."""
    changed: list[Path] = []
    yield changed
    for path in changed:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


@pytest.mark.parametrize("readonly", [False, True], ids=["default", "readonly"])
def test_read_only_file(tmp_path: Path, restore_modes: list[Path], readonly: bool) -> None:
    """chmod 0o444: the store opens, every read answers, every write fails HOST_CONFIGURATION_NEEDED."""
    folder = tmp_path / "files"
    folder.mkdir()
    path = folder / "pools.sqlite"
    populate(path)
    os.chmod(path, 0o444)
    restore_modes.append(path)
    before = digest(path)

    report = run_scenario(tmp_path, path, probe=path, readonly=readonly)
    assert report["open"] == ["ok", None], report["open"]
    assert_reads_work(report)
    assert_writes_refused(report, RetryClassification.HOST_CONFIGURATION_NEEDED)
    assert_reads_work({name.removeprefix("after "): got for name, got in report.items() if name.startswith("after ")})
    assert digest(path) == before
    if readonly:  # opened immutable: a -wal and -shm made here could never be removed by this user
        assert sorted(p.name for p in folder.iterdir()) == ["pools.sqlite"]
    assert raw_count(path) == 4


@pytest.mark.parametrize("readonly", [False, True], ids=["default", "readonly"])
def test_read_only_directory_with_a_rollback_journal_file(
    tmp_path: Path, restore_modes: list[Path], readonly: bool
) -> None:
    """A file in the Rust crate's journal mode (DELETE) in a directory nobody may write to: the
    journal cannot be created, so reads work and writes fail HOST_CONFIGURATION_NEEDED."""
    folder = tmp_path / "ro-dir"
    folder.mkdir()
    path = folder / "pools.sqlite"
    populate(path)
    db = apsw.Connection(str(path))
    assert db.execute("PRAGMA journal_mode=DELETE").fetchall() == [("delete",)]
    db.close()
    os.chmod(folder, 0o555)
    restore_modes.append(folder)
    before = digest(path)

    report = run_scenario(tmp_path, path, probe=folder, readonly=readonly)
    assert report["open"] == ["ok", None], report["open"]
    assert_reads_work(report)
    assert_writes_refused(report, RetryClassification.HOST_CONFIGURATION_NEEDED)
    assert digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["pools.sqlite"]


@pytest.mark.parametrize("readonly", [False, True], ids=["default", "readonly"])
def test_read_only_directory_with_a_wal_file(tmp_path: Path, restore_modes: list[Path], readonly: bool) -> None:
    """A cleanly closed WAL file whose -shm cannot be created: SQLite cannot read it as usual.
    ``readonly=True`` opens it immutable (nothing in a -wal, nobody who could write it with
    this user's rights) and reads it; the default store may refuse at open with
    HOST_CONFIGURATION_NEEDED. Never a raw exception, never a write, never a new file."""
    folder = tmp_path / "ro-wal-dir"
    folder.mkdir()
    path = folder / "pools.sqlite"
    populate(path)
    assert sorted(p.name for p in folder.iterdir()) == ["pools.sqlite"]  # checkpointed, -wal/-shm gone
    os.chmod(folder, 0o555)
    restore_modes.append(folder)
    before = digest(path)

    report = run_scenario(tmp_path, path, probe=folder, readonly=readonly)
    if readonly:
        assert report["open"] == ["ok", None], report["open"]
    if report["open"][0] == "ok":
        assert_reads_work(report)
        assert_writes_refused(report, RetryClassification.HOST_CONFIGURATION_NEEDED)
    else:
        kind, name, _, retry, message = report["open"]
        assert (kind, name, retry) == ("error", "AgentError", "HostConfigurationNeeded"), report["open"]
        assert message.startswith(FAILURE_PREFIX)
    assert digest(path) == before
    assert sorted(p.name for p in folder.iterdir()) == ["pools.sqlite"]


def test_readonly_reads_a_file_on_read_only_media(tmp_path: Path) -> None:
    """A read-only mount (a read-only bind mount in a private mount namespace; no file mode
    involved, so root is stopped too): the cleanly closed WAL file is read immutable, and
    nothing is, or could be, written."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a private mount namespace")
    source, media = tmp_path / "source", tmp_path / "media"
    source.mkdir()
    media.mkdir()
    populate(source / "pools.sqlite")
    before = digest(source / "pools.sqlite")
    mount = f"mount --bind {source} {media} && mount -o remount,bind,ro {media} && exec " + '"$@"'
    report = run_scenario(
        tmp_path, media / "pools.sqlite", probe=media, prefix=("unshare", "-m", "sh", "-c", mount, "sh"), readonly=True
    )
    assert report["open"] == ["ok", None], report["open"]
    assert_reads_work(report)
    assert_writes_refused(report, RetryClassification.HOST_CONFIGURATION_NEEDED)
    assert digest(source / "pools.sqlite") == before
    assert sorted(p.name for p in source.iterdir()) == ["pools.sqlite"]


def crash_after_a_write(path: Path) -> None:
    """A process appends one record to ``POOL`` and dies: the record stays in the -wal (no checkpoint)."""
    code = (
        "import os, sys, fastpool; store = fastpool.SqliteAgentPoolStore(sys.argv[1]); "
        f"store.record_pool_created({POOL!r}); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], env=child_env(), check=True, timeout=60)


def test_readonly_reads_a_live_writers_wal_in_a_read_only_directory(tmp_path: Path, restore_modes: list[Path]) -> None:
    """The -wal holds a record the database file lacks and its writer keeps -wal and -shm: the
    reader goes through SQLite's WAL as usual (immutable would miss record 5) and creates nothing."""
    folder = tmp_path / "live"
    folder.mkdir()
    path = folder / "pools.sqlite"
    populate(path)
    with SqliteAgentPoolStore(path) as writer:
        writer.record_pool_created(POOL)
        assert (folder / "pools.sqlite-wal").stat().st_size > 0
        os.chmod(folder, 0o555)
        restore_modes.append(folder)
        report = run_scenario(tmp_path, path, probe=folder, readonly=True)
        assert report["open"] == ["ok", None], report["open"]
        assert report["snapshot"] == ["ok", 5]
        assert report["watch"] == ["ok", [1, 2, 3, 4, 5]]
        assert report["pools"] == ["ok", [[POOL, 5, 5]]]
        assert_writes_refused(report, RetryClassification.HOST_CONFIGURATION_NEEDED)
        assert sorted(p.name for p in folder.iterdir()) == ["pools.sqlite", "pools.sqlite-shm", "pools.sqlite-wal"]
        assert writer.record_pool_created(POOL).sequence == 6  # the writer is undisturbed


@pytest.mark.parametrize("unwritable", ["directory", "file"])
def test_readonly_refuses_a_wal_it_cannot_read_without_a_checkpoint(
    tmp_path: Path, restore_modes: list[Path], unwritable: str
) -> None:
    """A writer died with a record in the -wal, and the -shm is gone (the files were copied, say).
    Reading the -wal needs a new -shm, which this user cannot create (read-only directory) or
    could never remove (read-only file); immutable would silently miss the record. So the open
    fails HOST_CONFIGURATION_NEEDED, naming the -wal and the ways out, and nothing changes."""
    folder = tmp_path / "crashed"
    folder.mkdir()
    path = folder / "pools.sqlite"
    populate(path)
    crash_after_a_write(path)
    (folder / "pools.sqlite-shm").unlink()
    assert (folder / "pools.sqlite-wal").stat().st_size > 0
    target = folder if unwritable == "directory" else path
    os.chmod(target, 0o555 if unwritable == "directory" else 0o444)
    restore_modes.append(target)
    before = {p.name: digest(p) for p in folder.iterdir()}

    report = run_scenario(tmp_path, path, probe=target, readonly=True)
    kind, name, _, retry, message = report["open"]
    assert (kind, name, retry) == ("error", "AgentError", "HostConfigurationNeeded"), report["open"]
    assert f"{path}-wal" in message and "checkpoint" in message and "writable" in message, message
    assert {p.name: digest(p) for p in folder.iterdir()} == before


@pytest.mark.parametrize("writer", ["still open", "closed"])
def test_an_immutable_reader_fails_cleanly_once_a_writer_appears(
    tmp_path: Path, restore_modes: list[Path], writer: str
) -> None:
    """Immutable means SQLite takes no locks and ignores any -wal: right only while nothing
    writes. Another user (root here, whom the directory's mode does not stop) commits after the
    reader opened: the record is in the -wal (writer still open) or checkpointed into the
    database file (closed). From then on every read fails HOST_CONFIGURATION_NEEDED, telling
    the caller to open the store again, instead of answering from a file that changed under it."""
    folder = tmp_path / "appears"
    folder.mkdir()
    path = folder / "pools.sqlite"
    populate(path)
    os.chmod(folder, 0o555)
    restore_modes.append(folder)
    still_open: list[SqliteAgentPoolStore] = []

    def write() -> None:
        store = SqliteAgentPoolStore(path)
        store.record_pool_created(POOL)
        if writer == "closed":
            store.close()  # checkpoints into the database file and removes the -wal
        else:
            still_open.append(store)

    try:
        report = run_scenario(tmp_path, path, probe=folder, between=write, readonly=True)
    finally:
        for store in still_open:
            store.close()
    assert report["open"] == ["ok", None], report["open"]
    assert_reads_work(report)
    assert_writes_refused(report, RetryClassification.HOST_CONFIGURATION_NEEDED)
    for name in EXPECTED_READS:
        got = report["after " + name]
        assert got[:4] == ["error", "AgentError", "HostConfigurationNeeded", "HostConfigurationNeeded"], (name, got)
        assert "changed" in got[4] and "open the store again" in got[4], got


def test_readonly_option_on_a_writable_file(tmp_path: Path) -> None:
    """``readonly=True`` needs no file modes (root can test it directly): nothing changes the file."""
    path = tmp_path / "pools.sqlite"
    populate(path)
    before = digest(path)
    with SqliteAgentPoolStore(path, readonly=True) as store:
        results = {name: outcome(call) for name, call in {**read_calls(store), **write_calls(store)}.items()}
        # The contract's own checks still come first, and transaction() reads consistently.
        with pytest.raises(AgentError, match="run is not a member"):
            store.leave_member(POOL, "run.z")
        with store.transaction():
            assert store.snapshot(POOL).cursor.sequence == 4
    assert_reads_work(results)
    assert_writes_refused(results, RetryClassification.HOST_CONFIGURATION_NEEDED)
    assert digest(path) == before
    # SQLite removed the -wal and -shm that reading created: the last connection closed could write.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pools.sqlite"]
    # The same file is writable again through an ordinary store object.
    with SqliteAgentPoolStore(path) as store:
        assert store.record_pool_created(POOL).sequence == 5


def test_a_readonly_store_never_removes_files_another_connection_uses(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    populate(path)
    with SqliteAgentPoolStore(path) as writer:
        writer.record_pool_created(POOL)
        with SqliteAgentPoolStore(path, readonly=True) as reader:
            assert reader.snapshot(POOL).cursor.sequence == 5
            writer.record_pool_created(POOL)
            assert reader.snapshot(POOL).cursor.sequence == 6  # it sees new commits at once
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pools.sqlite", "pools.sqlite-shm", "pools.sqlite-wal"]
        assert writer.record_pool_created(POOL).sequence == 7
        with SqliteAgentPoolStore(path) as other:
            assert other.snapshot(POOL).cursor.sequence == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pools.sqlite"]


def test_readonly_option_refuses_a_missing_file_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "pools.sqlite"
    with pytest.raises(AgentError) as caught:
        SqliteAgentPoolStore(path, readonly=True)
    assert caught.value.retry is RetryClassification.HOST_CONFIGURATION_NEEDED
    assert not path.parent.exists()


# -------------------------------------------------------------------- a lock held too long


def test_lock_held_past_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    populate(path)
    timeout = 0.2
    store = SqliteAgentPoolStore(path, busy_timeout=timeout)
    holder = apsw.Connection(str(path))
    try:
        assert store.snapshot(POOL).cursor.sequence == 4  # warm
        holder.execute("BEGIN IMMEDIATE")
        # The holder has even written a row of its own, not yet committed.
        holder.execute(
            "INSERT INTO agent_pool_records VALUES (?, 5, 'pool_created', ?)", (POOL, '{"type":"pool_created"}')
        )
        for name, call in write_calls(store).items():
            started = time.monotonic()
            with pytest.raises(AgentError) as caught:
                call()
            waited = time.monotonic() - started
            error = caught.value
            assert not isinstance(error, InvalidInput), name
            assert error.kind is AgentErrorKind.INVALID_STATE_TRANSITION, f"{name}: {error!r}"
            assert error.retry is RetryClassification.RETRYABLE, f"{name}: {error!r}"
            assert error.message.startswith(FAILURE_PREFIX), f"{name}: {error!r}"
            assert waited >= timeout * 0.9, f"{name} gave up after {waited:.3f}s, before busy_timeout"
            assert waited < timeout + 2.0, f"{name} waited {waited:.3f}s"
        # Readers are not blocked by a writer (WAL), and see only committed records.
        results = {name: outcome(call) for name, call in read_calls(store).items()}
        assert_reads_work(results)
        holder.execute("ROLLBACK")
        assert raw_count(path) == 4, "nothing was written while the lock was held"

        # Once the lock is gone the same store object writes, with no gap in the cursors.
        assert store.record_pool_created(POOL).sequence == 5
        assert store.next_event_sequence(POOL) == 1
        assert [r.cursor.sequence for r in store.watch(POOL)] == [1, 2, 3, 4, 5]
    finally:
        if not holder.getautocommit():
            holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_lock_released_within_busy_timeout_is_waited_for(tmp_path: Path) -> None:
    """A lock shorter than busy_timeout costs a wait, not an error."""
    path = tmp_path / "pools.sqlite"
    populate(path)
    holder = apsw.Connection(str(path))
    store = SqliteAgentPoolStore(path, busy_timeout=5.0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        import threading

        release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
        release.start()
        started = time.monotonic()
        assert store.record_pool_created(POOL).sequence == 5
        assert time.monotonic() - started >= 0.2
        release.join()
    finally:
        store.close()
        holder.close()


# -------------------------------------------------------------------- a closed store


def test_closed_store_refuses_every_method(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    populate(path)
    store = SqliteAgentPoolStore(path)
    assert store.snapshot(POOL).cursor.sequence == 4
    store.close()
    store.close()  # twice: harmless
    with store:  # and a context manager exit after close: harmless too
        pass
    assert "closed" in repr(store)
    calls = {**read_calls(store), **write_calls(store)}
    calls["transaction"] = lambda: store.transaction().__enter__()
    for name, call in calls.items():
        with pytest.raises(AgentError) as caught:
            call()
        error = caught.value
        assert type(error) is AgentError, f"{name}: {error!r}"
        assert error.message == "sqlite agent pool store is closed", f"{name}: {error!r}"
        assert error.retry is RetryClassification.NOT_RETRYABLE, f"{name}: {error!r}"
    # Argument errors still come first and still name the argument.
    with pytest.raises(InvalidInput, match="pool_id"):
        store.snapshot("")
    # follow() on a closed store ends at once (documented), rather than waiting.
    started = time.monotonic()
    assert list(store.follow(POOL, timeout=5.0)) == []
    assert time.monotonic() - started < 1.0
    # The file is intact and opens again.
    with SqliteAgentPoolStore(path) as again:
        assert again.snapshot(POOL).cursor.sequence == 4


def test_store_closed_by_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(POOL, CONFIG)
    with pytest.raises(AgentError, match="closed"):
        store.snapshot(POOL)


# -------------------------------------------------------------------- impossible paths


@pytest.mark.parametrize("parts", [("blocker", "pools.sqlite"), ("blocker", "deeper", "pools.sqlite")])
def test_parent_is_a_regular_file(tmp_path: Path, parts: tuple[str, ...]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("I am a file, not a directory\n")
    path = tmp_path.joinpath(*parts)
    with pytest.raises(AgentError) as caught:
        SqliteAgentPoolStore(path)
    error = caught.value
    assert not isinstance(error, InvalidInput)
    assert error.retry is RetryClassification.HOST_CONFIGURATION_NEEDED, error
    assert error.message.startswith(FAILURE_PREFIX), error.message
    assert isinstance(error.__cause__, OSError | apsw.Error)
    assert blocker.read_text() == "I am a file, not a directory\n"


def test_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as caught:
        SqliteAgentPoolStore(tmp_path)
    assert caught.value.retry is RetryClassification.HOST_CONFIGURATION_NEEDED, caught.value
    assert caught.value.message.startswith(FAILURE_PREFIX)


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    """The control for the cases above: a path that can exist is made to exist."""
    path = tmp_path / "a" / "b" / "c" / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        assert store.open_pool(POOL, CONFIG).cursor.sequence == 1
    assert stat.S_ISREG(path.stat().st_mode)
