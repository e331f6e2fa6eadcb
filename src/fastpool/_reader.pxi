# ---------------------------------------------------------------- reader
# Included by _replay.pyx: the reader. ``from_plain`` decodes JSON-shaped values along the
# plans with C type checks, C look-ups and direct slot stores; ``decode_payload`` reads a
# record's JSON text straight into model objects (parsing it into dicts with orjson first
# would cost more than all the rest).
#
# Only the valid path is fast, in three tiers. The text reader takes only plain, valid input
# (no escapes, no unknown or repeated keys); anything else raises ``_Mismatch`` and the twin's
# ``parse_json`` (orjson, plus a check for repeated keys) parses the text for the value
# decoder. That one accepts only exact built-in types and the classes it has plans for;
# anything else (an object that repeats a key among them) raises ``_Mismatch`` again and
# ``_replay_py`` redoes the whole call, so an odd or malformed input gets the twin's result or
# exception (path text included) by construction.
#
# Values that recur across records (addresses, filters, policy refs, lists of ids: the plans
# marked ``shared``) and ids are read through two bounded tables, one per process, each a
# fixed array of slots keyed by the value's exact text: a value whose text was read before
# is the object decoded then, found without parsing; on a miss the text is parsed and kept
# in the first of the two slots it hashes to, the value there moving to the second, whose
# value is forgotten. So equal values share one object
# (what a replayed pool holds shrinks), the tables never grow, and a hit always returns what
# parsing the same text gave: the reader's results do not depend on what it read before.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Size
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport uint64_t, uintptr_t
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH
from libc.limits cimport ULLONG_MAX
from libc.string cimport memcmp

from ._schema import Spec
from .ids import MAX_ID_BYTES, id_error
from .model import PAYLOAD_TYPES


cdef extern from "_replay.h":
    bint fp_int_within(object value, unsigned long long low, unsigned long long high)
    Py_ssize_t fp_plain_span(const char *at, const char *end, char *copy)
    str fp_ascii(const char *data, Py_ssize_t size)
    bint PyUnicode_IS_ASCII(object text)
    Py_ssize_t fp_value_span(const char *at, const char *end)
    uint64_t fp_hash(const char *at, Py_ssize_t size, uint64_t seed)


_PAYLOAD_SPEC = Spec(UNION, PAYLOAD_TYPES)
cdef _Value _PAYLOAD = _compile_spec(_PAYLOAD_SPEC)
cdef Py_ssize_t _MAX_ID_BYTES = MAX_ID_BYTES


def from_plain(target, value, path):
    """Build a model object from a JSON-shaped value; ``target`` is a model class or a ``Spec``."""
    if isinstance(target, Spec):
        try:
            spec_plan = _compile_spec(target)  # not cached: a UNION spec holds an unhashable dict
        except _NoPlan:
            spec_plan = None
        if spec_plan is not None:
            try:
                return _decode_value(spec_plan, value)
            except _Mismatch:
                pass
    elif isinstance(target, type):
        model_plan = _plan_of(target)
        if model_plan is not None:
            try:
                return _decode_model(model_plan, value)
            except _Mismatch:
                pass
    return _py.from_plain(target, value, path)


cdef object _decode_model(_Model plan, value):
    cdef Py_ssize_t i
    cdef _Field field
    cdef PyObject *found
    if type(value) is not dict:
        raise _Mismatch
    obj = fp_alloc(plan.cls)
    for i in range(len(plan.fields)):
        field = <_Field>plan.fields[i]
        found = PyDict_GetItemWithError(value, field.wire)
        if found is NULL or (field.optional and found == <PyObject *>None):
            if field.required:
                raise _Mismatch
            fp_init_slot(obj, field.offset, field.absent)
        else:
            item = <object>found  # owned while it is decoded
            fp_init_slot(obj, field.offset, _decode_value(field.value, item))
    return obj


cdef object _decode_value(_Value plan, value):
    cdef PyObject *found
    if plan.kind == K_ID:
        if type(value) is str and _id_ok(value):
            return value
    elif plan.kind == K_STR:
        if type(value) is str:
            return value
    elif plan.kind == K_MODEL:
        return _decode_model(plan.model, value)
    elif plan.kind == K_SEQ:
        if type(value) is list:
            return _decode_list(plan.inner, value)
    elif plan.kind == K_ENUM:
        if type(value) is str:
            found = PyDict_GetItemWithError(plan.members, value)
            if found is not NULL:
                return <object>found
    elif plan.kind == K_OPT:
        return _decode_value(plan.inner, value)
    elif plan.kind == K_BOOL:
        if value is True or value is False:
            return value
    elif plan.kind == K_INT:
        if type(value) is int and fp_int_within(value, plan.low, plan.high):
            return value
    elif plan.kind == K_FILTERSET:
        if type(value) is str and value == "any":
            return ANY
        if type(value) is dict and PyDict_Size(value) == 1:
            found = PyDict_GetItemWithError(value, "include")
            if found is not NULL and type(<object>found) is list:
                return _decode_list(plan.inner, <object>found)
    elif plan.kind == K_UNION:
        if type(value) is dict:
            found = PyDict_GetItemWithError(value, "type")
            if found is not NULL and type(<object>found) is str:
                found = PyDict_GetItemWithError(plan.tags, <object>found)
                if found is not NULL:
                    return _decode_model(<_Model>found, value)
    elif plan.kind == K_TAGGED:
        return _decode_tagged(plan, value)
    raise _Mismatch


cdef object _decode_tagged(_Value plan, value):
    """``_replay_py._decode_internal`` and ``_decode_external`` on their valid path."""
    cdef PyObject *found
    cdef _Model model
    if plan.tag_key is not None:
        if type(value) is dict:
            found = PyDict_GetItemWithError(value, plan.tag_key)
            if found is not NULL and type(<object>found) is str:
                found = PyDict_GetItemWithError(plan.tags, <object>found)
                if found is not NULL:
                    return _decode_model(<_Model>found, value)
        raise _Mismatch
    if type(value) is str:
        tag, content = value, None
    elif type(value) is dict and PyDict_Size(value) == 1:
        ((tag, content),) = (<dict>value).items()
    else:
        raise _Mismatch
    found = PyDict_GetItemWithError(plan.tags, tag)
    if found is NULL:
        raise _Mismatch
    model = <_Model>found
    form = plan.forms[model]
    if form == FPV_UNIT:
        if content is None:
            return _make(model, ())
    elif type(value) is str:
        pass  # a variant with content named alone
    elif form == FPV_NEWTYPE:
        return _make(model, (_decode_value((<_Field>model.fields[0]).value, content),))
    else:
        return _decode_model(model, content)
    raise _Mismatch


cdef tuple _decode_list(_Value inner, list items):
    if inner.kind == K_ID or inner.kind == K_STR:
        for item in items:
            if type(item) is not str or (inner.kind == K_ID and not _id_ok(item)):
                raise _Mismatch
        return fp_frozen(items)
    return fp_frozen([_decode_value(inner, item) for item in items])


cdef bint _id_ok(str value) except -1:
    """``ids.id_error(value) is None``; in C for ASCII (1 to 512 characters, none below
    0x20 nor DEL), the common case. Other text keeps the one definition of the rule."""
    cdef Py_ssize_t i, size
    cdef const unsigned char *ascii
    if not PyUnicode_IS_ASCII(value):
        return id_error(value) is None
    size = PyUnicode_GET_LENGTH(value)
    if size == 0 or size > _MAX_ID_BYTES:
        return False
    ascii = PyUnicode_1BYTE_DATA(value)
    for i in range(size):
        if ascii[i] < 0x20 or ascii[i] == 0x7F:
            return False
    return True


# Only text the reader below leaves aside is parsed, rarely: the twin's one definition serves.
parse_json = _py.parse_json


def decode_text(target, text, path):
    """``from_plain(target, parse_json(text, path), path)``: a model class read from JSON text.
    A plain, valid text is read straight into model objects, as a payload is."""
    cdef _Text t
    cdef _Model plan
    if isinstance(target, type):
        plan = _plan_of(target)
        if plan is not None:
            try:
                _text_of(text, &t)
                obj = _read_model_plan(plan, &t)
                _skip_space(&t)
                if t.at == t.end:
                    return obj
            except (_Mismatch, UnicodeError):  # text the reader leaves to orjson, as for a payload
                pass
    return from_plain(target, parse_json(text, path), path)


def decode_payload(text):
    """A record's ``payload_json`` as a payload object; ``InvalidInput`` if it is not one."""
    return _decode_payload(text)


cdef object _decode_payload(text):
    try:
        return _read_payload(text)
    except (_Mismatch, UnicodeError):  # text the reader leaves to orjson, surrogates and bad UTF-8 included
        pass
    value = parse_json(text, "payload")
    try:
        return _decode_value(_PAYLOAD, value)
    except _Mismatch:
        pass
    return _py.from_plain(_PAYLOAD_SPEC, value, "payload")


# The unread part of a payload's UTF-8 text.
cdef struct _Text:
    const char *at
    const char *end
    bint ascii  # a str that is ASCII: so are all its strings


cdef object _read_payload(text):
    """The payload in ``text``, read straight into model objects, or ``_Mismatch``."""
    cdef _Text t
    _text_of(text, &t)
    payload = _read_value(_PAYLOAD, &t)
    _skip_space(&t)
    if t.at != t.end:
        raise _Mismatch
    return payload


cdef int _text_of(text, _Text *t) except -1:
    """Start reading a str's UTF-8 or a bytes object; ``_Mismatch`` for anything else."""
    cdef Py_ssize_t size = 0
    if type(text) is str:
        t.at = PyUnicode_AsUTF8AndSize(text, &size)
        t.ascii = PyUnicode_IS_ASCII(text)
    elif type(text) is bytes:
        t.at = PyBytes_AS_STRING(text)
        size = PyBytes_GET_SIZE(text)
        t.ascii = False
    else:
        raise _Mismatch
    t.end = t.at + size
    return 0


cdef object _read_value(_Value plan, _Text *t):
    if plan.kind == K_ID:
        return _read_id(t)
    elif plan.kind == K_STR:
        return _read_string(t)
    elif plan.kind == K_MODEL:
        if plan.shared:
            return _read_shared(plan, t)
        return _read_model(plan, t)
    elif plan.kind == K_SEQ:
        if plan.shared:
            return _read_shared(plan, t)
        return _read_list(plan.inner, t)
    elif plan.kind == K_ENUM:
        return _read_choice(plan, t)
    elif plan.kind == K_OPT:
        return _read_value(plan.inner, t)
    elif plan.kind == K_BOOL:
        _skip_space(t)
        if _take_word(t, "true", 4):
            return True
        if _take_word(t, "false", 5):
            return False
    elif plan.kind == K_INT:
        return _read_int(plan, t)
    elif plan.kind == K_FILTERSET:
        _skip_space(t)
        if _take_word(t, b'"any"', 5):
            return ANY
        if _take(t, c"{") and _take_key(t, "include", 7):
            items = _read_list(plan.inner, t)
            if _take(t, c"}"):
                return items
    elif plan.kind == K_UNION:
        if _take(t, c"{") and _take_key(t, "type", 4):
            return _read_members(<_Model>_read_choice(plan, t), t, True)
    elif plan.kind == K_TAGGED:
        return _read_tagged(plan, t)
    raise _Mismatch


cdef object _read_tagged(_Value plan, _Text *t):
    """A variant of serde's internal tagging (its tag first, as serde writes it) or external
    tagging: a unit variant's name, or an object of one key, the variant's name."""
    cdef _Model model
    if plan.tag_key is not None:
        if _take(t, c"{") and _take_key(t, PyBytes_AS_STRING(plan.key_json) + 1, PyBytes_GET_SIZE(plan.key_json) - 2):
            return _read_members(<_Model>_read_choice(plan, t), t, True)
        raise _Mismatch
    _skip_space(t)
    if t.at < t.end and t.at[0] == c'"':
        model = <_Model>_read_choice(plan, t)
        if plan.forms[model] == FPV_UNIT:
            return _make(model, ())
        raise _Mismatch
    if not _take(t, c"{"):
        raise _Mismatch
    model = <_Model>_read_choice(plan, t)
    if not _take(t, c":"):
        raise _Mismatch
    form = plan.forms[model]
    _skip_space(t)
    if form == FPV_UNIT:
        if not _take_word(t, "null", 4):
            raise _Mismatch
        value = _make(model, ())
    elif form == FPV_NEWTYPE:
        value = _make(model, (_read_value((<_Field>model.fields[0]).value, t),))
    else:
        value = _read_model_plan(model, t)
    if _take(t, c"}"):
        return value
    raise _Mismatch


cdef object _read_model(_Value plan, _Text *t):
    return _read_model_plan(plan.model, t)


cdef object _read_model_plan(_Model model, _Text *t):
    if _take(t, c"{"):
        return _read_members(model, t, False)
    raise _Mismatch


# ---- the shared tables

# A slot: the text a value was read from (bytes; with the plan it was read by), or for an
# id the str itself, which is its own text (only ASCII ones are kept, so the two agree).
cdef struct _Slot:
    uint64_t hash
    PyObject *plan
    PyObject *text
    PyObject *value

# Slots (powers of two) and the longest text kept: at most about 2,048 × 1 KiB of text and
# what it decodes to, and 4,096 ids.
cdef enum:
    _VALUE_SLOTS = 2048
    _ID_SLOTS = 4096
    _MAX_VALUE_TEXT = 1024
cdef _Slot _values[_VALUE_SLOTS]
cdef _Slot _ids[_ID_SLOTS]


cdef object _read_shared(_Value plan, _Text *t):
    """A K_MODEL or K_SEQ value through the values table."""
    cdef const char *start
    cdef Py_ssize_t size
    cdef uint64_t hash
    cdef _Slot *slot
    cdef int way
    _skip_space(t)
    start = t.at
    size = fp_value_span(start, t.end)
    if size < 0 or size > _MAX_VALUE_TEXT:
        return _read_unshared(plan, t)  # rare text: read as it is
    # Read by the same plan, the same text is the same value; a model's fields all share its plan.
    owner = plan.model if plan.kind == K_MODEL else plan
    hash = fp_hash(start, size, <uintptr_t><PyObject *>owner)
    slot = &_values[hash & (_VALUE_SLOTS - 2)]
    for way in range(2):
        if (
            slot[way].value is not NULL and slot[way].hash == hash and slot[way].plan == <PyObject *>owner
            and PyBytes_GET_SIZE(<object>slot[way].text) == size
            and memcmp(PyBytes_AS_STRING(<object>slot[way].text), start, size) == 0
        ):
            t.at += size
            return <object>slot[way].value
    value = _read_unshared(plan, t)
    if t.at == start + size:  # what the span measured is what was read
        _keep(slot, hash, owner, PyBytes_FromStringAndSize(start, size), value)
    return value


cdef object _read_unshared(_Value plan, _Text *t):
    if plan.kind == K_MODEL:
        return _read_model(plan, t)
    return _read_list(plan.inner, t)


cdef str _read_id(_Text *t):
    """An id through the ids table."""
    cdef const char *start = NULL
    cdef Py_ssize_t size = _read_raw_string(t, &start)
    cdef uint64_t hash = fp_hash(start, size, 0)
    cdef _Slot *slot = &_ids[hash & (_ID_SLOTS - 2)]
    cdef int way
    for way in range(2):
        if (
            slot[way].value is not NULL and slot[way].hash == hash and PyUnicode_GET_LENGTH(<object>slot[way].value) == size
            and memcmp(PyUnicode_1BYTE_DATA(<object>slot[way].value), start, size) == 0
        ):
            return <str>slot[way].value
    value = fp_ascii(start, size) if t.ascii else PyUnicode_DecodeUTF8(<char *>start, size, NULL)
    if not _id_ok(value):
        raise _Mismatch
    if PyUnicode_IS_ASCII(value):
        _keep(slot, hash, None, None, value)
    return value


cdef void _keep(_Slot *slot, uint64_t hash, plan, text, value) noexcept:
    """Put a value in the first of its two slots, the one there in the second, releasing the
    one that was there (after both are whole again: releasing frees objects)."""
    cdef PyObject *old_plan = slot[1].plan
    cdef PyObject *old_text = slot[1].text
    cdef PyObject *old_value = slot[1].value
    slot[1] = slot[0]
    Py_INCREF(plan)
    Py_INCREF(text)
    Py_INCREF(value)
    slot.hash, slot.plan, slot.text, slot.value = hash, <PyObject *>plan, <PyObject *>text, <PyObject *>value
    Py_XDECREF(old_plan)
    Py_XDECREF(old_text)
    Py_XDECREF(old_value)


cdef object _read_members(_Model plan, _Text *t, bint tagged):
    """An object's members up to its closing brace, from after ``{`` (``tagged``: from after
    a union's tag). Keys may come in any order; an unknown or repeated one is a mismatch."""
    cdef unsigned long long seen = 0
    cdef Py_ssize_t index = 0, size
    cdef const char *key = NULL
    cdef _Field field
    obj = fp_alloc(plan.cls)
    if _take(t, c"}"):
        pass
    elif tagged and not _take(t, c","):
        raise _Mismatch
    else:
        while True:
            size = _read_raw_string(t, &key)
            index = _field_index(plan, key, size, index)
            if index < 0 or seen >> index & 1 or not _take(t, c":"):
                raise _Mismatch
            seen |= 1ULL << index
            field = <_Field>plan.fields[index]
            _skip_space(t)
            if field.optional and _take_word(t, "null", 4):
                fp_init_slot(obj, field.offset, None)
            else:
                fp_init_slot(obj, field.offset, _read_value(field.value, t))
            if _take(t, c"}"):
                break
            if not _take(t, c","):
                raise _Mismatch
    for index in range(len(plan.fields)):
        if not seen >> index & 1:
            field = <_Field>plan.fields[index]
            if field.required:
                raise _Mismatch
            fp_init_slot(obj, field.offset, field.absent)
    return obj


cdef Py_ssize_t _field_index(_Model plan, const char *key, Py_ssize_t size, Py_ssize_t start):
    """The index of the field with this wire key, or -1; the search starts at ``start``
    because writers (Rust's serde, ``to_plain``) emit fields in declaration order."""
    cdef Py_ssize_t index
    cdef _Field field
    for index in range(start, len(plan.fields)):
        field = <_Field>plan.fields[index]
        if _same(field.key_data, field.key_size, key, size):
            return index
    for index in range(start):
        field = <_Field>plan.fields[index]
        if _same(field.key_data, field.key_size, key, size):
            return index
    return -1


cdef object _read_choice(_Value plan, _Text *t):
    """The enum member or union variant that the next string names. A scan of a few short
    names costs less than making the string and hashing it."""
    cdef const char *name = NULL
    cdef Py_ssize_t size = _read_raw_string(t, &name), index
    cdef bytes expected
    for index in range(len(plan.names)):
        expected = <bytes>plan.names[index]
        if _same(PyBytes_AS_STRING(expected), PyBytes_GET_SIZE(expected), name, size):
            return plan.choices[index]
    raise _Mismatch


cdef inline bint _same(const char *expected, Py_ssize_t expected_size, const char *data, Py_ssize_t size) noexcept:
    return expected_size == size and memcmp(expected, data, size) == 0


cdef tuple _read_list(_Value inner, _Text *t):
    if not _take(t, c"["):
        raise _Mismatch
    if _take(t, c"]"):
        return ()
    items = []
    while True:
        items.append(_read_value(inner, t))
        if _take(t, c"]"):
            return fp_frozen(items)
        if not _take(t, c","):
            raise _Mismatch


cdef object _read_int(_Value plan, _Text *t):
    cdef unsigned long long value = 0, digit
    cdef const char *start
    _skip_space(t)
    start = t.at
    while t.at < t.end and c"0" <= t.at[0] <= c"9":
        digit = t.at[0] - c"0"
        if value > (ULLONG_MAX - digit) // 10:
            raise _Mismatch  # wider than 64 bits
        value = value * 10 + digit
        t.at += 1
    # No digits, or a leading zero (not JSON): orjson says so.
    if t.at == start or (start[0] == c"0" and t.at - start > 1):
        raise _Mismatch
    if not plan.low <= value <= plan.high:
        raise _Mismatch
    return value


cdef str _read_string(_Text *t):
    cdef const char *start = NULL
    cdef Py_ssize_t size = _read_raw_string(t, &start)
    if t.ascii:
        return fp_ascii(start, size)
    return PyUnicode_DecodeUTF8(<char *>start, size, NULL)  # checks the UTF-8 of bytes input


cdef Py_ssize_t _read_raw_string(_Text *t, const char **start) except -1:
    """Consume a string; its bytes are ``start[0]`` on, the size is returned. Escapes and
    raw control characters (not JSON) are left to orjson: rare, and with exact rules."""
    cdef Py_ssize_t size
    if not _take(t, c'"'):
        raise _Mismatch
    start[0] = t.at
    size = fp_plain_span(t.at, t.end, NULL)
    t.at += size
    if not _take_word(t, '"', 1):
        raise _Mismatch  # an escape, a raw control character or the end of the text
    return size


cdef bint _take_key(_Text *t, const char *key, Py_ssize_t size) except -1:
    """Consume the object key ``key`` and its colon, if they come next."""
    cdef const char *found = NULL
    return _read_raw_string(t, &found) == size and memcmp(found, key, size) == 0 and _take(t, c":")


cdef inline bint _take(_Text *t, char token) noexcept:
    """Consume ``token`` if it comes next (after white space)."""
    _skip_space(t)
    if t.at < t.end and t.at[0] == token:
        t.at += 1
        return True
    return False


cdef inline bint _take_word(_Text *t, const char *word, Py_ssize_t size) noexcept:
    if t.end - t.at >= size and memcmp(t.at, word, size) == 0:
        t.at += size
        return True
    return False


cdef inline void _skip_space(_Text *t) noexcept:
    cdef const char *at = t.at
    while at < t.end and (at[0] == c" " or at[0] == c"\n" or at[0] == c"\r" or at[0] == c"\t"):
        at += 1
    t.at = at
