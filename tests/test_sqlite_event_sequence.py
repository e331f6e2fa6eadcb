"""An event sequence allocated through a store object leaves that object's cached pools current.

``next_event_sequence`` commits to ``agent_pool_event_seq``, which changes the WAL-index the
change probe reads; like a record append, it keeps the cache when no other writer committed
in between, so the next read does not query the records table (``AgentPool`` allocates one
per event, then reads membership).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_helpers import CONFIG, member

from fastpool import SqliteAgentPoolStore

POOL = "pool.seq"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with SqliteAgentPoolStore(tmp_path / "seq.sqlite") as opened:
        opened.open_pool(POOL, CONFIG)
        opened.join_member(POOL, member("run.a"))
        caught_up: list[int] = []
        original = opened._catch_up
        monkeypatch.setattr(opened, "_catch_up", lambda db, state: (caught_up.append(1), original(db, state)))
        opened.caught_up = caught_up
        yield opened


def test_the_next_read_after_an_event_sequence_is_served_from_the_cache(store: Any) -> None:
    assert store.member(POOL, "run.a") is not None
    store.caught_up.clear()
    for expected in (1, 2, 3):
        assert store.next_event_sequence(POOL) == expected
        assert store.member(POOL, "run.a") is not None
    assert store.caught_up == []


def test_another_writer_between_still_makes_the_read_catch_up(store: Any, tmp_path: Path) -> None:
    with SqliteAgentPoolStore(tmp_path / "seq.sqlite") as other:
        store.next_event_sequence(POOL)
        other.join_member(POOL, member("run.b"))
        store.caught_up.clear()
        assert store.next_event_sequence(POOL) == 2
        assert [m.run_id for m in store.members(POOL)] == ["run.a", "run.b"]
        assert store.caught_up  # the other object's record was read
