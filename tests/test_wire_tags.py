"""Decoding one variant of an internally tagged enum checks its ``type`` tag (issue 15).

Rust has no type for a single variant of ``AgentPoolStoreRecordPayload``: the text always goes
through the enum, where a missing tag, a PascalCase tag or another variant's tag is rejected
(or gives that other variant). So ``wire.decode(PoolCreated, text)`` requires
``"type":"pool_created"`` (anywhere in the object) and otherwise raises ``InvalidInput`` naming
the expected and the found tag; ``wire.decode_payload`` reads a payload whose variant is not
known in advance. Every case runs ``fastpool.wire`` on both engines.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from helpers import load_jsonl

from fastpool import AgentPoolStoreRecordPayload, InvalidInput, RunTarget, TopicTarget, wire
from fastpool.model import PAYLOAD_TYPES

PAYLOADS = load_jsonl("payloads.jsonl")
# One fixture body per variant, its tag taken out: only the tag differs between the cases.
BODIES = {}
for _row in PAYLOADS:
    BODIES.setdefault(_row["type"], {k: v for k, v in orjson.loads(_row["payload_json"]).items() if k != "type"})
MISSING = None
# "pool_created" -> "PoolCreated": the variant's Rust name, what a wrongly cased writer puts there
PASCAL = {tag: "".join(part.title() for part in tag.split("_")) for tag in PAYLOAD_TYPES}
TAGS = [*PAYLOAD_TYPES, *PASCAL.values(), MISSING]


@pytest.fixture
def wire_on(engine: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fastpool.wire`` running on the engine under test."""
    monkeypatch.setattr(wire, "engine", engine)
    return wire


def _text(body: dict[str, Any], tag: str | None, first: bool) -> str:
    if tag is MISSING:
        return orjson.dumps(body).decode()
    return orjson.dumps({"type": tag, **body} if first else {**body, "type": tag}).decode()


def _reject(wire_on: Any, cls: type, text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        wire_on.decode(cls, text)
    return caught.value.message


@pytest.mark.parametrize("first", [True, False], ids=["tag_first", "tag_last"])
@pytest.mark.parametrize("tag", TAGS, ids=lambda tag: "missing" if tag is MISSING else tag)
@pytest.mark.parametrize("expected", list(PAYLOAD_TYPES), ids=lambda tag: PASCAL[tag])
def test_payload_class_checks_its_tag(wire_on, expected: str, tag: str | None, first: bool) -> None:
    cls = PAYLOAD_TYPES[expected]
    text = _text(BODIES[expected], tag, first)
    if tag == expected:
        decoded = wire_on.decode(cls, text)
        assert type(decoded) is cls
        assert decoded == wire_on.decode_payload(text)
        return
    message = _reject(wire_on, cls, text)
    assert repr(expected) in message
    assert ("missing" in message) if tag is MISSING else (repr(tag) in message)
    assert message.startswith(f"{cls.__name__}")


@pytest.mark.parametrize("tag", TAGS, ids=lambda tag: "missing" if tag is MISSING else tag)
def test_engines_give_the_same_tag_error(c_engine, py_engine, monkeypatch, tag: str | None) -> None:
    for expected, cls in PAYLOAD_TYPES.items():
        if tag == expected:
            continue
        text = _text(BODIES[expected], tag, True)
        messages = []
        for engine in (c_engine, py_engine):
            monkeypatch.setattr(wire, "engine", engine)
            messages.append(_reject(wire, cls, text))
        assert messages[0] == messages[1], (expected, tag)


def test_another_variants_body_under_its_own_tag_is_rejected(wire_on) -> None:
    """A ``pool_created`` object that also carries a ``member`` is no ``MemberJoined``."""
    text = _text(BODIES["member_joined"], "pool_created", True)
    assert type(wire_on.decode_payload(text)).TYPE == "pool_created"  # what Rust reads it as
    message = _reject(wire_on, PAYLOAD_TYPES["member_joined"], text)
    assert "'member_joined'" in message and "'pool_created'" in message


@pytest.mark.parametrize("row", PAYLOADS, ids=[row["case"] for row in PAYLOADS])
def test_decode_payload_gives_the_variant(wire_on, row) -> None:
    text = row["payload_json"]
    payload = wire_on.decode_payload(text)
    assert type(payload) is PAYLOAD_TYPES[row["type"]]
    assert wire_on.encode(payload) == text
    assert wire_on.decode_payload(text.encode("utf-8")) == payload
    assert wire_on.decode(AgentPoolStoreRecordPayload, text) == payload
    assert wire_on.decode(type(payload), text) == payload


@pytest.mark.parametrize(
    "text, rule",
    [
        ('{"member":{"run_id":"run.a","agent_id":"agent.a"}}', "missing"),
        ('{"type":"PoolCreated"}', "'PoolCreated'"),
        ('{"type":"pool_closed"}', "'pool_closed'"),
        ('{"type":7}', "7"),
        ("[]", "object"),
        ("nope", "JSON"),
    ],
)
def test_decode_payload_rejects(wire_on, text: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        wire_on.decode_payload(text)
    assert rule in caught.value.message
    assert caught.value.message.startswith("payload")


@pytest.mark.parametrize(
    "text, found",
    [
        ('{"run_id":"run.a"}', "missing"),
        ('{"type":"agent","run_id":"run.a"}', "'agent'"),
        ('{"type":"Run","run_id":"run.a"}', "'Run'"),
    ],
)
def test_address_target_class_checks_its_tag(wire_on, text: str, found: str) -> None:
    """The same rule for the variants of ``RunAddressTarget``, the other internally tagged enum."""
    message = _reject(wire_on, RunTarget, text)
    assert "'run'" in message and found in message
    assert wire_on.decode(RunTarget, '{"run_id":"run.a","type":"run"}') == RunTarget(run_id="run.a")
    assert wire_on.decode(TopicTarget, wire_on.encode(TopicTarget(topic_id="t"))) == TopicTarget(topic_id="t")
