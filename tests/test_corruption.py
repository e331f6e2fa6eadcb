"""Corrupt rows and corrupt files: found, named, and contained (SPEC §5.2 "Corrupt rows").

Rows are damaged directly in SQL through a raw APSW connection on the store's file. Reading
the damaged pool must raise ``AgentError(INVALID_STATE_TRANSITION, REPAIR_NEEDED)`` naming
the pool and the sequence; other pools in the same file keep working through the same store
object, nothing is written by a refused write, and once the row is repaired the same store
object reads on as if nothing had happened. Every case runs against a store whose cache was
warm before the damage (damage appended past its cursor) and against a cold one (damage to a
row in the middle of the pool), on both replay engines.

Files that are not usable databases are refused at ``SqliteAgentPoolStore(...)`` with a clear
``AgentError`` (never a raw APSW exception) and are left exactly as they were.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw
import pytest
from helpers import FIXTURES

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolStoreConfig,
    AgentPoolWakePolicy,
    MessageReceipt,
    MessageStatus,
    PolicyRef,
    RetryClassification,
    RunAddress,
    RunMessage,
    SqliteAgentPoolStore,
    wire,
)
from fastpool.model import MemberJoined, PoolCreated, PoolOpened

DAMAGED = "pool.damaged"
HEALTHY = "pool.healthy"
CONFIG = AgentPoolStoreConfig()
OTHER_CONFIG = AgentPoolStoreConfig(
    message_policy=AgentPoolMessagePolicy(include_sender_in_pool_broadcast=True),
    wake_policy=AgentPoolWakePolicy(envelope_only=False),
    policy_refs=(PolicyRef.new("policy.other"),),
)
CONFLICTING_OPEN = "sqlite agent pool store contains conflicting pool open records"


def member(run_id: str) -> AgentPoolMember:
    return AgentPoolMember(run_id=run_id, agent_id="agent.a", topics=("topic.t",))


def message(message_id: str) -> RunMessage:
    return RunMessage(
        message_id=message_id,
        from_="run.a",
        to=RunAddress.run("run.b"),
        content_ref=f"content.{message_id}",
        idempotency_key=f"key.{message_id}",
    )


def receipt(message_id: str) -> MessageReceipt:
    return MessageReceipt(message_id=message_id, status=MessageStatus.ACCEPTED)


# -------------------------------------------------------------------- the damage

#: Valid JSON of a member_joined payload, used as a base for damaged variants.
JOIN_TEXT = wire.encode(MemberJoined(member=member("run.damage")))


@dataclass(frozen=True)
class Damage:
    name: str
    kind: Any  # the kind column
    payload: Any  # the payload_json column: str, bytes (a BLOB) or None
    #: The exact message, when the contract fixes one; otherwise the message must name pool and sequence.
    exact: str | None = None


DAMAGES = [
    Damage("malformed_json", "member_joined", JOIN_TEXT[:-7]),
    Damage("not_json_at_all", "member_joined", "this is not JSON"),
    Damage("json_array", "member_joined", "[1, 2, 3]"),
    Damage("unknown_type", "member_joined", JOIN_TEXT.replace('"member_joined"', '"member_exploded"')),
    Damage("unknown_type_and_kind", "member_exploded", JOIN_TEXT.replace('"member_joined"', '"member_exploded"')),
    Damage("missing_type", "member_joined", JOIN_TEXT.replace('"type":"member_joined",', "")),
    Damage("missing_required_field", "member_joined", JOIN_TEXT.replace(',"agent_id":"agent.a"', "")),
    Damage("empty_id", "member_joined", JOIN_TEXT.replace('"run.damage"', '""')),
    Damage("control_char_id", "member_joined", JOIN_TEXT.replace('"run.damage"', '"run\\u0007damage"')),
    Damage("c1_control_char_id", "member_joined", JOIN_TEXT.replace('"run.damage"', '"run\\u0085damage"')),
    Damage("over_long_id", "member_joined", JOIN_TEXT.replace('"run.damage"', '"' + "é" * 257 + '"')),
    Damage("wrong_value_type", "member_joined", JOIN_TEXT.replace('"topic.t"', "17")),
    Damage("kind_disagrees", "pool_created", JOIN_TEXT),
    Damage(
        "repeated_field",
        "member_joined",
        JOIN_TEXT.replace('"run_id":"run.damage"', '"run_id":"run.damage","run_id":"run.x"'),
    ),
    Damage(
        "repeated_type",
        "member_joined",
        JOIN_TEXT.replace('"type":"member_joined"', '"type":"member_joined","type":"member_joined"'),
    ),
    Damage(
        "conflicting_pool_opened",
        "pool_opened",
        wire.encode(PoolOpened(config=OTHER_CONFIG)),
        exact=CONFLICTING_OPEN,
    ),
    Damage("payload_blob", "member_joined", JOIN_TEXT.encode("utf-8")),
]
DAMAGE_IDS = [damage.name for damage in DAMAGES]
#: What a damaged row is repaired to: a valid record that changes the snapshot visibly.
REPAIRED_KIND = "pool_created"
REPAIRED_TEXT = wire.encode(PoolCreated())


def raw(path: Path) -> apsw.Connection:
    return apsw.Connection(str(path))


def raw_count(path: Path) -> int:
    db = raw(path)
    try:
        return int(db.execute("SELECT count(*) FROM agent_pool_records").fetchall()[0][0])
    finally:
        db.close()


def set_row(path: Path, pool_id: str, sequence: int, kind: Any, payload: Any) -> None:
    db = raw(path)
    try:
        db.execute(
            "UPDATE agent_pool_records SET kind = ?, payload_json = ? WHERE pool_id = ? AND seq = ?",
            (kind, payload, pool_id, sequence),
        )
        assert db.changes() == 1
    finally:
        db.close()


def insert_row(path: Path, pool_id: str, sequence: int, kind: Any, payload: Any) -> None:
    db = raw(path)
    try:
        db.execute(
            "INSERT INTO agent_pool_records (pool_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)",
            (pool_id, sequence, kind, payload),
        )
    finally:
        db.close()


def populate(path: Path) -> None:
    """``DAMAGED``: 1 opened, 2 join run.a, 3 message m.1; ``HEALTHY``: 1 opened, 2 join run.h."""
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(DAMAGED, CONFIG)
        store.join_member(DAMAGED, member("run.a"))
        store.record_message(DAMAGED, message("m.1"), receipt("m.1"))
        store.open_pool(HEALTHY, CONFIG)
        store.join_member(HEALTHY, member("run.h"))


def assert_corrupt(error: AgentError, damage: Damage, pool_id: str, sequence: int) -> None:
    assert type(error) is AgentError, f"expected a plain AgentError, got {type(error).__name__}: {error!r}"
    assert error.kind is AgentErrorKind.INVALID_STATE_TRANSITION, error
    assert error.retry is RetryClassification.REPAIR_NEEDED, error
    if damage.exact is not None:
        assert error.message == damage.exact
    else:
        assert repr(pool_id) in error.message, f"pool id not named: {error.message!r}"
        assert re.search(rf"\brecord {sequence}\b", error.message), f"sequence {sequence} not named: {error.message!r}"


def assert_pool_refused(store: SqliteAgentPoolStore, path: Path, damage: Damage, sequence: int) -> None:
    """Every read and write of the damaged pool raises the corruption error; nothing is written."""
    before = raw_count(path)
    calls = {
        "snapshot": lambda: store.snapshot(DAMAGED),
        "message_receipt": lambda: store.message_receipt(DAMAGED, "key.m.1"),
        "wake_registration": lambda: store.wake_registration(DAMAGED, "key.w"),
        "wake": lambda: store.wake(DAMAGED, "wake.w"),
        "watch": lambda: list(store.watch(DAMAGED)),
        "join_member": lambda: store.join_member(DAMAGED, member("run.refused")),
        "record_message": lambda: store.record_message(DAMAGED, message("m.refused"), receipt("m.refused")),
        "record_pool_created": lambda: store.record_pool_created(DAMAGED),
        "leave_member": lambda: store.leave_member(DAMAGED, "run.a"),
        "next_event_sequence": lambda: store.next_event_sequence(DAMAGED),
        "open_pool": lambda: store.open_pool(DAMAGED, CONFIG),
    }
    for name, call in calls.items():
        with pytest.raises(AgentError) as caught:
            call()
        try:
            assert_corrupt(caught.value, damage, DAMAGED, sequence)
        except AssertionError as failure:
            raise AssertionError(f"{name}: {failure}") from None
    assert raw_count(path) == before, "a refused write appended a record"


def assert_healthy_pool_works(store: SqliteAgentPoolStore) -> None:
    snapshot = store.snapshot(HEALTHY)
    assert [m.run_id for m in snapshot.members] == ["run.h"]
    cursor = store.join_member(HEALTHY, member(f"run.h{snapshot.cursor.sequence}"))
    assert cursor.sequence == snapshot.cursor.sequence + 1
    assert store.snapshot(HEALTHY).cursor == cursor
    assert store.message_receipt(HEALTHY, "key.none") is None


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "pools.sqlite"
    populate(path)
    return path


# -------------------------------------------------------------------- damaged rows


@pytest.mark.parametrize("damage", DAMAGES, ids=DAMAGE_IDS)
def test_damage_appended_past_a_warm_cache(path: Path, damage: Damage, engine: Any) -> None:
    store = SqliteAgentPoolStore(path, engine=engine)
    try:
        warm = store.snapshot(DAMAGED)
        assert warm.cursor.sequence == 3
        assert store.message_receipt(DAMAGED, "key.m.1") == receipt("m.1")
        # Another writer appends a damaged row and a good one after it.
        insert_row(path, DAMAGED, 4, damage.kind, damage.payload)
        insert_row(path, DAMAGED, 5, "member_joined", wire.encode(MemberJoined(member=member("run.late"))))

        assert_pool_refused(store, path, damage, 4)
        assert_healthy_pool_works(store)
        assert_pool_refused(store, path, damage, 4)  # still refused: nothing was skipped

        set_row(path, DAMAGED, 4, REPAIRED_KIND, REPAIRED_TEXT)
        repaired = store.snapshot(DAMAGED)
        assert repaired.cursor.sequence == 5
        assert repaired.created is True
        assert [m.run_id for m in repaired.members] == ["run.a", "run.late"]
        assert store.message_receipt(DAMAGED, "key.m.1") == receipt("m.1")
        assert store.join_member(DAMAGED, member("run.after")).sequence == 6
        assert [r.cursor.sequence for r in store.watch(DAMAGED)] == [1, 2, 3, 4, 5, 6]
    finally:
        store.close()


@pytest.mark.parametrize("damage", DAMAGES, ids=DAMAGE_IDS)
def test_damage_in_the_middle_of_a_cold_pool(path: Path, damage: Damage, engine: Any) -> None:
    # Later records exist past the damaged one: a repair must bring them into view.
    with SqliteAgentPoolStore(path) as writer:
        writer.join_member(DAMAGED, member("run.late"))  # seq 4
    original = next(iter(_rows(path, DAMAGED, 2)))
    set_row(path, DAMAGED, 2, damage.kind, damage.payload)

    store = SqliteAgentPoolStore(path, engine=engine)
    try:
        assert_pool_refused(store, path, damage, 2)
        assert_healthy_pool_works(store)

        set_row(path, DAMAGED, 2, *original)  # the row as it was written
        repaired = store.snapshot(DAMAGED)
        assert repaired.cursor.sequence == 4
        assert [m.run_id for m in repaired.members] == ["run.a", "run.late"]
        assert store.message_receipt(DAMAGED, "key.m.1") == receipt("m.1")
        assert store.record_pool_created(DAMAGED).sequence == 5
        assert store.snapshot(DAMAGED).created is True
    finally:
        store.close()


def _rows(path: Path, pool_id: str, sequence: int) -> list[tuple[Any, Any]]:
    db = raw(path)
    try:
        return [
            tuple(row)  # type: ignore[misc]
            for row in db.execute(
                "SELECT kind, payload_json FROM agent_pool_records WHERE pool_id = ? AND seq = ?", (pool_id, sequence)
            )
        ]
    finally:
        db.close()


def test_two_conflicting_opens_appended_by_another_writer(path: Path, engine: Any) -> None:
    """The contract's exact message, through reads and writes; a repair to an equal config heals it."""
    store = SqliteAgentPoolStore(path, engine=engine)
    try:
        store.snapshot(DAMAGED)
        insert_row(path, DAMAGED, 4, "pool_opened", wire.encode(PoolOpened(config=OTHER_CONFIG)))
        with pytest.raises(AgentError) as caught:
            store.snapshot(DAMAGED)
        assert (caught.value.kind, caught.value.retry, caught.value.message) == (
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.REPAIR_NEEDED,
            CONFLICTING_OPEN,
        )
        # A second pool_opened with an *equal* config is not a conflict.
        set_row(path, DAMAGED, 4, "pool_opened", wire.encode(PoolOpened(config=CONFIG)))
        assert store.snapshot(DAMAGED).cursor.sequence == 4
    finally:
        store.close()


def test_null_payload_in_a_file_without_not_null(tmp_path: Path, engine: Any) -> None:
    """A foreign file whose table lacks NOT NULL (opened as is): a NULL payload is a corrupt record."""
    path = tmp_path / "foreign.sqlite"
    db = raw(path)
    db.execute(
        "CREATE TABLE agent_pool_records "
        "(pool_id TEXT, seq INTEGER, kind TEXT, payload_json TEXT, PRIMARY KEY (pool_id, seq))"
    )
    db.execute("CREATE TABLE agent_pool_event_seq (pool_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
    rows = [
        (DAMAGED, 1, "pool_opened", wire.encode(PoolOpened(config=CONFIG))),
        (DAMAGED, 2, "member_joined", None),
        (DAMAGED, 3, "member_joined", wire.encode(MemberJoined(member=member("run.late")))),
        (HEALTHY, 1, "pool_opened", wire.encode(PoolOpened(config=CONFIG))),
        (HEALTHY, 2, "member_joined", wire.encode(MemberJoined(member=member("run.h")))),
    ]
    db.executemany("INSERT INTO agent_pool_records VALUES (?, ?, ?, ?)", rows)
    db.close()

    store = SqliteAgentPoolStore(path, engine=engine)
    try:
        assert_pool_refused(store, path, Damage("null", "member_joined", None), 2)
        assert_healthy_pool_works(store)
        set_row(path, DAMAGED, 2, "member_joined", wire.encode(MemberJoined(member=member("run.a"))))
        assert [m.run_id for m in store.snapshot(DAMAGED).members] == ["run.a", "run.late"]
    finally:
        store.close()


def test_a_damaged_pool_does_not_disturb_a_store_working_on_others(path: Path, engine: Any) -> None:
    """Interleaved: the failing pool is retried between writes to the healthy one, many times."""
    store = SqliteAgentPoolStore(path, engine=engine)
    try:
        insert_row(path, DAMAGED, 4, "member_joined", "{broken")
        for n in range(20):
            with pytest.raises(AgentError) as caught:
                store.snapshot(DAMAGED)
            assert caught.value.retry is RetryClassification.REPAIR_NEEDED
            assert store.join_member(HEALTHY, member(f"run.{n}")).sequence == 3 + n
        assert len(store.snapshot(HEALTHY).members) == 21
    finally:
        store.close()


# -------------------------------------------------------------------- damaged files


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flow_bytes() -> bytes:
    source = FIXTURES / "db" / "flow.sqlite"
    if not source.is_file():
        pytest.fail(f"fixture {source} not found (set FASTPOOL_FIXTURES)")
    return source.read_bytes()


def fastpool_file_bytes(directory: Path) -> bytes:
    """A WAL-mode file written by fastpool, checkpointed into the main file (no -wal left)."""
    path = directory / "made.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool(DAMAGED, CONFIG)
        for n in range(300):
            store.join_member(DAMAGED, member(f"run.{n:04d}.{'x' * 100}"))
    assert not Path(str(path) + "-wal").exists()
    data = path.read_bytes()
    path.unlink()
    return data


BAD_FILES = {
    "random_bytes": lambda d: os.urandom(8192),
    "text_file": lambda d: b"pool_id,seq,kind,payload_json\n" * 200,
    "zeros_after_magic": lambda d: b"SQLite format 3\x00" + b"\x00" * 8176,
    "first_1000_bytes_of_flow": lambda d: flow_bytes()[:1000],
    "flow_header_intact_but_truncated": lambda d: flow_bytes()[:8192],
    "fastpool_file_cut_in_half": lambda d: (lambda data: data[: len(data) // 2])(fastpool_file_bytes(d)),
}


@pytest.mark.parametrize("readonly", [False, True], ids=["readwrite", "readonly"])
@pytest.mark.parametrize("make", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_unusable_file_refused_at_open(tmp_path: Path, make: Any, readonly: bool) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(make(tmp_path))
    before = digest(path)
    with pytest.raises(AgentError) as caught:
        SqliteAgentPoolStore(path, readonly=readonly)
    error = caught.value
    assert not isinstance(error, apsw.Error)
    assert error.kind is AgentErrorKind.INVALID_STATE_TRANSITION, error
    assert error.retry is RetryClassification.REPAIR_NEEDED, error
    assert error.message.startswith("sqlite agent pool store failure: "), error.message
    assert re.search(r"not a database|malformed|corrupt", error.message), error.message
    assert isinstance(error.__cause__, apsw.Error), "the driver error is kept as the cause"
    assert digest(path) == before, "opening an unusable file changed it"


def test_a_good_copy_of_the_same_file_opens(tmp_path: Path) -> None:
    """The control for the truncation cases: the whole file opens and replays."""
    path = tmp_path / "flow.sqlite"
    path.write_bytes(flow_bytes())
    with SqliteAgentPoolStore(path) as store:
        assert store.snapshot("pool.flow").cursor.sequence == 9
        assert store.snapshot("pool.bulk é").cursor.sequence == 200


@pytest.mark.parametrize("version", ["2", "10", "not-a-number"])
@pytest.mark.parametrize("readonly", [False, True], ids=["readwrite", "readonly"])
def test_newer_schema_version_refused(tmp_path: Path, version: str, readonly: bool) -> None:
    path = tmp_path / "future.sqlite"
    populate(path)
    db = raw(path)
    db.execute("UPDATE fastpool_meta SET value = ? WHERE key = 'schema_version'", (version,))
    assert db.changes() == 1
    db.close()
    before = digest(path)
    with pytest.raises(AgentError) as caught:
        SqliteAgentPoolStore(path, readonly=readonly)
    error = caught.value
    assert error.kind is AgentErrorKind.HOST_CONFIGURATION_NEEDED, error
    assert error.retry is RetryClassification.HOST_CONFIGURATION_NEEDED, error
    assert repr(version) in error.message, error.message
    if not readonly:
        # Read-write opening may switch the journal mode, but must not touch the records.
        assert raw_count(path) == 5
    else:
        assert digest(path) == before


def test_current_schema_version_opens(tmp_path: Path) -> None:
    path = tmp_path / "current.sqlite"
    populate(path)
    db = raw(path)
    assert db.execute("SELECT value FROM fastpool_meta WHERE key = 'schema_version'").fetchall() == [("1",)]
    db.close()
    with SqliteAgentPoolStore(path) as store:
        assert store.snapshot(DAMAGED).cursor.sequence == 3


def test_rust_file_without_fastpool_tables_opens_unchanged_in_content(tmp_path: Path) -> None:
    path = tmp_path / "flow.sqlite"
    shutil.copyfile(FIXTURES / "db" / "flow.sqlite", path)
    os.chmod(path, 0o644)
    with SqliteAgentPoolStore(path, readonly=True) as store:
        assert store.snapshot("pool.flow").cursor.sequence == 9
