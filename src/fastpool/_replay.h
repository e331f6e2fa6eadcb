/* The C half of the compiled replay engine (fastpool._replay): what Cython cannot say
   directly (slot offsets, untracked allocation) and the JSON text writer that dumps runs
   without any Python code. Read by _replay.pyx's `cdef extern from "_replay.h"` blocks;
   one section per job, in the order of the .pxi files that use them:
     objects    allocation left untracked by the GC, slot stores and reads (_plans.pxi)
     byte scan  the run of bytes a JSON string holds raw (the reader and the writer)
     writer     the output buffer, the C mirror of the plans, the walk (_writer.pxi)
     reader     the range check of an int, the span and hash of a value's text (_reader.pxi)
   Compiled with -Wall -Wextra (setup.py); every warning is fixed, not silenced. */
#ifndef FASTPOOL_REPLAY_H
#define FASTPOOL_REPLAY_H

#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- objects */


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

/* A str of bytes known to be ASCII: a copy, nothing to decode. */
static PyObject *fp_ascii(const char *data, Py_ssize_t size) {
    PyObject *text = PyUnicode_New(size, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), data, size);
    return text;
}

/* ---------------------------------------------------------------- byte scan */

/* The bytes of an 8-byte word that a JSON string cannot hold raw, flagged (0x80 in each):
   a quote (0x22), a backslash (0x5C), a control character (below 0x20). The has-zero-byte
   bit trick; its lowest flag is always a true one (a false flag needs a true one below it). */
static inline uint64_t fp_escape_flags(uint64_t word) {
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    const uint64_t quote = word ^ (ones * 0x22), backslash = word ^ (ones * 0x5C);
    return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((word - ones * 0x20) & ~word)) & highs;
}

/* How many bytes come before the first one a JSON string cannot hold raw, eight at a time;
   with `copy`, they are copied there as they are read. The text reader's strings end there
   (no copy), and the writer copies what precedes the first escape. Inlined, so each caller
   gets the loop it needs. */
static inline Py_ssize_t fp_plain_span(const char *at, const char *end, char *copy) {
    const char *start = at;
    uint64_t word, flags;
    while (end - at >= 8) {
        memcpy(&word, at, 8);
        flags = fp_escape_flags(word);
        if (flags) {
#if PY_LITTLE_ENDIAN && defined(__GNUC__)
            at += __builtin_ctzll(flags) >> 3;  /* the first flagged byte is the lowest */
            if (copy != NULL)
                memcpy(copy, &word, 8);  /* the bytes past the span are overwritten or ignored */
            return at - start;
#else
            break;  /* the byte loop finds it */
#endif
        }
        if (copy != NULL) {
            memcpy(copy, &word, 8);
            copy += 8;
        }
        at += 8;
    }
    while (at < end && *at != 0x22 && *at != 0x5C && (unsigned char)*at >= 0x20) {
        if (copy != NULL)
            *copy++ = *at;
        at++;
    }
    return at - start;
}

/* ---------------------------------------------------------------- writer */

/* The JSON text dumps writes: a byte buffer that starts on the stack. */
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
        if (fp_reserve(o, n + 2) < 0)
            return -1;
        at = o->data + o->size;
        *at++ = '"';
        i = fp_plain_span(chars, chars + n, at);  /* a word it copies lies within the string: it fits */
        at += i;
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

/* dumps' plans in C: a mirror of the _Model / _Value plans (each plan object owns
   its struct and holds, through its attributes, every object the struct points to). */
enum { FPW_STR = 1, FPW_BOOL, FPW_INT, FPW_ENUM, FPW_MODEL, FPW_UNION, FPW_SEQ, FPW_OPT, FPW_FILTERSET };

/* How a variant of an FPW_UNION is written: FPV_TYPE {"type":name,fields} (serde's tag =
   "type"); the forms of serde's other tagging (_schema._plain_tagged): FPV_UNIT "name"
   (external, no fields), FPV_NEWTYPE {"name":value} (external, one bare value), FPV_STRUCT
   {"name":{fields}} (external), FPV_INTERNAL {"key":"name",fields}. */
enum { FPV_TYPE, FPV_UNIT, FPV_NEWTYPE, FPV_STRUCT, FPV_INTERNAL };

typedef struct fp_wmodel fp_wmodel;

typedef struct {
    PyTypeObject *type;
    fp_wmodel *model;
    int form;
    const char *open;  /* what comes before the content: '"name"', '{"name":' or '{"key":"name"' */
    Py_ssize_t open_size;
} fp_wvariant;

typedef struct fp_wvalue {
    int kind;
    PyTypeObject *type;  /* FPW_ENUM: the enum class, NULL if its members are not str values */
    fp_wmodel *model;  /* FPW_MODEL */
    struct fp_wvalue *inner;  /* FPW_SEQ, FPW_OPT, FPW_FILTERSET */
    Py_ssize_t nvariants;  /* FPW_UNION: the classes, their plans and forms */
    fp_wvariant *variants;
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

static PyTypeObject *fp_chunked = NULL;  /* _chunked.ChunkedTuple: written as the tuple of its items */
static PyObject *fp_chunks_name = NULL;  /* "_chunks": its tuple of item tuples, none empty */

static int fp_set_chunked(PyObject *cls) {
    if (fp_chunks_name == NULL && (fp_chunks_name = PyUnicode_InternFromString("_chunks")) == NULL)
        return -1;
    Py_INCREF(cls);
    Py_XSETREF(fp_chunked, (PyTypeObject *)cls);
    return 0;
}

/* A ChunkedTuple's chunks, as a new reference; NULL with no error set if ``value`` is not one
   (or its chunks are not exact tuples), NULL with an error set if reading them failed. */
static PyObject *fp_chunks_of(PyObject *value) {
    PyObject *chunks;
    Py_ssize_t i;
    if (fp_chunked == NULL || Py_TYPE(value) != fp_chunked)
        return NULL;
    if ((chunks = PyObject_GetAttr(value, fp_chunks_name)) == NULL)
        return NULL;
    if (PyTuple_CheckExact(chunks)) {
        for (i = 0; i < PyTuple_GET_SIZE(chunks); i++)
            if (!PyTuple_CheckExact(PyTuple_GET_ITEM(chunks, i)))
                break;
        if (i == PyTuple_GET_SIZE(chunks))
            return chunks;
    }
    Py_DECREF(chunks);
    return NULL;
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
        v->variants = (fp_wvariant *)PyMem_Calloc(nvariants, sizeof(fp_wvariant));
        if (v->variants == NULL) {
            PyMem_Free(v);
            return (fp_wvalue *)PyErr_NoMemory();
        }
        v->nvariants = nvariants;
    }
    return v;
}

static void fp_wvalue_set_variant(fp_wvalue *v, Py_ssize_t i, PyObject *cls, fp_wmodel *model, int form,
                                  const char *open, Py_ssize_t open_size) {
    fp_wvariant *variant = &v->variants[i];
    variant->type = (PyTypeObject *)cls;
    variant->model = model;
    variant->form = form;
    variant->open = open;
    variant->open_size = open_size;
}

static void fp_wvalue_free(fp_wvalue *v) {
    if (v != NULL) {
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

/* An object's fields after ``open`` ('{', or '{' and a tag: then a comma comes first). */
static int fp_write_fields(fp_out *o, const fp_wmodel *m, PyObject *obj, const char *open, Py_ssize_t open_size) {
    Py_ssize_t i, skip = open_size == 1;
    const fp_wfield *f;
    PyObject *value;
    int result;
    if (!m->writable)
        return 1;
    if (fp_put(o, open, open_size) < 0)
        return -1;
    for (i = 0; i < m->nfields; i++) {
        f = &m->fields[i];
        value = *(PyObject **)((char *)obj + f->offset);
        if (value == NULL)
            return 1;  /* an unset slot: the twin's getattr raises */
        if (f->omit_empty) {
            if (!PyTuple_CheckExact(value)) {
                PyObject *chunks = fp_chunks_of(value);  /* none empty: no chunks, no items */
                Py_ssize_t size;
                if (chunks == NULL)
                    return PyErr_Occurred() ? -1 : 1;
                size = PyTuple_GET_SIZE(chunks);
                Py_DECREF(chunks);
                if (size == 0)
                    continue;
            } else if (PyTuple_GET_SIZE(value) == 0)
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

static int fp_write_model(fp_out *o, const fp_wmodel *m, PyObject *obj, int tagged) {
    if (!tagged)
        return fp_write_fields(o, m, obj, "{", 1);
    return m->tag == NULL ? 1 : fp_write_fields(o, m, obj, m->tag, m->tag_size);
}

/* A variant of a union in its form. */
static int fp_write_variant(fp_out *o, const fp_wvariant *variant, PyObject *value) {
    const fp_wfield *f;
    PyObject *field;
    int result;
    switch (variant->form) {
    case FPV_TYPE:
        return fp_write_model(o, variant->model, value, 1);
    case FPV_INTERNAL:
        return fp_write_fields(o, variant->model, value, variant->open, variant->open_size);
    case FPV_UNIT:
        return fp_put(o, variant->open, variant->open_size);
    case FPV_NEWTYPE:
        f = &variant->model->fields[0];
        if ((field = *(PyObject **)((char *)value + f->offset)) == NULL)
            return 1;  /* an unset slot: the twin's getattr raises */
        if (fp_put(o, variant->open, variant->open_size) < 0)
            return -1;
        if ((result = fp_write_value(o, f->value, field)) != 0)
            return result;
        return fp_put_char(o, '}');
    case FPV_STRUCT:
        if (fp_put(o, variant->open, variant->open_size) < 0)
            return -1;
        if ((result = fp_write_model(o, variant->model, value, 0)) != 0)
            return result;
        return fp_put_char(o, '}');
    }
    return 1;
}

/* The items of a tuple, after a comma unless ``first``. */
static int fp_write_run(fp_out *o, const fp_wvalue *inner, PyObject *items, int first) {
    Py_ssize_t i, n = PyTuple_GET_SIZE(items);
    int result;
    for (i = 0; i < n; i++) {
        if ((i || !first) && fp_put_char(o, ',') < 0)
            return -1;
        if ((result = fp_write_value(o, inner, PyTuple_GET_ITEM(items, i))) != 0)
            return result;
    }
    return 0;
}

/* A tuple, or a ChunkedTuple as the tuple of its items. */
static int fp_write_items(fp_out *o, const fp_wvalue *inner, PyObject *items) {
    PyObject *chunks = NULL;
    Py_ssize_t i;
    int result = 0;
    if (!PyTuple_CheckExact(items)) {
        if ((chunks = fp_chunks_of(items)) == NULL)
            return PyErr_Occurred() ? -1 : 1;
    }
    if (fp_put_char(o, '[') < 0)
        result = -1;
    else if (chunks == NULL)
        result = fp_write_run(o, inner, items, 1);
    else
        for (i = 0; i < PyTuple_GET_SIZE(chunks) && result == 0; i++)
            result = fp_write_run(o, inner, PyTuple_GET_ITEM(chunks, i), i == 0);
    Py_XDECREF(chunks);
    return result != 0 ? result : fp_put_char(o, ']');
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
            if (Py_TYPE(value) == v->variants[i].type)
                return fp_write_variant(o, &v->variants[i], value);
        return 1;
    case FPW_SEQ:
        return fp_write_items(o, v->inner, value);
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
            return fp_put(o, "\"any\"", 5);
        if (!PyTuple_CheckExact(value))
            return 1;
        if (fp_put(o, "{\"include\":", 11) < 0)
            return -1;
        if ((result = fp_write_items(o, v->inner, value)) != 0)
            return result;
        return fp_put_char(o, '}');
    }
    return 1;
}

/* ---------------------------------------------------------------- reader */

/* Whether an int lies in low..high; leaves no exception set. */
static int fp_int_within(PyObject *value, unsigned long long low, unsigned long long high) {
    unsigned long long n = PyLong_AsUnsignedLongLong(value);
    if (n == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();  /* negative, or wider than 64 bits */
        return 0;
    }
    return low <= n && n <= high;
}

/* The size of the JSON object or array that starts at `at` (with `{` or `[`), up to its
   matching bracket; -1 if the text ends first or a string in it holds an escape. It only
   counts brackets outside strings: the reader checks the text itself on a first reading. */
static inline Py_ssize_t fp_value_span(const char *at, const char *end) {
    const char *start = at;
    Py_ssize_t depth = 0;
    for (; at < end; at++) {
        switch (*at) {
        case '"':
            at++;
            at += fp_plain_span(at, end, NULL);
            if (at == end || *at != '"')
                return -1;
            break;
        case '{': case '[':
            depth++;
            break;
        case '}': case ']':
            if (--depth == 0)
                return at + 1 - start;
            break;
        }
    }
    return -1;
}

/* A hash of `size` bytes, eight at a time (not for an adversary: a collision costs a memcmp). */
static inline uint64_t fp_hash(const char *at, Py_ssize_t size, uint64_t seed) {
    const uint64_t k = 0x9E3779B97F4A7C15u;
    uint64_t h = (seed ^ (uint64_t)size) * k, word;
    for (; size >= 8; at += 8, size -= 8) {
        memcpy(&word, at, 8);
        h = (h ^ word) * k;
        h ^= h >> 29;
    }
    if (size > 0) {
        word = 0;
        memcpy(&word, at, (size_t)size);
        h = (h ^ word) * k;
    }
    h ^= h >> 32;
    return h;
}

#endif  /* FASTPOOL_REPLAY_H */
