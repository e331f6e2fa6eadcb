"""The content store and resolver: Rust's table ``content``, one row per content id, failures as
``ContentResolutionError``s; ``SqliteContentStore`` and ``PostgresContentStore``."""

from __future__ import annotations

import hashlib

from .. import wire
from ..errors import AgentError
from ..model import PolicyRef
from ..store_model import (
    ContentReference,
    ContentResolutionError,
    ContentResolutionPolicy,
    ContentResolveRequest,
    ResolvedContent,
)
from ._base import PostgresSurface, SqliteSurface, Surface

__all__ = ["ContentStoreSurface", "SqliteContentStore", "PostgresContentStore"]


class ContentStoreSurface(Surface):
    """A ``ContentStore`` and ``ContentResolver`` on a database (table ``content``).

    A stored ref replaces the one with the same ``content_id`` whatever its version. A
    successful resolve answers with the *stored* ref; an error carries the request's ref and
    the policy's ``policy_refs``.
    """

    NAME = "content"

    def put_content(self, content_ref: ContentReference, bytes: bytes) -> None:
        """Store ``bytes`` under ``content_ref.content_id``.

        Raises ``ContentResolutionError`` ``storage_unavailable`` if the file cannot be written.
        """
        row = (content_ref.content_id, wire.encode(content_ref), bytes, len(bytes))
        sql = self._sql.CONTENT_PUT
        try:
            self._db.write(lambda run: run(sql, row))
        except AgentError:
            raise ContentResolutionError("storage_unavailable", content_ref, ()) from None

    def store_resolved_content(self, content_ref: ContentReference, bytes: bytes) -> None:
        """``put_content`` (Rust's ``ContentResolver`` spelling)."""
        self.put_content(content_ref, bytes)

    def resolve(self, request: ContentResolveRequest, policy: ContentResolutionPolicy) -> ResolvedContent:
        """The stored content ``request`` names, as ``policy`` allows.

        Raises ``ContentResolutionError``, checked in Rust's order: ``version_mismatch`` (the
        request contradicts its own ref), ``missing``, ``storage_unavailable`` (unreadable file,
        table or stored ref), then, for raw content only, ``max_bytes_exceeded`` and
        ``hash_mismatch`` (the stored ref's ``content_hash`` is not ``sha256:`` + lowercase hex).
        """
        requested, refs = request.content_ref, policy.policy_refs

        def fail(kind: str) -> ContentResolutionError:
            return ContentResolutionError(kind, requested, refs)

        if request.requested_version != requested.version:
            raise fail("version_mismatch")
        try:
            rows = self._db.rows(self._sql.CONTENT_GET, (requested.content_id,))
        except AgentError:
            raise fail("storage_unavailable") from None
        if not rows:
            raise fail("missing")
        stored_json, data = rows[0]
        try:
            stored = wire.decode(ContentReference, stored_json)
        except AgentError:
            raise fail("storage_unavailable") from None
        data = bytes(data)  # PostgreSQL may hand a bytea as a memoryview
        if not policy.allow_raw_content:
            return _resolved(stored, None, refs)
        if len(data) > policy.max_bytes:
            raise fail("max_bytes_exceeded")
        expected = stored.content_hash
        if policy.require_hash_match and expected is not None:
            if expected != "sha256:" + hashlib.sha256(data).hexdigest():
                raise fail("hash_mismatch")
        return _resolved(stored, data, refs)


class SqliteContentStore(ContentStoreSurface, SqliteSurface):
    """A content store in an SQLite file, shared with Rust hosts (``ContentStoreSurface``)."""


class PostgresContentStore(ContentStoreSurface, PostgresSurface):
    """A content store in a PostgreSQL schema (``ContentStoreSurface``)."""


def _resolved(stored: ContentReference, data: bytes | None, refs: tuple[PolicyRef, ...]) -> ResolvedContent:
    return ResolvedContent(
        content_ref=stored,
        mime=stored.mime,
        bytes=None if data is None else tuple(data),
        redacted_summary=stored.redacted_summary,
        policy_refs=refs,
        raw_content_included=data is not None,
    )
