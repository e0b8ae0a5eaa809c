/*
 * code_table.h -- the "watchers-table" design: a consumer keeps its
 * per-code values in its own hash table and never touches co_extra.
 *
 * This is the counter-proposal a reviewer raises against the PEP: drop
 * co_extra, and let each consumer map code object -> value in a table of
 * its own, removing an entry when a code watcher reports the code
 * object's PY_CODE_EVENT_DESTROY.  It is written the way a careful C
 * consumer would write it:
 *
 *   - open addressing with linear probing, power-of-two capacity, load
 *     factor at most 1/2 (grown by doubling), so a hit is found in one or
 *     two probes of one cache line;
 *   - the key is the code object's address, hashed by multiplying with
 *     2^64 / phi and taking the high bits (heap addresses are aligned,
 *     so their low bits carry no information);
 *   - deletion by backward shift, so there are no tombstones and lookups
 *     of absent keys stay short however many code objects come and go;
 *   - on free-threaded builds, a PyMutex serialises every operation,
 *     reads included: a lock-free read would need delayed reclamation of
 *     the slot array when the table grows, which CPython does not expose
 *     to extensions (its QSBR is internal), so a consumer cannot do it
 *     safely.  On builds with the GIL the GIL protects the table (the
 *     watcher runs with it held, and so does the consumer).
 *
 * Storing NULL removes the entry (an empty slot and a NULL value are the
 * same thing to the consumer, as with co_extra).  A replaced or removed
 * non-NULL value is passed to the table's free function, as
 * PyUnstable_Code_SetExtra does.
 */
#ifndef COEXTRA_CODE_TABLE_H
#define COEXTRA_CODE_TABLE_H

#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    PyObject *key; /* a code object; NULL marks an empty slot */
    void *value;
} code_table_entry;

typedef struct {
    code_table_entry *slots;
    size_t mask;    /* capacity - 1 */
    unsigned shift; /* 64 - log2(capacity) */
    size_t used;
    freefunc free_value;
#ifdef Py_GIL_DISABLED
    PyMutex mutex;
#endif
} code_table;

#ifdef Py_GIL_DISABLED
#define CODE_TABLE_LOCK(t) PyMutex_Lock(&(t)->mutex)
#define CODE_TABLE_UNLOCK(t) PyMutex_Unlock(&(t)->mutex)
#else
#define CODE_TABLE_LOCK(t) ((void)0)
#define CODE_TABLE_UNLOCK(t) ((void)0)
#endif

#define CODE_TABLE_MIN_BITS 6

static inline size_t
code_table_home(const code_table *t, const PyObject *key)
{
    return (size_t)(((uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15)) >>
                    t->shift);
}

static inline int
code_table_init(code_table *t, freefunc free_value)
{
    size_t capacity = (size_t)1 << CODE_TABLE_MIN_BITS;
    t->slots = calloc(capacity, sizeof(code_table_entry));
    if (t->slots == NULL) {
        return -1;
    }
    t->mask = capacity - 1;
    t->shift = 64 - CODE_TABLE_MIN_BITS;
    t->used = 0;
    t->free_value = free_value;
#ifdef Py_GIL_DISABLED
    t->mutex = (PyMutex){0};
#endif
    return 0;
}

/* Release the table; the caller frees the values it still holds. */
static inline void
code_table_fini(code_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->used = 0;
}

/* Bytes the table occupies: the slot array (the struct is one per
   consumer, not per code object). */
static inline size_t
code_table_bytes(const code_table *t)
{
    return (t->mask + 1) * sizeof(code_table_entry);
}

static inline void *
code_table_get(code_table *t, PyObject *key)
{
    void *value = NULL;
    CODE_TABLE_LOCK(t);
    size_t i = code_table_home(t, key);
    for (;;) {
        const code_table_entry *e = &t->slots[i];
        if (e->key == key) {
            value = e->value;
            break;
        }
        if (e->key == NULL) {
            break;
        }
        i = (i + 1) & t->mask;
    }
    CODE_TABLE_UNLOCK(t);
    return value;
}

/* Double the capacity; called with the lock held. */
static int
code_table_grow(code_table *t)
{
    size_t old_capacity = t->mask + 1;
    code_table_entry *old = t->slots;
    code_table_entry *slots = calloc(2 * old_capacity, sizeof(*slots));
    if (slots == NULL) {
        return -1;
    }
    t->slots = slots;
    t->mask = 2 * old_capacity - 1;
    t->shift -= 1;
    for (size_t j = 0; j < old_capacity; j++) {
        if (old[j].key == NULL) {
            continue;
        }
        size_t i = code_table_home(t, old[j].key);
        while (slots[i].key != NULL) {
            i = (i + 1) & t->mask;
        }
        slots[i] = old[j];
    }
    free(old);
    return 0;
}

/* Remove slot i by backward shift: move later members of the probe run
   into the hole when the hole lies between their home and them.  Called
   with the lock held. */
static void
code_table_remove_at(code_table *t, size_t i)
{
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (t->slots[j].key == NULL) {
            break;
        }
        size_t home = code_table_home(t, t->slots[j].key);
        /* Distance from home to j, and from the hole to j, going round
           the table: the entry may move back iff the hole is not past
           its home. */
        if (((j - home) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].key = NULL;
    t->slots[hole].value = NULL;
    t->used--;
}

/* Store value for key (NULL removes the entry).  The previous non-NULL
   value, when it differs, is freed after the lock is dropped, so a free
   function may use the table.  0 on success, -1 with MemoryError. */
static inline int
code_table_set(code_table *t, PyObject *key, void *value)
{
    void *old = NULL;
    CODE_TABLE_LOCK(t);
    size_t i = code_table_home(t, key);
    while (t->slots[i].key != NULL && t->slots[i].key != key) {
        i = (i + 1) & t->mask;
    }
    if (t->slots[i].key == key) {
        old = t->slots[i].value;
        if (value != NULL) {
            t->slots[i].value = value;
        } else {
            code_table_remove_at(t, i);
        }
    } else if (value != NULL) {
        if (2 * (t->used + 1) > t->mask + 1) {
            if (code_table_grow(t) < 0) {
                CODE_TABLE_UNLOCK(t);
                PyErr_NoMemory();
                return -1;
            }
            i = code_table_home(t, key);
            while (t->slots[i].key != NULL) {
                i = (i + 1) & t->mask;
            }
        }
        t->slots[i].key = key;
        t->slots[i].value = value;
        t->used++;
    }
    CODE_TABLE_UNLOCK(t);
    if (old != NULL && old != value && t->free_value != NULL) {
        t->free_value(old);
    }
    return 0;
}

/* The code watcher's half: the code object is being destroyed, drop its
   entry and free the value. */
static inline void
code_table_forget(code_table *t, PyObject *key)
{
    (void)code_table_set(t, key, NULL);
}

#endif /* COEXTRA_CODE_TABLE_H */
