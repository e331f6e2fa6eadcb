"""A database written by the Rust crate (fixtures ``db/flow.sqlite``) reads back byte for byte.

Always on a writable copy: opening switches the file to WAL and ``next_event_sequence``
writes. The original must stay unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES

from fastpool import AgentPoolStoreCursor, SqliteAgentPoolStore, wire

DB = FIXTURES / "db" / "flow.sqlite"
EXPECTED_PATH = FIXTURES / "db" / "flow.expected.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expected() -> dict[str, Any]:
    if not (DB.is_file() and EXPECTED_PATH.is_file()):
        raise FileNotFoundError(f"golden db fixture missing under {FIXTURES / 'db'} (set FASTPOOL_FIXTURES)")
    with EXPECTED_PATH.open(encoding="utf-8") as handle:
        pools: dict[str, Any] = json.load(handle)["pools"]
    return pools


EXPECTED = _expected()
POOLS = sorted(EXPECTED)
ORIGINAL_HASH = _sha256(DB)


def test_the_fixture_has_both_pools() -> None:
    assert POOLS == ["pool.bulk é", "pool.flow"]
    assert len(EXPECTED["pool.flow"]["watch"]) == 9
    assert len(EXPECTED["pool.bulk é"]["watch"]) == 200


@pytest.fixture
def db_copy(tmp_path: Path) -> Any:
    """A writable copy of flow.sqlite; afterwards the original is checked to be unchanged."""
    copy = tmp_path / "flow.sqlite"
    shutil.copyfile(DB, copy)
    os.chmod(copy, stat.S_IRUSR | stat.S_IWUSR)
    yield copy
    assert _sha256(DB) == ORIGINAL_HASH, "the original fixture file was modified"
    assert not Path(str(DB) + "-wal").exists() and not Path(str(DB) + "-shm").exists()


@pytest.mark.parametrize("pool_id", POOLS)
def test_snapshot_watch_and_event_sequence_match_the_rust_store(db_copy: Path, pool_id: str) -> None:
    expected = EXPECTED[pool_id]
    with SqliteAgentPoolStore(db_copy) as store:
        snapshot = store.snapshot(pool_id)
        assert wire.encode(snapshot) == expected["snapshot_json"]

        records = list(store.watch(pool_id, None))
        assert [wire.encode(record) for record in records] == expected["watch"]
        assert [r.cursor.sequence for r in records] == list(range(1, len(expected["watch"]) + 1))
        assert snapshot.cursor == AgentPoolStoreCursor(sequence=len(records))

        assert store.next_event_sequence(pool_id) == expected["next_event_sequence_after"]
        # Still the same snapshot: an event sequence is not a record.
        assert wire.encode(store.snapshot(pool_id)) == expected["snapshot_json"]


def test_a_second_store_object_on_the_same_copy_agrees(db_copy: Path) -> None:
    with SqliteAgentPoolStore(db_copy) as first, SqliteAgentPoolStore(db_copy) as second:
        for pool_id in POOLS:
            expected = EXPECTED[pool_id]
            # first warms its cache, then the second reads cold.
            assert wire.encode(first.snapshot(pool_id)) == expected["snapshot_json"]
            assert wire.encode(second.snapshot(pool_id)) == expected["snapshot_json"]
            assert [wire.encode(r) for r in second.watch(pool_id)] == expected["watch"]
            # Event sequences are shared by both objects.
            after = expected["next_event_sequence_after"]
            assert first.next_event_sequence(pool_id) == after
            assert second.next_event_sequence(pool_id) == after + 1
            assert first.next_event_sequence(pool_id) == after + 2


def test_watch_from_a_cursor_matches_the_tail_of_the_rust_stream(db_copy: Path) -> None:
    expected = EXPECTED["pool.bulk é"]["watch"]
    with SqliteAgentPoolStore(db_copy) as store:
        for after in (0, 1, 57, 199, 200, 250):
            assert [wire.encode(r) for r in store.watch("pool.bulk é", after)] == expected[after:]


def test_lookups_on_the_rust_file_agree_with_its_snapshot(db_copy: Path) -> None:
    with SqliteAgentPoolStore(db_copy) as store:
        for pool_id in POOLS:
            snapshot = store.snapshot(pool_id)
            for stored in snapshot.messages:
                assert store.message_receipt(pool_id, stored.message.idempotency_key) is not None
            for stored_wake in snapshot.wakes:
                assert store.wake(pool_id, stored_wake.condition.condition_id) == stored_wake
                assert store.wake_registration(pool_id, stored_wake.condition.idempotency_key) is not None
        flow = store.snapshot("pool.flow")
        assert [m.run_id for m in flow.members] == ["run.a", "run.b"]
        assert [(m.message.message_id, m.receipt.status.value) for m in flow.messages] == [
            ("msg.1", "delivered"),
            ("msg.2", "failed"),
        ]
        assert store.wake("pool.flow", "wake.1").registration.status.value == "triggered"
