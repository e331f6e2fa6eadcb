"""The raw provider argument store: Rust's table ``provider_arguments``, content-addressed by the
SHA-256 of the raw text; ``SqliteProviderArgumentStore`` and ``PostgresProviderArgumentStore``."""

from __future__ import annotations

import hashlib
from typing import Any

from ..errors import AgentError
from ._base import PostgresSurface, SqliteSurface, Surface
from ._json import parse_value

__all__ = ["ProviderArgumentStoreSurface", "SqliteProviderArgumentStore", "PostgresProviderArgumentStore"]


class ProviderArgumentStoreSurface(Surface):
    """A ``ProviderArgumentStore`` on a database (table ``provider_arguments``)."""

    NAME = "provider_arguments"

    def store_provider_arguments(
        self, provider_ref: str, call_id: str, canonical_tool_name: str, raw_arguments: str
    ) -> str | None:
        """Store ``raw_arguments`` as given (valid JSON or not); return its content ref,
        ``content.provider_arguments.`` + the first 24 hex digits of its SHA-256. The same text
        is one row, holding the latest call's provider, call id and tool name."""
        digest = hashlib.sha256(raw_arguments.encode("utf-8", "surrogatepass")).hexdigest()
        content_ref = f"content.provider_arguments.{digest[:24]}"
        row = (content_ref, provider_ref, call_id, canonical_tool_name, raw_arguments)
        sql = self._sql.PROVIDER_PUT
        self._db.write(lambda run: run(sql, row))
        return content_ref

    def load_provider_arguments_json(self, content_ref: str) -> Any:
        """The stored arguments as serde_json reads them (keys sorted, see ``surfaces._json``).

        Raises ``AgentError`` (contract violation) for an unknown ref or text that is not JSON.
        """
        rows = self._db.rows(self._sql.PROVIDER_GET, (content_ref,))
        if not rows:
            raise AgentError.contract_violation("provider argument content ref is missing")
        try:
            return parse_value(rows[0][0])
        except ValueError as error:
            raise AgentError.contract_violation(f"stored provider arguments are not valid JSON: {error}") from None


class SqliteProviderArgumentStore(ProviderArgumentStoreSurface, SqliteSurface):
    """A provider argument store in an SQLite file, shared with Rust hosts (``ProviderArgumentStoreSurface``)."""


class PostgresProviderArgumentStore(ProviderArgumentStoreSurface, PostgresSurface):
    """A provider argument store in a PostgreSQL schema (``ProviderArgumentStoreSurface``)."""
