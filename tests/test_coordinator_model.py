"""The coordinator's event and journal classes: the exact serde JSON of the golden flows, on both engines.

Every ``journal`` and ``event`` line of ``fixtures/coordinator`` decodes and encodes back to the
very bytes Rust wrote; the tagged enums that are not tagged by ``"type"`` (``EventStreamScope``,
``EventPayload``) read and reject input as serde does, with the same errors in both engines.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from helpers import FIXTURES, engine_decode, engine_encode

from fastpool import (
    ALL_EVENTS,
    AgentEvent,
    AgentScope,
    AllScope,
    EntityRef,
    EnvelopeOnlyPayload,
    EventCursor,
    EventFrame,
    EventPayload,
    EventStreamScope,
    FilterScope,
    InvalidInput,
    JournalRecord,
    RedactedSummaryPayload,
    RunScope,
    wire,
)

COORDINATOR = FIXTURES / "coordinator"


def golden_lines() -> list[tuple[str, type, str]]:
    found = []
    for path in sorted(COORDINATOR.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            row = json.loads(line)
            if row["line"] == "journal":
                found.append((f"{path.stem}:{number}", JournalRecord, row["record_json"]))
            elif row["line"] == "event":
                found.append((f"{path.stem}:{number}", EventFrame, row["frame_json"]))
    return found


GOLDEN = golden_lines()


def test_the_golden_flows_hold_journal_records_and_frames() -> None:
    kinds = {cls for _, cls, _ in GOLDEN}
    assert kinds == {JournalRecord, EventFrame} and len(GOLDEN) > 250


def test_every_golden_record_and_frame_round_trips_byte_for_byte(engine: Any) -> None:
    for where, cls, text in GOLDEN:
        value = engine.from_plain(cls, engine.parse_json(text, cls.__name__), cls.__name__)
        assert engine.dumps(value) == text, where
        assert engine_encode(engine, value) == text, where


def test_both_engines_decode_the_golden_lines_to_equal_objects(c_engine: Any, py_engine: Any) -> None:
    for where, cls, text in GOLDEN:
        assert engine_decode(c_engine, cls, text) == engine_decode(py_engine, cls, text), where


SCOPES = [
    (ALL_EVENTS, '"all"'),
    (RunScope(run_id="run.a"), '{"run":"run.a"}'),
    (AgentScope(agent_id="agent.a"), '{"agent":"agent.a"}'),
    (
        FilterScope(filter_id="filter.x", filter_fingerprint="sha256:y"),
        '{"filter":{"filter_id":"filter.x","filter_fingerprint":"sha256:y"}}',
    ),
]


@pytest.mark.parametrize(("scope", "text"), SCOPES, ids=[type(scope).__name__ for scope, _ in SCOPES])
def test_event_stream_scope_is_externally_tagged(engine: Any, scope: Any, text: str) -> None:
    cursor = EventCursor(scope=scope, event_seq=3, event_id="event.3")
    encoded = engine.dumps(cursor)
    assert encoded == '{"scope":' + text + ',"event_seq":3,"event_id":"event.3"}'
    assert engine_decode(engine, EventCursor, encoded) == cursor
    assert engine.from_plain(EventCursor, orjson.loads(encoded), "EventCursor").scope == scope
    assert wire.decode(EventStreamScope, text) == scope


def test_event_payload_is_tagged_by_mode(engine: Any) -> None:
    summary = RedactedSummaryPayload(redacted_summary="s", payload_refs=(EntityRef.run("run.a"),))
    for payload, text in (
        (EnvelopeOnlyPayload(), '{"mode":"envelope_only"}'),
        (RedactedSummaryPayload(redacted_summary="s"), '{"mode":"redacted_summary","redacted_summary":"s"}'),
        (
            summary,
            '{"mode":"redacted_summary","redacted_summary":"s","payload_refs":[{"kind":"run","id":"run.a","privacy":"content_refs_only"}]}',
        ),
    ):
        assert wire.decode(EventPayload, text) == payload
        assert engine.from_plain(wire_spec(EventPayload), orjson.loads(text), "value") == payload
    event = AgentEvent(envelope=envelope(), payload=EnvelopeOnlyPayload())
    assert engine.dumps(event).endswith(',"payload":{"mode":"envelope_only"}}')


def wire_spec(union: Any) -> Any:
    from fastpool._schema import union_spec

    return union_spec(union.__args__)


def envelope() -> Any:
    ((_, _, text),) = [line for line in GOLDEN if line[1] is EventFrame][:1]
    return wire.decode(EventFrame, text).event.envelope


REJECTED = [
    (
        "unknown unit",
        EventStreamScope,
        '"none"',
        "value: unknown variant 'none', expected one of 'all', 'run', 'agent', 'filter'",
    ),
    (
        "two keys",
        EventStreamScope,
        '{"all":null,"run":"r"}',
        "value: expected a variant name or an object with one variant key",
    ),
    ("content on a unit", EventStreamScope, '{"all":1}', "value.all: expected unit variant, got an integer"),
    ("bare struct variant", EventStreamScope, '"filter"', "value: variant 'filter' needs content"),
    ("bad run id", EventStreamScope, '{"run":""}', "value.run: identifier is empty"),
    (
        "missing filter field",
        EventStreamScope,
        '{"filter":{"filter_id":"f"}}',
        "value.filter.filter_fingerprint: missing field",
    ),
    ("array", EventStreamScope, "[]", "value: expected a variant name or an object with one variant key, got an array"),
    ("no mode", EventPayload, '{"redacted_summary":"s"}', "value: missing field `mode`"),
    ("unknown mode", EventPayload, '{"mode":"raw"}', "value.mode: unknown variant 'raw'"),
    ("repeated mode", EventPayload, '{"mode":"envelope_only","mode":"envelope_only"}', "value.mode: duplicate field"),
    ("missing summary", EventPayload, '{"mode":"redacted_summary"}', "value.redacted_summary: missing field"),
]


@pytest.mark.parametrize(
    ("union", "text", "message"), [case[1:] for case in REJECTED], ids=[case[0] for case in REJECTED]
)
def test_tagged_enums_reject_what_serde_rejects_with_one_error_in_both_engines(
    c_engine: Any, py_engine: Any, union: Any, text: str, message: str
) -> None:
    errors = []
    for engine in (c_engine, py_engine):
        with pytest.raises(InvalidInput) as caught:
            engine.from_plain(wire_spec(union), engine.parse_json(text, "value"), "value")
        errors.append(caught.value.message)
    assert errors[0] == errors[1]
    assert errors[0].startswith(message), errors[0]


def test_unit_variant_also_reads_as_an_object_with_null() -> None:
    assert wire.decode(EventStreamScope, '{"all":null}') == AllScope()


def test_a_cursor_scope_must_be_a_scope_class() -> None:
    with pytest.raises(InvalidInput, match=r"EventCursor\.scope: expected AllScope or RunScope"):
        EventCursor(scope="all", event_seq=1, event_id="e")
    with pytest.raises(
        InvalidInput, match=r"AgentEvent\.payload: expected EnvelopeOnlyPayload or RedactedSummaryPayload"
    ):
        AgentEvent(envelope=envelope(), payload=ALL_EVENTS)


def test_frames_and_records_pickle_and_compare_by_value() -> None:
    import pickle

    for _, cls, text in GOLDEN[:40]:
        value = wire.decode(cls, text)
        assert pickle.loads(pickle.dumps(value)) == value
        assert hash(value) == hash(wire.decode(cls, text))
