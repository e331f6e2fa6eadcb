"""serde's other taggings in the compiled engine: external (``EventStreamScope``,
``PolicyDecision``) and internal by another key (``EventPayload`` by ``mode``).

The compiled writer and reader follow a plan for these shapes too (they used to send every class
holding one to the pure engine); the pure engine stays the reference. Each case compares the
engines on the same input: the golden surface values, every variant form, malformed variants and
objects the plans do not cover exactly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from helpers import FIXTURES, engine_encode
from test_store_model import APPROVAL

from fastpool import InvalidInput, wire
from fastpool._schema import make as schema_make
from fastpool.model import (
    AgentScope,
    AllScope,
    EnvelopeOnlyPayload,
    EventCursor,
    EventFrame,
    FilterScope,
    JournalRecord,
    RedactedSummaryPayload,
    RunScope,
)
from fastpool.store_model import (
    PolicyAllow,
    PolicyAsk,
    PolicyDefer,
    PolicyDeny,
    PolicyInterrupt,
    PolicyModify,
    PolicyOutcome,
    PolicyReason,
    ResumePolicy,
    ToolExecutionStoreRecord,
    ToolRequestModification,
)

# (class, stored JSON column) of the golden rows that hold the shapes.
STORED = {
    "event_archive_frames": (EventFrame, "frame_json"),
    "tool_execution_records": (ToolExecutionStoreRecord, "record_json"),
}


def _golden_rows() -> list[tuple[Any, str]]:
    out: dict[str, Any] = {}
    for path in sorted((FIXTURES / "surfaces").glob("*.jsonl")):
        for text in path.read_text(encoding="utf-8").splitlines():
            line = json.loads(text)
            if line["line"] == "row" and line["table"] in STORED:
                cls, column = STORED[line["table"]]
                out.setdefault(line["columns"][column], cls)
    return [(cls, text) for text, cls in out.items()]


GOLDEN = _golden_rows()
REASON = PolicyReason(code="policy.code", redacted_summary="why \u00e9", policy_refs=())
SCOPES = [
    AllScope(),
    RunScope(run_id="run.a"),
    AgentScope(agent_id="agent.\u00e9"),
    FilterScope(filter_id="filter.1", filter_fingerprint='fp "quoted"'),
]
DECISIONS = [
    PolicyAllow(reason=REASON),
    PolicyDeny(reason=REASON),
    PolicyAsk(approval=APPROVAL),
    PolicyInterrupt(reason=REASON),
    PolicyModify(modification=ToolRequestModification(redacted_summary="patched")),
    PolicyDefer(resume_policy=ResumePolicy(resume_after_ms=5, reason=REASON)),
]
PAYLOADS = [EnvelopeOnlyPayload(), RedactedSummaryPayload(redacted_summary="s", payload_refs=())]


def _cursor(scope: Any) -> EventCursor:
    return EventCursor(scope=scope, event_seq=3, event_id="event.1", journal_cursor=None)


def _outcome(decision: Any) -> PolicyOutcome:
    return PolicyOutcome(stage="PreTool", decision=decision, privacy="internal", retention="run_scoped")


def _frames() -> list[EventFrame]:
    frame = next(wire.decode(cls, text) for cls, text in GOLDEN if cls is EventFrame)
    return [
        frame.replace(event=frame.event.replace(payload=payload), cursor=_cursor(scope))
        for scope in SCOPES
        for payload in PAYLOADS
    ]


OBJECTS = [*(_cursor(scope) for scope in SCOPES), *(_outcome(d) for d in DECISIONS), *_frames()]


def _outcome_of(call: Any) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as error:  # the exception itself is the result under test
        return type(error).__name__, str(error)


def test_golden_rows_hold_the_shapes() -> None:
    assert {cls for cls, _ in GOLDEN} == {EventFrame, ToolExecutionStoreRecord}


@pytest.mark.parametrize(("cls", "text"), GOLDEN, ids=lambda v: getattr(v, "__name__", "row"))
def test_golden_rows_round_trip(engine, cls, text) -> None:
    obj = engine.from_plain(cls, engine.parse_json(text, cls.__name__), cls.__name__)
    assert engine.dumps(obj) == text
    assert engine_encode(engine, obj) == text


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda obj: type(obj).__name__)
def test_every_variant_form_agrees_across_engines(c_engine, py_engine, obj) -> None:
    text = py_engine.dumps(obj)
    assert c_engine.dumps(obj) == text
    assert c_engine.to_plain(obj) == py_engine.to_plain(obj)
    assert list(c_engine.to_plain(obj)) == list(py_engine.to_plain(obj))
    for engine in (c_engine, py_engine):
        assert engine.from_plain(type(obj), orjson.loads(text), "x") == obj


def test_compiled_writes_and_reads_the_shapes_itself(c_engine, monkeypatch) -> None:
    """Golden rows and every variant form are written from the plans and read by the compiled
    reader: the pure engine is never asked."""

    def refuse(*args: Any) -> Any:
        raise AssertionError("fell back to the pure engine")

    objects = [wire.decode(cls, text) for cls, text in GOLDEN] + OBJECTS
    expected = [c_engine.dumps(obj) for obj in objects]
    monkeypatch.setattr(c_engine, "to_plain", refuse)
    monkeypatch.setattr(c_engine._py, "from_plain", refuse)
    assert [c_engine.dumps(obj) for obj in objects] == expected
    assert [c_engine.from_plain(type(obj), orjson.loads(text), "x") for obj, text in zip(objects, expected)] == objects


# Variants as serde_json reads them or rejects them: (the class, its JSON).
ODD_TEXTS = [
    (EventCursor, '{"scope":{"all":null},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"all":1},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":"run","event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"run":null},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"run":""},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"run":"r","agent":"a"},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"run":"r","run":"s"},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"filter":{"filter_id":"f"}},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"filter":{"filter_id":"f","filter_fingerprint":"p","x":1}},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":{"filter":"f"},"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":"All","event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope":[],"event_seq":1,"event_id":"e"}'),
    (EventCursor, '{"scope" : { "agent" : "a" } ,"event_seq":1,"event_id":"e"}'),
    (PolicyOutcome, '{"stage":"s","decision":"Allow","privacy":"internal","retention":"run_scoped"}'),
    (PolicyOutcome, '{"stage":"s","decision":{"Allow":{}},"privacy":"internal","retention":"run_scoped"}'),
    (PolicyOutcome, '{"stage":"s","decision":{"Ask":{}},"privacy":"internal","retention":"run_scoped"}'),
    (
        PolicyOutcome,
        '{"stage":"s","decision":{"Deny":{"reason":{"code":"c"}}},"privacy":"internal","retention":"run_scoped"}',
    ),
    (PolicyOutcome, '{"stage":"s","decision":{},"privacy":"internal","retention":"run_scoped"}'),
    (EventFrame, None),  # filled below: a golden frame whose payload repeats or moves its tag
]


def _odd_frames() -> list[tuple[Any, str]]:
    text = next(text for cls, text in GOLDEN if cls is EventFrame)
    head, _, tail = text.partition('"payload":')
    body, _, rest = tail.partition("}")
    return [
        (EventFrame, head + '"payload":{"x":1,' + body[1:] + "}" + rest),
        (EventFrame, head + '"payload":{"mode":"envelope_only","mode":"envelope_only"}' + rest),
        (EventFrame, head + '"payload":{"mode":"nope"}' + rest),
        (EventFrame, head + '"payload":{"redacted_summary":"s","mode":"redacted_summary"}' + rest),
        (EventFrame, head + '"payload":"envelope_only"' + rest),
    ]


ODD = [item for item in ODD_TEXTS if item[1] is not None] + _odd_frames()


@pytest.mark.parametrize(("cls", "text"), ODD, ids=[f"{cls.__name__}-{i}" for i, (cls, _) in enumerate(ODD)])
def test_odd_variants_decode_or_fail_alike(c_engine, py_engine, monkeypatch, cls, text) -> None:
    results = []
    for engine in (c_engine, py_engine):
        monkeypatch.setattr(wire, "engine", engine)
        results.append(_outcome_of(lambda: wire.decode(cls, text)))
    assert results[0] == results[1]


def test_a_repeated_variant_key_is_rejected(engine, monkeypatch) -> None:
    monkeypatch.setattr(wire, "engine", engine)
    with pytest.raises(InvalidInput):
        wire.decode(EventCursor, '{"scope":{"run":"r","run":"s"},"event_seq":1,"event_id":"e"}')


# Objects a plan does not cover exactly: the compiled writer leaves them to to_plain.
UNCOVERED = [
    _cursor(schema_make(RunScope, ())),  # an unset slot
    _cursor(schema_make(RunScope, (7,))),  # a value of the wrong type
    _cursor(schema_make(FilterScope, ("f",))),  # a struct variant with a slot unset
    schema_make(EventCursor, (PAYLOADS[0], 1, "e", None)),  # a variant of another enum
    _outcome(schema_make(PolicyAllow, (None,))),
    _outcome(schema_make(PolicyDefer, (ResumePolicy(reason=REASON),))),
]


@pytest.mark.parametrize("obj", UNCOVERED, ids=lambda obj: type(obj).__name__)
def test_uncovered_objects_follow_to_plain(c_engine, py_engine, obj) -> None:
    assert _outcome_of(lambda: c_engine.dumps(obj)) == _outcome_of(lambda: py_engine.dumps(obj))
    assert _outcome_of(lambda: c_engine.to_plain(obj)) == _outcome_of(lambda: py_engine.to_plain(obj))


# ---------------------------------------------------------------- decode_text: a class from its text


def _journal_texts() -> list[str]:
    texts = []
    for text in (FIXTURES / "surfaces" / "run_journal.jsonl").read_text(encoding="utf-8").splitlines():
        line = json.loads(text)
        if line["line"] == "row" and line["table"] == "run_journal_records":
            texts.append(line["columns"]["record_json"])
    return texts


JOURNAL_TEXTS = _journal_texts()


def test_compiled_reads_stored_text_itself(c_engine, monkeypatch) -> None:
    """``decode_text`` reads golden journal records, frames and tool records straight from their
    text: neither ``parse_json`` nor the pure engine is asked."""
    items = [(JournalRecord, text) for text in JOURNAL_TEXTS] + GOLDEN
    expected = [c_engine.from_plain(cls, orjson.loads(text), "x") for cls, text in items]

    def refuse(*args: Any) -> Any:
        raise AssertionError("left the text reader")

    monkeypatch.setattr(c_engine, "parse_json", refuse)
    monkeypatch.setattr(c_engine._py, "from_plain", refuse)
    assert [c_engine.decode_text(cls, text, cls.__name__) for cls, text in items] == expected
    assert [c_engine.decode_text(cls, text.encode(), cls.__name__) for cls, text in items] == expected


def _variants(text: str) -> list[str | bytes]:
    """The text and what the text reader must leave to orjson: spaced, escaped, cut, trailed,
    an unknown key, a repeated key, invalid UTF-8."""
    return [
        text,
        text.replace(",", " , ", 3),
        text.replace('"run.', '"\\u0072un.', 1),
        text[:-1],
        text + " x",
        text[:-1] + ',"extra":1}',
        text[:-1] + ',"run_id":"run.b"}',
        text.encode() + b"\xff",
        text.replace('"journal_seq":', '"journal_seq":-', 1),
    ]


@pytest.mark.parametrize("index", range(9))
def test_decode_text_agrees_across_engines(c_engine, py_engine, index) -> None:
    for cls, text in [(JournalRecord, JOURNAL_TEXTS[0]), *GOLDEN[:1]]:
        variant = _variants(text)[index]
        expected = _outcome_of(lambda: py_engine.decode_text(cls, variant, cls.__name__))
        assert _outcome_of(lambda: c_engine.decode_text(cls, variant, cls.__name__)) == expected
