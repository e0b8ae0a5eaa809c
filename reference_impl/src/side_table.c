/*
 * side_table.c -- out-of-line storage (R-FLAG-4): each interpreter keeps
 * the values it stores in code objects without inline storage it owns
 * in a hash table keyed by the code object's address.  An entry holds
 * just enough slots for the highest index stored, and is removed once
 * it holds nothing, so extra_bytes counts only what is used.  Every
 * function here runs with interp->lock held.
 */
#include "internal.h"

#include <string.h>

static size_t
hash_ptr(const void *p, size_t nbuckets)
{
    uintptr_t h = (uintptr_t)p;

    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return (size_t)h & (nbuckets - 1);
}

ool_entry **
ool_find_link(coextra_interp *interp, const coextra_object *code)
{
    ool_entry **link;

    if (interp->nbuckets == 0) {
        return NULL;
    }
    link = &interp->buckets[hash_ptr(code, interp->nbuckets)];
    while (*link != NULL) {
        if ((*link)->code == code) {
            return link;
        }
        link = &(*link)->next;
    }
    return NULL;
}

ool_entry *
ool_find(coextra_interp *interp, const coextra_object *code)
{
    ool_entry **link = ool_find_link(interp, code);

    return link != NULL ? *link : NULL;
}

/* Grow the bucket array when the table is full.  Growing is optional
   once buckets exist, so a failed growth only matters for the first
   array; returns false (nothing changed) in that case. */
static bool
ool_reserve(coextra_interp *interp)
{
    size_t n, i;
    ool_entry **buckets;

    if (interp->nbuckets != 0 && interp->nentries < interp->nbuckets) {
        return true;
    }
    n = interp->nbuckets ? interp->nbuckets * 2 : 8;
    buckets = mem_alloc(n * sizeof(*buckets));
    if (buckets == NULL) {
        return interp->nbuckets != 0;
    }
    for (i = 0; i < interp->nbuckets; i++) {
        ool_entry *e = interp->buckets[i];
        while (e != NULL) {
            ool_entry *next = e->next;
            size_t h = hash_ptr(e->code, n);
            e->next = buckets[h];
            buckets[h] = e;
            e = next;
        }
    }
    mem_free(interp->buckets);
    interp->buckets = buckets;
    interp->nbuckets = n;
    return true;
}

bool
ool_empty(const ool_entry *e)
{
    intptr_t i;

    for (i = 0; i < e->size; i++) {
        if (e->slots[i] != NULL) {
            return false;
        }
    }
    return true;
}

/* Unlink the entry at `link` from its chain and free it. */
void
ool_unlink(coextra_interp *interp, ool_entry **link)
{
    ool_entry *e = *link;

    *link = e->next;
    interp->nentries--;
    mem_free(e);
}

/* Unlink and free an entry that holds no value any more. */
void
ool_remove_if_empty(coextra_interp *interp, ool_entry **link)
{
    if (ool_empty(*link)) {
        ool_unlink(interp, link);
    }
}

intptr_t
ool_entry_bytes(const ool_entry *e)
{
    return (intptr_t)(sizeof(ool_entry) + (size_t)e->size * sizeof(void *));
}

/* Store `extra` (not NULL) for `code` under `index` in a new or larger
   entry, just large enough for this index: consumers that use one index
   pay for one slot.  `link` is the code object's entry, if any, too
   short for `index`.  Everything that can fail happens before anything
   is changed.  Returns 0, or -1 with MemoryError set. */
int
ool_store_new(coextra_interp *interp, coextra_object *code, ool_entry **link,
              intptr_t index, void *extra)
{
    intptr_t size = index + 1;
    ool_entry *e =
        mem_alloc(sizeof(ool_entry) + (size_t)size * sizeof(void *));

    if (e == NULL) {
        coextra_set_error("MemoryError"); /* R-ALLOC-1 */
        return -1;                        /* R-ALLOC-2: nothing changed */
    }
    e->code = code;
    e->size = size;
    if (link != NULL) {
        ool_entry *prev = *link;
        memcpy(e->slots, prev->slots, (size_t)prev->size * sizeof(void *));
        e->next = prev->next;
        *link = e;
        mem_free(prev);
    } else {
        size_t h;
        if (!ool_reserve(interp)) {
            mem_free(e);
            coextra_set_error("MemoryError"); /* R-ALLOC-1 */
            return -1;                        /* R-ALLOC-2 */
        }
        h = hash_ptr(code, interp->nbuckets);
        e->next = interp->buckets[h];
        interp->buckets[h] = e;
        interp->nentries++;
        /* A private mark, not the flag (R-FLAG-5). */
        __atomic_or_fetch(&code->ob_marks, MARK_OUT_OF_LINE, __ATOMIC_RELAXED);
    }
    /* R-STORE-4: a slot of its own for each index. */
    __atomic_store_n(&e->slots[index], extra, __ATOMIC_RELEASE);
    return 0;
}
