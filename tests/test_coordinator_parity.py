"""``AgentPool`` against the Rust coordinator: every golden flow but ``races``, byte for byte.

Each scenario of ``fixtures/coordinator`` runs on both engines and over both a file (one
``SqliteAgentPoolStore`` object per host) and the in-memory store, in the default mode
(``strict=False``). Every result (or error: serde JSON, display, kind, retry), every journal
record with its cursor and every event, in order, and the pool's final records, snapshot and
event sequence must equal the fixture's lines exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from coordinator_flows import (
    PARITY_SCENARIOS,
    SCENARIOS,
    SINGLE_HOST_SCENARIOS,
    Replay,
    canonical,
    expected_lines,
    load,
)


def test_every_carried_scenario_is_replayed() -> None:
    assert set(SCENARIOS) == {
        "addressing",
        "basic_flow",
        "errors",
        "idempotency",
        "races",
        "two_hosts",
        "wake_lifecycle",
        "wake_matching",
    }
    assert "races" not in PARITY_SCENARIOS  # test_coordinator_races covers it


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
@pytest.mark.parametrize("scenario", PARITY_SCENARIOS)
def test_scenario_replays_byte_for_byte(engine: Any, kind: str, scenario: str, tmp_path: Path) -> None:
    lines = load(scenario)
    produced = Replay(engine, kind, tmp_path).run(lines)
    expected = expected_lines(lines)
    if kind == "memory":
        expected = [in_memory_wording(line) for line in expected]
    for index, (want, got) in enumerate(zip(expected, produced)):
        assert canonical(got) == canonical(want), f"{scenario} line {index} (step {want.get('step')})"
    assert len(produced) == len(expected)


@pytest.mark.parametrize("scenario", SINGLE_HOST_SCENARIOS)
def test_single_host_scenario_replays_byte_for_byte_on_open_runtime(engine: Any, scenario: str, tmp_path: Path) -> None:
    """On ``open_runtime(file)``: results, errors and the pool's records in order; the journal's rows
    and the archive's frames as the fixture's journal and event lines."""
    lines = load(scenario)
    replay = Replay(engine, "runtime", tmp_path)
    produced = replay.run(lines)
    archived = {"journal", "event"}
    expected = expected_lines(lines)
    assert [canonical(line) for line in produced] == [
        canonical(line) for line in expected if line["line"] not in archived
    ]
    drop = ("step", "host")
    want = [{k: v for k, v in line.items() if k not in drop} for line in expected if line["line"] in archived]
    got = replay.archived()
    for line_kind in sorted(archived):  # each in its own order: journal_seq, archive seq
        assert [canonical(line) for line in got if line["line"] == line_kind] == [
            canonical(line) for line in want if line["line"] == line_kind
        ], line_kind


def in_memory_wording(line: dict[str, Any]) -> dict[str, Any]:
    """The flows ran over the SQLite store; the in-memory store words its errors without "sqlite "."""
    if "err_json" not in line:
        return line
    return {
        key: value.replace("sqlite agent pool store", "agent pool store") if isinstance(value, str) else value
        for key, value in line.items()
    }
