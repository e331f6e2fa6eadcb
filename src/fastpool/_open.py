"""``open_store``: one entry point that picks the backend from what the target names."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

from ._base import check_options
from .errors import InvalidInput
from .memory import InMemoryAgentPoolStore
from .postgres import PostgresAgentPoolStore
from .sqlite import SqliteAgentPoolStore

__all__ = ["open_store"]

Store = SqliteAgentPoolStore | PostgresAgentPoolStore | InMemoryAgentPoolStore


def open_store(target: str | os.PathLike[str], **options: Any) -> Store:
    """Open the store ``target`` names; ``options`` go to its constructor.

    * ``postgresql://…`` or ``postgres://…``: a ``PostgresAgentPoolStore`` (the URL is its
      conninfo; ``schema=``, ``consistency=`` … as options);
    * ``sqlite:///abs/path`` (a URL: percent-escapes decoded) or any other path: a
      ``SqliteAgentPoolStore`` on that file;
    * ``memory:``: a new, empty ``InMemoryAgentPoolStore``.

    Any other ``scheme://`` is ``InvalidInput``, not a file of that name.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pools.sqlite"
    >>> with open_store(f"sqlite://{path}") as store:
    ...     type(store).__name__, store.path == path
    ('SqliteAgentPoolStore', True)
    >>> type(open_store("memory:")).__name__
    'InMemoryAgentPoolStore'
    """
    backend, location = backend_of(target)
    cls = {"postgres": PostgresAgentPoolStore, "memory": InMemoryAgentPoolStore}.get(backend, SqliteAgentPoolStore)
    check_options(cls, options)
    if backend == "postgres":
        return PostgresAgentPoolStore(location, **options)
    if backend == "memory":
        return InMemoryAgentPoolStore(**options)
    return SqliteAgentPoolStore(location, **options)


def backend_of(target: str | os.PathLike[str]) -> tuple[str, str]:
    """``("sqlite", path)``, ``("postgres", conninfo)`` or ``("memory", "")``: what ``open_store``
    opens for ``target``, without opening it (the CLI checks that a file exists first)."""
    if isinstance(target, os.PathLike):
        return "sqlite", os.fspath(target)
    if not isinstance(target, str):
        raise InvalidInput(f"target: expected a path or a store URL, got {type(target).__name__}")
    scheme = target.partition(":")[0].lower() if "://" in target or target == "memory:" else ""
    if scheme in ("postgresql", "postgres"):
        return "postgres", target
    if scheme == "memory":
        return "memory", ""
    if scheme == "sqlite":
        parts = urlsplit(target)
        if parts.netloc or not parts.path or parts.query or parts.fragment:
            raise InvalidInput(f"target: expected sqlite:///path/to/file, got {target!r}")
        try:
            return "sqlite", unquote(parts.path, errors="strict")
        except UnicodeDecodeError:
            raise InvalidInput(f"target: percent-escapes that are not UTF-8 text in {target!r}") from None
    if scheme:
        raise InvalidInput(f"target: unknown store URL scheme {scheme!r} (postgresql://, sqlite:///, memory:)")
    return "sqlite", target
