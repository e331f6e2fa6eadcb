"""Decoding rejects what Rust's serde rejects, with ``InvalidInput`` naming the field path,
and accepts what serde accepts (unknown keys, tag anywhere, null Options, omitted Vecs).

Every case runs on both engines directly (``engine.decode_payload`` / ``engine.from_plain``)
and through the public ``fastpool.wire.decode``.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import orjson
import pytest
from helpers import U32_MAX, U64_MAX, load_jsonl

from fastpool import (
    ANY,
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoreRecord,
    AgentPoolStoreRecordPayload,
    AgentPoolWakePolicy,
    CompiledEventFilter,
    EventFilter,
    InvalidInput,
    MessageReceipt,
    MessageResponseContract,
    PolicyRef,
    RetryClassification,
    RunMessage,
    SubscriberQueueConfig,
    wire,
)
from fastpool.model import ErrorContext

PAYLOAD = "payload"  # target: a record payload (engine.decode_payload / AgentPoolStoreRecordPayload)
DELETE = object()

FIXTURE_PAYLOADS = {row["case"]: row["payload_json"] for row in load_jsonl("payloads.jsonl")}

ADDRESS = {
    "target": {"type": "run", "run_id": "run.b"},
    "destination_ref": {"kind": "agent", "id": "run.b", "privacy": "content_refs_only", "retention": "host_policy"},
    "related_refs": [{"kind": "run", "id": "run.b", "privacy": "content_refs_only"}],
}
MESSAGE = {
    "message_id": "msg.1",
    "from": "run.a",
    "to": ADDRESS,
    "content_ref": "content.1",
    "correlation": {},
    "response_contract": {"expected_responses": 1, "timeout_millis": 500},
    "expires_at_millis": 123,
    "idempotency_key": "idem.1",
}
RECEIPT = {"message_id": "msg.1", "status": "delivered", "delivered_to": ["run.b"], "journal_cursor": "journal.6"}
CONFIG = {"message_policy": {"include_sender_in_pool_broadcast": False}, "wake_policy": {"envelope_only": True}}
BASES: dict[Any, dict[str, Any]] = {
    "run_message": {"type": "run_message", "stored": {"message": MESSAGE, "receipt": RECEIPT}},
    "pool_opened": {"type": "pool_opened", "config": CONFIG},
    "member_joined": {"type": "member_joined", "member": {"run_id": "run.a", "agent_id": "agent.a", "topics": ["t"]}},
    "wake": orjson.loads(FIXTURE_PAYLOADS["wake_full_timeout_and_policy_refs"]),
    RunMessage: MESSAGE,
    EventFilter: orjson.loads(FIXTURE_PAYLOADS["wake_registered_minimal_default_filter"])["stored"]["condition"][
        "filter"
    ],
    CompiledEventFilter: orjson.loads(FIXTURE_PAYLOADS["wake_registered_flow_example"])["stored"]["compiled_filter"],
    AgentPoolSnapshot: orjson.loads(
        '{"pool_id":"pool.direct","created":false,"members":[],"topics":[],"message_policy":'
        '{"include_sender_in_pool_broadcast":false},"wake_policy":{"envelope_only":true},"cursor":{"sequence":1}}'
    ),
    AgentPoolStoreCursor: {"sequence": 7},
    SubscriberQueueConfig: {"capacity": 64, "terminal_reserve": 1, "overflow": "drop_non_terminal"},
    MessageResponseContract: {"expected_responses": 1, "timeout_millis": 500},
    AgentPoolMember: {"run_id": "run.a", "agent_id": "agent.a"},
    AgentPoolStoreConfig: CONFIG,
    AgentPoolMessagePolicy: CONFIG["message_policy"],
    AgentPoolWakePolicy: CONFIG["wake_policy"],
    MessageReceipt: RECEIPT,
}


class Case(NamedTuple):
    id: str
    target: Any  # PAYLOAD or a model class
    text: str | bytes
    where: str | None  # a fragment of the field path the message must contain
    rule: str  # a fragment of the reason the message must contain


def edit(base: Any, path: tuple[Any, ...], value: Any) -> str:
    """The JSON of ``BASES[base]`` with the value at ``path`` replaced (or deleted)."""
    doc = copy.deepcopy(BASES[base])
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return orjson.dumps(doc).decode()


def case(id: str, base: Any, path: tuple[Any, ...], value: Any, rule: str, where: str | None = None) -> Case:
    """``BASES[base]`` edited at ``path``; the message must name ``where`` (default: the edited path)."""
    target = PAYLOAD if isinstance(base, str) else base
    return Case(id, target, edit(base, path, value), where or "." + ".".join(path), rule)


def raw(id: str, target: Any, text: str | bytes, where: str | None, rule: str) -> Case:
    return Case(id, target, text, where, rule)


M = ("stored", "message")
R = ("stored", "receipt")
C = ("stored", "condition")
RM, CF, SQ = RunMessage, CompiledEventFilter, SubscriberQueueConfig
MC, CUR, SNAP = MessageResponseContract, AgentPoolStoreCursor, AgentPoolSnapshot
DEST = ("to", "destination_ref")

# fmt: off
CASES = [
    # ---- missing required fields
    case("missing_message_id", "run_message", M + ("message_id",), DELETE, "missing"),
    case("missing_from", RM, ("from",), DELETE, "missing"),
    case("missing_correlation", RM, ("correlation",), DELETE, "missing"),
    case("missing_idempotency_key", RM, ("idempotency_key",), DELETE, "missing"),
    case("missing_target_run_id", RM, ("to", "target", "run_id"), DELETE, "missing"),
    case("missing_destination_privacy", RM, DEST + ("privacy",), DELETE, "missing"),
    case("missing_receipt_status", "run_message", R + ("status",), DELETE, "missing"),
    case("missing_receipt", "run_message", R, DELETE, "missing"),
    case("missing_member", "member_joined", ("member",), DELETE, "missing"),
    raw("message_policy_empty", AgentPoolMessagePolicy, "{}", ".include_sender_in_pool_broadcast", "missing"),
    raw("message_policy_refs_only", AgentPoolMessagePolicy, '{"required_policy_refs":[]}',
        ".include_sender_in_pool_broadcast", "missing"),
    raw("wake_policy_empty", AgentPoolWakePolicy, "{}", ".envelope_only", "missing"),
    case("config_message_policy_empty", "pool_opened", ("config", "message_policy"), {}, "missing",
         ".config.message_policy.include_sender_in_pool_broadcast"),
    case("config_wake_policy_missing", "pool_opened", ("config", "wake_policy"), DELETE, "missing"),
    case("filter_missing_session_ids_alpha2", EventFilter, ("session_ids",), DELETE, "missing"),
    case("filter_missing_terminal_only", EventFilter, ("terminal_only",), DELETE, "missing"),
    case("filter_missing_queue_overflow", EventFilter, ("queue", "overflow"), DELETE, "missing"),
    case("compiled_missing_indexed_fields", CF, ("indexed_fields",), DELETE, "missing"),
    case("compiled_missing_criteria", CF, ("criteria",), DELETE, "missing"),
    case("snapshot_missing_members", SNAP, ("members",), DELETE, "missing"),
    case("snapshot_missing_topics", SNAP, ("topics",), DELETE, "missing"),
    case("wake_missing_resume_with", "wake", C + ("resume_with",), DELETE, "missing"),
    case("cursor_missing_sequence", CUR, ("sequence",), DELETE, "missing"),
    raw("payload_missing_type", PAYLOAD, '{"member":{"run_id":"run.a","agent_id":"agent.a"}}', "type", "missing"),
    # ---- null where serde has no Option
    case("config_policy_refs_null", "pool_opened", ("config", "policy_refs"), None, "null"),
    case("delivered_to_null", "run_message", R + ("delivered_to",), None, "null"),
    case("member_topics_null", "member_joined", ("member", "topics"), None, "null"),
    case("message_policy_refs_null", RM, ("policy_refs",), None, "null"),
    case("related_refs_null", RM, ("to", "related_refs"), None, "null"),
    case("correlation_null", RM, ("correlation",), None, "null"),
    case("correlation_entries_null", RM, ("correlation", "entries"), None, "null"),
    case("indexed_fields_null", CF, ("indexed_fields",), None, "null"),
    case("snapshot_members_null", SNAP, ("members",), None, "null"),
    case("filter_set_null", EventFilter, ("run_ids",), None, "any"),
    case("filter_include_null", EventFilter, ("run_ids",), {"include": None}, "null"),
    case("terminal_only_null", EventFilter, ("terminal_only",), None, "null"),
    case("envelope_only_null", "pool_opened", ("config", "wake_policy", "envelope_only"), None, "null"),
    case("message_id_null", "run_message", M + ("message_id",), None, "null"),
    # ---- enums: unknown strings, wrong casing, wrong types
    case("status_unknown", "run_message", R + ("status",), "sent", "sent"),
    case("status_pascal_case", "run_message", R + ("status",), "Delivered", "Delivered"),
    case("status_number", MessageReceipt, ("status",), 1, "string"),
    case("policy_kind_pascal_case", AgentPoolStoreConfig, ("policy_refs",), [{"kind": "Host", "id": "p"}], "Host",
         ".policy_refs[0].kind"),
    case("destination_kind_unknown", RM, DEST + ("kind",), "run", "run"),
    case("family_hyphenated", EventFilter, ("families",), {"include": ["agent-pool"]}, "agent-pool"),
    case("filter_set_pascal_any", EventFilter, ("kinds",), "Any", "any"),
    case("filter_set_include_pascal", EventFilter, ("kinds",), {"Include": ["run_started"]}, "include"),
    case("filter_set_list", EventFilter, ("kinds",), ["run_started"], "any"),
    case("payload_access_unknown", EventFilter, ("payload_access",), "full_payload", "full_payload"),
    case("overflow_pascal_case", SQ, ("overflow",), "DropNonTerminal", "DropNonTerminal"),
    case("indexed_field_unknown", CF, ("indexed_fields",), ["run_ids"], "run_ids", ".indexed_fields[0]"),
    case("resume_with_pascal_case", "wake", C + ("resume_with",), "MatchingEventRefs", "MatchingEventRefs"),
    case("registration_status_unknown", "wake", ("stored", "registration", "status"), "pending", "pending"),
    case("target_tag_pascal_case", RM, ("to", "target", "type"), "Run", "Run", ".to.target"),
    case("target_tag_missing", RM, ("to", "target", "type"), DELETE, "type", ".to.target"),
    raw("payload_tag_pascal_case", PAYLOAD, orjson.dumps(dict(BASES["pool_opened"], type="PoolOpened")).decode(),
        "type", "PoolOpened"),
    raw("payload_tag_unknown", PAYLOAD, '{"type":"pool_closed"}', "type", "pool_closed"),
    raw("payload_tag_not_a_string", PAYLOAD, '{"type":1}', "type", "1"),
    # ---- integers: u64 / u32 / NonZeroUsize, JSON integers only
    case("sequence_negative", CUR, ("sequence",), -1, "-1"),
    case("sequence_float", CUR, ("sequence",), 1.5, "integer"),
    case("sequence_integral_float", CUR, ("sequence",), 7.0, "integer"),
    case("sequence_string", CUR, ("sequence",), "7", "integer"),
    case("sequence_bool", CUR, ("sequence",), True, "integer"),
    case("sequence_null", CUR, ("sequence",), None, "null"),
    raw("sequence_above_u64", CUR, '{"sequence":18446744073709551616}', ".sequence", "integer"),
    raw("sequence_exponent", CUR, '{"sequence":1e3}', ".sequence", "integer"),
    case("timeout_negative", MC, ("timeout_millis",), -1, "-1"),
    case("timeout_float", MC, ("timeout_millis",), 500.0, "integer"),
    case("timeout_string", RM, ("response_contract", "timeout_millis"), "500", "integer"),
    case("expected_responses_above_u32", MC, ("expected_responses",), U32_MAX + 1, "4294967296"),
    case("expected_responses_negative", MC, ("expected_responses",), -1, "-1"),
    case("expires_negative", "run_message", M + ("expires_at_millis",), -5, "-5"),
    case("expires_float", "run_message", M + ("expires_at_millis",), 0.5, "integer"),
    case("wake_timeout_float", "wake", C + ("timeout_millis",), 2.5, "integer"),
    case("queue_capacity_zero", SQ, ("capacity",), 0, "0"),
    case("queue_reserve_zero", SQ, ("terminal_reserve",), 0, "0"),
    case("queue_capacity_negative", SQ, ("capacity",), -64, "-64"),
    case("filter_queue_capacity_zero", EventFilter, ("queue", "capacity"), 0, "0"),
    case("wake_compiled_queue_capacity_zero", "wake", ("stored", "compiled_filter", "queue", "capacity"), 0, "0"),
    # ---- booleans take only true/false
    case("bool_as_int", AgentPoolMessagePolicy, ("include_sender_in_pool_broadcast",), 1, "bool"),
    case("bool_as_string", AgentPoolWakePolicy, ("envelope_only",), "true", "bool"),
    case("created_as_int", SNAP, ("created",), 0, "bool"),
    # ---- invalid ids (REFERENCE §2 texts)
    case("from_empty", RM, ("from",), "", "identifier is empty"),
    case("delivered_to_control_char", "run_message", R + ("delivered_to",), ["run.b", "run\x00"],
         "identifier contains control character at byte 3", ".stored.receipt.delivered_to[1]"),
    case("member_run_id_513_bytes", "member_joined", ("member", "run_id"), "a" * 513,
         "identifier length 513 exceeds max 512"),
    case("member_topic_c1", "member_joined", ("member", "topics"), ["ok", "x\u0085"],
         "identifier contains control character at byte 1", ".member.topics[1]"),
    case("policy_id_empty", "pool_opened", ("config", "policy_refs"), [{"kind": "host", "id": ""}],
         "identifier is empty", ".config.policy_refs[0].id"),
    case("correlation_key_empty", RM, ("correlation",), {"entries": [{"key": "", "value": "v"}]},
         "identifier is empty", ".correlation.entries[0].key"),
    case("journal_cursor_empty", "run_message", R + ("journal_cursor",), "", "identifier is empty"),
    case("reply_to_del", RM, ("reply_to",), "msg\x7f", "identifier contains control character at byte 3"),
    case("filter_run_id_empty", EventFilter, ("run_ids",), {"include": ["run.a", ""]}, "identifier is empty"),
    case("destination_id_empty", RM, DEST + ("id",), "", "identifier is empty"),
    case("pool_target_id_empty", RM, ("to", "target"), {"type": "pool", "pool_id": ""}, "identifier is empty",
         ".to.target.pool_id"),
    case("snapshot_pool_id_newline", SNAP, ("pool_id",), "pool\n", "identifier contains control character at byte 4"),
    case("wake_condition_id_empty", "wake", C + ("condition_id",), "", "identifier is empty"),
    case("run_id_number", "member_joined", ("member", "run_id"), 5, "string"),
    case("run_id_list", AgentPoolMember, ("run_id",), ["run.a"], "string"),
    # ---- not JSON, or the wrong JSON type
    raw("not_json", PAYLOAD, "not json", None, "JSON"),
    raw("empty_text", PAYLOAD, "", None, "JSON"),
    raw("truncated", PAYLOAD, '{"type":"pool_created"', None, "JSON"),
    raw("nan", CUR, '{"sequence":NaN}', None, "JSON"),
    raw("invalid_utf8", PAYLOAD, b'{"type":"pool_created","x":"\xff"}', None, "JSON"),
    raw("array_payload", PAYLOAD, '["pool_created"]', None, "object"),
    raw("string_payload", PAYLOAD, '"pool_created"', None, "object"),
    raw("null_payload", PAYLOAD, "null", None, "object"),
    case("array_member", "member_joined", ("member",), [], "object"),
    case("array_stored_message", "run_message", M, ["msg.1"], "object"),
    case("string_config", "pool_opened", ("config",), "default", "object"),
    raw("array_cursor", CUR, "[7]", None, "object"),
    raw("array_config", AgentPoolStoreConfig, "[]", None, "object"),
]
# fmt: on
JSON_PARSE_FAILURES = {"not_json", "empty_text", "truncated", "nan", "invalid_utf8"}


def _engine_decode(engine: Any, item: Case) -> Any:
    if item.target is PAYLOAD:
        return engine.decode_payload(item.text)
    return engine.from_plain(item.target, orjson.loads(item.text), item.target.__name__)


def _check(error: InvalidInput, item: Case) -> None:
    assert isinstance(error, InvalidInput)
    assert isinstance(error, ValueError)
    assert error.kind is AgentErrorKind.INVALID_STATE_TRANSITION
    assert error.retry is RetryClassification.NOT_RETRYABLE
    if item.where is not None:
        assert item.where in error.message, f"path {item.where!r} not named in {error.message!r}"
    assert item.rule in error.message, f"reason {item.rule!r} not in {error.message!r}"


def test_case_ids_are_unique() -> None:
    assert len({item.id for item in CASES}) == len(CASES)


@pytest.mark.parametrize("item", [c for c in CASES if c.id not in JSON_PARSE_FAILURES], ids=lambda c: c.id)
def test_engine_rejects(engine, item: Case) -> None:
    with pytest.raises(InvalidInput) as caught:
        _engine_decode(engine, item)
    _check(caught.value, item)


@pytest.mark.parametrize(
    "item", [c for c in CASES if c.target is PAYLOAD and c.id in JSON_PARSE_FAILURES], ids=lambda c: c.id
)
def test_engine_rejects_non_json(engine, item: Case) -> None:
    with pytest.raises(InvalidInput) as caught:
        engine.decode_payload(item.text)
    _check(caught.value, item)


@pytest.mark.parametrize("item", CASES, ids=lambda c: c.id)
def test_wire_rejects(item: Case) -> None:
    target = AgentPoolStoreRecordPayload if item.target is PAYLOAD else item.target
    with pytest.raises(InvalidInput) as caught:
        wire.decode(target, item.text)
    _check(caught.value, item)


def test_engines_reject_with_the_same_message(c_engine, py_engine) -> None:
    for item in CASES:
        if item.id in JSON_PARSE_FAILURES and item.target is not PAYLOAD:
            continue
        messages = []
        for engine in (c_engine, py_engine):
            with pytest.raises(InvalidInput) as caught:
                _engine_decode(engine, item)
            messages.append(caught.value.message)
        assert messages[0] == messages[1], item.id


@pytest.mark.parametrize(
    "text, rule",
    [
        (
            '{"Classified":{"kind":"invalid_state_transition","retry":"NotRetryable","context":CTX,"causal_ids":CAUSAL}}',
            "invalid_state_transition",
        ),
        (
            '{"Classified":{"kind":"InvalidStateTransition","retry":"not_retryable","context":CTX,"causal_ids":CAUSAL}}',
            "not_retryable",
        ),
        ('{"Classified":{"kind":"Unknown","retry":"NotRetryable","context":CTX,"causal_ids":CAUSAL}}', "Unknown"),
        ('{"Classified":{"retry":"NotRetryable","context":CTX,"causal_ids":CAUSAL}}', "kind"),
        (
            '{"Classified":{"kind":"Timeout","retry":"NotRetryable","context":{"message":"m"},"causal_ids":CAUSAL}}',
            "policy_refs",
        ),
        ('{"Classified":{"kind":"Timeout","retry":"NotRetryable","context":CTX,"causal_ids":{}}}', "related"),
        ('{"Classified":{"kind":"Timeout","retry":"NotRetryable","context":CTX}}', "causal_ids"),
        ('{"contract_violation":{"message":"cv"}}', "contract_violation"),
        ('{"ContractViolation":{"msg":"cv"}}', "message"),
        ('{"MissingRequiredField":{"field":7}}', "field"),
        ('{"ContractViolation":{"message":"a"},"HostConfigurationNeeded":{"message":"b"}}', "variant"),
        ('{"ContractViolation":"cv"}', "ContractViolation"),
        ('"ContractViolation"', "object"),
        ("{}", "variant"),
        ("null", "object"),
        ("nope", "JSON"),
    ],
    ids=lambda value: value if len(value) < 20 else None,
)
def test_wire_rejects_bad_errors(text: str, rule: str) -> None:
    ctx = (
        '{"message":"m","policy_refs":[],"source":null,"destination":null,"subject":null,'
        '"privacy":null,"redacted_summary":null}'
    )
    causal = (
        '{"run_id":null,"turn_id":null,"attempt_id":null,"event_id":null,'
        '"tool_call_id":null,"span_id":null,"related":[]}'
    )
    with pytest.raises(InvalidInput) as caught:
        wire.decode(AgentError, text.replace("CTX", ctx).replace("CAUSAL", causal))
    assert rule in caught.value.message


@pytest.mark.parametrize(
    "value", [{"include": ["run.a"], "x": 1}, {"x": 1, "include": ["run.a"]}], ids=["extra_after", "extra_before"]
)
def test_filter_set_with_extra_keys_rejected(engine, value) -> None:
    """An EventFilterSet is an externally tagged enum: serde accepts exactly one key."""
    doc = dict(BASES[EventFilter], run_ids=value)
    with pytest.raises(InvalidInput) as caught:
        engine.from_plain(EventFilter, doc, "EventFilter")
    assert ".run_ids" in caught.value.message


def test_filter_set_any_as_unit_variant_object(engine) -> None:
    """serde_json also reads the unit variant ``any`` written as ``{"any": null}``."""
    doc = dict(BASES[EventFilter], run_ids={"any": None})
    assert engine.from_plain(EventFilter, doc, "EventFilter").run_ids is ANY


def test_error_context_requires_policy_refs_in_both_engines(engine) -> None:
    with pytest.raises(InvalidInput) as caught:
        engine.from_plain(ErrorContext, {"message": "m"}, "context")
    assert "context.policy_refs" in caught.value.message
    # every Option of ErrorContext may be absent (serde treats a missing Option as None)
    assert engine.from_plain(ErrorContext, {"message": "m", "policy_refs": []}, "context") == ErrorContext(message="m")


# ---------------------------------------------------------------- acceptance


def _with_unknown_keys(node: Any, depth: int = 0) -> Any:
    """Every object gets extra keys (values of every JSON type); externally tagged sets are left alone."""
    if isinstance(node, list):
        return [_with_unknown_keys(item, depth + 1) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_unknown_keys(value, depth + 1) for key, value in node.items()}
    if list(node) == ["include"]:  # an EventFilterSet variant, not a struct
        return out
    out[f"zz_unknown_{depth}"] = {"type": "pool_created", "include": [None, 1.5, -1, "Delivered"]}
    out["_"] = None
    return out


def _tag_last(node: Any) -> Any:
    if isinstance(node, list):
        return [_tag_last(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _tag_last(value) for key, value in node.items() if key != "type"}
    if "type" in node:
        out["type"] = node["type"]
    return out


PAYLOAD_ROWS = load_jsonl("payloads.jsonl")


@pytest.mark.parametrize("row", PAYLOAD_ROWS, ids=[row["case"] for row in PAYLOAD_ROWS])
def test_unknown_keys_ignored_at_every_level(engine, row) -> None:
    text = row["payload_json"]
    noisy = orjson.dumps(_with_unknown_keys(orjson.loads(text))).decode()
    assert noisy != text
    decoded = engine.decode_payload(noisy)
    assert decoded == engine.decode_payload(text)
    assert orjson.dumps(engine.to_plain(decoded)).decode() == text
    assert wire.encode(wire.decode(AgentPoolStoreRecordPayload, noisy)) == text


@pytest.mark.parametrize("row", PAYLOAD_ROWS, ids=[row["case"] for row in PAYLOAD_ROWS])
def test_type_tag_at_any_position(engine, row) -> None:
    text = row["payload_json"]
    moved = orjson.dumps(_tag_last(orjson.loads(text))).decode()
    if row["type"] != "pool_created":
        assert not moved.startswith('{"type"')
    assert engine.decode_payload(moved) == engine.decode_payload(text)
    assert wire.encode(wire.decode(AgentPoolStoreRecordPayload, moved)) == text


def test_unknown_keys_in_a_full_record(engine) -> None:
    text = (
        '{"pool_id":"pool.flow","cursor":{"sequence":3,"x":1},"payload":{"member":'
        '{"run_id":"run.a","agent_id":"agent.a"},"type":"member_joined"},"extra":[]}'
    )
    record = engine.from_plain(AgentPoolStoreRecord, orjson.loads(text), "record")
    assert record.cursor.sequence == 3
    assert record.payload.member.run_id == "run.a"
    expected = (
        '{"pool_id":"pool.flow","cursor":{"sequence":3},"payload":'
        '{"type":"member_joined","member":{"run_id":"run.a","agent_id":"agent.a"}}}'
    )
    assert orjson.dumps(engine.to_plain(record)).decode() == expected
    assert wire.encode(wire.decode(AgentPoolStoreRecord, text)) == expected


@pytest.mark.parametrize(
    "base, path, attribute",
    [
        (RunMessage, ("reply_to",), "reply_to"),
        (RunMessage, ("response_contract",), "response_contract"),
        (RunMessage, ("expires_at_millis",), "expires_at_millis"),
        (MessageResponseContract, ("timeout_millis",), "timeout_millis"),
        (MessageReceipt, ("journal_cursor",), "journal_cursor"),
        (AgentPoolSnapshot, ("cursor",), "cursor"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_null_option_is_none(engine, base, path, attribute) -> None:
    text = edit(base, path, None)
    decoded = engine.from_plain(base, orjson.loads(text), base.__name__)
    assert getattr(decoded, attribute) is None
    # re-encoding omits the key, as Rust does
    assert f'"{path[-1]}"' not in orjson.dumps(engine.to_plain(decoded)).decode()
    assert getattr(wire.decode(base, text), attribute) is None


def test_null_policy_version_is_none(engine) -> None:
    decoded = engine.from_plain(PolicyRef, {"kind": "host", "id": "p", "version": None}, "PolicyRef")
    assert decoded == PolicyRef.new("p")
    assert decoded.version is None


@pytest.mark.parametrize(
    "base, path, attribute",
    [
        (AgentPoolMember, ("policy_refs",), "policy_refs"),
        (AgentPoolMember, ("topics",), "topics"),
        (RunMessage, ("policy_refs",), "policy_refs"),
        (RunMessage, ("to", "related_refs"), None),
        (MessageReceipt, ("delivered_to",), "delivered_to"),
        (AgentPoolStoreConfig, ("policy_refs",), "policy_refs"),
        (AgentPoolSnapshot, ("messages",), "messages"),
        (AgentPoolSnapshot, ("wakes",), "wakes"),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_missing_optional_vec_is_empty_tuple(engine, base, path, attribute) -> None:
    text = edit(base, path, DELETE) if path[0] in BASES[base] else orjson.dumps(BASES[base]).decode()
    decoded = engine.from_plain(base, orjson.loads(text), base.__name__)
    value = decoded.to.related_refs if attribute is None else getattr(decoded, attribute)
    assert value == ()
    assert type(value) is tuple


def test_correlation_without_entries_is_empty(engine) -> None:
    decoded = engine.from_plain(RunMessage, MESSAGE, "RunMessage")
    assert decoded.correlation.entries == ()
    assert '"correlation":{}' in orjson.dumps(engine.to_plain(decoded)).decode()


@pytest.mark.parametrize(
    "base, path, value",
    [
        (AgentPoolStoreCursor, ("sequence",), U64_MAX),
        (AgentPoolStoreCursor, ("sequence",), 0),
        (MessageResponseContract, ("expected_responses",), U32_MAX),
        (MessageResponseContract, ("expected_responses",), 0),
        (MessageResponseContract, ("timeout_millis",), U64_MAX),
        (SubscriberQueueConfig, ("capacity",), U64_MAX),
        (SubscriberQueueConfig, ("terminal_reserve",), 1),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else str(value) if isinstance(value, int) else None,
)
def test_integer_bounds_accepted(engine, base, path, value) -> None:
    text = edit(base, path, value)
    decoded = engine.from_plain(base, orjson.loads(text), base.__name__)
    assert getattr(decoded, path[-1]) == value
    assert type(getattr(decoded, path[-1])) is int
    assert orjson.dumps(engine.to_plain(decoded)).decode() == text
    assert wire.encode(wire.decode(base, text)) == text
