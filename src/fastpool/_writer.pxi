# ---------------------------------------------------------------- writer
# Included by _replay.pyx: the writer. ``to_plain`` walks the plans into dicts; ``dumps``
# writes a model object's JSON text straight from the plans' C mirrors (``_replay.h``: the walk
# runs no Python code), byte for byte what orjson writes for ``to_plain``'s dicts. A value of
# an inexact type, a lone surrogate or a class without a plan sends the object the
# ``to_plain`` way, so results and errors are the twin's.

from ._chunked import ChunkedTuple
from ._schema import ANY, to_plain as _schema_to_plain


cdef extern from "_replay.h":
    ctypedef struct fp_out:
        pass
    void fp_out_init(fp_out *o)
    void fp_out_free(fp_out *o)
    str fp_out_str(fp_out *o)
    enum:
        FPW_STR, FPW_BOOL, FPW_INT, FPW_ENUM, FPW_MODEL, FPW_UNION, FPW_SEQ, FPW_OPT, FPW_FILTERSET
    void fp_set_any(object any)
    int fp_set_chunked(object cls) except -1
    fp_wvalue *fp_wvalue_new(int kind, PyObject *type, fp_wmodel *model, fp_wvalue *inner, Py_ssize_t nvariants) except NULL
    void fp_wvalue_set_variant(fp_wvalue *v, Py_ssize_t i, PyObject *cls, fp_wmodel *model, int form,
                               const char *open, Py_ssize_t open_size)
    fp_wmodel *fp_wmodel_new(PyObject *cls, Py_ssize_t nfields, int writable, const char *tag, Py_ssize_t tag_size) except NULL
    void fp_wmodel_set_field(fp_wmodel *m, Py_ssize_t i, Py_ssize_t offset, int omit_empty, int omit_none,
                             const char *key, Py_ssize_t key_size, fp_wvalue *value)
    int fp_write_model(fp_out *o, const fp_wmodel *m, PyObject *obj, int tagged) except -1


fp_set_any(ANY)
fp_set_chunked(ChunkedTuple)


def to_plain(obj):
    """A model object as the JSON-shaped value Rust's serde writes (dicts in wire order)."""
    cdef _Model plan = _plan_of(type(obj))
    if plan is not None:
        try:
            return _plain_model(plan, obj, plan.tag)
        except _Mismatch:
            pass
    return _schema_to_plain(obj)


cdef dict _plain_model(_Model plan, obj, tag):
    cdef dict out = {} if tag is None else {"type": tag}
    cdef Py_ssize_t i
    cdef _Field field
    cdef PyObject *found
    for i in range(len(plan.fields)):
        field = <_Field>plan.fields[i]
        found = fp_slot(obj, field.offset)
        if found is NULL:
            raise _Mismatch  # an unset slot: the twin's getattr raises
        value = <object>found
        if field.omit_empty:
            if type(value) is ChunkedTuple:
                value = tuple(value)  # a snapshot's messages and wakes
            elif type(value) is not tuple:
                raise _Mismatch
            if not value:
                continue
        elif field.omit_none and value is None:
            continue
        out[field.wire] = _plain_value(field.value, value)
    return out


cdef object _plain_value(_Value plan, value):
    cdef _Model model
    if plan.kind == K_MODEL:
        if type(value) is not plan.model.cls:
            raise _Mismatch
        return _plain_model(plan.model, value, None)
    if plan.kind == K_UNION:
        model = plan.classes.get(type(value))
        if model is None:
            raise _Mismatch
        return _plain_model(model, value, model.tag)
    if plan.kind == K_TAGGED:
        return _plain_tagged(plan, value)
    if plan.kind == K_SEQ:
        if type(value) is ChunkedTuple:
            value = tuple(value)  # a snapshot's messages and wakes
        elif type(value) is not tuple:
            raise _Mismatch
        if plan.inner.kind <= K_STR:
            return list(<tuple>value)
        return [_plain_value(plan.inner, item) for item in <tuple>value]
    if plan.kind == K_OPT:
        return None if value is None else _plain_value(plan.inner, value)
    if plan.kind == K_FILTERSET:
        if value is ANY:
            return "any"
        if type(value) is not tuple:
            raise _Mismatch
        return {"include": [_plain_value(plan.inner, item) for item in <tuple>value]}
    if plan.kind == K_ENUM:
        if type(value) is not plan.enum:
            raise _Mismatch
        return value._value_  # what ``.value`` returns, without the Python-level property
    return value


cdef object _plain_tagged(_Value plan, value):
    """``_schema._plain_tagged``: a variant of serde's default or internal tagging."""
    cdef _Model model = plan.classes.get(type(value))
    cdef PyObject *found
    if model is None:
        raise _Mismatch
    form = plan.forms[model]
    tag = type(value).TAG
    if form == FPV_INTERNAL:
        out = {plan.tag_key: tag}
        out.update(_plain_model(model, value, None))
        return out
    if form == FPV_UNIT:
        return tag
    if form == FPV_NEWTYPE:
        found = fp_slot(value, (<_Field>model.fields[0]).offset)
        if found is NULL:
            raise _Mismatch  # an unset slot: the twin's getattr raises
        return {tag: _plain_value((<_Field>model.fields[0]).value, <object>found)}
    return {tag: _plain_model(model, value, None)}


def dumps(obj):
    """``orjson.dumps(to_plain(obj)).decode("utf-8")``: a model object's compact JSON text,
    byte for byte as serde_json writes it, written straight from the plans (no dicts).
    Anything the plans do not cover exactly goes the ``to_plain`` way, errors included."""
    cdef _Model plan = _plan_of(type(obj))
    cdef fp_out out
    if plan is not None:
        fp_out_init(&out)
        try:
            if fp_write_model(&out, plan.w, <PyObject *>obj, plan.tag is not None) == 0:
                return fp_out_str(&out)
        finally:
            fp_out_free(&out)
    return _orjson_dumps(to_plain(obj)).decode("utf-8")


cdef _compile_writer(_Model plan):
    """The C plan dumps follows: to_plain's dicts, as text. Where a dict would keep one of two
    equal keys, or a tag could not be written first, dumps leaves the object to to_plain."""
    cdef _Field item
    cdef Py_ssize_t i
    wires = [(<_Field>field).wire for field in plan.fields]
    if type(plan.tag) is str and "type" not in wires:
        plan.tag_json = b'{"type":' + _orjson_dumps(plan.tag)
    plan.w = fp_wmodel_new(
        <PyObject *>plan.cls,
        len(plan.fields),
        len(set(wires)) == len(wires),
        NULL if plan.tag_json is None else PyBytes_AS_STRING(plan.tag_json),
        0 if plan.tag_json is None else PyBytes_GET_SIZE(plan.tag_json),
    )
    for i in range(len(plan.fields)):
        item = <_Field>plan.fields[i]
        fp_wmodel_set_field(
            plan.w, i, item.offset, item.omit_empty, item.omit_none,
            PyBytes_AS_STRING(item.json_key), PyBytes_GET_SIZE(item.json_key), item.value.w,
        )


cdef _compile_value_writer(_Value plan):
    cdef Py_ssize_t i = 0
    cdef _Model model
    cdef PyObject *enum = NULL
    if plan.kind == K_ID or plan.kind == K_STR:
        plan.w = fp_wvalue_new(FPW_STR, NULL, NULL, NULL, 0)
    elif plan.kind == K_BOOL:
        plan.w = fp_wvalue_new(FPW_BOOL, NULL, NULL, NULL, 0)
    elif plan.kind == K_INT:
        plan.w = fp_wvalue_new(FPW_INT, NULL, NULL, NULL, 0)
    elif plan.kind == K_ENUM:
        # A str enum (``WireEnum``) whose members hold their values as their own text: dumps
        # writes a member as the str it is, which is what ``to_plain`` gives (``_value_``).
        # Any other enum is left to to_plain.
        if issubclass(plan.enum, str) and all(
            [type(member._value_) is str and str.__eq__(member, member._value_) for member in plan.enum.__members__.values()]
        ):
            enum = <PyObject *>plan.enum
        plan.w = fp_wvalue_new(FPW_ENUM, enum, NULL, NULL, 0)
    elif plan.kind == K_MODEL:
        plan.w = fp_wvalue_new(FPW_MODEL, NULL, plan.model.w, NULL, 0)
    elif plan.kind == K_SEQ:
        plan.w = fp_wvalue_new(FPW_SEQ, NULL, NULL, plan.inner.w, 0)
    elif plan.kind == K_OPT:
        plan.w = fp_wvalue_new(FPW_OPT, NULL, NULL, plan.inner.w, 0)
    elif plan.kind == K_FILTERSET:
        plan.w = fp_wvalue_new(FPW_FILTERSET, NULL, NULL, plan.inner.w, 0)
    elif plan.kind == K_UNION:
        plan.w = fp_wvalue_new(FPW_UNION, NULL, NULL, NULL, len(plan.classes))
        for cls, model in plan.classes.items():
            fp_wvalue_set_variant(plan.w, i, <PyObject *>cls, model.w, FPV_TYPE, NULL, 0)
            i += 1
    elif plan.kind == K_TAGGED:
        # The same C union, each variant in its form, after the text that opens it.
        plan.opens = []
        for cls, model in plan.classes.items():
            form = plan.forms[model]
            try:
                tag = _orjson_dumps(cls.TAG)
            except TypeError:  # orjson's error for a lone surrogate: to_plain raises it
                raise _NoPlan(f"{cls!r}'s tag is not UTF-8") from None
            if form == FPV_UNIT:
                opening = tag
            elif form == FPV_INTERNAL:
                opening = b"{" + plan.key_json + b":" + tag
            else:
                opening = b"{" + tag + b":"
            plan.opens.append(opening)
        plan.w = fp_wvalue_new(FPW_UNION, NULL, NULL, NULL, len(plan.classes))
        for cls, model in plan.classes.items():
            opening = plan.opens[i]
            fp_wvalue_set_variant(
                plan.w, i, <PyObject *>cls, model.w, plan.forms[model], PyBytes_AS_STRING(opening),
                PyBytes_GET_SIZE(opening),
            )
            i += 1
