"""Property tests: generated model objects round-trip through the wire, and both engines agree.

Generated ids are valid ones (any text without control characters, up to 512 bytes: non-ASCII,
quotes, spaces, emoji); unvalidated strings (tags, versions, summaries, filter ids) may hold
anything. Malformed payloads (one field deleted or replaced by junk) must decode to the same
value in both engines or fail with the same ``InvalidInput`` — never another exception.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import pytest
from helpers import U32_MAX, U64_MAX, engine_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastpool import (
    ANY,
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolMessagePolicy,
    AgentPoolSnapshot,
    AgentPoolStoreConfig,
    AgentPoolStoreCursor,
    AgentPoolStoredMessage,
    AgentPoolStoredWake,
    AgentPoolStoreRecord,
    AgentPoolStoreRecordPayload,
    AgentPoolWakePolicy,
    AgentTarget,
    CausalIds,
    CompiledEventFilter,
    CorrelationEntry,
    DestinationKind,
    DestinationRef,
    EntityKind,
    EntityRef,
    ErrorContext,
    EventCorrelation,
    EventDeliverySemantics,
    EventFamily,
    EventFilter,
    EventIndexField,
    EventKind,
    InvalidInput,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageResponseContract,
    MessageStatus,
    PayloadAccessMode,
    PolicyKind,
    PolicyRef,
    PoolCreated,
    PoolOpened,
    PoolTarget,
    PrivacyClass,
    ResumeInputPolicy,
    RetentionClass,
    RetryClassification,
    RunAddress,
    RunMessage,
    RunTarget,
    SourceKind,
    SourceRef,
    SubscriberOverflowPolicy,
    SubscriberQueueConfig,
    TopicTarget,
    TrustClass,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
    WakeRegistrationStatus,
    wire,
)
from fastpool.model import PAYLOAD_TYPES

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(SETTINGS, max_examples=75)

# ---------------------------------------------------------------- strategies

SPECIAL_IDS = [
    "run.a",
    " ",
    "  leading and trailing  ",
    "with space",
    'quote"',
    "back\\slash",
    "'single'",
    "\u00a0",
    "zero\u200bwidth",
    "line\u2028sep",
    "\ufeffbom",
    "pool.\u00e9",
    "agent.\u65e5\u672c\u8a9e",
    "\U0001f600",
    "\U0010ffff",
    "</script>",
    "a/b",
    "any",
    "include",
    "null",
    "a" * 512,
    "\u00e9" * 256,
    "\U0001f600" * 128,
]
_id_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20)
ids = st.one_of(st.sampled_from(SPECIAL_IDS), _id_text).filter(lambda value: len(value.encode("utf-8")) <= 512)
free_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16)
u64 = st.one_of(st.sampled_from([0, 1, 2**53 + 1, 2**63, U64_MAX]), st.integers(0, U64_MAX))
u32 = st.one_of(st.sampled_from([0, 1, U32_MAX]), st.integers(0, U32_MAX))
nonzero = st.one_of(st.sampled_from([1, 64, U64_MAX]), st.integers(1, U64_MAX))


def enum_of(enum_cls: Any) -> st.SearchStrategy[Any]:
    """A member or its wire string (the constructors accept both)."""
    return st.sampled_from(list(enum_cls)) | st.sampled_from([member.value for member in enum_cls])


def vec(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=3)


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def model(cls: Any, required: dict[str, Any], optional: dict[str, Any] | None = None) -> st.SearchStrategy[Any]:
    """``cls(**kwargs)`` with every required keyword and any subset of the optional ones."""
    return st.fixed_dictionaries(required, optional=optional or {}).map(lambda kwargs: cls(**kwargs))


policy_ref = model(PolicyRef, {"kind": enum_of(PolicyKind), "id": ids}, {"version": opt(free_text)})
correlation_entry = model(CorrelationEntry, {"key": ids, "value": ids})
source_ref = model(
    SourceRef,
    {"kind": enum_of(SourceKind), "id": ids},
    {
        "trust": enum_of(TrustClass),
        "privacy": enum_of(PrivacyClass),
        "correlation": vec(correlation_entry),
        "redacted_summary": opt(free_text),
    },
)
destination_ref = model(
    DestinationRef,
    {"kind": enum_of(DestinationKind), "id": ids},
    {
        "privacy": enum_of(PrivacyClass),
        "retention": enum_of(RetentionClass),
        "correlation": vec(correlation_entry),
        "redacted_summary": opt(free_text),
    },
)
entity_ref = model(
    EntityRef,
    {"kind": enum_of(EntityKind), "id": ids},
    {"source": opt(source_ref), "privacy": enum_of(PrivacyClass), "redacted_summary": opt(free_text)},
)
member = model(AgentPoolMember, {"run_id": ids, "agent_id": ids}, {"policy_refs": vec(policy_ref), "topics": vec(ids)})
message_policy = model(
    AgentPoolMessagePolicy,
    {},
    {"required_policy_refs": vec(policy_ref), "include_sender_in_pool_broadcast": st.booleans()},
)
wake_policy = model(AgentPoolWakePolicy, {}, {"envelope_only": st.booleans()})
config = model(
    AgentPoolStoreConfig,
    {},
    {"message_policy": message_policy, "wake_policy": wake_policy, "policy_refs": vec(policy_ref)},
)
cursor = st.builds(AgentPoolStoreCursor.new, u64)
target = st.one_of(
    st.builds(lambda value: RunTarget(run_id=value), ids),
    st.builds(lambda value: AgentTarget(agent_id=value), ids),
    st.builds(lambda value: TopicTarget(topic_id=value), ids),
    st.builds(lambda value: PoolTarget(pool_id=value), ids),
)
address = st.one_of(
    st.builds(RunAddress.run, ids),
    st.builds(RunAddress.agent, ids),
    st.builds(RunAddress.topic, ids),
    st.builds(RunAddress.pool, ids),
    model(RunAddress, {"target": target, "destination_ref": destination_ref}, {"related_refs": vec(entity_ref)}),
)
contract = model(MessageResponseContract, {"expected_responses": u32}, {"timeout_millis": opt(u64)})
run_message = model(
    RunMessage,
    {"message_id": ids, "from_": ids, "to": address, "content_ref": ids, "idempotency_key": ids},
    {
        "correlation": model(EventCorrelation, {}, {"entries": vec(correlation_entry)}),
        "reply_to": opt(ids),
        "response_contract": opt(contract),
        "expires_at_millis": opt(u64),
        "policy_refs": vec(policy_ref),
    },
)
receipt = model(
    MessageReceipt,
    {"message_id": ids, "status": enum_of(MessageStatus)},
    {"delivered_to": vec(ids), "journal_cursor": opt(ids)},
)
stored_message = model(AgentPoolStoredMessage, {"message": run_message, "receipt": receipt})
queue = model(
    SubscriberQueueConfig,
    {},
    {"capacity": nonzero, "terminal_reserve": nonzero, "overflow": enum_of(SubscriberOverflowPolicy)},
)


def filter_set(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(ANY) | vec(strategy)


FILTER_SETS = {
    "run_ids": ids,
    "session_ids": ids,
    "agent_ids": ids,
    "turn_ids": ids,
    "families": enum_of(EventFamily),
    "kinds": enum_of(EventKind),
    "source_kinds": enum_of(SourceKind),
    "destination_kinds": enum_of(DestinationKind),
    "subject_kinds": enum_of(EntityKind),
    "related_entity_kinds": enum_of(EntityKind),
    "correlation_keys": ids,
    "tags": free_text,
    "privacy_classes": enum_of(PrivacyClass),
    "delivery_semantics": enum_of(EventDeliverySemantics),
}
event_filter = model(
    EventFilter,
    {},
    {
        **{name: filter_set(strategy) for name, strategy in FILTER_SETS.items()},
        "terminal_only": st.booleans(),
        "payload_access": enum_of(PayloadAccessMode),
        "queue": queue,
    },
)
compiled_filter = st.one_of(
    event_filter.map(lambda criteria: criteria.compile()),
    # stored compiled filters are opaque: any id, fingerprint and index list must round-trip
    model(
        CompiledEventFilter,
        {
            "filter_id": free_text,
            "filter_fingerprint": free_text,
            "indexed_fields": vec(enum_of(EventIndexField)),
            "payload_access": enum_of(PayloadAccessMode),
            "queue": queue,
            "criteria": event_filter,
        },
    ),
)
wake_condition = model(
    WakeCondition,
    {"condition_id": ids, "run_id": ids, "filter": event_filter, "idempotency_key": ids},
    {"timeout_millis": opt(u64), "resume_with": enum_of(ResumeInputPolicy), "policy_refs": vec(policy_ref)},
)
registration = model(
    WakeRegistration,
    {"condition_id": ids, "run_id": ids, "status": enum_of(WakeRegistrationStatus)},
    {"journal_cursor": opt(ids)},
)
stored_wake = model(
    AgentPoolStoredWake, {"condition": wake_condition, "compiled_filter": compiled_filter, "registration": registration}
)
payloads = st.one_of(
    st.builds(lambda value: PoolOpened(config=value), config),
    st.just(PoolCreated()),
    st.builds(lambda value: MemberJoined(member=value), member),
    st.builds(lambda value: MemberLeft(member=value), member),
    st.builds(lambda value: MessageRecorded(stored=value), stored_message),
    st.builds(lambda value: WakeRecorded(stored=value), stored_wake),
)
records = model(AgentPoolStoreRecord, {"pool_id": ids, "cursor": cursor, "payload": payloads})
snapshots = model(
    AgentPoolSnapshot,
    {
        "pool_id": ids,
        "created": st.booleans(),
        "members": vec(member),
        "topics": vec(ids),
        "message_policy": message_policy,
        "wake_policy": wake_policy,
    },
    {
        "policy_refs": vec(policy_ref),
        "messages": vec(stored_message),
        "wakes": st.lists(stored_wake, max_size=1),
        "cursor": opt(cursor),
    },
)
error_context = model(
    ErrorContext,
    {"message": free_text},
    {
        "policy_refs": vec(policy_ref),
        "source": opt(source_ref),
        "destination": opt(destination_ref),
        "subject": opt(entity_ref),
        "privacy": opt(enum_of(PrivacyClass)),
        "redacted_summary": opt(free_text),
    },
)
causal_ids = model(
    CausalIds,
    {},
    {
        "run_id": opt(ids),
        "turn_id": opt(ids),
        "attempt_id": opt(ids),
        "event_id": opt(ids),
        "tool_call_id": opt(ids),
        "span_id": opt(ids),
        "related": vec(entity_ref),
    },
)
errors = st.one_of(
    st.builds(AgentError.contract_violation, free_text),
    st.builds(AgentError.host_configuration_needed, free_text),
    st.builds(AgentError.missing_required_field, free_text),
    st.builds(
        lambda kind, retry, context, causal: AgentError(
            kind, retry, context.message, context=context, causal_ids=causal
        ),
        st.sampled_from(AgentErrorKind),
        st.sampled_from(RetryClassification),
        error_context,
        causal_ids,
    ),
)
any_model = st.one_of(payloads, records, snapshots, event_filter, compiled_filter, run_message, stored_wake, config)


# ---------------------------------------------------------------- round trips


@SETTINGS
@given(payload=payloads)
def test_payload_roundtrip_engine(engine, payload) -> None:
    text = engine_encode(engine, payload)
    assert text.startswith('{"type":"' + type(payload).TYPE + '"')
    decoded = engine.decode_payload(text)
    assert decoded == payload
    assert type(decoded) is type(payload)
    assert engine_encode(engine, decoded) == text
    assert engine.decode_payload(text.encode("utf-8")) == payload


@FEW
@given(obj=any_model)
def test_wire_roundtrip(obj) -> None:
    text = wire.encode(obj)
    cls = AgentPoolStoreRecordPayload if type(obj) in PAYLOAD_TYPES.values() else type(obj)
    decoded = wire.decode(cls, text)
    assert decoded == obj
    assert hash(decoded) == hash(obj)
    assert wire.encode(decoded) == text
    assert wire.decode(type(obj), text) == obj


@FEW
@given(obj=any_model)
def test_encoding_matches_an_independent_json_writer(obj) -> None:
    """serde_json's compact output escapes exactly what Python's json does with ensure_ascii=False."""
    plain = orjson.loads(wire.encode(obj))
    assert wire.encode(obj) == json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


@FEW
@given(error=errors)
def test_error_roundtrip(error) -> None:
    text = wire.encode(error)
    decoded = wire.decode(AgentError, text)
    assert decoded == error
    assert (decoded.variant, decoded.kind, decoded.retry, decoded.message, str(decoded)) == (
        error.variant,
        error.kind,
        error.retry,
        error.message,
        str(error),
    )
    assert wire.encode(decoded) == text


@FEW
@given(criteria=event_filter)
def test_compile_follows_the_rule(criteria) -> None:
    compiled = criteria.compile()
    fingerprint = "sha256:" + hashlib.sha256(wire.encode(criteria).encode("utf-8")).hexdigest()
    assert compiled.filter_fingerprint == fingerprint
    assert compiled.filter_id == "filter." + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
    pairs = zip(FILTER_SETS, EventIndexField, strict=True)
    expected_fields = [index for name, index in pairs if getattr(criteria, name) is not ANY]
    assert list(compiled.indexed_fields) == expected_fields
    assert (compiled.payload_access, compiled.queue, compiled.criteria) == (
        criteria.payload_access,
        criteria.queue,
        criteria,
    )
    assert wire.decode(CompiledEventFilter, wire.encode(compiled)) == compiled


# ---------------------------------------------------------------- the two engines agree


@SETTINGS
@given(obj=any_model)
def test_engines_agree(c_engine, py_engine, obj) -> None:
    compiled_bytes = orjson.dumps(c_engine.to_plain(obj))
    assert compiled_bytes == orjson.dumps(py_engine.to_plain(obj))
    if type(obj) in PAYLOAD_TYPES.values():
        assert c_engine.decode_payload(compiled_bytes) == py_engine.decode_payload(compiled_bytes) == obj
    else:
        value = orjson.loads(compiled_bytes)
        assert c_engine.from_plain(type(obj), value, "x") == py_engine.from_plain(type(obj), value, "x") == obj


JUNK = [
    None,
    -1,
    0,
    1.5,
    "",
    "x",
    "Delivered",
    "any",
    "run_message",
    [],
    {},
    True,
    U64_MAX,
    "\x00",
    {"include": None},
    {"type": "run"},
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


@st.composite
def mutated_payload_text(draw: Any) -> str:
    """The JSON of a valid payload with one value deleted or replaced by junk."""
    plain = orjson.loads(wire.encode(draw(payloads)))
    path = draw(st.sampled_from(_paths(plain)[1:]))  # never the root: the reject table covers that
    parent = plain
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(st.sampled_from(JUNK))
    return orjson.dumps(plain).decode()


def _outcome(engine: Any, text: str) -> tuple[str, Any]:
    try:
        return "ok", engine.decode_payload(text)
    except InvalidInput as error:
        return "error", error.message


@FEW
@given(text=mutated_payload_text())
def test_malformed_payloads_fail_cleanly(engine, text) -> None:
    """Junk decodes to a valid value or raises InvalidInput naming a path; never another exception."""
    status, result = _outcome(engine, text)
    if status == "ok":
        again = engine_encode(engine, result)
        assert engine.decode_payload(again) == result
        assert wire.decode(AgentPoolStoreRecordPayload, text) == result
    else:
        assert result.startswith("payload")
        with pytest.raises(InvalidInput):
            wire.decode(AgentPoolStoreRecordPayload, text)


@SETTINGS
@given(text=mutated_payload_text())
def test_engines_agree_on_malformed_payloads(c_engine, py_engine, text) -> None:
    assert _outcome(c_engine, text) == _outcome(py_engine, text)
