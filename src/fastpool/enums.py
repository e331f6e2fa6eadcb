"""The Rust enum catalogs, in their declaration order.

Every enum is ``str``-valued: the value is the wire string, so a member compares equal to
it and encodes as it. Members are the UPPER_SNAKE form of the Rust variant.
"""

from __future__ import annotations

import enum


class WireEnum(str, enum.Enum):
    """A ``str`` enum whose value is its serde wire string."""

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


class PolicyKind(WireEnum):
    """What a ``PolicyRef`` refers to."""

    APPROVAL = "approval"
    PERMISSION = "permission"
    SANDBOX = "sandbox"
    CONTEXT = "context"
    PRIVACY = "privacy"
    RETENTION = "retention"
    REDACTION = "redaction"
    RUNTIME_PACKAGE = "runtime_package"
    HOST = "host"


class DestinationKind(WireEnum):
    """Where a ``DestinationRef`` points."""

    AGENT = "agent"
    AGENT_POOL = "agent_pool"
    TOPIC = "topic"
    PROVIDER = "provider"
    CONTEXT_PROJECTION = "context_projection"
    JOURNAL = "journal"
    EVENT_STREAM = "event_stream"
    TELEMETRY = "telemetry"
    OUTPUT_SINK = "output_sink"
    HOST = "host"
    USER = "user"
    REMOTE_CHANNEL = "remote_channel"
    TOOL = "tool"
    EXTENSION = "extension"
    SUBAGENT = "subagent"
    EXTERNAL_RUNTIME = "external_runtime"


class EntityKind(WireEnum):
    """What an ``EntityRef`` names."""

    RUN = "run"
    TURN = "turn"
    ATTEMPT = "attempt"
    AGENT = "agent"
    AGENT_POOL = "agent_pool"
    TOPIC = "topic"
    EVENT = "event"
    MESSAGE = "message"
    WAKE_CONDITION = "wake_condition"
    CONTEXT_CONTRIBUTION = "context_contribution"
    CONTEXT_ITEM = "context_item"
    CONTEXT_PROJECTION = "context_projection"
    CONTENT = "content"
    ARTIFACT = "artifact"
    CAPABILITY = "capability"
    PACKAGE_SIDECAR = "package_sidecar"
    RUNTIME_PACKAGE = "runtime_package"
    POLICY_DECISION = "policy_decision"
    EFFECT = "effect"
    EFFECT_INTENT = "effect_intent"
    EFFECT_RESULT = "effect_result"
    TOOL_CALL = "tool_call"
    APPROVAL_REQUEST = "approval_request"
    STREAM_RULE = "stream_rule"
    REALTIME_SESSION = "realtime_session"
    HOOK = "hook"
    EXECUTION_ENVIRONMENT = "execution_environment"
    CHILD_ARTIFACT = "child_artifact"
    SUBAGENT_RUN = "subagent_run"
    EXTENSION_ACTION = "extension_action"
    OUTPUT_DELIVERY = "output_delivery"


class SourceKind(WireEnum):
    """Where a ``SourceRef`` comes from."""

    SDK = "sdk"
    HOST = "host"
    USER = "user"
    SYSTEM = "system"
    DEVELOPER = "developer"
    MEMORY = "memory"
    COMPACTION = "compaction"
    HOOK = "hook"
    EXTENSION = "extension"
    TOOL = "tool"
    REMOTE_CHANNEL = "remote_channel"
    SCHEDULED_TASK = "scheduled_task"
    SUBAGENT = "subagent"
    EXTERNAL_RUNTIME = "external_runtime"
    REPLAY = "replay"


class PrivacyClass(WireEnum):
    """How private a referenced value is."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONTENT_REFS_ONLY = "content_refs_only"
    SENSITIVE = "sensitive"
    SECRET = "secret"


class RetentionClass(WireEnum):
    """How long a destination keeps data."""

    EPHEMERAL = "ephemeral"
    RUN_SCOPED = "run_scoped"
    SESSION_SCOPED = "session_scoped"
    DURABLE = "durable"
    PERSISTENT = "persistent"
    HOST_POLICY = "host_policy"


class TrustClass(WireEnum):
    """How far a source is trusted."""

    TRUSTED = "trusted"
    SDK_GENERATED = "sdk_generated"
    HOST_PROVIDED = "host_provided"
    USER_PROVIDED = "user_provided"
    EXTERNAL = "external"
    UNTRUSTED = "untrusted"


class MessageStatus(WireEnum):
    """The status a ``MessageReceipt`` records."""

    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    RESPONDED = "responded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ResumeInputPolicy(WireEnum):
    """What a woken run resumes with."""

    MATCHING_EVENT_REFS = "matching_event_refs"
    REDACTED_SUMMARY = "redacted_summary"
    NONE = "none"


class WakeRegistrationStatus(WireEnum):
    """The status a ``WakeRegistration`` records."""

    REGISTERED = "registered"
    TRIGGERED = "triggered"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    FAILED = "failed"


class EventFamily(WireEnum):
    """The family of an event (filter sets)."""

    RUN = "run"
    TURN = "turn"
    MESSAGE = "message"
    MODEL = "model"
    TOOL = "tool"
    APPROVAL = "approval"
    HOOK = "hook"
    CONTEXT = "context"
    STREAM_RULE = "stream_rule"
    REALTIME = "realtime"
    ISOLATION = "isolation"
    CHILD_LIFECYCLE = "child_lifecycle"
    AGENT_POOL = "agent_pool"
    SUBAGENT = "subagent"
    EXTENSION = "extension"
    STRUCTURED_OUTPUT = "structured_output"
    OUTPUT = "output"
    OUTPUT_DELIVERY = "output_delivery"
    TELEMETRY = "telemetry"
    RECOVERY = "recovery"


class EventKind(WireEnum):
    """The kind of an event (filter sets)."""

    RUN_STARTED = "run_started"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_CHECKPOINTED = "run_checkpointed"
    RUN_CANCEL_REQUESTED = "run_cancel_requested"
    RUN_RESUME_REQUESTED = "run_resume_requested"
    RUN_RESUME_FAILED = "run_resume_failed"
    TURN_STARTED = "turn_started"
    TURN_COMPLETED = "turn_completed"
    TURN_FAILED = "turn_failed"
    MESSAGE_ACCEPTED = "message_accepted"
    MESSAGE_COMMITTED = "message_committed"
    PROVIDER_REQUEST_PROJECTED = "provider_request_projected"
    MODEL_ATTEMPT_STARTED = "model_attempt_started"
    MODEL_STREAM_DELTA = "model_stream_delta"
    MODEL_MESSAGE_COMPLETED = "model_message_completed"
    MODEL_ATTEMPT_FAILED = "model_attempt_failed"
    TOOL_REQUESTED = "tool_requested"
    TOOL_STARTED = "tool_started"
    TOOL_COMPLETED = "tool_completed"
    TOOL_FAILED = "tool_failed"
    TOOL_DENIED = "tool_denied"
    TOOL_RECOVERY_REQUIRED = "tool_recovery_required"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_DISPATCHED = "approval_dispatched"
    APPROVAL_DISPATCH_UNAVAILABLE = "approval_dispatch_unavailable"
    APPROVAL_RESPONDED = "approval_responded"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_TIMED_OUT = "approval_timed_out"
    APPROVAL_CANCELLED = "approval_cancelled"
    HOOK_REGISTERED = "hook_registered"
    HOOK_INVOKED = "hook_invoked"
    HOOK_COMPLETED = "hook_completed"
    HOOK_FAILED = "hook_failed"
    HOOK_TIMED_OUT = "hook_timed_out"
    HOOK_CANCELLED = "hook_cancelled"
    HOOK_RESPONSE_APPLIED = "hook_response_applied"
    HOOK_RESPONSE_REJECTED = "hook_response_rejected"
    CONTEXT_ASSEMBLED = "context_assembled"
    STREAM_RULE_REGISTERED = "stream_rule_registered"
    STREAM_RULE_COMPILE_FAILED = "stream_rule_compile_failed"
    STREAM_RULE_MATCHED = "stream_rule_matched"
    STREAM_INTERVENTION_REQUESTED = "stream_intervention_requested"
    STREAM_INTERVENTION_APPLIED = "stream_intervention_applied"
    STREAM_RULE_REPEAT_STATE_RECORDED = "stream_rule_repeat_state_recorded"
    REALTIME_CONNECT_REQUESTED = "realtime_connect_requested"
    REALTIME_CONNECTED = "realtime_connected"
    REALTIME_INPUT_SEND_REQUESTED = "realtime_input_send_requested"
    REALTIME_INPUT_SENT = "realtime_input_sent"
    REALTIME_OUTPUT_RECEIVE_REQUESTED = "realtime_output_receive_requested"
    REALTIME_OUTPUT_RECEIVED = "realtime_output_received"
    REALTIME_INTERRUPTED = "realtime_interrupted"
    REALTIME_RESTART_REQUESTED = "realtime_restart_requested"
    REALTIME_RESTART_STARTED = "realtime_restart_started"
    REALTIME_RESTART_COMPLETED = "realtime_restart_completed"
    REALTIME_RESTART_FAILED = "realtime_restart_failed"
    REALTIME_CLOSE_REQUESTED = "realtime_close_requested"
    REALTIME_CLOSED = "realtime_closed"
    REALTIME_BACKPRESSURE_APPLIED = "realtime_backpressure_applied"
    ISOLATION_REQUESTED = "isolation_requested"
    ISOLATION_ADAPTER_HEALTH_CHECKED = "isolation_adapter_health_checked"
    ISOLATION_CAPABILITY_MATCHED = "isolation_capability_matched"
    ISOLATION_DOWNGRADE_DENIED = "isolation_downgrade_denied"
    ISOLATION_DOWNGRADE_APPROVED = "isolation_downgrade_approved"
    ISOLATION_ENVIRONMENT_PREPARED = "isolation_environment_prepared"
    ISOLATION_PROCESS_STARTED = "isolation_process_started"
    ISOLATION_PROCESS_IO_CAPTURED = "isolation_process_io_captured"
    ISOLATION_PROCESS_STATS_RECORDED = "isolation_process_stats_recorded"
    ISOLATION_CLEANUP_STARTED = "isolation_cleanup_started"
    ISOLATION_CLEANUP_COMPLETED = "isolation_cleanup_completed"
    ISOLATION_CLEANUP_FAILED = "isolation_cleanup_failed"
    ISOLATION_FAILED = "isolation_failed"
    CHILD_LIFECYCLE_REQUESTED = "child_lifecycle_requested"
    CHILD_LIFECYCLE_COMPLETED = "child_lifecycle_completed"
    CHILD_LIFECYCLE_DETACHED = "child_lifecycle_detached"
    SUBAGENT_STARTED = "subagent_started"
    SUBAGENT_HANDOFF = "subagent_handoff"
    SUBAGENT_EVENT_WRAPPED = "subagent_event_wrapped"
    SUBAGENT_USAGE_ROLLED_UP = "subagent_usage_rolled_up"
    SUBAGENT_COMPLETED = "subagent_completed"
    EXTENSION_ACTION_SUBMITTED = "extension_action_submitted"
    EXTENSION_ACTION_STARTED = "extension_action_started"
    EXTENSION_ACTION_COMPLETED = "extension_action_completed"
    EXTENSION_ACTION_FAILED = "extension_action_failed"
    EXTENSION_ACTION_DENIED = "extension_action_denied"
    OUTPUT_DISPATCH_REQUESTED = "output_dispatch_requested"
    OUTPUT_DISPATCH_COMPLETED = "output_dispatch_completed"
    OUTPUT_DISPATCH_FAILED = "output_dispatch_failed"
    OUTPUT_DISPATCH_DEDUPED = "output_dispatch_deduped"
    STRUCTURED_OUTPUT_REQUESTED = "structured_output_requested"
    STRUCTURED_OUTPUT_VALIDATION_STARTED = "structured_output_validation_started"
    STRUCTURED_OUTPUT_VALIDATION_FAILED = "structured_output_validation_failed"
    STRUCTURED_OUTPUT_REPAIR_REQUESTED = "structured_output_repair_requested"
    STRUCTURED_OUTPUT_VALIDATED = "structured_output_validated"
    STRUCTURED_OUTPUT_FAILED = "structured_output_failed"
    TELEMETRY_SINK_FAILED = "telemetry_sink_failed"
    TELEMETRY_SINK_RECOVERED = "telemetry_sink_recovered"
    USAGE_RECORDED = "usage_recorded"
    COST_ESTIMATED = "cost_estimated"
    COST_CORRECTED = "cost_corrected"
    REPLAY_STARTED = "replay_started"
    REPLAY_COMPLETED = "replay_completed"
    REPLAY_FAILED = "replay_failed"
    AGENT_POOL_CREATED = "agent_pool_created"
    AGENT_POOL_RUN_JOINED = "agent_pool_run_joined"
    AGENT_POOL_RUN_LEFT = "agent_pool_run_left"
    RUN_MESSAGE_ACCEPTED = "run_message_accepted"
    RUN_MESSAGE_DELIVERED = "run_message_delivered"
    RUN_MESSAGE_RESPONDED = "run_message_responded"
    RUN_MESSAGE_FAILED = "run_message_failed"
    RUN_MESSAGE_TIMED_OUT = "run_message_timed_out"
    RUN_MESSAGE_EXPIRED = "run_message_expired"
    RUN_MESSAGE_CANCELLED = "run_message_cancelled"
    WAKE_CONDITION_REGISTERED = "wake_condition_registered"
    WAKE_CONDITION_TRIGGERED = "wake_condition_triggered"
    WAKE_CONDITION_TIMED_OUT = "wake_condition_timed_out"
    WAKE_CONDITION_CANCELLED = "wake_condition_cancelled"
    WAKE_CONDITION_FAILED = "wake_condition_failed"


class EventDeliverySemantics(WireEnum):
    """How an event is delivered (filter sets)."""

    BEST_EFFORT_LIVE = "best_effort_live"
    JOURNAL_BACKED = "journal_backed"
    DERIVED_REPLAY = "derived_replay"
    DIAGNOSTIC_ONLY = "diagnostic_only"


class PayloadAccessMode(WireEnum):
    """How much payload a subscriber may see."""

    ENVELOPE_ONLY = "envelope_only"
    REDACTED_SUMMARY = "redacted_summary"
    PAYLOAD_REFS = "payload_refs"
    FULL_PAYLOAD_IF_POLICY_ALLOWS = "full_payload_if_policy_allows"


class SubscriberOverflowPolicy(WireEnum):
    """What a full subscriber queue does."""

    DROP_NON_TERMINAL = "drop_non_terminal"
    DROP_PROGRESS = "drop_progress"
    SUMMARIZE_AND_CONTINUE = "summarize_and_continue"
    BACKPRESSURE_CALLER = "backpressure_caller"
    FAIL_SUBSCRIBER = "fail_subscriber"


class EventIndexField(WireEnum):
    """The index field of each non-``ANY`` filter set."""

    RUN_ID = "run_id"
    SESSION_ID = "session_id"
    AGENT_ID = "agent_id"
    TURN_ID = "turn_id"
    EVENT_FAMILY = "event_family"
    EVENT_KIND = "event_kind"
    SOURCE = "source"
    DESTINATION = "destination"
    SUBJECT_KIND = "subject_kind"
    RELATED_ENTITY_KIND = "related_entity_kind"
    CORRELATION_KEY = "correlation_key"
    TAG = "tag"
    PRIVACY = "privacy"
    DELIVERY_SEMANTICS = "delivery_semantics"


class AgentErrorKind(WireEnum):
    """The kind of an ``AgentError`` (PascalCase on the wire)."""

    INVALID_PACKAGE = "InvalidPackage"
    INVALID_STATE_TRANSITION = "InvalidStateTransition"
    PROVIDER_FAILURE = "ProviderFailure"
    PROJECTION_FAILURE = "ProjectionFailure"
    TOOL_FAILURE = "ToolFailure"
    APPROVAL_FAILURE = "ApprovalFailure"
    POLICY_DENIAL = "PolicyDenial"
    JOURNAL_FAILURE = "JournalFailure"
    TELEMETRY_FAILURE = "TelemetryFailure"
    ISOLATION_FAILURE = "IsolationFailure"
    STRUCTURED_OUTPUT_FAILURE = "StructuredOutputFailure"
    STREAM_RULE_FAILURE = "StreamRuleFailure"
    SUBAGENT_FAILURE = "SubagentFailure"
    EXTENSION_FAILURE = "ExtensionFailure"
    CANCELLATION = "Cancellation"
    CHILD_LIFECYCLE_FAILURE = "ChildLifecycleFailure"
    HOOK_FAILURE = "HookFailure"
    TIMEOUT = "Timeout"
    RECOVERY_REPAIR_NEEDED = "RecoveryRepairNeeded"
    HOST_CONFIGURATION_NEEDED = "HostConfigurationNeeded"


class RetryClassification(WireEnum):
    """What a caller should do about an ``AgentError`` (PascalCase on the wire).

    docs/concepts.md ("Errors and how to retry") says when the stores give each one.
    """

    RETRYABLE = "Retryable"
    NOT_RETRYABLE = "NotRetryable"
    REPAIR_NEEDED = "RepairNeeded"
    USER_ACTION_NEEDED = "UserActionNeeded"
    HOST_CONFIGURATION_NEEDED = "HostConfigurationNeeded"


#: ``EventKind::is_terminal()`` (as Rust's).
TERMINAL_EVENT_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.RUN_COMPLETED,
        EventKind.RUN_FAILED,
        EventKind.RUN_CANCELLED,
        EventKind.TURN_COMPLETED,
        EventKind.TURN_FAILED,
        EventKind.MODEL_MESSAGE_COMPLETED,
        EventKind.MODEL_ATTEMPT_FAILED,
        EventKind.TOOL_COMPLETED,
        EventKind.TOOL_FAILED,
        EventKind.TOOL_DENIED,
        EventKind.TOOL_RECOVERY_REQUIRED,
        EventKind.APPROVAL_DISPATCH_UNAVAILABLE,
        EventKind.APPROVAL_RESPONDED,
        EventKind.APPROVAL_DENIED,
        EventKind.APPROVAL_TIMED_OUT,
        EventKind.APPROVAL_CANCELLED,
        EventKind.HOOK_COMPLETED,
        EventKind.HOOK_FAILED,
        EventKind.HOOK_TIMED_OUT,
        EventKind.HOOK_CANCELLED,
        EventKind.HOOK_RESPONSE_APPLIED,
        EventKind.HOOK_RESPONSE_REJECTED,
        EventKind.REALTIME_RESTART_FAILED,
        EventKind.REALTIME_CLOSED,
        EventKind.ISOLATION_CLEANUP_COMPLETED,
        EventKind.ISOLATION_CLEANUP_FAILED,
        EventKind.ISOLATION_FAILED,
        EventKind.CHILD_LIFECYCLE_COMPLETED,
        EventKind.CHILD_LIFECYCLE_DETACHED,
        EventKind.SUBAGENT_COMPLETED,
        EventKind.EXTENSION_ACTION_COMPLETED,
        EventKind.EXTENSION_ACTION_FAILED,
        EventKind.EXTENSION_ACTION_DENIED,
        EventKind.OUTPUT_DISPATCH_COMPLETED,
        EventKind.OUTPUT_DISPATCH_FAILED,
        EventKind.OUTPUT_DISPATCH_DEDUPED,
        EventKind.STRUCTURED_OUTPUT_VALIDATED,
        EventKind.STRUCTURED_OUTPUT_FAILED,
        EventKind.REPLAY_COMPLETED,
        EventKind.REPLAY_FAILED,
        EventKind.RUN_MESSAGE_RESPONDED,
        EventKind.RUN_MESSAGE_FAILED,
        EventKind.RUN_MESSAGE_TIMED_OUT,
        EventKind.RUN_MESSAGE_EXPIRED,
        EventKind.RUN_MESSAGE_CANCELLED,
        EventKind.WAKE_CONDITION_TRIGGERED,
        EventKind.WAKE_CONDITION_TIMED_OUT,
        EventKind.WAKE_CONDITION_CANCELLED,
        EventKind.WAKE_CONDITION_FAILED,
    }
)


# ---------------------------------------------------------------- events and journal records (the coordinator)


class ContentCaptureMode(WireEnum):
    """How much content an event envelope says was captured (the coordinator's: ``OFF``)."""

    OFF = "off"
    METADATA_ONLY = "metadata_only"
    REDACTED_SUMMARY = "redacted_summary"
    PAYLOAD_REFS = "payload_refs"
    RAW_CONTENT = "raw_content"


class EventOverflowReason(WireEnum):
    """Why a subscriber's queue dropped frames (``EventOverflowNotice.reason``)."""

    SUBSCRIBER_QUEUE_FULL = "subscriber_queue_full"
    SUBSCRIBER_LAGGED = "subscriber_lagged"
    LIVE_BUFFER_EXPIRED = "live_buffer_expired"
    POLICY_DROPPED_PROGRESS = "policy_dropped_progress"
    POLICY_DROPPED_NON_TERMINAL = "policy_dropped_non_terminal"


class JournalRecordKind(WireEnum):
    """What a ``JournalRecord`` records (the coordinator writes ``AGENT_POOL``, ``RUN_MESSAGE``, ``WAKE``)."""

    RUN = "run"
    TURN = "turn"
    CONTEXT = "context"
    MESSAGE = "message"
    MODEL_ATTEMPT = "model_attempt"
    STRUCTURED_OUTPUT = "structured_output"
    STREAM_RULE = "stream_rule"
    REALTIME_SESSION = "realtime_session"
    HOOK = "hook"
    APPROVAL = "approval"
    TOOL = "tool"
    ISOLATION = "isolation"
    CHILD_LIFECYCLE = "child_lifecycle"
    AGENT_POOL = "agent_pool"
    RUN_MESSAGE = "run_message"
    WAKE = "wake"
    OUTPUT_DISPATCH = "output_dispatch"
    SUBAGENT = "subagent"
    EXTENSION_ACTION = "extension_action"
    TELEMETRY = "telemetry"
    RECOVERY = "recovery"
    CHECKPOINT = "checkpoint"
    EFFECT_INTENT = "effect_intent"
    EFFECT_RESULT = "effect_result"


class AgentPoolLifecycleStatus(WireEnum):
    """The pool transition an ``AgentPoolRecord`` journals."""

    CREATED = "created"
    RUN_JOINED = "run_joined"
    RUN_LEFT = "run_left"


class EffectKind(WireEnum):
    """The kind of side effect an ``EffectIntent`` announces (the coordinator's: ``RUN_MESSAGE_DELIVERY``)."""

    PROVIDER_REQUEST = "provider_request"
    TOOL_EXECUTION = "tool_execution"
    APPROVAL_DISPATCH = "approval_dispatch"
    MEMORY_WRITE = "memory_write"
    EXTENSION_ACTION = "extension_action"
    OUTPUT_DELIVERY = "output_delivery"
    FILE_WRITE = "file_write"
    PROCESS_START = "process_start"
    PROCESS_SIGNAL = "process_signal"
    ISOLATED_PROCESS_START = "isolated_process_start"
    CHILD_AGENT_START = "child_agent_start"
    RUN_MESSAGE_DELIVERY = "run_message_delivery"
    CHILD_ARTIFACT_SHUTDOWN = "child_artifact_shutdown"
    DETACH_TRANSFER = "detach_transfer"
    HOOK_MUTATION = "hook_mutation"


class EffectTerminalStatus(WireEnum):
    """How an effect ended (``EffectResult.terminal_status``)."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    DENIED_BEFORE_EXECUTION = "denied_before_execution"
    UNKNOWN = "unknown"
