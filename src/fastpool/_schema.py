"""The machinery behind the model: immutable slotted value classes described by a schema.

Each model class lists its fields as annotations in Rust declaration order (the wire
order). ``finalize`` turns the annotations into a schema of ``Field`` rows that the
constructor (Python values, ``coerce``), the serializer (``to_plain``: JSON-shaped values)
and both replay engines walk. One description, four consumers, so they cannot drift apart.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import operator
import sys
import typing
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, TypeVar, Union

from ._chunked import ChunkedTuple
from .errors import InvalidInput
from .ids import ID_TYPES, LONE_SURROGATE, id_error

# Spec kinds: how one value is validated, decoded and encoded.
ID, STR, BOOL, U64, U32, NONZERO, ENUM, MODEL, SEQ, OPT, FILTERSET, UNION = range(12)
# A serde enum tagged otherwise than by "type" (the compiled engine leaves it to the twin):
# Spec(TAGGED, (key, {tag: class})), key None for serde's default external tagging.
TAGGED = 12
# Wire marks (serde's attributes): R always written and required; E a Vec omitted when empty
# (absent -> ()); O an Option omitted when None; N an Option always written (null).
R, E, O, N = "R", "E", "O", "N"

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
INT_LIMITS = {U64: (0, U64_MAX), U32: (0, U32_MAX), NONZERO: (1, U64_MAX)}


class _Required:
    def __repr__(self) -> str:
        return "<required>"


_MISSING: Any = _Required()  # the default of a field the constructor requires


class _IntKind:
    def __init__(self, kind: int) -> None:
        self.kind = kind


U64Int = typing.Annotated[int, _IntKind(U64)]
U32Int = typing.Annotated[int, _IntKind(U32)]
NonZeroInt = typing.Annotated[int, _IntKind(NONZERO)]


class AnyType:
    """The type of ``ANY``: an ``EventFilter`` set that matches every value."""

    _instance: ClassVar[AnyType | None] = None

    def __new__(cls) -> AnyType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY"

    def __reduce__(self) -> str:
        return "ANY"


ANY = AnyType()
T = TypeVar("T")
M = TypeVar("M")
#: An ``EventFilterSet<T>``: ``ANY`` or a tuple (Include of exactly those values).
FilterSet = Union[AnyType, tuple[T, ...]]


class Spec(NamedTuple):
    kind: int
    arg: Any = None  # enum class, model class, inner Spec, {tag: class} for UNION, (key, {tag: class}) for TAGGED


class Field(NamedTuple):
    name: str  # Python keyword
    wire: str  # JSON key
    spec: Spec
    mark: str
    default: Any  # _MISSING when the Python constructor requires it


@typing.dataclass_transform(kw_only_default=True, frozen_default=True)
class ModelMeta(type):
    """Turns annotated class attributes into slots; defaults are kept aside for ``__init__``."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any) -> ModelMeta:
        annotations = ns.get("__annotations__", {})
        names = [n for n, a in annotations.items() if not str(a).startswith("ClassVar")]
        defaults = {n: ns.pop(n) for n in names if n in ns}
        ns["__slots__"] = tuple(names)
        cls = super().__new__(mcls, name, bases, ns, **kw)
        cls._defaults = defaults  # type: ignore[attr-defined]
        if names or bases:
            _finalize(cls)
        return cls

    def __dir__(cls) -> list[str]:
        # pydoc takes a class with a ``_fields`` attribute for a namedtuple, whose
        # single-underscore names are public, so help() listed the schema's private
        # attributes; leaving them out of dir() hides them from help() (they stay reachable).
        return [name for name in super().__dir__() if not name.startswith("_") or name.startswith("__")]


class Model(metaclass=ModelMeta):
    """Base of every value class: keyword construction, validation, equality by value."""

    __slots__ = ()
    _fields: ClassVar[tuple[Field, ...]] = ()
    _names: ClassVar[tuple[str, ...]] = ()
    _values: ClassVar[Callable[[Any], Any]]  # the field values of an instance, as one comparable value
    _defaults: ClassVar[dict[str, Any]]
    # Rust types without serde attributes write None as null and require every Vec.
    _plain_serde: ClassVar[bool] = False
    # Vec fields that are always written and required on input.
    _required_vecs: ClassVar[frozenset[str]] = frozenset()
    # Values that recur across records (an address, a filter, a policy ref): the compiled
    # reader decodes one object per distinct text and shares it (immutable, so it is safe).
    _shared: ClassVar[bool] = False

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(type(self)._values(self) == type(self)._values(other))

    def __ne__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bool(type(self)._values(self) != type(self)._values(other))

    def __hash__(self) -> int:
        return hash((type(self), type(self)._values(self)))

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names)
        return f"{type(self).__name__}({parts})"

    def __reduce__(self) -> Any:
        return (make, (type(self), tuple(getattr(self, n) for n in self._names)))

    def replace(self, **changes: Any) -> Any:
        """A copy with some fields changed (validated like the constructor)."""
        values = {n: getattr(self, n) for n in self._names}
        values.update(changes)
        return type(self)(**values)


def make(cls: type[M], values: tuple[Any, ...]) -> M:
    """Build ``cls`` from already-validated values in field order (no checks)."""
    obj = object.__new__(cls)
    setter = object.__setattr__
    names: tuple[str, ...] = getattr(cls, "_names")  # noqa: B009 (M is any model class)
    for name, value in zip(names, values):
        setter(obj, name, value)
    return obj


def _spec_of(hint: Any, owner: str) -> Spec:
    origin = typing.get_origin(hint)
    if hint in ID_TYPES:
        return Spec(ID)
    if hint is str:
        return Spec(STR)
    if hint is bool:
        return Spec(BOOL)
    if origin is typing.Annotated:
        return Spec(hint.__metadata__[0].kind)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return Spec(ENUM, hint)
    if isinstance(hint, type) and issubclass(hint, Model):
        return Spec(MODEL, hint)
    if origin is tuple or origin is collections.abc.Sequence:  # Sequence: a tuple or a ChunkedTuple
        return Spec(SEQ, _spec_of(typing.get_args(hint)[0], owner))
    if origin is Union or origin is getattr(__import__("types"), "UnionType", None):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if AnyType in args:
            (seq,) = [a for a in args if a is not AnyType]
            return Spec(FILTERSET, _spec_of(typing.get_args(seq)[0], owner))
        if len(args) < len(typing.get_args(hint)):
            return Spec(OPT, _spec_of(args[0] if len(args) == 1 else Union[tuple(args)], owner))
        return union_spec(args)
    raise TypeError(f"{owner}: unsupported annotation {hint!r}")


def union_spec(classes: typing.Sequence[Any]) -> Spec:
    """The spec of a union of variant classes: ``UNION`` when each names its ``TYPE`` (serde's
    ``tag = "type"``), else ``TAGGED`` by each one's ``TAG`` under their common ``_tag_key``
    (``None``: serde's default, external tagging; a variant marked ``_newtype`` holds one bare value)."""
    if all(hasattr(cls, "TYPE") for cls in classes):
        return Spec(UNION, {cls.TYPE: cls for cls in classes})
    keys = {cls._tag_key for cls in classes}
    if len(keys) != 1:
        raise TypeError(f"variants {classes!r} disagree on their tag key")
    return Spec(TAGGED, (keys.pop(), {cls.TAG: cls for cls in classes}))


def _finalize(cls: Any) -> None:
    """Resolve the annotations of a model class into its schema (referenced types come first)."""
    hints = typing.get_type_hints(cls, None, vars(sys.modules[cls.__module__]), include_extras=True)
    fields = []
    for name in cls.__slots__:
        spec = _spec_of(hints[name], f"{cls.__name__}.{name}")
        if spec.kind == OPT:
            mark = N if cls._plain_serde else O
        elif spec.kind == SEQ:
            mark = R if cls._plain_serde or name in cls._required_vecs else E
        else:
            mark = R
        fields.append(Field(name, name.rstrip("_"), spec, mark, cls._defaults.get(name, _MISSING)))
    cls._fields = tuple(fields)
    cls._names = tuple(f.name for f in fields)
    cls.__init__ = _make_init(cls)
    if len(fields) == 1:
        only = fields[0].name
        cls._values = staticmethod(lambda obj: (getattr(obj, only),))
    elif fields:
        cls._values = staticmethod(operator.attrgetter(*cls._names))
    else:
        cls._values = staticmethod(lambda obj: ())


def _make_init(cls: Any) -> Callable[..., None]:
    """Generate ``cls.__init__``: keyword-only, with a real signature and an inline fast path
    per field (the common exact-type case), falling back to ``coerce`` for the rest."""
    params, body = [], []
    namespace: dict[str, Any] = {"_MISSING": _MISSING, "_set": object.__setattr__, "_coerce": coerce, "_id": _fast_id}
    for index, field in enumerate(cls._fields):
        name, path = field.name, f"{cls.__name__}.{field.name}"
        namespace[f"_spec{index}"] = field.spec
        params.append(f"{name}=_MISSING" if field.default is _MISSING else f"{name}=_default{index}")
        namespace[f"_default{index}"] = field.default
        if field.default is _MISSING:
            body.append(f"    if {name} is _MISSING: raise _invalid({path!r} + ': missing required argument')")
        kind = field.spec.kind
        if kind == ID:
            check = f"_id({name}, {path!r})"
        elif kind in (MODEL, ENUM):
            namespace[f"_type{index}"] = field.spec.arg
            check = f"{name} if type({name}) is _type{index} else _coerce(_spec{index}, {name}, {path!r})"
        elif field.default is not _MISSING:
            check = f"{name} if {name} is _default{index} else _coerce(_spec{index}, {name}, {path!r})"
        else:
            check = f"_coerce(_spec{index}, {name}, {path!r})"
        body.append(f"    _set(self, {name!r}, {check})")
    namespace["_invalid"] = InvalidInput
    body.append(
        f"    if _unknown: raise _invalid({cls.__name__!r} + ': unexpected argument ' + repr(sorted(_unknown)[0]))"
    )
    # ``self`` positional-only: a keyword argument named "self" is then an unknown one, not a TypeError.
    signature = ", ".join(["self", "/", "*", *params, "**_unknown"]) if params else "self, /, **_unknown"
    source = f"def __init__({signature}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # the dataclasses technique: one specialised function per class
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__  # where documentation tools resolve the annotations
    init.__doc__ = "Build from keyword arguments, each validated (``InvalidInput`` names the field that fails)."
    init.__signature__ = _signature(cls)  # type: ignore[attr-defined]
    return init


def _signature(cls: Any) -> inspect.Signature:
    """The signature ``help()`` shows: the fields as keywords, a required one without a default
    (the function's ``_MISSING`` and ``**_unknown`` exist to raise ``InvalidInput`` instead)."""
    keyword, empty = inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.empty
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for field in cls._fields:
        default = empty if field.default is _MISSING else field.default
        annotation = cls.__annotations__[field.name]
        parameters.append(inspect.Parameter(field.name, keyword, default=default, annotation=annotation))
    return inspect.Signature(parameters)


def _fast_id(value: Any, path: str) -> str:
    if type(value) is str and value.isascii() and value.isprintable() and 0 < len(value) <= 512:
        return value
    return coerce(Spec(ID), value, path)  # type: ignore[no-any-return]


def coerce(spec: Spec, value: Any, path: str) -> Any:
    """Validate a Python value for ``spec``: ids checked, enums from strings, lists to tuples."""
    kind = spec.kind
    if kind == ID:
        if type(value) is not str and not isinstance(value, str):
            raise InvalidInput(f"{path}: expected an identifier string, got {type(value).__name__}")
        error = id_error(value)
        if error is not None:
            raise InvalidInput(f"{path}: {error}")
        return str(value)
    if kind == STR:
        if not isinstance(value, str):
            raise InvalidInput(f"{path}: expected a string, got {type(value).__name__}")
        if not value.isascii() and LONE_SURROGATE.search(value) is not None:
            raise InvalidInput(f"{path}: string contains a lone surrogate (not valid UTF-8)")
        return str(value)
    if kind == BOOL:
        if type(value) is not bool:
            raise InvalidInput(f"{path}: expected a bool, got {type(value).__name__}")
        return value
    if kind in INT_LIMITS:
        low, high = INT_LIMITS[kind]
        if type(value) is bool or not isinstance(value, int):
            raise InvalidInput(f"{path}: expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise InvalidInput(f"{path}: integer {value} out of range {low}..{high}")
        return int(value)
    if kind == ENUM:
        try:
            return spec.arg(value)
        except ValueError:
            raise InvalidInput(f"{path}: unknown {spec.arg.__name__} {value!r}") from None
    if kind == MODEL:
        if not isinstance(value, spec.arg):
            raise InvalidInput(f"{path}: expected {spec.arg.__name__}, got {type(value).__name__}")
        return value
    if kind == SEQ:
        if not isinstance(value, (tuple, list, ChunkedTuple)):
            raise InvalidInput(f"{path}: expected a tuple or list, got {type(value).__name__}")
        inner = spec.arg
        return tuple([coerce(inner, item, f"{path}[{i}]") for i, item in enumerate(value)])
    if kind == OPT:
        return None if value is None else coerce(spec.arg, value, path)
    if kind == FILTERSET:
        if value is ANY:
            return ANY
        return coerce(Spec(SEQ, spec.arg), value, path)
    if kind == UNION or kind == TAGGED:
        variants = spec.arg if kind == UNION else spec.arg[1]
        if not isinstance(value, tuple(variants.values())):
            names = " or ".join(c.__name__ for c in variants.values())
            raise InvalidInput(f"{path}: expected {names}, got {type(value).__name__}")
        return value
    raise AssertionError(kind)


# ---------------------------------------------------------------- to JSON-shaped values


def to_plain(obj: Any) -> Any:
    """A model object as the JSON-shaped value Rust's serde writes (dicts in wire order).

    The reference serializer, walked by the pure engine and by ``EventFilter.compile``; the
    compiled engine writes the same values from its plans.
    """
    return _plain_model(obj, getattr(type(obj), "TYPE", None))


def _plain_model(obj: Any, tag: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {} if tag is None else {"type": tag}
    for field in type(obj)._fields:
        value = getattr(obj, field.name)
        mark = field.mark
        if mark is E:
            if not value:
                continue
        elif mark is O and value is None:
            continue
        out[field.wire] = _plain_value(field.spec, value)
    return out


def _plain_value(spec: Spec, value: Any) -> Any:
    kind = spec.kind
    if kind == MODEL:
        return _plain_model(value, None)
    if kind == UNION:
        return _plain_model(value, value.TYPE)
    if kind == SEQ:
        inner = spec.arg
        if inner.kind <= STR:
            return list(value)
        return [_plain_value(inner, item) for item in value]
    if kind == OPT:
        return None if value is None else _plain_value(spec.arg, value)
    if kind == FILTERSET:
        if value is ANY:
            return "any"
        return {"include": [_plain_value(spec.arg, item) for item in value]}
    if kind == ENUM:
        return value.value
    if kind == TAGGED:
        return _plain_tagged(spec.arg[0], value)
    return value


def _plain_tagged(key: str | None, value: Any) -> Any:
    cls = type(value)
    if key is not None:
        return {key: cls.TAG, **_plain_model(value, None)}
    if not cls._fields:
        return cls.TAG  # a unit variant
    if getattr(cls, "_newtype", False):
        (field,) = cls._fields
        return {cls.TAG: _plain_value(field.spec, getattr(value, field.name))}
    return {cls.TAG: _plain_model(value, None)}
