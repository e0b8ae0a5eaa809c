/*
 * coextra.c -- the PEP 9999 API on the reference's object model, in the
 * PEP's order: index allocation, storage, ownership and free functions,
 * the CO_INLINE_EXTRA flag, the constructor hook chain, interpreters,
 * copies.  Each function is headed by the PEP section and the main
 * requirements it implements; the line that implements a requirement
 * carries its ID.  Support code is in the files listed in internal.h.
 */
#include "internal.h"

#include <string.h>

pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
coextra_interp *interp_head;
static uint64_t next_serial = 1; /* atomic */

/* Caller holds interp->lock. */
static bool
index_allocated(const coextra_interp *interp, intptr_t index)
{
    return index >= 0 && index < interp->indices_cap &&
           interp->indices[index].state == IDX_ALLOCATED;
}

/* One more than the highest allocated index; 0 when no consumer is
   active.  Caller holds interp->lock. */
static intptr_t
inline_size_now(const coextra_interp *interp)
{
    intptr_t i;

    if (interp->finalizing) {
        return 0;
    }
    for (i = interp->indices_cap; i > 0; i--) {
        if (interp->indices[i - 1].state == IDX_ALLOCATED) {
            return i;
        }
    }
    return 0;
}

/* ================================================================== */
/* PEP 9999: Index allocation.  R-INDEX-1, R-INDEX-3, R-INDEX-6 */
intptr_t
coextra_request_index(coextra_interp *interp, coextra_freefunc func)
{
    intptr_t i;

    lock(&interp->lock); /* R-THREAD-3 */
    if (interp->finalizing) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    /* Lowest free index first keeps inline blocks small. */
    for (i = 0; i < interp->indices_cap; i++) {     /* R-INDEX-6 */
        if (interp->indices[i].state == IDX_FREE) { /* R-INDEX-1 */
            break;
        }
    }
    if (i == interp->indices_cap) {
        intptr_t cap = interp->indices_cap;
        index_entry *grown;
        if (cap == COEXTRA_MAX_INDICES) { /* R-INDEX-2 */
            unlock(&interp->lock);
            coextra_set_error("RuntimeError"); /* R-INDEX-3 */
            return -1;                         /* R-INDEX-4 */
        }
        cap = cap ? cap * 2 : 8;
        if (cap > COEXTRA_MAX_INDICES) {
            cap = COEXTRA_MAX_INDICES;
        }
        grown = mem_alloc((size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            unlock(&interp->lock);
            coextra_set_error("MemoryError");
            return -1; /* R-ALLOC-3 */
        }
        if (interp->indices_cap) {
            memcpy(grown, interp->indices,
                   (size_t)interp->indices_cap * sizeof(*grown));
        }
        mem_free(interp->indices);
        interp->indices = grown;
        interp->indices_cap = cap;
    }
    interp->indices[i].state = IDX_ALLOCATED;
    interp->indices[i].free = func; /* R-INDEX-5: NULL is allowed */
    unlock(&interp->lock);
    return i;
}

/* PEP 9999: Index allocation, release.  R-INDEX-7, R-INDEX-9 */
int
coextra_release_index(coextra_interp *interp, intptr_t index)
{
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError"); /* R-INDEX-9 */
        return -1;
    }
    /* Invalid for Get/Set from now on, but not reusable until every
       value under it has been freed with its free function. */
    interp->indices[index].state = IDX_RELEASING; /* R-INDEX-11 */
    unlock(&interp->lock);

    drain(interp, index); /* R-INDEX-7 */

    lock(&interp->lock);
    interp->indices[index].state = IDX_FREE; /* R-INDEX-8 */
    interp->indices[index].free = NULL;
    unlock(&interp->lock);
    return 0;
}

/* ================================================================== */
/* PEP 9999: Storage, Get.  R-STORE-1, R-STORE-2, R-STORE-6, R-STORE-8 */
int
coextra_get_extra(coextra_interp *interp, coextra_object *code, intptr_t index,
                  void **extra)
{
    coextra_inline_extra *x;
    ool_entry *e;
    void *value = NULL; /* R-STORE-1 */

    *extra = NULL; /* R-STORE-10 */
    if (!is_code(code)) {
        coextra_set_error("SystemError"); /* R-STORE-8 */
        return -1;
    }
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError"); /* R-STORE-6, R-INDEX-10 */
        return -1;
    }
    x = owned_inline(interp, code); /* R-INTERP-2 */
    if (x != NULL && index < x->size) {
        value = slot_load(&x->slots[index]); /* R-STORE-2, R-THREAD-6 */
    } else if ((e = ool_find(interp, code)) != NULL && index < e->size) {
        value = slot_load(&e->slots[index]); /* R-FLAG-4, R-INTERP-4 */
    }
    unlock(&interp->lock);
    *extra = value; /* R-STORE-3: the pointer as stored */
    return 0;
}

/* PEP 9999: Storage, Set; Ownership on overwrite and clear.
   R-STORE-2, R-STORE-7, R-STORE-9, R-FREE-1, R-FREE-2, R-ALLOC-2 */
int
coextra_set_extra(coextra_interp *interp, coextra_object *code, intptr_t index,
                  void *extra)
{
    coextra_inline_extra *x;
    ool_entry **link = NULL;
    void *old = NULL;
    coextra_freefunc func;

    if (!is_code(code)) {
        /* The value stays the caller's: nothing is freed. */
        coextra_set_error("SystemError"); /* R-STORE-9 */
        return -1;
    }
    lock(&interp->lock); /* R-THREAD-1, R-THREAD-2 */
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError"); /* R-STORE-7, R-INDEX-10 */
        return -1;
    }
    func = interp->indices[index].free; /* R-FREE-6 */
    x = owned_inline(interp, code);     /* R-INTERP-2 */
    if (x != NULL && index < x->size) {
        /* Inline: no allocation ever.  The exchange puts the new value
           in place before the old one is freed. */
        old = slot_exchange(&x->slots[index], extra); /* R-FLAG-6, R-FREE-9 */
    } else if ((link = ool_find_link(interp, code)) != NULL &&
               index < (*link)->size) {
        old = slot_exchange(&(*link)->slots[index], extra); /* R-FLAG-4 */
        if (extra == NULL) {
            ool_remove_if_empty(interp, link); /* R-STORE-5 */
        }
    } else if (extra != NULL &&
               ool_store_new(interp, code, link, index, extra) < 0) {
        unlock(&interp->lock);
        return -1; /* R-STORE-11, R-ALLOC-2 */
    }
    unlock(&interp->lock);
    /* Re-storing the same value is not a free; NULL is never freed.  No
       lock is held: the free function may re-enter (R-FREE-10). */
    if (old != NULL && old != extra) { /* R-FREE-4, R-FREE-5 */
        pending_free one = {old, func};
        call_frees(&one, 1); /* R-FREE-1, R-FREE-2 */
    }
    return 0;
}

/* PEP 9999: Storage, CompareExchange.  R-STORE-12, R-STORE-13,
   R-THREAD-5 */
int
coextra_compare_exchange_extra(coextra_interp *interp, coextra_object *code,
                               intptr_t index, void **expected, void *desired)
{
    coextra_inline_extra *x;
    ool_entry **link = NULL;
    void **slot = NULL;
    void *old = *expected;
    coextra_freefunc func;

    if (!is_code(code)) {
        coextra_set_error("SystemError"); /* R-STORE-9 */
        return -1;
    }
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError"); /* R-STORE-7 */
        return -1;
    }
    func = interp->indices[index].free;
    x = owned_inline(interp, code);
    if (x != NULL && index < x->size) {
        slot = &x->slots[index];
    } else if ((link = ool_find_link(interp, code)) != NULL &&
               index < (*link)->size) {
        slot = &(*link)->slots[index];
    }
    if (slot != NULL) {
        /* One atomic step, so that racing exchanges have one winner and
           a concurrent lock-free reader sees old or new. */
        void *current = old;
        if (!__atomic_compare_exchange_n(
                slot, &current, desired, false, __ATOMIC_ACQ_REL,
                __ATOMIC_ACQUIRE)) { /* R-THREAD-5, R-THREAD-6 */
            unlock(&interp->lock);
            *expected = current; /* R-STORE-13 */
            return 0;
        }
        if (desired == NULL && x == NULL) {
            ool_remove_if_empty(interp, link);
        }
    } else if (old != NULL) {
        /* No storage yet: the slot reads NULL. */
        unlock(&interp->lock);
        *expected = NULL; /* R-STORE-13 */
        return 0;
    } else if (desired != NULL &&
               ool_store_new(interp, code, link, index, desired) < 0) {
        /* Nothing stored, nothing freed, *expected unchanged. */
        unlock(&interp->lock);
        return -1; /* R-ALLOC-1 */
    }
    unlock(&interp->lock);
    /* The previous value leaves the slot as with Set: after the store,
       never NULL, never when stored again. */
    if (old != NULL && old != desired) {
        pending_free one = {old, func};
        call_frees(&one, 1); /* R-STORE-12 */
    }
    return 1;
}

/* ================================================================== */
/* PEP 9999: Ownership at destruction.  R-FREE-3, R-FREE-7, R-INTERP-3 */

static bool
holds_values_for(coextra_interp *interp, const coextra_object *code)
{
    return owned_inline(interp, code) != NULL ||
           ool_find(interp, code) != NULL;
}

void
clear_code_extras(coextra_object *code)
{
    pending_free buf[COEXTRA_MAX_INDICES];
    int n;

    if (!(code->ob_flags & COEXTRA_CO_INLINE_EXTRA) &&
        !(__atomic_load_n(&code->ob_marks, __ATOMIC_RELAXED) &
          MARK_OUT_OF_LINE)) {
        /* Never held a value anywhere: nothing to look up. */
        return;
    }
    /* One interpreter at a time: detach its values under its lock (the
       global lock keeps it alive meanwhile), then free them with no lock
       held, in ascending index order. */
    for (;;) {
        coextra_interp *it;
        n = -1;
        lock(&global_lock);
        for (it = interp_head; it != NULL; it = it->next) {
            lock(&it->lock);
            if (holds_values_for(it, code)) {
                n = detach_code(it, code, buf); /* R-FREE-7, R-INTERP-3 */
            }
            unlock(&it->lock);
            if (n >= 0) {
                break;
            }
        }
        unlock(&global_lock);
        if (n < 0) {
            return;
        }
        call_frees(buf, n); /* R-FREE-3 */
    }
}

/* ================================================================== */
/* PEP 9999: The CO_INLINE_EXTRA flag.  R-FLAG-3 */
int
coextra_has_inline_extra(coextra_object *code)
{
    if (!is_code(code)) {
        coextra_set_error("SystemError");
        return -1;
    }
    return (code->ob_flags & COEXTRA_CO_INLINE_EXTRA) != 0; /* R-FLAG-3 */
}

/* ================================================================== */
/* PEP 9999: The constructor hook chain, registration.  R-HOOK-6,
   R-HOOK-10, R-HOOK-13 */
int
coextra_add_hook(coextra_interp *interp, coextra_hook hook, void *arg)
{
    int id;

    lock(&interp->lock); /* R-THREAD-7 */
    if (interp->finalizing) {
        /* Its chain was emptied for good: a consumer being torn down
           cannot come back through a free function. */
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    if (interp->nhooks == COEXTRA_MAX_HOOKS) { /* R-HOOK-10 */
        unlock(&interp->lock);
        coextra_set_error("RuntimeError");
        return -1;
    }
    if (interp->nhooks == interp->hooks_cap) {
        int cap = interp->hooks_cap ? interp->hooks_cap * 2 : 4;
        hook_entry *grown = mem_alloc((size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            unlock(&interp->lock);
            coextra_set_error("MemoryError"); /* R-ALLOC-5 */
            return -1;
        }
        if (interp->nhooks) {
            memcpy(grown, interp->hooks,
                   (size_t)interp->nhooks * sizeof(*grown));
        }
        mem_free(interp->hooks);
        interp->hooks = grown;
        interp->hooks_cap = cap;
    }
    /* Ids are never reused, so removing a stale id fails. */
    id = interp->next_hook_id++; /* R-HOOK-13 */
    interp->hooks[interp->nhooks].id = id;
    interp->hooks[interp->nhooks].fn = hook;
    interp->hooks[interp->nhooks].arg = arg;
    interp->nhooks++; /* R-INTERP-6: this interpreter's chain */
    unlock(&interp->lock);
    return id;
}

/* PEP 9999: The constructor hook chain, removal.  R-HOOK-6, R-HOOK-7 */
int
coextra_remove_hook(coextra_interp *interp, int hook_id)
{
    int i;

    lock(&interp->lock);
    for (i = 0; i < interp->nhooks; i++) {
        if (interp->hooks[i].id == hook_id) {
            /* Shift to keep registration order (R-HOOK-4). */
            memmove(&interp->hooks[i], &interp->hooks[i + 1],
                    (size_t)(interp->nhooks - i - 1) * sizeof(hook_entry));
            interp->nhooks--; /* R-HOOK-6 */
            unlock(&interp->lock);
            return 0;
        }
    }
    unlock(&interp->lock);
    coextra_set_error("ValueError"); /* R-HOOK-7 */
    return -1;
}

/* The PEP's code-object constructor: every code object, including those
   of coextra_new_code and coextra_copy_code, is made here.
   PEP 9999: Zero cost and the CO_INLINE_EXTRA flag; the constructor
   hook chain.  R-FLAG-1, R-FLAG-2, R-HOOK-1, R-HOOK-4, R-HOOK-8 */
coextra_object *
construct_code(coextra_interp *interp, uint32_t flags,
               coextra_object *const *consts, intptr_t nconsts)
{
    hook_entry hooks[COEXTRA_MAX_HOOKS];
    coextra_object **owned = NULL;
    coextra_code *co;
    intptr_t size, i;
    int nhooks;

    if (nconsts > 0) {
        owned = mem_alloc((size_t)nconsts * sizeof(*owned));
        if (owned == NULL) {
            coextra_set_error("MemoryError"); /* R-ALLOC-4 */
            return NULL;
        }
    }
    lock(&interp->lock); /* R-THREAD-4 */
    /* Inline storage covers every index allocated at this moment; none
       at all when no consumer is active. */
    size = inline_size_now(interp); /* R-FLAG-1, R-FLAG-2, R-FLAG-8 */
    co = mem_alloc(
        sizeof(coextra_code) +
        (size ? sizeof(coextra_inline_extra) + (size_t)size * sizeof(void *)
              : 0));
    if (co == NULL) {
        unlock(&interp->lock);
        mem_free(owned);
        coextra_set_error("MemoryError"); /* R-ALLOC-4 */
        return NULL;
    }
    co->co_base.ob_refcnt = 1;
    co->co_base.ob_kind = COEXTRA_KIND_CODE;
    /* Only the implementation sets the flag. */
    co->co_base.ob_flags =
        flags & ~(uint32_t)COEXTRA_CO_INLINE_EXTRA; /* R-FLAG-7 */
    co->co_serial = __atomic_fetch_add(&next_serial, 1, __ATOMIC_RELAXED);
    if (size) {
        coextra_inline_extra *x = COEXTRA_INLINE(co);
        co->co_base.ob_flags |= COEXTRA_CO_INLINE_EXTRA; /* R-FLAG-3 */
        x->owner = interp;
        x->size = size; /* R-FREE-8: calloc'd slots start NULL */
        x->prev = NULL;
        x->next = interp->inline_head;
        if (x->next != NULL) {
            COEXTRA_INLINE(x->next)->prev = co;
        }
        interp->inline_head = co;
    }
    /* The chain as it is now: hooks added or removed while these run
       take effect from the next construction. */
    nhooks = interp->nhooks; /* R-HOOK-11 */
    if (nhooks) {
        memcpy(hooks, interp->hooks, (size_t)nhooks * sizeof(hook_entry));
    }
    unlock(&interp->lock);

    for (i = 0; i < nconsts; i++) {
        coextra_incref(consts[i]);
        owned[i] = consts[i];
    }
    co->co_consts = owned;
    co->co_nconsts = nconsts > 0 ? nconsts : 0;

    /* Hooks see the complete object, in registration order, with no
       lock held (R-HOOK-9) and no exception set (a caller's pending one
       is kept aside); an error is reported as unraisable and does not
       fail the construction. */
    if (nhooks) {
        char saved[COEXTRA_ERROR_SIZE];
        int had_error = coextra_take_error(saved, sizeof(saved));
        for (i = 0; i < nhooks; i++) { /* R-HOOK-1, R-HOOK-4 */
            char exc[COEXTRA_ERROR_SIZE];
            int rc = hooks[i].fn(&co->co_base, hooks[i].arg); /* R-HOOK-5 */
            int pending = coextra_take_error(exc, sizeof(exc));
            if (rc < 0 || pending) {
                /* R-HOOK-8; R-HOOK-12: -1 without an exception. */
                report_unraisable(pending ? exc : "SystemError");
            }
        }
        if (had_error) {
            coextra_set_error(saved);
        }
    }
    return &co->co_base;
}

/* ================================================================== */
/* PEP 9999: Interpreters.  R-INTERP-1, R-INTERP-5, R-FREE-11 */
coextra_interp *
coextra_new_interpreter(void)
{
    coextra_interp *interp = mem_alloc(sizeof(*interp)); /* R-INTERP-1 */

    if (interp == NULL) {
        coextra_set_error("MemoryError");
        return NULL;
    }
    pthread_mutex_init(&interp->lock, NULL); /* R-INTERP-7 */
    lock(&global_lock);
    interp->next = interp_head;
    if (interp_head != NULL) {
        interp_head->prev = interp;
    }
    interp_head = interp;
    unlock(&global_lock);
    return interp;
}

int
coextra_end_interpreter(coextra_interp *interp)
{
    intptr_t i;
    coextra_code *co;

    lock(&interp->lock);
    if (interp->finalizing) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    /* The hook chain is emptied first, so that code constructed by free
       functions during the drain calls no hook of a consumer being torn
       down.  Every index becomes invalid for Get/Set, so that those free
       functions cannot store new values either. */
    interp->finalizing = true;
    interp->nhooks = 0; /* R-FREE-13: chain emptied first */
    for (i = 0; i < interp->indices_cap; i++) {
        if (interp->indices[i].state == IDX_ALLOCATED) {
            interp->indices[i].state = IDX_RELEASING;
        }
    }
    unlock(&interp->lock);

    drain(interp, -1); /* R-FREE-11, R-FREE-13, R-INTERP-5 */

    /* Code objects it constructed outlive it: their inline blocks lose
       their owner so that no later interpreter at the same address can
       mistake them for its own. */
    lock(&global_lock);
    lock(&interp->lock);
    for (co = interp->inline_head; co != NULL;) {
        coextra_inline_extra *x = COEXTRA_INLINE(co);
        co = x->next;
        x->prev = x->next = NULL;
        __atomic_store_n(&x->owner, NULL, __ATOMIC_RELAXED); /* R-FREE-8 */
    }
    interp->inline_head = NULL;
    if (interp->prev != NULL) {
        interp->prev->next = interp->next;
    } else {
        interp_head = interp->next;
    }
    if (interp->next != NULL) {
        interp->next->prev = interp->prev;
    }
    unlock(&interp->lock);
    unlock(&global_lock);

    /* The drain took every value and removed every entry it emptied; an
       entry can only be left if it held nothing, so freeing it loses no
       value. */
    for (size_t b = 0; b < interp->nbuckets; b++) {
        ool_entry *e = interp->buckets[b];
        while (e != NULL) {
            ool_entry *next = e->next;
            mem_free(e);
            e = next;
        }
    }
    mem_free(interp->buckets);
    mem_free(interp->hooks);
    mem_free(interp->indices);
    pthread_mutex_destroy(&interp->lock);
    mem_free(interp);
    return 0;
}

/* ================================================================== */
/* PEP 9999: Copies and introspection.  R-COPY-1, R-COPY-2, R-HOOK-3 */
coextra_object *
coextra_copy_code(coextra_interp *interp, coextra_object *code, int how)
{
    coextra_code *co = (coextra_code *)code;
    coextra_object **consts;
    coextra_object *copy = NULL;
    uint32_t flags;
    intptr_t i, made = 0;

    if (!is_code(code) || (how != 0 && how != 1)) {
        coextra_set_error("SystemError");
        return NULL;
    }
    /* The caller's flags: the copy decides its own inline storage, and
       values are never copied. */
    flags = code->ob_flags & ~(uint32_t)COEXTRA_CO_INLINE_EXTRA; /* R-COPY-2 */
    if (how == 0 || co->co_nconsts == 0) {
        /* R-COPY-1, R-COPY-3, R-HOOK-3: a fresh construction */
        return construct_code(interp, flags, co->co_consts, co->co_nconsts);
    }
    /* Unmarshal rebuilds nested code objects, inner first. */
    consts = mem_alloc((size_t)co->co_nconsts * sizeof(*consts));
    if (consts == NULL) {
        coextra_set_error("MemoryError");
        return NULL;
    }
    for (i = 0; i < co->co_nconsts; i++) {
        consts[i] = coextra_copy_code(interp, co->co_consts[i], 1);
        if (consts[i] == NULL) {
            goto done;
        }
        made++;
    }
    copy =
        construct_code(interp, flags, consts, co->co_nconsts); /* R-HOOK-3 */
done:
    for (i = 0; i < made; i++) {
        coextra_drop(consts[i]);
    }
    mem_free(consts);
    return copy;
}
