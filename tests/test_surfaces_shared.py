"""A surface on a store's own connection and lock (``SurfaceDb(db, lock)``): a surface call
made inside the store's ``transaction()`` commits, or rolls back, with the store's records."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import CONFIG, member
from surface_workers import journal_record

import fastpool
from fastpool.surfaces import SurfaceDb


@pytest.fixture
def store(tmp_path: Path) -> Iterator[fastpool.SqliteAgentPoolStore]:
    with fastpool.SqliteAgentPoolStore(tmp_path / "host.sqlite") as store:
        yield store


def shared_journal(store: fastpool.SqliteAgentPoolStore) -> fastpool.SqliteRunJournal:
    return fastpool.SqliteRunJournal(SurfaceDb(store._connection(), store._lock))


def test_a_surface_call_commits_with_the_stores_transaction(store: fastpool.SqliteAgentPoolStore) -> None:
    journal = shared_journal(store)
    with store.transaction():
        store.open_pool("pool.a", CONFIG)
        assert journal.append(journal_record(1)) == "journal.1"
    with fastpool.SqliteRunJournal.open(store.path) as other, fastpool.SqliteAgentPoolStore(store.path) as reader:
        assert [record.journal_seq for record in other.records_for_run("run.mp")] == [1]
        assert reader.snapshot("pool.a").cursor.sequence == 1
    journal.close()  # the store's connection stays open: it is the store's to close
    assert store.snapshot("pool.a").cursor.sequence == 1


def test_a_surface_call_rolls_back_with_the_stores_transaction(store: fastpool.SqliteAgentPoolStore) -> None:
    journal = shared_journal(store)
    store.open_pool("pool.a", CONFIG)
    with pytest.raises(RuntimeError), store.transaction():
        journal.append(journal_record(1))
        store.join_member("pool.a", member("run.a"))
        raise RuntimeError("the send fails after both writes")
    assert journal.records_for_run("run.mp") == []
    assert store.snapshot("pool.a").members == ()
    assert journal.append(journal_record(1)) == "journal.1"  # outside a transaction: its own
