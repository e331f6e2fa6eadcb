"""The other stores' value classes beyond what the golden scenarios hold: every policy decision
variant and the content error, through ``fastpool.wire`` (run on both engines by CI)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from fastpool import InvalidInput, wire
from fastpool.enums import RetryClassification
from fastpool.model import DestinationRef, SourceRef
from fastpool.store_model import (
    ApprovalRequestSpec,
    ContentReference,
    ContentResolutionError,
    PolicyAllow,
    PolicyAsk,
    PolicyDefer,
    PolicyDeny,
    PolicyInterrupt,
    PolicyModify,
    PolicyOutcome,
    PolicyReason,
    ResumePolicy,
    ToolRequestModification,
)

REASON = PolicyReason(code="policy.code")
REASON_JSON = '{"code":"policy.code","redacted_summary":null,"policy_refs":[]}'
SOURCE_JSON = '{"kind":"sdk","id":"source.sdk.tool","trust":"host_provided","privacy":"content_refs_only"}'
DESTINATION_JSON = (
    '{"kind":"tool","id":"destination.tool.shell","privacy":"content_refs_only","retention":"host_policy"}'
)
# Rust's ApprovalRequestSpec has no serde attributes: every field written, in declaration order.
APPROVAL = ApprovalRequestSpec(
    source=wire.decode(SourceRef, SOURCE_JSON),
    destination=wire.decode(DestinationRef, DESTINATION_JSON),
    effect_class="Write",
    risk_class="High",
    dispatcher_scope="Host",
    timeout_ms=30_000,
    allowed_decisions=("Approved", "ApprovedForSession", "Denied"),
)
APPROVAL_JSON = (
    '{"source":' + SOURCE_JSON + ',"destination":' + DESTINATION_JSON + ',"effect_class":"Write",'
    '"risk_class":"High","dispatcher_scope":"Host","timeout_ms":30000,'
    '"allowed_decisions":["Approved","ApprovedForSession","Denied"],"policy_refs":[]}'
)
DECISIONS = [
    (PolicyAllow(reason=REASON), '{"Allow":{"reason":' + REASON_JSON + "}}"),
    (PolicyDeny(reason=REASON), '{"Deny":{"reason":' + REASON_JSON + "}}"),
    (PolicyAsk(approval=APPROVAL), '{"Ask":{"approval":' + APPROVAL_JSON + "}}"),
    (PolicyInterrupt(reason=REASON), '{"Interrupt":{"reason":' + REASON_JSON + "}}"),
    (
        PolicyModify(modification=ToolRequestModification(redacted_summary="patched")),
        '{"Modify":{"modification":{"redacted_summary":"patched","policy_refs":[]}}}',
    ),
    (
        PolicyDefer(resume_policy=ResumePolicy(resume_after_ms=None, reason=REASON)),
        '{"Defer":{"resume_policy":{"resume_after_ms":null,"reason":' + REASON_JSON + "}}}",
    ),
]


@pytest.mark.parametrize(("decision", "text"), DECISIONS, ids=[type(d).__name__ for d, _ in DECISIONS])
def test_policy_decisions_are_externally_tagged(decision: Any, text: str) -> None:
    outcome = PolicyOutcome(stage="PreTool", decision=decision, privacy="internal", retention="run_scoped")
    expected = (
        '{"stage":"PreTool","decision":' + text + ',"subject":null,"source":null,"destination":null,'
        '"policy_refs":[],"privacy":"internal","retention":"run_scoped"}'
    )
    assert wire.encode(outcome) == expected
    assert wire.decode(PolicyOutcome, expected) == outcome


def test_content_resolution_error_is_an_agent_error_with_rusts_json() -> None:
    ref = wire.decode(
        ContentReference,
        '{"content_id":"content.a","version":"v1","kind":"text","scope":"run",'
        '"producer_ref":{"kind":"run","id":"run.a","privacy":"content_refs_only"},'
        '"source_ref":{"kind":"host","id":"source.a","trust":"host_provided","privacy":"content_refs_only"},'
        '"privacy_class":"content_refs_only","retention_class":"run_scoped","trust_class":"host_provided",'
        '"resolver_ref":"adapter.sqlite.content","redacted_summary":"a"}',
    )
    error = ContentResolutionError("storage_unavailable", ref, ())
    assert str(error) == "content resolution failed: StorageUnavailable"
    assert error.to_agent_error().retry is RetryClassification.RETRYABLE
    assert wire.encode(error).startswith('{"kind":"storage_unavailable","content_ref":{"content_id":"content.a"')
    again = pickle.loads(pickle.dumps(error))
    assert wire.encode(again) == wire.encode(error) and str(again) == str(error)


def test_ask_needs_every_field_of_its_approval(engine, monkeypatch) -> None:
    """serde requires each field of a struct without attributes (its Vecs too)."""
    monkeypatch.setattr(wire, "engine", engine)
    outcome = (
        '{"stage":"PreTool","decision":{"Ask":{"approval":%s}},"subject":null,"source":null,"destination":null,'
        '"policy_refs":[],"privacy":"internal","retention":"run_scoped"}'
    )
    decoded = wire.decode(PolicyOutcome, outcome % APPROVAL_JSON)
    assert decoded.decision == PolicyAsk(approval=APPROVAL)
    for field in ('"policy_refs":[]', '"allowed_decisions":["Approved","ApprovedForSession","Denied"]'):
        text = APPROVAL_JSON.replace("," + field, "")
        with pytest.raises(InvalidInput, match="missing field"):
            wire.decode(PolicyOutcome, outcome % text)
    with pytest.raises(InvalidInput):
        wire.decode(PolicyOutcome, outcome.replace('{"approval":%s}', "{}") % ())
