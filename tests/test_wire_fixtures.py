"""The golden wire fixtures written by the Rust reference: every case round-trips byte for byte.

Each payload is checked through one engine directly (``[c]`` and ``[py]``) and through the
public ``fastpool.wire`` (which uses whichever engine ``fastpool`` loaded).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
from helpers import engine_decode, engine_encode, load_jsonl

from fastpool import (
    AgentError,
    AgentErrorKind,
    AgentPoolMember,
    AgentPoolStoreRecordPayload,
    CompiledEventFilter,
    EventFilter,
    InvalidInput,
    PolicyRef,
    RetryClassification,
    RunTarget,
    WakeRecorded,
    validate_id,
    wire,
)
from fastpool.benchmarking import workload
from fastpool.model import PAYLOAD_TYPES

PAYLOADS = load_jsonl("payloads.jsonl")
FILTERS = load_jsonl("filters.jsonl")
ERRORS = load_jsonl("errors.jsonl")
INVALID_IDS = load_jsonl("invalid_ids.jsonl")


def _id_case(row: dict[str, object]) -> str:
    value = str(row["value"])
    shown = value if len(value) <= 24 else f"{value[:12]}..({len(value.encode())}B)"
    return ("ok:" if row["error"] is None else "bad:") + shown.encode("unicode_escape").decode("ascii")


VALID_IDS = [row["value"] for row in INVALID_IDS if row["error"] is None]
BAD_IDS = [row for row in INVALID_IDS if row["error"] is not None]


# ---------------------------------------------------------------- payloads.jsonl


def test_payload_fixture_covers_every_variant() -> None:
    assert len(PAYLOADS) == 60
    assert len({row["case"] for row in PAYLOADS}) == len(PAYLOADS)
    assert {row["type"] for row in PAYLOADS} == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("row", PAYLOADS, ids=[row["case"] for row in PAYLOADS])
def test_payload_roundtrip_engine(engine, row) -> None:
    text = row["payload_json"]
    payload = engine.decode_payload(text)
    assert type(payload).TYPE == row["type"]
    assert engine_encode(engine, payload) == text
    # bytes in (what SQLite hands back) decode to the same value
    assert engine.decode_payload(text.encode("utf-8")) == payload


@pytest.mark.parametrize("row", PAYLOADS, ids=[row["case"] for row in PAYLOADS])
def test_payload_roundtrip_wire(row) -> None:
    text = row["payload_json"]
    payload = wire.decode(AgentPoolStoreRecordPayload, text)
    assert wire.encode(payload) == text
    assert wire.dumps(payload) == text.encode("utf-8")
    # the payload class itself decodes it too (its own tag is required there)
    assert wire.decode(PAYLOAD_TYPES[row["type"]], text) == payload


def test_payload_engines_agree_on_fixtures(c_engine, py_engine) -> None:
    for row in PAYLOADS:
        text = row["payload_json"]
        compiled, pure = c_engine.decode_payload(text), py_engine.decode_payload(text)
        assert compiled == pure, row["case"]
        assert orjson.dumps(c_engine.to_plain(pure)) == orjson.dumps(py_engine.to_plain(compiled)), row["case"]


def test_compiled_reads_compact_records_itself(c_engine, monkeypatch) -> None:
    """Every record without an escape is read by the compiled byte reader: the orjson way
    (``parse_json``) is never taken, for text or for bytes."""
    compact = [row["payload_json"] for row in PAYLOADS if "\\" not in row["payload_json"]]
    compact += [wire.encode(payload) for payload in workload.pool_payloads("pool.guard", 200)[0]]
    assert len(compact) > 200
    expected = [c_engine.decode_payload(text) for text in compact]

    def refuse(text: Any, path: str) -> Any:
        raise AssertionError(f"decode_payload fell back to parse_json for {text!r}")

    monkeypatch.setattr(c_engine, "parse_json", refuse)
    assert [c_engine.decode_payload(text) for text in compact] == expected
    assert [c_engine.decode_payload(text.encode("utf-8")) for text in compact] == expected
    with pytest.raises(AssertionError, match="fell back"):
        c_engine.decode_payload(compact[0].replace('"type"', '"typ\\u0065"', 1))  # an escape: orjson's to read


def test_payload_non_ascii_is_written_raw() -> None:
    (row,) = [row for row in PAYLOADS if row["case"] == "member_joined_non_ascii"]
    payload = wire.decode(AgentPoolStoreRecordPayload, row["payload_json"])
    assert payload.member.run_id == "run.é"
    assert "\\u" not in wire.encode(payload)
    assert "run.é" in wire.encode(payload)


def test_opaque_compiled_filter_is_kept_unchanged(engine) -> None:
    """A stored compiled filter is never recomputed: a wrong, opaque id/fingerprint round-trips."""
    (row,) = [row for row in PAYLOADS if row["case"] == "wake_registered_flow_example"]
    plain = orjson.loads(row["payload_json"])
    compiled = plain["stored"]["compiled_filter"]
    compiled["filter_id"] = "filter.not-a-hash \u00e9"
    compiled["filter_fingerprint"] = "sha256:opaque"
    text = orjson.dumps(plain).decode()
    payload = engine.decode_payload(text)
    assert isinstance(payload, WakeRecorded)
    assert payload.stored.compiled_filter.filter_id == "filter.not-a-hash \u00e9"
    assert payload.stored.compiled_filter.filter_fingerprint == "sha256:opaque"
    assert payload.stored.compiled_filter != payload.stored.compiled_filter.criteria.compile()
    assert engine_encode(engine, payload) == text
    assert wire.encode(wire.decode(AgentPoolStoreRecordPayload, text)) == text


# ---------------------------------------------------------------- filters.jsonl


@pytest.mark.parametrize("row", FILTERS, ids=[row["case"] for row in FILTERS])
def test_filter_criteria_and_compiled(engine, row) -> None:
    criteria = engine_decode(engine, EventFilter, row["criteria_json"])
    assert engine_encode(engine, criteria) == row["criteria_json"]
    compiled = criteria.compile()
    assert wire.encode(compiled) == row["compiled_json"]
    assert engine_encode(engine, compiled) == row["compiled_json"]
    assert CompiledEventFilter.new(criteria) == compiled
    decoded = engine_decode(engine, CompiledEventFilter, row["compiled_json"])
    assert decoded == compiled
    assert decoded.criteria == criteria
    assert engine_encode(engine, decoded) == row["compiled_json"]


@pytest.mark.parametrize("row", FILTERS, ids=[row["case"] for row in FILTERS])
def test_filter_hashes_follow_the_rule(row) -> None:
    compiled = wire.decode(CompiledEventFilter, row["compiled_json"])
    fingerprint = "sha256:" + hashlib.sha256(row["criteria_json"].encode("utf-8")).hexdigest()
    assert compiled.filter_fingerprint == fingerprint
    assert compiled.filter_id == "filter." + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()
    assert wire.encode(wire.decode(EventFilter, row["criteria_json"])) == row["criteria_json"]


def test_filter_helper_constructors_match_fixtures() -> None:
    by_case = {row["case"]: row for row in FILTERS}
    assert wire.encode(EventFilter()) == by_case["default"]["criteria_json"]
    assert wire.encode(EventFilter.terminal_run_events()) == by_case["terminal_run_events"]["criteria_json"]
    assert wire.encode(EventFilter.agent("agent.helper")) == by_case["agent_helper"]["criteria_json"]
    assert wire.encode(EventFilter.terminal_run_events().compile()) == by_case["terminal_run_events"]["compiled_json"]


def test_filter_unvalidated_tags_keep_control_characters() -> None:
    (row,) = [row for row in FILTERS if row["case"] == "tags_special_chars"]
    criteria = wire.decode(EventFilter, row["criteria_json"])
    assert "" in criteria.tags
    assert any("\x00" in tag for tag in criteria.tags)
    assert wire.encode(criteria) == row["criteria_json"]


# ---------------------------------------------------------------- errors.jsonl


@pytest.mark.parametrize("row", ERRORS, ids=[row["case"] for row in ERRORS])
def test_error_fixture(row) -> None:
    error = wire.decode(AgentError, row["json"])
    assert isinstance(error, AgentError)
    assert wire.encode(error) == row["json"]
    assert str(error) == row["display"]
    assert error.kind is AgentErrorKind(row["kind"])
    assert error.retry is RetryClassification(row["retry"])
    (variant,) = orjson.loads(row["json"])
    assert error.variant == variant
    # decoding is deterministic and equality is by value, context and causal ids included
    assert wire.decode(AgentError, row["json"].encode("utf-8")) == error


def _empty_context(row: dict[str, Any]) -> bool:
    """True unless the error is a Classified with context or causal ids (Rust's with_* builders)."""
    body = orjson.loads(row["json"]).get("Classified")
    if body is None:
        return True
    context, causal = body["context"], body["causal_ids"]
    return (
        context["policy_refs"] == []
        and all(value is None for key, value in context.items() if key not in ("message", "policy_refs"))
        and causal["related"] == []
        and all(value is None for key, value in causal.items() if key != "related")
    )


PLAIN_ERRORS = [row for row in ERRORS if _empty_context(row)]


@pytest.mark.parametrize("row", PLAIN_ERRORS, ids=[row["case"] for row in PLAIN_ERRORS])
def test_error_fixture_rebuilt_from_public_constructors(row) -> None:
    """Every error without context rebuilds, byte for byte, from the SPEC §2.2 constructors."""
    ((variant, body),) = orjson.loads(row["json"]).items()
    if variant == "ContractViolation":
        built = AgentError.contract_violation(body["message"])
    elif variant == "HostConfigurationNeeded":
        built = AgentError.host_configuration_needed(body["message"])
    elif variant == "MissingRequiredField":
        built = AgentError.missing_required_field(body["field"])
    else:
        built = AgentError(body["kind"], body["retry"], body["context"]["message"])
    assert wire.encode(built) == row["json"]
    assert str(built) == row["display"]
    assert built == wire.decode(AgentError, row["json"])


def test_error_fixture_values_are_known() -> None:
    assert len(ERRORS) == 34
    assert {row["kind"] for row in ERRORS} <= {member.value for member in AgentErrorKind}
    assert {row["retry"] for row in ERRORS} == {member.value for member in RetryClassification}


@pytest.mark.parametrize("kind", list(AgentErrorKind), ids=lambda kind: kind.value)
def test_every_kind_roundtrips_in_the_classified_template(kind) -> None:
    """The fixtures miss two kinds; the Classified JSON template of REFERENCE §3.3 covers all 20."""
    (template,) = [row["json"] for row in ERRORS if row["case"] == "new_InvalidStateTransition_NotRetryable"]
    body = orjson.loads(template)["Classified"]
    expected = template.replace('"kind":"InvalidStateTransition"', f'"kind":"{kind.value}"', 1)
    error = AgentError(kind, RetryClassification.NOT_RETRYABLE, body["context"]["message"])
    assert wire.encode(error) == expected
    assert wire.decode(AgentError, expected) == error
    assert str(error) == f"{kind.value}: {body['context']['message']}"


# ---------------------------------------------------------------- invalid_ids.jsonl


@pytest.mark.parametrize("row", INVALID_IDS, ids=[_id_case(row) for row in INVALID_IDS])
def test_validate_id(row) -> None:
    value, expected = row["value"], row["error"]
    if expected is None:
        assert validate_id(value) == value
    else:
        with pytest.raises(InvalidInput) as caught:
            validate_id(value)
        assert caught.value.message == expected


@pytest.mark.parametrize("row", BAD_IDS, ids=[_id_case(row) for row in BAD_IDS])
def test_invalid_id_as_model_field(row) -> None:
    with pytest.raises(InvalidInput) as caught:
        AgentPoolMember(run_id=row["value"], agent_id="a")
    assert row["error"] in caught.value.message
    assert "run_id" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        RunTarget(run_id=row["value"])
    assert row["error"] in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        PolicyRef.new(row["value"])
    assert row["error"] in caught.value.message


@pytest.mark.parametrize("row", INVALID_IDS, ids=[_id_case(row) for row in INVALID_IDS])
def test_id_inside_json(engine, row) -> None:
    value, expected = row["value"], row["error"]
    member = {"run_id": "run.a", "agent_id": value}
    text = orjson.dumps({"type": "member_joined", "member": member}).decode()
    if expected is None:
        payload = engine.decode_payload(text)
        assert payload.member.agent_id == value
        assert engine_encode(engine, payload) == text
        assert wire.decode(AgentPoolStoreRecordPayload, text) == payload
        return
    with pytest.raises(InvalidInput) as caught:
        engine.decode_payload(text)
    assert expected in caught.value.message
    assert "member.agent_id" in caught.value.message
    with pytest.raises(InvalidInput) as caught:
        wire.decode(AgentPoolMember, orjson.dumps(member))
    assert expected in caught.value.message
    assert "agent_id" in caught.value.message


def test_valid_id_edge_cases_are_present() -> None:
    # the fixture covers the odd-but-valid ids the rule must not reject
    assert "\u00a0" in VALID_IDS
    assert "  leading and trailing  " in VALID_IDS
    assert any(len(value.encode()) == 512 for value in VALID_IDS)
    assert any(len(row["value"].encode()) == 513 for row in BAD_IDS)
