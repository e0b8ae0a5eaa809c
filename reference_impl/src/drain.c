/*
 * drain.c -- freeing values with no lock held.  Values are first
 * detached from their slots under interp->lock into a caller's buffer,
 * then passed to their free functions once the lock is released, so a
 * free function may call back into the API (R-FREE-10).
 */
#include "internal.h"

/* How many values are detached per lock hold while draining an index or
   an interpreter; keeps the drain allocation-free. */
#define DRAIN_BATCH 64

/* Free functions also run on error paths (objects dropped while a
   construction unwinds), so the caller's pending error is kept aside and
   restored; an error a free function leaves behind cannot be returned to
   anybody and is reported as unraisable, as a deallocator's would be. */
void
call_frees(const pending_free *buf, int n)
{
    char saved[COEXTRA_ERROR_SIZE];
    char left[COEXTRA_ERROR_SIZE];
    int had_error = 0;
    int i;

    for (i = 0; i < n; i++) {
        if (buf[i].free == NULL) {
            continue;
        }
        if (!had_error) {
            /* R-FREE-12: called with no exception set. */
            had_error = coextra_take_error(saved, sizeof(saved)) ? 1 : -1;
        }
        buf[i].free(buf[i].value);
        if (coextra_take_error(left, sizeof(left))) {
            report_unraisable(left); /* R-FREE-12 */
        }
    }
    if (had_error > 0) {
        coextra_set_error(saved); /* R-FREE-12: pending again */
    }
}

/* The free function registered with `index` (R-FREE-6). */
static coextra_freefunc
free_of(const coextra_interp *interp, intptr_t index)
{
    return index < interp->indices_cap ? interp->indices[index].free : NULL;
}

/* Detach up to `max` values stored under `index` (or under every index
   when index < 0) anywhere in `interp`.  Returns how many.  Caller holds
   interp->lock. */
static int
detach_batch(coextra_interp *interp, intptr_t index, pending_free *buf,
             int max)
{
    int n = 0;
    coextra_code *co;
    size_t b;

    for (co = interp->inline_head; co != NULL && n < max;) {
        coextra_inline_extra *x = COEXTRA_INLINE(co);
        intptr_t i = index < 0 ? 0 : index;
        intptr_t end = index < 0 ? x->size : index + 1;
        for (; i < end && i < x->size && n < max; i++) {
            void *v = slot_exchange(&x->slots[i], NULL);
            if (v != NULL) {
                buf[n].value = v;
                buf[n].free = free_of(interp, i);
                n++;
            }
        }
        co = x->next;
    }
    for (b = 0; b < interp->nbuckets && n < max; b++) {
        ool_entry **link = &interp->buckets[b];
        while (*link != NULL && n < max) {
            ool_entry *e = *link;
            intptr_t i = index < 0 ? 0 : index;
            intptr_t end = index < 0 ? e->size : index + 1;
            for (; i < end && i < e->size && n < max; i++) {
                void *v = slot_exchange(&e->slots[i], NULL);
                if (v != NULL) {
                    buf[n].value = v;
                    buf[n].free = free_of(interp, i);
                    n++;
                }
            }
            if (ool_empty(e)) {
                ool_unlink(interp, link);
            } else {
                link = &e->next;
            }
        }
    }
    return n;
}

/* Free every value under `index` (all indices when < 0), in batches,
   calling free functions with no lock held.  The caller has already made
   the indices invalid for Set, so the drain terminates. */
void
drain(coextra_interp *interp, intptr_t index)
{
    pending_free buf[DRAIN_BATCH];
    int n;

    do {
        lock(&interp->lock);
        n = detach_batch(interp, index, buf, DRAIN_BATCH);
        unlock(&interp->lock);
        call_frees(buf, n);
    } while (n == DRAIN_BATCH);
}

/* Detach every value `interp` holds for `code`, in ascending index
   order (R-FREE-7), and forget the code object: its inline block loses
   its owner, its side table entry goes (R-FREE-8).  Returns how many
   values.  Caller holds interp->lock. */
int
detach_code(coextra_interp *interp, coextra_object *code, pending_free *buf)
{
    coextra_inline_extra *x = owned_inline(interp, code);
    ool_entry **link = ool_find_link(interp, code);
    ool_entry *e = link != NULL ? *link : NULL;
    intptr_t isize = x != NULL ? x->size : 0;
    intptr_t esize = e != NULL ? e->size : 0;
    intptr_t end = isize > esize ? isize : esize;
    intptr_t i;
    int n = 0;

    for (i = 0; i < end; i++) { /* R-FREE-7: ascending */
        void *v = NULL;
        if (i < isize) {
            v = slot_exchange(&x->slots[i], NULL);
        }
        if (v == NULL && i < esize) {
            v = slot_exchange(&e->slots[i], NULL);
        }
        if (v != NULL) {
            buf[n].value = v;
            buf[n].free = free_of(interp, i); /* R-INTERP-3 */
            n++;
        }
    }
    if (x != NULL) {
        /* Unlink from the owner's list of inline code objects. */
        if (x->prev != NULL) {
            COEXTRA_INLINE(x->prev)->next = x->next;
        } else {
            interp->inline_head = x->next;
        }
        if (x->next != NULL) {
            COEXTRA_INLINE(x->next)->prev = x->prev;
        }
        x->prev = x->next = NULL;
        __atomic_store_n(&x->owner, NULL, __ATOMIC_RELAXED);
    }
    if (e != NULL) {
        ool_unlink(interp, link); /* R-FREE-8 */
    }
    return n;
}
