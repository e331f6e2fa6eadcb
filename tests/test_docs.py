"""The reference docs: every public name documents itself, and ``help()`` shows no private field."""

from __future__ import annotations

import doctest
import inspect
import pydoc
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fastpool
from fastpool import aio, wire
from fastpool._schema import Model

# What the API reference documents: the package's names, and the public modules' own names.
MODULES = (fastpool, wire, aio)


def public_objects() -> Iterator[tuple[str, Any]]:
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
                yield f"{module.__name__}.{name}", obj


def doc_owner(cls: type, name: str) -> type | None:
    """The class whose attribute ``name`` gives ``getattr(cls, name)`` its docstring (as ``help()`` finds it)."""
    for base in cls.__mro__:
        attr = vars(base).get(name)
        if attr is None:
            continue
        function = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
        if function.__doc__ and function.__doc__.strip():
            return base
    return None


def own_methods(cls: type) -> Iterator[str]:
    """The public methods and properties that fastpool itself defines on ``cls`` or its bases."""
    for name in dir(cls):
        if name.startswith("_"):
            continue
        owner = next(base for base in cls.__mro__ if name in vars(base))
        attr = vars(owner)[name]
        if not owner.__module__.startswith("fastpool"):
            continue  # str, Enum, Exception and typing methods document themselves
        if isinstance(attr, (types.FunctionType, classmethod, staticmethod, property)):
            yield name


PUBLIC = dict(public_objects())


def test_the_public_names_are_found() -> None:
    classes = [obj for obj in PUBLIC.values() if inspect.isclass(obj)]
    assert len(classes) > 60  # models, enums, stores, errors
    assert "fastpool.AgentPoolStore" in PUBLIC and "fastpool.aio.AsyncAgentPoolStore" in PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_has_its_own_docstring(name: str) -> None:
    obj = PUBLIC[name]
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc and doc.strip(), f"{name} has no docstring of its own"
    if inspect.isclass(obj):
        inherited = {base.__doc__ for base in obj.__mro__[1:]}
        assert doc not in inherited, f"{name} repeats a base class's docstring"


@pytest.mark.parametrize("name", sorted(n for n, obj in PUBLIC.items() if inspect.isclass(obj)))
def test_every_public_method_has_a_docstring(name: str) -> None:
    cls = PUBLIC[name]
    for method in own_methods(cls):
        owner = doc_owner(cls, method)
        assert owner is not None, f"{name}.{method} has no docstring"
        # Store methods take theirs from the protocol; nothing from a generic base.
        assert owner.__module__.startswith("fastpool"), f"{name}.{method} shows {owner.__name__}'s docstring"


def test_store_methods_show_the_protocol_docstrings() -> None:
    protocol = {name for name in vars(fastpool.AgentPoolStore) if not name.startswith("_")}
    for store in (fastpool.SqliteAgentPoolStore, fastpool.InMemoryAgentPoolStore):
        for name in protocol:
            text = pydoc.render_doc(getattr(store, name), renderer=pydoc.plaintext)
            assert inspect.getdoc(getattr(fastpool.AgentPoolStore, name)).splitlines()[0] in text, name


#: A name starting with one underscore, not part of a dotted module path (``fastpool._schema``).
PRIVATE_NAME = re.compile(r"(?<![\w.])_[A-Za-z]\w*")
MODEL_CLASSES = sorted(n for n, obj in PUBLIC.items() if inspect.isclass(obj) and issubclass(obj, Model))


@pytest.mark.parametrize("name", MODEL_CLASSES)
def test_help_of_a_model_class_shows_no_private_name(name: str) -> None:
    text = pydoc.render_doc(PUBLIC[name], renderer=pydoc.plaintext)
    assert PRIVATE_NAME.findall(text) == [], text


def test_help_of_a_model_class_shows_its_fields_and_constructor() -> None:
    text = pydoc.render_doc(fastpool.AgentPoolMember, renderer=pydoc.plaintext)
    assert "A run in a pool" in text
    assert "AgentPoolMember(*, run_id: 'RunId', agent_id: 'AgentId', policy_refs:" in text
    for field in ("run_id", "agent_id", "policy_refs", "topics", "replace"):
        assert re.search(rf"^ \|  {field}\b", text, re.MULTILINE), field


def test_the_documented_signature_is_the_constructor_s() -> None:
    parameters = inspect.signature(fastpool.RunMessage).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert parameters["message_id"].default is inspect.Parameter.empty  # required
    assert parameters["reply_to"].default is None
    # What the signature leaves out still behaves as before: unknown or missing keywords are InvalidInput.
    with pytest.raises(fastpool.InvalidInput, match="unexpected argument 'colour'"):
        fastpool.CorrelationEntry(key="k", value="v", colour="red")
    with pytest.raises(fastpool.InvalidInput, match="CorrelationEntry.value: missing required argument"):
        fastpool.CorrelationEntry(key="k")


def test_private_names_stay_reachable() -> None:
    # Hidden from dir() (so from help()), not removed: the engines read the schema through them.
    assert fastpool.AgentPoolMember._names == ("run_id", "agent_id", "policy_refs", "topics")
    assert "_fields" not in dir(fastpool.AgentPoolMember)
    assert "run_id" in dir(fastpool.AgentPoolMember) and "replace" in dir(fastpool.AgentPoolMember)


def test_the_concepts_examples_run() -> None:
    path = Path(__file__).parent.parent / "docs" / "concepts.md"
    result = doctest.testfile(str(path), module_relative=False)
    assert result.failed == 0 and result.attempted >= 10, result


def test_the_operations_examples_run() -> None:
    """docs/operations.md: the counters and retention examples."""
    path = Path(__file__).parent.parent / "docs" / "operations.md"
    result = doctest.testfile(str(path), module_relative=False)
    assert result.failed == 0 and result.attempted >= 10, result


def test_the_hosts_guide_examples_run(pg_server: Any) -> None:
    """docs/hosts.md, its PostgreSQL examples on the test server (``URL``), its copy and drop through the CLI."""
    path = Path(__file__).parent.parent / "docs" / "hosts.md"
    result = doctest.testfile(str(path), module_relative=False, globs={"URL": pg_server.conninfo})
    assert result.failed == 0 and result.attempted >= 15, result


def test_the_package_docstring_is_an_overview_that_points_to_the_pages() -> None:
    text = inspect.getdoc(fastpool)
    assert text is not None and len(text.splitlines()) <= 20
    root = Path(__file__).parent.parent
    for page in ("README.md", "docs/concepts.md", "docs/hosts.md"):
        assert page in text and (root / page).is_file(), page
