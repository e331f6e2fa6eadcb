"""A JSON object that repeats a key is read as serde reads it (issue 10, "Inputs").

serde's derived ``Deserialize`` rejects a struct field, an internally tagged enum's ``type``
tag or an externally tagged enum's variant key that comes twice (``duplicate field``), however
the text is spaced; it skips unknown keys without looking at them, so a repeated unknown key,
or any repetition inside an unknown key's value, is accepted. ``wire.decode``,
``wire.decode_payload`` and both engines' ``decode_payload`` raise ``InvalidInput``; a stored
record with a repeated field is a corrupt record (``test_corruption.py`` and ``verify`` below).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import apsw
import orjson
import pytest
from helpers import load_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from fastpool import (
    AgentError,
    AgentPoolStoreCursor,
    AgentPoolStoreRecord,
    AgentPoolStoreRecordPayload,
    InvalidInput,
    MemberJoined,
    SqliteAgentPoolStore,
    wire,
)
from fastpool import verify as verify_module
from fastpool.model import PAYLOAD_TYPES, AgentPoolMember, AgentPoolStoreConfig

FIXTURE = {row["case"]: row["payload_json"] for row in load_jsonl("payloads.jsonl")}
MESSAGE = FIXTURE["run_message_target_run_minimal"]
WAKE = FIXTURE["wake_registered_flow_example"]
MEMBER = '{"run_id":"run.a","agent_id":"agent.a"}'
JOIN = '{"type":"member_joined","member":' + MEMBER + "}"


def after(text: str, anchor: str, insert: str) -> str:
    """``text`` with ``insert`` written right after the first ``anchor``."""
    assert anchor in text
    return text.replace(anchor, anchor + insert, 1)


class Dup(NamedTuple):
    id: str
    text: str
    where: str  # the repeated key's path, as the message names it
    rule: str = "duplicate field"


REJECTED = [
    Dup("struct_field", JOIN[:-1] + ',"member":{"run_id":"run.b","agent_id":"agent.b"}}', "payload.member"),
    Dup("nested_field", after(JOIN, '"run_id":"run.a"', ',"run_id":"run.b"'), "payload.member.run_id"),
    Dup("same_value_twice", after(JOIN, '"agent_id":"agent.a"', ',"agent_id":"agent.a"'), "payload.member.agent_id"),
    Dup("tag_twice", after(JOIN, '"type":"member_joined"', ',"type":"member_joined"'), "payload.type"),
    Dup("tag_twice_last", '{"member":' + MEMBER + ',"type":"pool_created","type":"member_joined"}', "payload.type"),
    Dup("tag_only", '{"type":"pool_created","type":"pool_created"}', "payload.type"),
    Dup("spaced", '{"type": "member_joined", "member": ' + MEMBER + ', "member" : ' + MEMBER + "}", "payload.member"),
    Dup("enum_field", after(MESSAGE, '"status":"accepted"', ',"status":"delivered"'), "payload.stored.receipt.status"),
    Dup(
        "option_null_then_value",
        after(MESSAGE, '"message_id":"msg.1"', ',"expires_at_millis":null,"expires_at_millis":5'),
        "payload.stored.message.expires_at_millis",
    ),
    Dup(
        "list_item_field",
        after(MESSAGE, '"related_refs":[{"kind":"run"', ',"kind":"run"'),
        "payload.stored.message.to.related_refs[0].kind",
    ),
    Dup(
        "inner_union_tag",
        after(MESSAGE, '"target":{"type":"run"', ',"type":"run"'),
        "payload.stored.message.to.target.type",
    ),
    Dup(
        "filter_set_variant",
        after(WAKE, '"kinds":{"include":["run_message_delivered"]', ',"include":[]'),
        "payload.stored.condition.filter.kinds",
        'expected "any" or {"include": [...]}',  # an externally tagged enum takes exactly one key
    ),
    Dup(
        "bool_field",
        after(WAKE, '"terminal_only":false', ',"terminal_only":true'),
        "payload.stored.condition.filter.terminal_only",
    ),
]
ACCEPTED = [
    Dup("unknown_key", '{"type":"pool_created","x":1,"x":[2]}', ""),
    Dup("unknown_key_nested", after(JOIN, '"agent_id":"agent.a"', ',"zz":1,"zz":{"zz":2}'), ""),
    Dup("inside_unknown_value", after(JOIN, '"agent_id":"agent.a"', ',"extra":{"run_id":1,"run_id":2}'), ""),
    Dup("escaped_key_spelled_twice", '{"type":"pool_created","\\u0078":1,"x":2}', ""),
]


@pytest.fixture
def wire_on(engine: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``fastpool.wire`` running on the engine under test."""
    monkeypatch.setattr(wire, "engine", engine)
    return wire


def _assert_duplicate(error: InvalidInput, where: str, rule: str = "duplicate field") -> None:
    assert isinstance(error, InvalidInput)
    assert f"{where}: {rule}" in error.message, error.message


@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
@pytest.mark.parametrize("dup", REJECTED, ids=lambda dup: dup.id)
def test_engine_rejects_a_repeated_field(engine, dup: Dup, as_bytes: bool) -> None:
    with pytest.raises(InvalidInput) as caught:
        engine.decode_payload(dup.text.encode() if as_bytes else dup.text)
    _assert_duplicate(caught.value, dup.where, dup.rule)


@pytest.mark.parametrize("dup", REJECTED, ids=lambda dup: dup.id)
def test_wire_rejects_a_repeated_field(wire_on, dup: Dup) -> None:
    with pytest.raises(InvalidInput) as caught:
        wire_on.decode_payload(dup.text)
    _assert_duplicate(caught.value, dup.where, dup.rule)
    with pytest.raises(InvalidInput) as caught:
        wire_on.decode(AgentPoolStoreRecordPayload, dup.text)
    _assert_duplicate(caught.value, dup.where.replace("payload", "value", 1), dup.rule)
    if dup.id not in ("tag_twice_last", "tag_only"):  # those are read as a pool_created, if at all
        cls = PAYLOAD_TYPES[wire_on.loads(dup.text)["type"]]
        with pytest.raises(InvalidInput) as caught:
            wire_on.decode(cls, dup.text)
        _assert_duplicate(caught.value, dup.where.replace("payload", cls.__name__, 1), dup.rule)


def test_engines_reject_with_the_same_message(c_engine, py_engine) -> None:
    for dup in REJECTED:
        messages = []
        for engine in (c_engine, py_engine):
            with pytest.raises(InvalidInput) as caught:
                engine.decode_payload(dup.text)
            messages.append(caught.value.message)
        assert messages[0] == messages[1], dup.id


@pytest.mark.parametrize("dup", ACCEPTED, ids=lambda dup: dup.id)
def test_repeated_unknown_keys_are_ignored(wire_on, engine, dup: Dup) -> None:
    payload = engine.decode_payload(dup.text)
    assert payload == wire_on.decode_payload(dup.text) == wire_on.decode(type(payload), dup.text)
    assert wire_on.encode(payload) in (JOIN, '{"type":"pool_created"}')


@pytest.mark.parametrize(
    "cls, text, where",
    [
        (AgentPoolStoreCursor, '{"sequence":1,"sequence":2}', "AgentPoolStoreCursor.sequence"),
        (AgentPoolStoreCursor, '{"sequence":1,\n "sequence":1}', "AgentPoolStoreCursor.sequence"),
        (
            AgentPoolStoreRecord,
            '{"pool_id":"p","cursor":{"sequence":1},"payload":{"type":"pool_created","type":"pool_created"}}',
            "AgentPoolStoreRecord.payload.type",
        ),
        (
            AgentPoolStoreRecord,
            '{"pool_id":"p","pool_id":"q","cursor":{"sequence":1},"payload":{"type":"pool_created"}}',
            "AgentPoolStoreRecord.pool_id",
        ),
        (
            MemberJoined,
            '{"type":"member_joined","member":' + MEMBER + ',"member":' + MEMBER + "}",
            "MemberJoined.member",
        ),
    ],
)
def test_wire_decode_rejects_a_repeated_field_of_any_class(wire_on, cls: Any, text: str, where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        wire_on.decode(cls, text)
    _assert_duplicate(caught.value, where)


#: A golden Classified error: context, causal ids and all.
CLASSIFIED = next(row["json"] for row in load_jsonl("errors.jsonl") if row["case"] == "new_run_not_member")


@pytest.mark.parametrize(
    "text, rule",
    [
        ('{"ContractViolation":{"message":"a"},"ContractViolation":{"message":"b"}}', "variant"),
        (
            '{"ContractViolation":{"message":"a","message":"b"}}',
            "AgentError.ContractViolation.message: duplicate field",
        ),
        (
            '{"MissingRequiredField":{"field":"a","field":"a"}}',
            "AgentError.MissingRequiredField.field: duplicate field",
        ),
        (
            after(CLASSIFIED, '"kind":"InvalidStateTransition"', ',"kind":"InvalidStateTransition"'),
            "AgentError.Classified.kind: duplicate field",
        ),
        (
            after(CLASSIFIED, '"message":"run', '","message":"run'),
            "AgentError.Classified.context.message: duplicate field",
        ),
    ],
)
def test_error_with_a_repeated_key_is_rejected(wire_on, text: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        wire_on.decode(AgentError, text)
    assert rule in caught.value.message


def test_error_with_a_repeated_unknown_key_is_read(wire_on) -> None:
    error = wire_on.decode(AgentError, '{"ContractViolation":{"message":"cv","x":1,"x":2}}')
    assert error == AgentError.contract_violation("cv")
    classified = wire_on.decode(AgentError, after(CLASSIFIED, '"kind":"InvalidStateTransition"', ',"x":1,"x":2'))
    assert wire_on.encode(classified) == CLASSIFIED


def test_verify_lists_a_record_with_a_repeated_field(tmp_path: Path, engine, monkeypatch) -> None:
    monkeypatch.setattr(verify_module, "engine", engine)
    path = tmp_path / "pools.sqlite"
    with SqliteAgentPoolStore(path) as store:
        store.open_pool("pool.d", AgentPoolStoreConfig())
        store.join_member("pool.d", AgentPoolMember(run_id="run.a", agent_id="agent.a"))
        store.record_pool_created("pool.d")
    db = apsw.Connection(str(path))
    db.execute(
        "UPDATE agent_pool_records SET payload_json = ? WHERE pool_id = 'pool.d' AND seq = 2", (REJECTED[1].text,)
    )
    db.close()
    report = verify_module.verify(path)
    assert report.records == 3
    assert [(p.pool_id, p.sequence) for p in report.problems or ()] == [("pool.d", 2)]
    assert "payload.member.run_id: duplicate field" in (report.problems or [])[0].reason


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES)
def test_text_read_key_by_key_is_what_orjson_reads(engine, value: Any) -> None:
    """Spaced and escaped text takes the key-by-key path; it must read as orjson reads it."""
    text = json.dumps(value, indent=1, ensure_ascii=True)
    assert engine.parse_json(text, "value") == orjson.loads(text)
