# ---------------------------------------------------------------- plans
# Included by _replay.pyx: the plans. Each model class becomes a ``_Model`` (per field: kind,
# wire key, mark, slot offset, nested plan) and each ``Spec`` a ``_Value``, made once from the
# model's schema (``_schema``); the writer and the reader below walk them. A plan also holds
# its C mirror (``w``), which the writer makes (``_writer.pxi``) and C walks.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.ref cimport PyObject

from enum import EnumMeta
from types import MemberDescriptorType

from orjson import dumps as _orjson_dumps

from ._schema import (
    BOOL, ENUM, FILTERSET, ID, INT_LIMITS, MODEL, NONZERO, OPT, SEQ, STR, TAGGED, U32, U64, UNION, E, O, R, ModelMeta,
    Spec,
)


cdef extern from "_replay.h":
    object fp_alloc(object cls)
    tuple fp_frozen(list items)
    Py_ssize_t fp_slot_offset(object descr)
    void fp_init_slot(object obj, Py_ssize_t offset, object value)
    PyObject *fp_slot(object obj, Py_ssize_t offset)
    ctypedef struct fp_wvalue:
        pass
    ctypedef struct fp_wmodel:
        pass
    void fp_wvalue_free(fp_wvalue *v)
    void fp_wmodel_free(fp_wmodel *m)
    # How a union's variant is written and read: FPV_TYPE a K_UNION one ({"type": name, fields});
    # a K_TAGGED one in serde's form (as ``_schema._plain_tagged`` writes it): FPV_UNIT its name
    # as a string (external, no fields), FPV_NEWTYPE {name: its one field's value} (external,
    # ``_newtype``), FPV_STRUCT {name: {fields}} (external), FPV_INTERNAL {key: name, fields}.
    enum:
        FPV_TYPE, FPV_UNIT, FPV_NEWTYPE, FPV_STRUCT, FPV_INTERNAL


class _Mismatch(Exception):
    """The fast path met something it does not handle: the twin redoes the call."""


class _NoPlan(TypeError):
    """A class or spec the plans do not cover, found by the plan compiler: the twin handles it.
    Raised by the compiler's own checks only, so that a failure of any other kind surfaces."""


cdef enum Kind:
    K_ID, K_STR, K_BOOL, K_INT, K_ENUM, K_MODEL, K_SEQ, K_OPT, K_FILTERSET, K_UNION, K_TAGGED

# A dict, so a kind matches as it does in the twin's ``==`` tests (1, True and 1.0 alike).
_KINDS = {
    ID: K_ID, STR: K_STR, BOOL: K_BOOL, U64: K_INT, U32: K_INT, NONZERO: K_INT, ENUM: K_ENUM,
    MODEL: K_MODEL, SEQ: K_SEQ, OPT: K_OPT, FILTERSET: K_FILTERSET, UNION: K_UNION, TAGGED: K_TAGGED,
}


@cython.final
cdef class _Value:
    """How one ``Spec``'s values are decoded and encoded."""

    cdef Kind kind
    cdef unsigned long long low, high  # K_INT
    cdef object enum  # K_ENUM: the class
    cdef dict members  # K_ENUM: wire string -> member
    cdef _Model model  # K_MODEL
    cdef _Value inner  # K_SEQ, K_OPT, K_FILTERSET: the item or wrapped value
    cdef dict tags  # K_UNION, K_TAGGED: tag -> plan, to decode
    cdef dict classes  # K_UNION, K_TAGGED: class -> plan, to encode
    cdef tuple names, choices  # K_ENUM, K_UNION, K_TAGGED: the strings as UTF-8 and what each reads as
    cdef object tag_key  # K_TAGGED: the internal tag's key, None for external tagging
    cdef bytes key_json  # K_TAGGED internal: '"<key>"', what the text reader expects first
    cdef dict forms  # K_TAGGED: plan -> its FPV_ form
    cdef list opens  # K_TAGGED: what dumps writes before each variant's content (its C mirror points into them)
    cdef bint shared  # K_MODEL, K_SEQ: a value that recurs, read through the reader's shared table
    cdef fp_wvalue *w  # how dumps writes it (its pointers lead to objects the attributes above hold)

    def __dealloc__(self):
        fp_wvalue_free(self.w)


@cython.final
cdef class _Field:
    """One field of a model class."""

    cdef object wire
    cdef bytes key  # the wire key as UTF-8, for the text reader...
    cdef const char *key_data  # ...and its bytes, read without touching the bytes object
    cdef Py_ssize_t key_size
    cdef Py_ssize_t offset  # of its slot in an instance
    cdef _Value value
    cdef bint optional  # an Option: null reads as absent
    cdef bint required  # absent (or null) is an error
    cdef object absent  # what an absent field decodes to: None or ()
    cdef bint omit_empty  # mark E
    cdef bint omit_none  # mark O
    cdef bytes json_key  # ',"wire":', what dumps writes before the value (without the comma if first)


@cython.final
cdef class _Model:
    """A model class and its fields in wire order."""

    cdef object cls
    cdef object tag  # cls.TYPE or None: the "type" that to_plain writes
    cdef tuple fields
    cdef bytes tag_json  # '{"type":"<tag>"' for dumps, None if the tag is not a str or a field is named "type"
    cdef bint shared  # the class's ``_shared``: its values recur across records
    cdef fp_wmodel *w  # how dumps writes it

    def __dealloc__(self):
        fp_wmodel_free(self.w)


# class -> _Model, or None for a class the plans do not cover (the twin handles it).
cdef dict _MODELS = {}
cdef object _UNSEEN = object()


cdef _Model _plan_of(cls):
    """The plan of a class, made on first use; None if the twin must handle it."""
    plan = _MODELS.get(cls, _UNSEEN)
    if plan is _UNSEEN:
        try:
            plan = _compile_model(cls)
        except _NoPlan:
            plan = None
        _MODELS[cls] = plan
    return plan


cdef _Model _compile_model(cls):
    if not isinstance(cls, ModelMeta):
        raise _NoPlan(f"{cls!r} is not a model class")
    # Slots are read and written directly, which is what getattr does only by default.
    if cls.__getattribute__ is not object.__getattribute__:
        raise _NoPlan(f"{cls!r} customizes attribute access")
    cdef _Model plan = _Model()
    plan.cls = cls
    plan.tag = getattr(cls, "TYPE", None)
    plan.shared = getattr(cls, "_shared", False) is True
    fields = []
    for field in cls._fields:
        item = _Field()
        item.wire = field.wire
        item.key = field.wire.encode("utf-8")
        item.key_data, item.key_size = PyBytes_AS_STRING(item.key), PyBytes_GET_SIZE(item.key)
        item.offset = _slot_offset(cls, field.name)
        item.value = _compile_spec(field.spec)
        item.optional = field.spec.kind == OPT
        item.required = field.mark is R and not item.optional
        item.absent = None if item.optional else ()
        item.omit_empty = field.mark is E
        item.omit_none = field.mark is O
        item.json_key = b"," + _orjson_dumps(field.wire) + b":"
        fields.append(item)
    if len(fields) > 64:
        raise _NoPlan(f"{cls!r} has more fields than the text reader's 64-bit mask")
    plan.fields = tuple(fields)
    _compile_writer(plan)
    return plan


cdef Py_ssize_t _slot_offset(cls, name) except -1:
    for klass in cls.__mro__:  # the look-up order of getattr
        if name in vars(klass):
            descr = vars(klass)[name]
            if type(descr) is MemberDescriptorType and fp_slot_offset(descr) >= 0:
                return fp_slot_offset(descr)
            break
    raise _NoPlan(f"{cls!r}.{name} is not a slot")


cdef _Value _compile_spec(spec):
    cdef _Value plan = _Value()
    if not isinstance(spec, Spec):
        raise _NoPlan(f"{spec!r} is not a Spec")
    kind, arg = spec.kind, spec.arg
    try:
        plan.kind = _KINDS[kind]
    except (KeyError, TypeError):  # not one of _schema's kinds (a TypeError if unhashable)
        raise _NoPlan(f"unknown spec kind {kind!r}") from None
    if plan.kind == K_INT:
        plan.low, plan.high = INT_LIMITS[kind]
    elif plan.kind == K_ENUM:
        if not isinstance(arg, EnumMeta):
            raise _NoPlan(f"{arg!r} is not an enum")
        plan.enum = arg
        # What ``arg(value)`` finds for a string: the member with that value (aliases too).
        plan.members = {member.value: member for member in arg.__members__.values()}
        plan.names, plan.choices = _choices(plan.members)
    elif plan.kind == K_MODEL:
        plan.model = _required_plan(arg)
        plan.shared = plan.model.shared
    elif plan.kind == K_SEQ or plan.kind == K_OPT or plan.kind == K_FILTERSET:
        plan.inner = _compile_spec(arg)
        # A list of ids, strings, enum members or shared values: it recurs as they do.
        plan.shared = plan.kind == K_SEQ and (plan.inner.kind in (K_ID, K_STR, K_ENUM) or plan.inner.shared)
    elif plan.kind == K_UNION:
        if type(arg) is not dict:
            raise _NoPlan(f"{arg!r} is not a dict of tagged classes")
        plan.tags, plan.classes = {}, {}
        for tag, cls in arg.items():
            model = _required_plan(cls)
            if model.tag is None:
                raise _NoPlan(f"{cls!r} has no TYPE to tag it with")
            if "type" in [(<_Field>field).wire for field in model.fields]:
                raise _NoPlan(f"{cls!r} has a field named like the tag")
            plan.tags[tag] = model
            plan.classes[cls] = model
        plan.names, plan.choices = _choices(plan.tags)
    elif plan.kind == K_TAGGED:
        _compile_tagged(plan, arg)
    _compile_value_writer(plan)
    return plan


cdef _compile_tagged(_Value plan, arg):
    """A serde enum tagged by ``TAG`` (``_schema.union_spec``), each variant in the form that
    ``_schema._plain_tagged`` writes it; a variant whose form is not certain has no plan."""
    if type(arg) is not tuple or len(arg) != 2 or type(arg[1]) is not dict:
        raise _NoPlan(f"{arg!r} is not a tag key and a dict of tagged classes")
    key, variants = arg
    if key is not None and type(key) is not str:
        raise _NoPlan(f"{key!r} is not a tag key")
    plan.tag_key = key
    plan.key_json = None if key is None else _orjson_dumps(key)
    plan.tags, plan.classes, plan.forms = {}, {}, {}
    for tag, cls in variants.items():
        model = _required_plan(cls)
        # The reader goes by the dict's key, the writer by the class's TAG: the same str.
        if type(tag) is not str or type(getattr(cls, "TAG", None)) is not str or cls.TAG != tag:
            raise _NoPlan(f"{cls!r} is not tagged {tag!r}")
        if key is not None:
            if key in [(<_Field>field).wire for field in model.fields]:
                raise _NoPlan(f"{cls!r} has a field named like the tag")
            form = FPV_INTERNAL
        elif not model.fields:
            form = FPV_UNIT
        elif getattr(cls, "_newtype", False):
            if len(model.fields) != 1:
                raise _NoPlan(f"{cls!r} is a newtype variant without exactly one field")
            form = FPV_NEWTYPE
        else:
            form = FPV_STRUCT
        plan.tags[tag] = model
        plan.classes[cls] = model
        plan.forms[model] = form
    plan.names, plan.choices = _choices(plan.tags)


cdef tuple _choices(dict by_string):
    # Only strings can match a JSON string (the twin tests ``type(tag) is str``).
    strings = [key for key in by_string if type(key) is str]
    return tuple([key.encode("utf-8") for key in strings]), tuple([by_string[key] for key in strings])


cdef _Model _required_plan(cls):
    plan = _plan_of(cls)
    if plan is None:
        raise _NoPlan(f"no plan for {cls!r}")
    return plan


cdef object _make(_Model plan, tuple values):
    """``_schema.make``: ``object.__new__`` and one slot store per field."""
    cdef Py_ssize_t i
    obj = fp_alloc(plan.cls)
    for i in range(len(values)):
        fp_init_slot(obj, (<_Field>plan.fields[i]).offset, values[i])
    return obj


def make(cls, tuple values):
    """``_schema.make``: build ``cls`` from already-validated values in field order (no checks)."""
    return _make(_required_plan(cls), values)
