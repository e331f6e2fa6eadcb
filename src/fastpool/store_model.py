"""The value classes of the Rust crate's other stores: checkpoints, content, tool executions.

Declared like ``model.py`` (Rust declaration order is the wire order). Where Rust has an enum
that no fastpool class reads (a tool's ``effect_class``, a content ``kind``), the field is a
plain ``str``: its text round-trips byte for byte and fastpool never branches on it.

>>> from fastpool import wire
>>> wire.encode(CheckpointPrunePolicy(prune_covered_before=4, preserve_latest_terminal=True))
'{"prune_covered_before":4,"preserve_latest_terminal":true}'
"""

from __future__ import annotations

from typing import Any, ClassVar, Union

from ._schema import Model, U32Int, U64Int, to_plain
from .enums import AgentErrorKind, PrivacyClass, RetentionClass, RetryClassification, TrustClass
from .errors import AgentError
from .ids import EntityId, IdempotencyKey, JournalCursor, RunId
from .model import DestinationRef, EffectIntent, EffectResult, EntityRef, PolicyRef, SourceRef

__all__ = [
    "PendingSideEffect",
    "RunCheckpoint",
    "CheckpointSaveOutcome",
    "CheckpointPrunePolicy",
    "CheckpointPruneReport",
    "ArtifactRef",
    "ContentReference",
    "ContentResolveRequest",
    "ContentResolutionPolicy",
    "ResolvedContent",
    "ContentResolutionError",
    "SidecarRef",
    "PolicyReason",
    "PolicyAllow",
    "PolicyDeny",
    "ApprovalRequestSpec",
    "PolicyAsk",
    "ToolRequestModification",
    "PolicyModify",
    "ResumePolicy",
    "PolicyDefer",
    "PolicyInterrupt",
    "PolicyDecision",
    "PolicyOutcome",
    "ToolCallRecord",
    "ToolExecutionStoreRecord",
    "ToolExecutionStoreCursor",
]

# ---------------------------------------------------------------- checkpoints


class PendingSideEffect(Model):
    """A side effect a checkpoint saw announced but not finished."""

    effect_id: EntityId
    intent_record_id: str
    idempotency_key: IdempotencyKey | None = None
    dedupe_key: str | None = None
    unsafe_pending_reason: str


class RunCheckpoint(Model):
    """Checkpoint accelerator data of a run, covering its journal up to ``covers_journal_seq``."""

    checkpoint_id: str
    run_id: RunId
    checkpoint_seq: U64Int
    covers_journal_seq: U64Int
    loop_state: str
    turn_id: str | None = None
    attempt_id: str | None = None
    runtime_package_fingerprint: str
    pending_side_effects: tuple[PendingSideEffect, ...] = ()
    pending_approvals: tuple[str, ...] = ()
    content_ref_manifest: tuple[str, ...] = ()
    state_hash: str
    created_at_millis: U64Int
    writer_id: str


class CheckpointSaveOutcome(Model):
    """What ``save`` stored: the checkpoint id, its covered sequence, whether it is terminal."""

    checkpoint_ref: str
    covers_journal_seq: U64Int
    terminal_checkpoint: bool


class CheckpointPrunePolicy(Model):
    """Prune checkpoints covering less than ``prune_covered_before``."""

    prune_covered_before: U64Int
    preserve_latest_terminal: bool


class CheckpointPruneReport(Model):
    """What ``prune`` deleted and kept."""

    _plain_serde = True
    run_id: RunId
    pruned_count: U64Int
    retained_count: U64Int
    preserved_terminal_checkpoint: str | None = None


# ---------------------------------------------------------------- content


class ArtifactRef(Model):
    """The artifact a content item belongs to."""

    _plain_serde = True
    artifact_id: str
    version: str
    scope: str
    storage_ref: str
    mime: str | None = None
    size_bytes: U64Int | None = None
    content_hash: str | None = None
    producer_ref: EntityRef
    source_ref: SourceRef
    destination_ref: DestinationRef | None = None
    privacy_class: PrivacyClass
    retention_class: RetentionClass
    trust_class: TrustClass
    redacted_summary: str


class ContentReference(Model):
    """Rust ``content::ContentRef``, the struct that describes stored content.

    (``fastpool.ContentRef`` is the id type, Rust ``domain::ContentRef``.) ``content_id`` and
    ``version`` are free text: Rust stores any string there.
    """

    _plain_serde = True
    content_id: str
    version: str
    kind: str
    artifact_ref: ArtifactRef | None = None
    scope: str
    producer_ref: EntityRef
    source_ref: SourceRef
    destination_ref: DestinationRef | None = None
    mime: str | None = None
    size_bytes: U64Int | None = None
    content_hash: str | None = None
    privacy_class: PrivacyClass
    retention_class: RetentionClass
    trust_class: TrustClass
    resolver_ref: str
    redacted_summary: str


class ContentResolveRequest(Model):
    """A request to resolve ``content_ref`` at ``requested_version``."""

    _plain_serde = True
    content_ref: ContentReference
    requested_version: str


class ContentResolutionPolicy(Model):
    """What a resolve may return: raw bytes or not, how many, whether the hash must match."""

    _plain_serde = True
    caller_ref: EntityRef
    destination_ref: DestinationRef
    purpose: str
    allowed_privacy_classes: tuple[PrivacyClass, ...]
    max_bytes: U64Int
    require_hash_match: bool
    retention_use: str
    on_missing: str
    allow_raw_content: bool
    policy_refs: tuple[PolicyRef, ...]


class ResolvedContent(Model):
    """A resolved content item: the stored ref and, if the policy allows raw content, its bytes."""

    _plain_serde = True
    content_ref: ContentReference
    mime: str | None = None
    bytes: tuple[U32Int, ...] | None = None  # Rust Vec<u8>, serde's array of numbers
    redacted_summary: str
    policy_refs: tuple[PolicyRef, ...]
    raw_content_included: bool


# Rust ContentResolutionErrorKind (snake_case) -> its Debug name; to_agent_error() retries
# missing after repair, storage_unavailable at once, nothing else.
_RESOLUTION_KINDS = {
    "missing": ("Missing", RetryClassification.REPAIR_NEEDED),
    "expired": ("Expired", RetryClassification.NOT_RETRYABLE),
    "permission_denied": ("PermissionDenied", RetryClassification.NOT_RETRYABLE),
    "storage_unavailable": ("StorageUnavailable", RetryClassification.RETRYABLE),
    "version_mismatch": ("VersionMismatch", RetryClassification.NOT_RETRYABLE),
    "hash_mismatch": ("HashMismatch", RetryClassification.NOT_RETRYABLE),
    "unsupported_mime": ("UnsupportedMime", RetryClassification.NOT_RETRYABLE),
    "raw_content_not_allowed": ("RawContentNotAllowed", RetryClassification.NOT_RETRYABLE),
    "max_bytes_exceeded": ("MaxBytesExceeded", RetryClassification.NOT_RETRYABLE),
}


class ContentResolutionError(AgentError):
    """Rust ``ContentResolutionError``: why content could not be resolved or stored.

    As an ``AgentError`` it is ``to_agent_error()`` (kind ``PROJECTION_FAILURE``); ``str()`` is
    Rust's ``Display`` and ``wire.encode`` writes the struct's own JSON.
    """

    def __init__(self, resolution_kind: str, content_ref: ContentReference, policy_refs: tuple[PolicyRef, ...]) -> None:
        name, retry = _RESOLUTION_KINDS[resolution_kind]
        super().__init__(AgentErrorKind.PROJECTION_FAILURE, retry, f"content resolution failed: {name}")
        self.resolution_kind = resolution_kind
        self.content_ref = content_ref
        self.policy_refs = tuple(policy_refs)
        self.redacted_summary = content_ref.redacted_summary

    def to_agent_error(self) -> AgentError:
        """Rust ``to_agent_error()``: the classified ``AgentError`` a caller passes on."""
        return AgentError(self.kind, self.retry, self.message)

    def to_plain(self) -> dict[str, Any]:
        """The JSON-shaped value of Rust's serde (what ``wire.encode`` writes)."""
        return {
            "kind": self.resolution_kind,
            "content_ref": to_plain(self.content_ref),
            "policy_refs": [to_plain(ref) for ref in self.policy_refs],
            "redacted_summary": self.redacted_summary,
        }

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        return (ContentResolutionError, (self.resolution_kind, self.content_ref, self.policy_refs))


# ---------------------------------------------------------------- tool executions


class SidecarRef(Model):
    """A sidecar (schema, manifest) a tool call was checked against."""

    sidecar_id: str
    kind: str
    version: str


class PolicyReason(Model):
    """Why a policy decided as it did."""

    _plain_serde = True
    code: str
    redacted_summary: str | None = None
    policy_refs: tuple[PolicyRef, ...] = ()


class PolicyAllow(Model):
    """Decision ``Allow``."""

    TAG: ClassVar[str] = "Allow"
    _tag_key = None
    reason: PolicyReason


class PolicyDeny(Model):
    """Decision ``Deny``."""

    TAG: ClassVar[str] = "Deny"
    _tag_key = None
    reason: PolicyReason


class ApprovalRequestSpec(Model):
    """The approval a policy asks for: who asks whom, about what, how long it may take, and
    which answers it takes. ``effect_class``, ``risk_class``, ``dispatcher_scope`` and each of
    ``allowed_decisions`` are Rust enum names kept as text (``"Write"``, ``"High"``, ``"Host"``,
    ``"Approved"``)."""

    _plain_serde = True
    source: SourceRef
    destination: DestinationRef
    effect_class: str
    risk_class: str
    dispatcher_scope: str
    timeout_ms: U64Int
    allowed_decisions: tuple[str, ...]
    policy_refs: tuple[PolicyRef, ...] = ()


class PolicyAsk(Model):
    """Decision ``Ask``: an approval is needed first."""

    TAG: ClassVar[str] = "Ask"
    _tag_key = None
    approval: ApprovalRequestSpec


class ToolRequestModification(Model):
    """How a policy modified a tool request."""

    _plain_serde = True
    redacted_summary: str
    policy_refs: tuple[PolicyRef, ...] = ()


class PolicyModify(Model):
    """Decision ``Modify``."""

    TAG: ClassVar[str] = "Modify"
    _tag_key = None
    modification: ToolRequestModification


class ResumePolicy(Model):
    """When a deferred decision resumes."""

    _plain_serde = True
    resume_after_ms: U64Int | None = None
    reason: PolicyReason


class PolicyDefer(Model):
    """Decision ``Defer``."""

    TAG: ClassVar[str] = "Defer"
    _tag_key = None
    resume_policy: ResumePolicy


class PolicyInterrupt(Model):
    """Decision ``Interrupt``."""

    TAG: ClassVar[str] = "Interrupt"
    _tag_key = None
    reason: PolicyReason


PolicyDecision = Union[PolicyAllow, PolicyDeny, PolicyAsk, PolicyModify, PolicyDefer, PolicyInterrupt]
"""A policy decision (serde's external tagging: ``{"Allow":{...}}``), variants in Rust's order."""


class PolicyOutcome(Model):
    """A policy stage's decision about a subject."""

    _plain_serde = True
    stage: str
    decision: PolicyDecision
    subject: EntityRef | None = None
    source: SourceRef | None = None
    destination: DestinationRef | None = None
    policy_refs: tuple[PolicyRef, ...] = ()
    privacy: PrivacyClass
    retention: RetentionClass


class ToolCallRecord(Model):
    """A tool call as the journal records it, from request to result."""

    tool_call_id: str
    run_id: RunId
    turn_id: str | None = None
    capability_id: str
    canonical_tool_name: str
    namespace: str
    source: SourceRef
    destination: DestinationRef
    executor_ref: str | None = None
    policy_refs: tuple[PolicyRef, ...] = ()
    sidecar_refs: tuple[SidecarRef, ...] = ()
    effect_class: str
    risk_class: str
    privacy: PrivacyClass
    retention: RetentionClass
    requested_args_refs: tuple[str, ...] = ()
    redacted_args_summary: str
    original_redacted_args_summary: str | None = None
    patched_redacted_args_summary: str | None = None
    result_content_refs: tuple[str, ...] = ()
    redacted_result_summary: str | None = None
    original_redacted_result_summary: str | None = None
    patched_redacted_result_summary: str | None = None
    hook_id: str | None = None
    idempotency_key: IdempotencyKey | None = None
    status: str
    policy_outcome: PolicyOutcome | None = None
    effect_intent: EffectIntent | None = None
    effect_result: EffectResult | None = None
    unsafe_pending_reason: str | None = None


class ToolExecutionStoreRecord(Model):
    """A tool call record projected for lookup by run, tool call, idempotency key or effect."""

    run_id: RunId
    tool_call_id: str
    effect_id: str | None = None
    idempotency_key: str | None = None
    dedupe_key: str | None = None
    journal_seq: U64Int
    journal_cursor: JournalCursor | None = None
    record: ToolCallRecord


class ToolExecutionStoreCursor(Model):
    """What ``put_tool_execution_record`` returns: the run's row count after the write."""

    sequence: U64Int
