# cython: language_level=3
"""The replay engine, compiled twin of ``_replay_py.py``: same names, results and errors.

Both engines follow the model's schema (``_schema``), but this one reads it once: each
model class becomes a ``_Model`` plan (per field: kind, wire key, mark, slot offset,
nested plan), so decoding is C type checks, C look-ups and direct slot stores.

``decode_payload`` reads the JSON text straight into model objects; parsing it into dicts
with orjson first would cost more than all the rest.

``dumps`` goes the other way: it writes a model object's JSON text straight from C mirrors
of the plans (the walk runs no Python code), byte for byte what orjson writes for
``to_plain``'s dicts. A value of an inexact type, a lone surrogate or a class without a plan
sends the object the ``to_plain`` way, so results and errors are the twin's.

Only the valid path is fast, in three tiers. The text reader takes only plain, valid
input (no escapes, no unknown or repeated keys); anything else raises ``_Mismatch`` and
the twin's ``parse_json`` (orjson, plus a check for repeated keys) parses the text for the
value decoder. That one accepts only exact built-in types and the classes it has plans
for; anything else (an object that repeats a key among them) raises ``_Mismatch`` again
and ``_replay_py`` redoes the whole call, so an odd or malformed input gets the twin's
result or exception (path text included) by construction.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItemWithError, PyDict_Size
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_AsUTF8AndSize, PyUnicode_DecodeUTF8, PyUnicode_GET_LENGTH
from libc.limits cimport ULLONG_MAX
from libc.string cimport memcmp

from bisect import bisect_left
from itertools import chain
from types import MemberDescriptorType

from orjson import dumps as _orjson_dumps

from . import _replay_py as _py
from ._schema import ANY, BOOL, ENUM, FILTERSET, ID, INT_LIMITS, MODEL, NONZERO, OPT, SEQ, STR, U32, U64, UNION, E, O, R, Spec
from .enums import AgentErrorKind, RetryClassification
from .errors import AgentError, InvalidInput
from .ids import MAX_ID_BYTES, id_error
from .model import PAYLOAD_TYPES, AgentPoolSnapshot, AgentPoolStoreCursor

cdef extern from *:
    """
    #include <structmember.h>

    /* object.__new__(cls) for a class that takes no arguments and is not abstract, left
       untracked by the cyclic GC: a model object is immutable and built from finished
       parts, so it can never be part of a cycle, and a replayed pool holds hundreds of
       thousands of them that every full collection would otherwise walk (that walking was
       over half the time of a cold replay). */
    static PyObject *fp_alloc(PyObject *cls) {
        PyObject *obj = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
        if (obj != NULL && PyType_IS_GC((PyTypeObject *)cls)) {
            PyObject_GC_UnTrack(obj);
        }
        return obj;
    }

    /* A list's items as a tuple the cyclic GC does not track: the engine only makes
       tuples of strings, enum members and model objects, none of which can reach back
       to the tuple, and untracked they cost full collections nothing (see fp_alloc). */
    static PyObject *fp_frozen(PyObject *list) {
        PyObject *tuple = PyList_AsTuple(list);
        if (tuple != NULL) {
            PyObject_GC_UnTrack(tuple);
        }
        return tuple;
    }

    /* Where a member descriptor keeps its value in an instance; -1 unless it is a plain,
       writable object slot (what __slots__ makes). */
    static Py_ssize_t fp_slot_offset(PyObject *descr) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        return member->type == T_OBJECT_EX && !(member->flags & READONLY) ? member->offset : -1;
    }

    /* The slot store object.__setattr__ makes, on a fresh object (nothing to release). */
    static void fp_init_slot(PyObject *obj, Py_ssize_t offset, PyObject *value) {
        Py_INCREF(value);
        *(PyObject **)((char *)obj + offset) = value;
    }

    /* A slot's value, borrowed; NULL while unset. */
    static PyObject *fp_slot(PyObject *obj, Py_ssize_t offset) {
        return *(PyObject **)((char *)obj + offset);
    }

    /* How many bytes come before the first quote (0x22), backslash (0x5C) or control character
       (below 0x20), eight bytes at a time: the has-zero-byte bit trick flags such bytes, and the
       lowest flag is always a true one (a false flag needs a true one below it). */
    static Py_ssize_t fp_plain_span(const char *at, const char *end) {
        const char *start = at;
        const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
        uint64_t word, quote, backslash, flags;
        while (end - at >= 8) {
            memcpy(&word, at, 8);
            quote = word ^ (ones * 0x22);
            backslash = word ^ (ones * 0x5C);
            flags = (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((word - ones * 0x20) & ~word)) & highs;
            if (flags) {
    #if PY_LITTLE_ENDIAN && defined(__GNUC__)
                return at - start + (__builtin_ctzll(flags) >> 3);  /* the first byte is the lowest */
    #else
                break;  /* the byte loop finds it */
    #endif
            }
            at += 8;
        }
        while (at < end && *at != 0x22 && *at != 0x5C && (unsigned char)*at >= 0x20)
            at++;
        return at - start;
    }

    /* A str of bytes known to be ASCII: a copy, nothing to decode. */
    static PyObject *fp_ascii(const char *data, Py_ssize_t size) {
        PyObject *text = PyUnicode_New(size, 127);
        if (text != NULL)
            memcpy(PyUnicode_1BYTE_DATA(text), data, size);
        return text;
    }

    /* ---- JSON text writer (dumps): a byte buffer that starts on the stack. */
    #define FP_OUT_STACK 2048
    typedef struct {
        char *data;
        Py_ssize_t size, capacity;
        int ascii;  /* only ASCII written so far: the str is a copy, nothing to decode */
        Py_UCS4 maxchar;  /* the largest character written */
        Py_ssize_t extra;  /* bytes beyond the first of each character: size - extra characters */
        char stack[FP_OUT_STACK];
    } fp_out;

    static void fp_out_init(fp_out *o) {
        o->data = o->stack;
        o->size = 0;
        o->capacity = FP_OUT_STACK;
        o->ascii = 1;
        o->maxchar = 0x7F;
        o->extra = 0;
    }

    static void fp_out_free(fp_out *o) {
        if (o->data != o->stack)
            PyMem_Free(o->data);
        o->data = o->stack;
    }

    static int fp_grow(fp_out *o, Py_ssize_t extra) {
        Py_ssize_t need, capacity = o->capacity;
        char *data;
        if (extra > PY_SSIZE_T_MAX - o->size) {
            PyErr_NoMemory();
            return -1;
        }
        need = o->size + extra;
        while (capacity < need)
            capacity = capacity > PY_SSIZE_T_MAX / 2 ? need : capacity * 2;
        if (o->data == o->stack) {
            data = (char *)PyMem_Malloc(capacity);
            if (data != NULL)
                memcpy(data, o->stack, o->size);
        } else {
            data = (char *)PyMem_Realloc(o->data, capacity);
        }
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        o->data = data;
        o->capacity = capacity;
        return 0;
    }

    static inline int fp_reserve(fp_out *o, Py_ssize_t extra) {
        return o->capacity - o->size >= extra ? 0 : fp_grow(o, extra);
    }

    static inline int fp_put(fp_out *o, const char *text, Py_ssize_t size) {
        if (fp_reserve(o, size) < 0)
            return -1;
        memcpy(o->data + o->size, text, size);
        o->size += size;
        return 0;
    }

    static inline int fp_put_char(fp_out *o, char c) {
        if (fp_reserve(o, 1) < 0)
            return -1;
        o->data[o->size++] = c;
        return 0;
    }

    /* An int in 0..2**64-1 in decimal: 0 when written, -1 with an exception set, 1 (and
       no exception) for any other int (the caller lets orjson decide). */
    static int fp_put_u64(fp_out *o, PyObject *number) {
        char digits[20];
        int n = 20, overflow = 0;
        unsigned long long value;
        long long signed_value = PyLong_AsLongLongAndOverflow(number, &overflow);  /* quicker below 2**63 */
        if (signed_value == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
        }
        if (overflow == 0) {
            if (signed_value < 0)
                return 1;
            value = (unsigned long long)signed_value;
        } else {
            value = PyLong_AsUnsignedLongLong(number);
            if (value == (unsigned long long)-1 && PyErr_Occurred()) {
                PyErr_Clear();  /* negative, or wider than 64 bits */
                return 1;
            }
        }
        do {
            digits[--n] = (char)('0' + value % 10);
            value /= 10;
        } while (value);
        return fp_put(o, digits + n, 20 - n);
    }

    /* A JSON string as serde_json (and orjson) write it: a quote, a backslash and the control
       characters 08, 09, 0A, 0C, 0D as two-character escapes (backslash and one of the quote,
       backslash, b, t, n, f, r), other characters below 0x20 as backslash u00xx (lowercase
       hex), everything else raw as UTF-8 (DEL and U+2028 included). 0 when written, -1 with an
       exception set, 1 for a lone surrogate (not UTF-8: the caller lets orjson raise its error). */
    static int fp_put_str(fp_out *o, PyObject *text) {
        static const char hex[] = "0123456789abcdef";
        Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        char *at;
        Py_UCS4 c, maxchar = 0;
        Py_ssize_t extra = 0;
    #if PY_VERSION_HEX < 0x030C0000
        if (PyUnicode_READY(text) < 0)
            return -1;
        n = PyUnicode_GET_LENGTH(text);
        kind = PyUnicode_KIND(text);
        data = PyUnicode_DATA(text);
    #endif
        if (n > (PY_SSIZE_T_MAX - 2) / 6) {
            PyErr_NoMemory();
            return -1;
        }
        if (PyUnicode_IS_ASCII(text)) {
            const char *chars = (const char *)data;
            const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
            uint64_t word, quote, backslash;
            if (fp_reserve(o, n + 2) < 0)
                return -1;
            at = o->data + o->size;
            *at++ = '"';
            /* Copy while no byte needs an escape (the test of fp_plain_span), eight at a time. */
            for (; n - i >= 8; i += 8, at += 8) {
                memcpy(&word, chars + i, 8);
                quote = word ^ (ones * 0x22);
                backslash = word ^ (ones * 0x5C);
                if ((((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((word - ones * 0x20) & ~word)) & highs)
                    break;
                memcpy(at, &word, 8);
            }
            for (; i < n && (unsigned char)chars[i] >= 0x20 && chars[i] != 0x22 && chars[i] != 0x5C; i++)
                *at++ = chars[i];
            if (i == n) {  /* the common case */
                *at++ = '"';
                o->size = at - o->data;
                return 0;
            }
            /* An escape: from here, at worst 6 bytes a character (an escaped control). A lone
               surrogate cannot come in ASCII, so what is written stays. */
            o->size = at - o->data;
            if (fp_reserve(o, 6 * (n - i) + 1) < 0)
                return -1;
            at = o->data + o->size;
        } else {
            if (fp_reserve(o, 6 * n + 2) < 0)
                return -1;
            at = o->data + o->size;
            *at++ = '"';
        }
        for (; i < n; i++) {
            c = PyUnicode_READ(kind, data, i);
            if (c < 0x80) {
                if (c >= 0x20 && c != 0x22 && c != 0x5C) {
                    *at++ = (char)c;
                    continue;
                }
                *at++ = 0x5C;  /* backslash */
                switch (c) {
                case 0x22: *at++ = 0x22; break;
                case 0x5C: *at++ = 0x5C; break;
                case 0x08: *at++ = 'b'; break;
                case 0x09: *at++ = 't'; break;
                case 0x0A: *at++ = 'n'; break;
                case 0x0C: *at++ = 'f'; break;
                case 0x0D: *at++ = 'r'; break;
                default:
                    *at++ = 'u'; *at++ = '0'; *at++ = '0';
                    *at++ = hex[c >> 4]; *at++ = hex[c & 0xF];
                }
            } else {
                if (c > maxchar)
                    maxchar = c;
                if (c < 0x800) {
                    *at++ = (char)(0xC0 | (c >> 6));
                    *at++ = (char)(0x80 | (c & 0x3F));
                    extra += 1;
                } else if (c < 0x10000) {
                    if (c >= 0xD800 && c <= 0xDFFF)
                        return 1;  /* nothing was committed: o->size is unchanged */
                    *at++ = (char)(0xE0 | (c >> 12));
                    *at++ = (char)(0x80 | ((c >> 6) & 0x3F));
                    *at++ = (char)(0x80 | (c & 0x3F));
                    extra += 2;
                } else {
                    *at++ = (char)(0xF0 | (c >> 18));
                    *at++ = (char)(0x80 | ((c >> 12) & 0x3F));
                    *at++ = (char)(0x80 | ((c >> 6) & 0x3F));
                    *at++ = (char)(0x80 | (c & 0x3F));
                    extra += 3;
                }
            }
        }
        *at++ = '"';
        if (maxchar) {
            o->ascii = 0;
            if (maxchar > o->maxchar)
                o->maxchar = maxchar;
            o->extra += extra;
        }
        o->size = at - o->data;
        return 0;
    }

    /* The text written, as a str. ASCII is a copy; Latin-1 (the usual non-ASCII: accented
       ids) is narrowed here, runs of eight ASCII bytes at a time, cheaper than the general
       UTF-8 decoder; wider text is decoded. */
    static PyObject *fp_out_str(fp_out *o) {
        const unsigned char *at = (const unsigned char *)o->data, *end = at + o->size;
        PyObject *text;
        Py_UCS1 *into;
        uint64_t word;
        if (o->ascii)
            return fp_ascii(o->data, o->size);
        if (o->maxchar > 0xFF)
            return PyUnicode_DecodeUTF8(o->data, o->size, "strict");
        text = PyUnicode_New(o->size - o->extra, 0xFF);
        if (text == NULL)
            return NULL;
        into = PyUnicode_1BYTE_DATA(text);
        while (at < end) {
            if (end - at >= 8) {
                memcpy(&word, at, 8);
                if (!(word & 0x8080808080808080u)) {
                    memcpy(into, at, 8);
                    into += 8;
                    at += 8;
                    continue;
                }
            }
            if (*at < 0x80) {
                *into++ = *at++;
            } else {  /* two bytes: 110xxxxx 10xxxxxx */
                *into++ = (Py_UCS1)(((at[0] & 0x1F) << 6) | (at[1] & 0x3F));
                at += 2;
            }
        }
        return text;
    }

    /* ---- dumps' plans in C: a mirror of the _Model / _Value plans (each plan object owns
       its struct and holds, through its attributes, every object the struct points to). */
    enum { FPW_STR = 1, FPW_BOOL, FPW_INT, FPW_ENUM, FPW_MODEL, FPW_UNION, FPW_SEQ, FPW_OPT, FPW_FILTERSET };

    typedef struct fp_wmodel fp_wmodel;

    typedef struct fp_wvalue {
        int kind;
        PyTypeObject *type;  /* FPW_ENUM: the enum class, NULL if its members are not str values */
        fp_wmodel *model;  /* FPW_MODEL */
        struct fp_wvalue *inner;  /* FPW_SEQ, FPW_OPT, FPW_FILTERSET */
        Py_ssize_t nvariants;  /* FPW_UNION: the classes and their plans */
        PyTypeObject **variant_types;
        fp_wmodel **variants;
    } fp_wvalue;

    #define FP_KEY_INLINE 48
    typedef struct {
        Py_ssize_t offset;  /* of the slot */
        int omit_empty, omit_none;  /* marks E and O */
        const char *key;  /* ',"wire":' */
        Py_ssize_t key_size;
        fp_wvalue *value;
        /* a short key's copy, zero padded: written as one fixed-size copy (from offset 0 or 1) */
        char key_inline[FP_KEY_INLINE + 16];
    } fp_wfield;

    struct fp_wmodel {
        PyTypeObject *cls;
        int writable;  /* wire keys distinct */
        const char *tag;  /* '{"type":"<tag>"', or NULL if it cannot be written tagged */
        Py_ssize_t tag_size, nfields;
        fp_wfield *fields;
    };

    static PyObject *fp_any = NULL;  /* _schema.ANY */

    static void fp_set_any(PyObject *any) {
        Py_INCREF(any);
        Py_XSETREF(fp_any, any);
    }

    static fp_wvalue *fp_wvalue_new(int kind, PyObject *type, fp_wmodel *model, fp_wvalue *inner, Py_ssize_t nvariants) {
        fp_wvalue *v = (fp_wvalue *)PyMem_Calloc(1, sizeof(fp_wvalue));
        if (v == NULL)
            return (fp_wvalue *)PyErr_NoMemory();
        v->kind = kind;
        v->type = (PyTypeObject *)type;
        v->model = model;
        v->inner = inner;
        if (nvariants) {
            v->variant_types = (PyTypeObject **)PyMem_Calloc(nvariants, sizeof(PyTypeObject *));
            v->variants = (fp_wmodel **)PyMem_Calloc(nvariants, sizeof(fp_wmodel *));
            if (v->variant_types == NULL || v->variants == NULL) {
                PyMem_Free(v->variant_types);
                PyMem_Free(v->variants);
                PyMem_Free(v);
                return (fp_wvalue *)PyErr_NoMemory();
            }
            v->nvariants = nvariants;
        }
        return v;
    }

    static void fp_wvalue_set_variant(fp_wvalue *v, Py_ssize_t i, PyObject *cls, fp_wmodel *model) {
        v->variant_types[i] = (PyTypeObject *)cls;
        v->variants[i] = model;
    }

    static void fp_wvalue_free(fp_wvalue *v) {
        if (v != NULL) {
            PyMem_Free(v->variant_types);
            PyMem_Free(v->variants);
            PyMem_Free(v);
        }
    }

    static fp_wmodel *fp_wmodel_new(PyObject *cls, Py_ssize_t nfields, int writable, const char *tag, Py_ssize_t tag_size) {
        fp_wmodel *m = (fp_wmodel *)PyMem_Calloc(1, sizeof(fp_wmodel));
        if (m == NULL)
            return (fp_wmodel *)PyErr_NoMemory();
        m->fields = (fp_wfield *)PyMem_Calloc(nfields ? nfields : 1, sizeof(fp_wfield));
        if (m->fields == NULL) {
            PyMem_Free(m);
            return (fp_wmodel *)PyErr_NoMemory();
        }
        m->cls = (PyTypeObject *)cls;
        m->nfields = nfields;
        m->writable = writable;
        m->tag = tag;
        m->tag_size = tag_size;
        return m;
    }

    static void fp_wmodel_set_field(fp_wmodel *m, Py_ssize_t i, Py_ssize_t offset, int omit_empty, int omit_none,
                                    const char *key, Py_ssize_t key_size, fp_wvalue *value) {
        fp_wfield *f = &m->fields[i];
        f->offset = offset;
        f->omit_empty = omit_empty;
        f->omit_none = omit_none;
        f->key = key;
        f->key_size = key_size;
        f->value = value;
        if (key_size <= FP_KEY_INLINE)
            memcpy(f->key_inline, key, key_size);
    }

    static void fp_wmodel_free(fp_wmodel *m) {
        if (m != NULL) {
            PyMem_Free(m->fields);
            PyMem_Free(m);
        }
    }

    /* The writers: 0 when written, -1 with an exception set (out of memory), 1 when the value
       is not exactly what the plan expects (the caller redoes it the to_plain way). Values
       are borrowed: nothing here runs Python code, so nothing can release them meanwhile. */
    static int fp_write_value(fp_out *o, const fp_wvalue *v, PyObject *value);

    static int fp_write_model(fp_out *o, const fp_wmodel *m, PyObject *obj, int tagged) {
        Py_ssize_t i, skip = 1;
        const fp_wfield *f;
        PyObject *value;
        int result;
        if (!m->writable)
            return 1;
        if (tagged) {
            if (m->tag == NULL)
                return 1;
            if (fp_put(o, m->tag, m->tag_size) < 0)
                return -1;
            skip = 0;
        } else if (fp_put_char(o, '{') < 0) {
            return -1;
        }
        for (i = 0; i < m->nfields; i++) {
            f = &m->fields[i];
            value = *(PyObject **)((char *)obj + f->offset);
            if (value == NULL)
                return 1;  /* an unset slot: the twin's getattr raises */
            if (f->omit_empty) {
                if (!PyTuple_CheckExact(value))
                    return 1;
                if (PyTuple_GET_SIZE(value) == 0)
                    continue;
            } else if (f->omit_none && value == Py_None) {
                continue;
            }
            if (f->key_size <= FP_KEY_INLINE && o->capacity - o->size >= FP_KEY_INLINE) {
                memcpy(o->data + o->size, f->key_inline + skip, FP_KEY_INLINE);
                o->size += f->key_size - skip;
            } else if (fp_put(o, f->key + skip, f->key_size - skip) < 0) {
                return -1;
            }
            skip = 0;
            if ((result = fp_write_value(o, f->value, value)) != 0)
                return result;
        }
        return fp_put_char(o, '}');
    }

    static int fp_write_items(fp_out *o, const fp_wvalue *inner, PyObject *items) {
        Py_ssize_t i, n = PyTuple_GET_SIZE(items);
        int result;
        if (fp_put_char(o, '[') < 0)
            return -1;
        for (i = 0; i < n; i++) {
            if (i && fp_put_char(o, ',') < 0)
                return -1;
            if ((result = fp_write_value(o, inner, PyTuple_GET_ITEM(items, i))) != 0)
                return result;
        }
        return fp_put_char(o, ']');
    }

    static int fp_write_value(fp_out *o, const fp_wvalue *v, PyObject *value) {
        Py_ssize_t i;
        int result;
        switch (v->kind) {
        case FPW_STR:
            return PyUnicode_CheckExact(value) ? fp_put_str(o, value) : 1;
        case FPW_ENUM:  /* a str enum member is its value's text */
            return v->type != NULL && Py_TYPE(value) == v->type ? fp_put_str(o, value) : 1;
        case FPW_MODEL:
            return Py_TYPE(value) == v->model->cls ? fp_write_model(o, v->model, value, 0) : 1;
        case FPW_UNION:
            for (i = 0; i < v->nvariants; i++)
                if (Py_TYPE(value) == v->variant_types[i])
                    return fp_write_model(o, v->variants[i], value, 1);
            return 1;
        case FPW_SEQ:
            return PyTuple_CheckExact(value) ? fp_write_items(o, v->inner, value) : 1;
        case FPW_OPT:
            return value == Py_None ? fp_put(o, "null", 4) : fp_write_value(o, v->inner, value);
        case FPW_BOOL:
            if (value == Py_True)
                return fp_put(o, "true", 4);
            return value == Py_False ? fp_put(o, "false", 5) : 1;
        case FPW_INT:
            return PyLong_CheckExact(value) ? fp_put_u64(o, value) : 1;
        case FPW_FILTERSET:
            if (value == fp_any)
                return fp_put(o, "\\042any\\042", 5);
            if (!PyTuple_CheckExact(value))
                return 1;
            if (fp_put(o, "{\\042include\\042:", 11) < 0)
                return -1;
            if ((result = fp_write_items(o, v->inner, value)) != 0)
                return result;
            return fp_put_char(o, '}');
        }
        return 1;
    }

    /* Whether an int lies in low..high; leaves no exception set. */
    static int fp_int_within(PyObject *value, unsigned long long low, unsigned long long high) {
        unsigned long long n = PyLong_AsUnsignedLongLong(value);
        if (n == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();  /* negative, or wider than 64 bits */
            return 0;
        }
        return low <= n && n <= high;
    }
    """
    object fp_alloc(object cls)
    tuple fp_frozen(list items)
    Py_ssize_t fp_slot_offset(object descr)
    void fp_init_slot(object obj, Py_ssize_t offset, object value)
    PyObject *fp_slot(object obj, Py_ssize_t offset)
    bint fp_int_within(object value, unsigned long long low, unsigned long long high)
    Py_ssize_t fp_plain_span(const char *at, const char *end)
    str fp_ascii(const char *data, Py_ssize_t size)
    bint PyUnicode_IS_ASCII(object text)
    ctypedef struct fp_out:
        pass
    void fp_out_init(fp_out *o)
    void fp_out_free(fp_out *o)
    str fp_out_str(fp_out *o)
    ctypedef struct fp_wvalue:
        pass
    ctypedef struct fp_wmodel:
        pass
    enum:
        FPW_STR, FPW_BOOL, FPW_INT, FPW_ENUM, FPW_MODEL, FPW_UNION, FPW_SEQ, FPW_OPT, FPW_FILTERSET
    void fp_set_any(object any)
    fp_wvalue *fp_wvalue_new(int kind, PyObject *type, fp_wmodel *model, fp_wvalue *inner, Py_ssize_t nvariants) except NULL
    void fp_wvalue_set_variant(fp_wvalue *v, Py_ssize_t i, PyObject *cls, fp_wmodel *model)
    void fp_wvalue_free(fp_wvalue *v)
    fp_wmodel *fp_wmodel_new(PyObject *cls, Py_ssize_t nfields, int writable, const char *tag, Py_ssize_t tag_size) except NULL
    void fp_wmodel_set_field(fp_wmodel *m, Py_ssize_t i, Py_ssize_t offset, int omit_empty, int omit_none,
                             const char *key, Py_ssize_t key_size, fp_wvalue *value)
    void fp_wmodel_free(fp_wmodel *m)
    int fp_write_model(fp_out *o, const fp_wmodel *m, PyObject *obj, int tagged) except -1

__all__ = [
    "make", "to_plain", "dumps", "from_plain", "parse_json", "decode_payload", "replay_rows", "decode_row", "corrupt_record", "PoolState", "CONFLICTING_OPEN",
]

CONFLICTING_OPEN = "sqlite agent pool store contains conflicting pool open records"
fp_set_any(ANY)
_PAYLOAD_SPEC = Spec(UNION, PAYLOAD_TYPES)


class _Mismatch(Exception):
    """The fast path met something it does not handle: the twin redoes the call."""


# ---------------------------------------------------------------- plans

cdef enum Kind:
    K_ID, K_STR, K_BOOL, K_INT, K_ENUM, K_MODEL, K_SEQ, K_OPT, K_FILTERSET, K_UNION

# A dict, so a kind matches as it does in the twin's ``==`` tests (1, True and 1.0 alike).
_KINDS = {
    ID: K_ID, STR: K_STR, BOOL: K_BOOL, U64: K_INT, U32: K_INT, NONZERO: K_INT, ENUM: K_ENUM,
    MODEL: K_MODEL, SEQ: K_SEQ, OPT: K_OPT, FILTERSET: K_FILTERSET, UNION: K_UNION,
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
    cdef dict tags  # K_UNION: tag -> plan, to decode
    cdef dict classes  # K_UNION: class -> plan, to encode
    cdef tuple names, choices  # K_ENUM, K_UNION: the strings as UTF-8 and what each reads as
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
        except Exception:
            plan = None
        _MODELS[cls] = plan
    return plan


cdef _Model _compile_model(cls):
    # Slots are read and written directly, which is what getattr does only by default.
    if cls.__getattribute__ is not object.__getattribute__:
        raise TypeError(f"{cls!r} customizes attribute access")
    cdef _Model plan = _Model()
    plan.cls = cls
    plan.tag = getattr(cls, "TYPE", None)
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
        raise TypeError(f"{cls!r} has more fields than the text reader's 64-bit mask")
    plan.fields = tuple(fields)
    _compile_writer(plan)
    return plan


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


cdef Py_ssize_t _slot_offset(cls, name) except -1:
    for klass in cls.__mro__:  # the look-up order of getattr
        if name in vars(klass):
            descr = vars(klass)[name]
            if type(descr) is MemberDescriptorType and fp_slot_offset(descr) >= 0:
                return fp_slot_offset(descr)
            break
    raise TypeError(f"{cls!r}.{name} is not a slot")


cdef _Value _compile_spec(spec):
    cdef _Value plan = _Value()
    kind, arg = spec.kind, spec.arg
    plan.kind = _KINDS[kind]
    if plan.kind == K_INT:
        plan.low, plan.high = INT_LIMITS[kind]
    elif plan.kind == K_ENUM:
        plan.enum = arg
        # What ``arg(value)`` finds for a string: the member with that value (aliases too).
        plan.members = {member.value: member for member in arg.__members__.values()}
        plan.names, plan.choices = _choices(plan.members)
    elif plan.kind == K_MODEL:
        plan.model = _required_plan(arg)
    elif plan.kind == K_SEQ or plan.kind == K_OPT or plan.kind == K_FILTERSET:
        plan.inner = _compile_spec(arg)
    elif plan.kind == K_UNION:
        plan.tags, plan.classes = {}, {}
        for tag, cls in arg.items():
            model = _required_plan(cls)
            if model.tag is None:
                raise TypeError(f"{cls!r} has no TYPE to tag it with")
            if "type" in [(<_Field>field).wire for field in model.fields]:
                raise TypeError(f"{cls!r} has a field named like the tag")
            plan.tags[tag] = model
            plan.classes[cls] = model
        plan.names, plan.choices = _choices(plan.tags)
    _compile_value_writer(plan)
    return plan


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
            fp_wvalue_set_variant(plan.w, i, <PyObject *>cls, model.w)
            i += 1


cdef tuple _choices(dict by_string):
    # Only strings can match a JSON string (the twin tests ``type(tag) is str``).
    strings = [key for key in by_string if type(key) is str]
    return tuple([key.encode("utf-8") for key in strings]), tuple([by_string[key] for key in strings])


cdef _Model _required_plan(cls):
    plan = _plan_of(cls)
    if plan is None:
        raise TypeError(f"no plan for {cls!r}")
    return plan


cdef _Value _PAYLOAD = _compile_spec(_PAYLOAD_SPEC)
cdef _Model _SNAPSHOT = _required_plan(AgentPoolSnapshot)
cdef _Model _CURSOR = _required_plan(AgentPoolStoreCursor)
cdef Py_ssize_t _MAX_ID_BYTES = MAX_ID_BYTES


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


# ---------------------------------------------------------------- encoding


def to_plain(obj):
    """A model object as the JSON-shaped value Rust's serde writes (dicts in wire order)."""
    cdef _Model plan = _plan_of(type(obj))
    if plan is not None:
        try:
            return _plain_model(plan, obj, plan.tag)
        except _Mismatch:
            pass
    return _py.to_plain(obj)


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
            if type(value) is not tuple:
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
    if plan.kind == K_SEQ:
        if type(value) is not tuple:
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


# ---------------------------------------------------------------- encoding to text


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


# ---------------------------------------------------------------- decoding


def from_plain(target, value, path):
    """Build a model object from a JSON-shaped value; ``target`` is a model class or a ``Spec``."""
    if isinstance(target, Spec):
        try:
            spec_plan = _compile_spec(target)  # not cached: a UNION spec holds an unhashable dict
        except Exception:
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


# ---------------------------------------------------------------- decoding from text

# The unread part of a payload's UTF-8 text.
cdef struct _Text:
    const char *at
    const char *end
    bint ascii  # a str that is ASCII: so are all its strings


cdef object _read_payload(text):
    """The payload in ``text``, read straight into model objects, or ``_Mismatch``."""
    cdef _Text t
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
    payload = _read_value(_PAYLOAD, &t)
    _skip_space(&t)
    if t.at != t.end:
        raise _Mismatch
    return payload


cdef object _read_value(_Value plan, _Text *t):
    if plan.kind == K_ID:
        value = _read_string(t)
        if _id_ok(value):
            return value
    elif plan.kind == K_STR:
        return _read_string(t)
    elif plan.kind == K_MODEL:
        if _take(t, c"{"):
            return _read_members(plan.model, t, False)
    elif plan.kind == K_SEQ:
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
    raise _Mismatch


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
    size = fp_plain_span(t.at, t.end)
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


def replay_rows(state, rows):
    """Decode and apply ``(seq, kind, payload_json)`` rows in order.

    A row that does not decode, or whose ``kind`` column disagrees with its payload, raises
    ``AgentError(INVALID_STATE_TRANSITION, REPAIR_NEEDED)`` naming the pool and sequence;
    rows before it stay applied, so ``state.cursor`` is the last good record.
    """
    cdef PoolState fast = state if type(state) is PoolState else None
    remaining = iter(rows)
    for row in remaining:
        if type(row) is not tuple or len(<tuple>row) != 3:
            # Unpacking errors read differently from Cython: the twin takes over from here.
            return _py.replay_rows(state, chain((row,), remaining))
        sequence, kind, text = <tuple>row
        payload = decode_row(state.pool_id, sequence, kind, text)
        if fast is not None:
            fast._apply(payload, sequence)
        else:
            state.apply(payload, sequence)


def decode_row(pool_id, sequence, kind, text):
    """One stored row's payload; REPAIR_NEEDED naming the pool and sequence if it is corrupt
    (it does not decode, or its ``kind`` column disagrees with the payload's type)."""
    try:
        payload = _decode_payload(text)
    except InvalidInput as error:
        raise corrupt_record(pool_id, sequence, error.message) from None
    if payload.TYPE != kind:
        raise corrupt_record(pool_id, sequence, f"kind column {kind!r} disagrees with payload type {payload.TYPE!r}")
    return payload


def corrupt_record(pool_id, sequence, reason):
    """The error for a stored record that cannot be replayed."""
    return AgentError(
        AgentErrorKind.INVALID_STATE_TRANSITION,
        RetryClassification.REPAIR_NEEDED,
        f"sqlite agent pool store serialization failure: pool {pool_id!r} record {sequence}: {reason}",
    )


# ---------------------------------------------------------------- pool state


cdef class PoolState:
    """A pool's state replayed from its records, with sorted views kept up to date lazily.

    ``apply`` costs a few dictionary writes; ``snapshot`` reuses the previous snapshot
    while nothing changed and otherwise re-sorts only the keys that changed.
    """

    # Untyped, like the twin's attributes: callers may store anything in them.
    cdef public object pool_id, config, created, cursor
    cdef public object members, messages, message_dedupe, wakes, wake_dedupe
    cdef _SortedView _members_view, _messages_view, _wakes_view
    cdef tuple _topics
    cdef object _by_topic  # dict topic -> members, or None: built on first use
    cdef object _snapshot
    # Like the twin's instances: extra attributes and weak references work.
    cdef dict __dict__
    cdef object __weakref__

    def __init__(self, pool_id):
        self.pool_id = pool_id
        self.config = None
        self.created = False
        self.cursor = 0
        self.members = {}
        self.messages = {}
        self.message_dedupe = {}
        self.wakes = {}
        self.wake_dedupe = {}
        self._members_view = _SortedView()
        self._messages_view = _SortedView()
        self._wakes_view = _SortedView()
        self._topics = ()
        self._by_topic = None
        self._snapshot = None

    def apply(self, payload, sequence):
        """Apply one decoded payload recorded at ``sequence``."""
        self._apply(payload, sequence)

    cdef _apply(self, payload, sequence):
        # Statements split where Python evaluates ``d[key] = value``'s value first, so a
        # malformed payload fails on the same attribute as in the twin.
        kind = payload.TYPE
        if kind == "run_message":
            stored = payload.stored
            receipt = stored.receipt
            self.message_dedupe[stored.message.idempotency_key] = receipt
            key = stored.message.message_id
            self.messages[key] = stored
            self._messages_view.pending.add(key)
        elif kind == "wake":
            stored = payload.stored
            registration = stored.registration
            self.wake_dedupe[stored.condition.idempotency_key] = registration
            key = stored.condition.condition_id
            self.wakes[key] = stored
            self._wakes_view.pending.add(key)
        elif kind == "member_joined":
            member = payload.member
            self.members[member.run_id] = member
            self._members_view.pending.add(member.run_id)
        elif kind == "member_left":
            run_id = payload.member.run_id
            self.members.pop(run_id, None)
            self._members_view.pending.add(run_id)
        elif kind == "pool_created":
            self.created = True
        else:  # pool_opened
            if self.config is not None and self.config != payload.config:
                raise AgentError(AgentErrorKind.INVALID_STATE_TRANSITION, RetryClassification.REPAIR_NEEDED, CONFLICTING_OPEN)
            self.config = payload.config
        self.cursor = sequence
        self._snapshot = None

    def snapshot(self):
        """The snapshot of the records applied so far, or ``None`` if no ``pool_opened`` was seen."""
        config = self.config
        if config is None:
            return None
        if self._snapshot is not None:
            return self._snapshot
        if self._members_view.pending:
            self._refresh_members()
        members = self._members_view.cached
        # One statement per step, in the twin's order of evaluation.
        message_policy = config.message_policy
        wake_policy = config.wake_policy
        policy_refs = config.policy_refs
        messages = self._messages_view.values(self.messages)
        wakes = self._wakes_view.values(self.wakes)
        cursor = _make(_CURSOR, (self.cursor,))
        self._snapshot = _make(
            _SNAPSHOT,
            (self.pool_id, self.created, members, self._topics, message_policy, wake_policy, policy_refs,
             messages, wakes, cursor),
        )
        return self._snapshot

    def sorted_members(self):
        """The current members sorted by run id (the snapshot's ``members``), without a snapshot."""
        if self._members_view.pending:
            self._refresh_members()
        return self._members_view.cached

    def sorted_topics(self):
        """The sorted union of the current members' topics (the snapshot's ``topics``)."""
        if self._members_view.pending:
            self._refresh_members()
        return self._topics

    def topic_members(self, topic):
        """The current members with ``topic`` among their topics, sorted by run id."""
        if self._members_view.pending:
            self._refresh_members()
        by_topic = self._by_topic
        if by_topic is None:
            grouped = {}
            for member in self._members_view.cached:
                for name in set(member.topics):  # a member may list a topic twice
                    grouped.setdefault(name, []).append(member)
            by_topic = self._by_topic = {name: tuple(listed) for name, listed in grouped.items()}
        return by_topic.get(topic, ())

    cdef _refresh_members(self):
        """Bring the members view and what is derived from it up to date with ``members``."""
        members = self._members_view.values(self.members)
        self._topics = tuple(sorted({topic for member in members for topic in member.topics}))
        self._by_topic = None


@cython.final
cdef class _SortedView:
    """The values of a dict sorted by key, as a tuple, refreshed from the keys that changed."""

    cdef list keys
    cdef list items
    cdef set pending
    cdef tuple cached

    def __init__(self):
        self.keys = []
        self.items = []
        self.pending = set()
        self.cached = ()

    cdef tuple values(self, current):
        cdef Py_ssize_t index
        cdef bint present
        pending, keys, items = self.pending, self.keys, self.items
        if not pending:
            return self.cached
        if len(pending) * 8 > len(keys):
            # Many changes (a cold replay): one sort beats many insertions.
            keys[:] = sorted(current)
            items[:] = [current[key] for key in keys]
        else:
            for key in pending:
                index = bisect_left(keys, key)
                present = index < len(keys) and keys[index] == key
                value = current.get(key, _UNSEEN)
                if value is _UNSEEN:
                    if present:
                        del keys[index]
                        del items[index]
                elif present:
                    items[index] = value
                else:
                    keys.insert(index, key)
                    items.insert(index, value)
        pending.clear()
        self.cached = fp_frozen(items)
        return self.cached
