/*
 * chash.h -- a pointer-keyed open-addressing hash table.
 *
 * This is the seed thread's alternative to a field in the code object:
 * each consumer keeps a side table from code object address to its
 * value.  The table is what a careful C consumer would write: power of
 * two capacity, load factor at most 1/2, linear probing, Fibonacci
 * hashing of the address (the low bits of heap addresses are mostly
 * zero because of alignment, so the high bits of the product are used).
 * Deletion is not needed by the benchmark and is left out.
 */
#ifndef COEXTRA_CHASH_H
#define COEXTRA_CHASH_H

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const void *key;
    void *value;
} chash_entry;

typedef struct {
    chash_entry *slots;
    size_t mask;
    unsigned shift;
    size_t used;
} chash;

static inline size_t
chash_slot(const chash *t, const void *key)
{
    return (size_t)(((uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15)) >>
                    t->shift) &
           t->mask;
}

/* Capacity is the smallest power of two holding `entries` at load 1/2. */
static inline int
chash_init(chash *t, size_t entries)
{
    unsigned bits = 3;
    while (((size_t)1 << bits) < 2 * entries) {
        bits++;
    }
    t->slots = calloc((size_t)1 << bits, sizeof(chash_entry));
    if (t->slots == NULL) {
        return -1;
    }
    t->mask = ((size_t)1 << bits) - 1;
    t->shift = 64 - bits;
    t->used = 0;
    return 0;
}

static inline void
chash_fini(chash *t)
{
    free(t->slots);
    t->slots = NULL;
}

static inline void *
chash_get(const chash *t, const void *key)
{
    size_t i = chash_slot(t, key);
    for (;;) {
        const chash_entry *e = &t->slots[i];
        if (e->key == key) {
            return e->value;
        }
        if (e->key == NULL) {
            return NULL;
        }
        i = (i + 1) & t->mask;
    }
}

/* The caller sized the table; a full table is a caller bug. */
static inline void
chash_put(chash *t, const void *key, void *value)
{
    size_t i = chash_slot(t, key);
    while (t->slots[i].key != NULL && t->slots[i].key != key) {
        i = (i + 1) & t->mask;
    }
    if (t->slots[i].key == NULL) {
        t->used++;
    }
    t->slots[i].key = key;
    t->slots[i].value = value;
}

#endif /* COEXTRA_CHASH_H */
