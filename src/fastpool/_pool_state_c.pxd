# The C types of fastpool._pool_state_c, which setup.py compiles from _pool_state.py, the text
# the pure-Python engine imports as it is. Cython applies these declarations to that file's
# classes; how records are applied is written there only.

cimport cython


@cython.final
cdef class _SortedChunks:
    cdef object key
    cdef list chunks, firsts
    cdef Py_ssize_t size
    cdef set pending
    cdef object cached
    cdef values(self, current)
    cdef update(self, key, value)


cdef class PoolState:
    # Untyped, like the pure class's attributes: callers may store anything in them.
    cdef public object pool_id, store_name, config, created, cursor
    cdef public object members, messages, message_dedupe, wakes, wake_dedupe, trimmed_to, forgotten
    cdef _SortedChunks _members_view, _messages_view, _wakes_view
    cdef tuple _members, _topics
    cdef object _by_topic
    cdef object _snapshot
    # Like the pure class's instances: extra attributes and weak references work.
    cdef dict __dict__
    cdef object __weakref__
    cpdef apply(self, payload, sequence)
    cdef _refresh_members(self)
