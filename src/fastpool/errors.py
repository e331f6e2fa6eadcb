"""``AgentError``, the one exception type of the store API (the Rust crate's, field for field).

Both replay engines and every backend raise these; each backend translates its driver's
errors into them at its own boundary, one module each (``fastpool._sqlite_errors`` for
SQLite, used by its write boundary ``_sqlite_write``; ``fastpool._pg_errors`` for PostgreSQL).

This module sits below the model (every model class needs ``InvalidInput``), and an error's
``context`` and ``causal_ids`` are model objects: the two properties import them when first
read. That deferred import is the package's one tie upwards (tests/test_imports.py allows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .enums import AgentErrorKind, RetryClassification

if TYPE_CHECKING:
    from .model import CausalIds, ErrorContext

__all__ = ["AgentError", "InvalidInput", "AgentErrorKind", "RetryClassification"]

CLASSIFIED = "Classified"
CONTRACT_VIOLATION = "ContractViolation"
HOST_CONFIGURATION_NEEDED = "HostConfigurationNeeded"
MISSING_REQUIRED_FIELD = "MissingRequiredField"
VARIANTS = (MISSING_REQUIRED_FIELD, CONTRACT_VIOLATION, HOST_CONFIGURATION_NEEDED, CLASSIFIED)


class AgentError(Exception):
    """Every failure of the store API: a kind, a retry class and a message.

    ``message`` is Rust's, byte for byte, and so is ``wire.encode(error)``. The ids of what
    failed (``ids``: ``pool_id``, ``run_id``, ...) are fastpool's own: never encoded nor
    compared, they show in ``str(error)``, which is the Rust ``Display`` text (``display``)
    followed by them.

    >>> error = AgentError(AgentErrorKind.TIMEOUT, RetryClassification.RETRYABLE, "slow")
    >>> str(error), error.variant
    ('Timeout: slow', 'Classified')
    >>> error = AgentError(AgentErrorKind.TIMEOUT, RetryClassification.RETRYABLE, "slow", ids={"pool_id": "team"})
    >>> str(error), error.display, error.pool_id
    ("Timeout: slow (pool_id='team')", 'Timeout: slow', 'team')
    >>> AgentError.contract_violation("broken").retry
    RetryClassification.REPAIR_NEEDED
    """

    kind: AgentErrorKind
    retry: RetryClassification
    message: str
    variant: str

    def __init__(
        self,
        kind: AgentErrorKind | str,
        retry: RetryClassification | str,
        message: str,
        *,
        context: ErrorContext | None = None,
        causal_ids: CausalIds | None = None,
        ids: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.kind = AgentErrorKind(kind)
            self.retry = RetryClassification(retry)
        except ValueError as error:
            raise InvalidInput(f"AgentError: {error}") from None
        if not isinstance(message, str):
            raise InvalidInput(f"AgentError.message: expected a string, got {type(message).__name__}")
        self.message = str(message)
        self.variant = CLASSIFIED
        self._context = context
        self._causal_ids = causal_ids
        self.ids: dict[str, str] = dict(ids) if ids else {}
        super().__init__(self.message)

    @classmethod
    def _variant(cls, variant: str, kind: AgentErrorKind, retry: RetryClassification, message: str) -> AgentError:
        error = cls(kind, retry, message)
        error.variant = variant
        return error

    @classmethod
    def contract_violation(cls, message: str) -> AgentError:
        """Kind ``INVALID_STATE_TRANSITION``, retry ``REPAIR_NEEDED``."""
        return cls._variant(
            CONTRACT_VIOLATION, AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED, message
        )

    @classmethod
    def host_configuration_needed(cls, message: str) -> AgentError:
        """Kind and retry ``HOST_CONFIGURATION_NEEDED``."""
        return cls._variant(
            HOST_CONFIGURATION_NEEDED,
            AgentErrorKind.HOST_CONFIGURATION_NEEDED,
            RetryClassification.HOST_CONFIGURATION_NEEDED,
            message,
        )

    @classmethod
    def missing_required_field(cls, field: str) -> AgentError:
        """Kind ``INVALID_PACKAGE``, retry ``HOST_CONFIGURATION_NEEDED``; the message is the field."""
        return cls._variant(
            MISSING_REQUIRED_FIELD, AgentErrorKind.INVALID_PACKAGE, RetryClassification.HOST_CONFIGURATION_NEEDED, field
        )

    @property
    def context(self) -> ErrorContext:
        """The Rust ``ErrorContext``; its ``message`` is this error's message."""
        if self._context is None:
            from .model import ErrorContext

            self._context = ErrorContext(message=self.message)
        return self._context

    @property
    def causal_ids(self) -> CausalIds:
        """The Rust ``CausalIds`` (empty unless decoded from JSON that had some)."""
        if self._causal_ids is None:
            from .model import CausalIds

            self._causal_ids = CausalIds()
        return self._causal_ids

    @property
    def pool_id(self) -> str | None:
        """The pool the error is about, if it names one (``ids["pool_id"]``)."""
        return self.ids.get("pool_id")

    @property
    def run_id(self) -> str | None:
        """The run the error is about, if it names one (``ids["run_id"]``)."""
        return self.ids.get("run_id")

    @property
    def detail(self) -> str:
        """The message followed by the ids, as the command line prints an error."""
        return self.message + self._named()

    def _named(self) -> str:
        return f" ({', '.join(f'{key}={value!r}' for key, value in self.ids.items())})" if self.ids else ""

    def __str__(self) -> str:
        return self.display + self._named()

    @property
    def display(self) -> str:
        """The Rust ``Display`` text: ``str(error)`` without the ids."""
        if self.variant == CLASSIFIED:
            return f"{self.kind.value}: {self.message}"
        if self.variant == CONTRACT_VIOLATION:
            return f"contract violation: {self.message}"
        if self.variant == HOST_CONFIGURATION_NEEDED:
            return f"host configuration needed: {self.message}"
        return f"missing required field: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind.value}, {self.retry.value}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AgentError):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.variant, self.kind, self.retry, self.message))

    def _key(self) -> tuple[Any, ...]:
        return (self.variant, self.kind, self.retry, self.message, self.context, self.causal_ids)

    def __reduce__(self) -> Any:
        return (
            _rebuild,
            (type(self), self.variant, self.kind, self.retry, self.message, self._context, self._causal_ids),
            {"ids": self.ids},
        )


def _rebuild(
    cls: type[AgentError], variant: str, kind: Any, retry: Any, message: str, context: Any, causal: Any
) -> AgentError:
    error = cls.__new__(cls)
    AgentError.__init__(error, kind, retry, message, context=context, causal_ids=causal)
    error.variant = variant
    return error


class InvalidInput(AgentError, ValueError):
    """Bad arguments or bad JSON: kind ``INVALID_STATE_TRANSITION``, retry ``NOT_RETRYABLE``.

    The message names the field and the rule that failed; ``str()`` says ``invalid input``
    (``display`` keeps the kind, as Rust would print the error).

    >>> str(InvalidInput("pool_id: empty"))
    'invalid input: pool_id: empty'
    """

    def __init__(
        self,
        message: str,
        *,
        context: ErrorContext | None = None,
        causal_ids: CausalIds | None = None,
        ids: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            AgentErrorKind.INVALID_STATE_TRANSITION,
            RetryClassification.NOT_RETRYABLE,
            message,
            context=context,
            causal_ids=causal_ids,
            ids=ids,
        )

    def __str__(self) -> str:
        text = super().__str__()
        return "invalid input" + text[len(self.kind.value) :] if self.variant == CLASSIFIED else text

    def __reduce__(self) -> Any:
        return (InvalidInput, (self.message,), {"ids": self.ids})
