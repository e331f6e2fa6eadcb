"""fastpool: a durable, SQLite-backed agent-pool store, file-compatible with the Rust crate.

The public names of SPEC §2-§5 are exported here.
"""

from __future__ import annotations

from . import wire
from ._compat import USE_EXTENSIONS
from ._schema import ANY, AnyType
from .enums import (
    AgentErrorKind,
    DestinationKind,
    EntityKind,
    EventDeliverySemantics,
    EventFamily,
    EventIndexField,
    EventKind,
    MessageStatus,
    PayloadAccessMode,
    PolicyKind,
    PrivacyClass,
    ResumeInputPolicy,
    RetentionClass,
    RetryClassification,
    SourceKind,
    SubscriberOverflowPolicy,
    TrustClass,
    WakeRegistrationStatus,
)
from .errors import AgentError, InvalidInput
from .memory import InMemoryAgentPoolStore
from .protocol import AgentPoolStore
from .sqlite import SqliteAgentPoolStore
from .ids import (
    AgentId,
    AgentPoolId,
    ContentRef,
    CorrelationKey,
    CorrelationValue,
    DestinationId,
    EntityId,
    IdempotencyKey,
    JournalCursor,
    MessageId,
    PolicyId,
    RunId,
    SessionId,
    SourceId,
    TopicId,
    TurnId,
    WakeConditionId,
    validate_id,
)
from .model import (
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
    DestinationRef,
    EntityRef,
    ErrorContext,
    EventCorrelation,
    EventFilter,
    MemberJoined,
    MemberLeft,
    MessageReceipt,
    MessageRecorded,
    MessageResponseContract,
    PolicyRef,
    PoolCreated,
    PoolOpened,
    PoolTarget,
    RunAddress,
    RunAddressTarget,
    RunMessage,
    RunTarget,
    SourceRef,
    SubscriberQueueConfig,
    TopicTarget,
    WakeCondition,
    WakeRecorded,
    WakeRegistration,
)

__version__ = "0.1.0"

__all__ = [
    "__version__", "USE_EXTENSIONS", "wire", "ANY", "AnyType", "validate_id",
    # stores
    "AgentPoolStore", "SqliteAgentPoolStore", "InMemoryAgentPoolStore",
    # errors
    "AgentError", "InvalidInput", "AgentErrorKind", "RetryClassification",
    # ids
    "AgentPoolId", "RunId", "AgentId", "TopicId", "MessageId", "IdempotencyKey",
    "WakeConditionId", "ContentRef", "JournalCursor", "PolicyId", "CorrelationKey",
    "CorrelationValue", "DestinationId", "EntityId", "SourceId", "SessionId", "TurnId",
    # enums
    "PolicyKind", "DestinationKind", "EntityKind", "SourceKind", "PrivacyClass",
    "RetentionClass", "TrustClass", "MessageStatus", "ResumeInputPolicy",
    "WakeRegistrationStatus", "EventFamily", "EventKind", "EventDeliverySemantics",
    "PayloadAccessMode", "SubscriberOverflowPolicy", "EventIndexField",
    # model
    "PolicyRef", "CorrelationEntry", "SourceRef", "DestinationRef", "EntityRef",
    "ErrorContext", "CausalIds", "AgentPoolMember", "AgentPoolMessagePolicy",
    "AgentPoolWakePolicy", "AgentPoolStoreConfig", "AgentPoolStoreCursor", "RunTarget",
    "AgentTarget", "TopicTarget", "PoolTarget", "RunAddressTarget", "RunAddress",
    "EventCorrelation", "MessageResponseContract", "RunMessage", "MessageReceipt",
    "AgentPoolStoredMessage", "SubscriberQueueConfig", "EventFilter", "CompiledEventFilter",
    "WakeCondition", "WakeRegistration", "AgentPoolStoredWake", "AgentPoolSnapshot",
    "PoolOpened", "PoolCreated", "MemberJoined", "MemberLeft", "MessageRecorded",
    "WakeRecorded", "AgentPoolStoreRecordPayload", "AgentPoolStoreRecord",
]
