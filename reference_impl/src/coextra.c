/*
 * coextra.c -- the PEP 8523 reference implementation.
 *
 * Layout of this file: support (allocator with failure injection, error
 * state, unraisable queue, locks), the interpreter state and its side
 * table, then the API in PEP order (INDEX, STORE, FREE, FLAG, HOOK,
 * INTERP), then the object model and observation functions.  Each API
 * function is headed by the requirement IDs it implements.
 *
 * Locking.  One global mutex protects the list of live interpreters and
 * their lifetime; each interpreter has its own mutex for its indices,
 * hooks, side table and list of inline code objects.  Lock order is
 * global, then interpreter; never two interpreters at once.  No lock is
 * held while a free function or a constructor hook runs: values are
 * first detached under the lock, then freed after it is released.
 */
#include "coextra.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Private bit in ob_marks: some interpreter may hold out-of-line values
   for this code object, so destruction must look in the side tables. */
#define MARK_OUT_OF_LINE 0x1

/* Index states.  RELEASING: no longer valid for Get/Set but not yet
   reusable, while its values are being freed (R-INDEX-8, R-INDEX-10). */
#define IDX_FREE 0
#define IDX_ALLOCATED 1
#define IDX_RELEASING 2

/* How many values are detached per lock hold while draining an index or
   an interpreter; keeps the drain allocation-free. */
#define DRAIN_BATCH 64

#define UNRAISABLE_SIZE 64

/* ------------------------------------------------------------------ */
/* Allocator: every allocation goes through mem_alloc so that
   coextra_fail_allocations can make any of them fail (R-ALLOC-*). */

static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;
static int alloc_armed; /* atomic: a failure is scheduled */
static long alloc_after;
static long alloc_count;
static intptr_t live_blocks; /* atomic */

static bool
alloc_should_fail(void)
{
    bool fail = false;

    if (!__atomic_load_n(&alloc_armed, __ATOMIC_ACQUIRE)) {
        return false;
    }
    pthread_mutex_lock(&alloc_lock);
    if (alloc_after > 0) {
        alloc_after--;
    } else if (alloc_count > 0) {
        alloc_count--;
        fail = true;
    }
    if (alloc_count == 0) {
        __atomic_store_n(&alloc_armed, 0, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&alloc_lock);
    return fail;
}

static void *
mem_alloc(size_t size)
{
    void *p;

    if (alloc_should_fail()) {
        return NULL;
    }
    p = calloc(1, size);
    if (p != NULL) {
        __atomic_add_fetch(&live_blocks, 1, __ATOMIC_RELAXED);
    }
    return p;
}

static void
mem_free(void *p)
{
    if (p != NULL) {
        __atomic_sub_fetch(&live_blocks, 1, __ATOMIC_RELAXED);
        free(p);
    }
}

void
coextra_fail_allocations(long after, long count)
{
    pthread_mutex_lock(&alloc_lock);
    alloc_after = after > 0 ? after : 0;
    alloc_count = count > 0 ? count : 0;
    __atomic_store_n(&alloc_armed, alloc_count > 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&alloc_lock);
}

intptr_t
coextra_live_blocks(void)
{
    return __atomic_load_n(&live_blocks, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Error state: one pending exception class name per thread. */

static _Thread_local char pending_error[COEXTRA_ERROR_SIZE];

static void
copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);

    if (size == 0) {
        return;
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void
coextra_set_error(const char *exc_class)
{
    if (exc_class == NULL) {
        pending_error[0] = '\0';
        return;
    }
    copy_name(pending_error, sizeof(pending_error), exc_class);
}

int
coextra_take_error(char *buf, size_t size)
{
    if (pending_error[0] == '\0') {
        return 0;
    }
    if (buf != NULL) {
        copy_name(buf, size, pending_error);
    }
    pending_error[0] = '\0';
    return 1;
}

/* The unraisable queue is a fixed ring so that reporting a hook's error
   never allocates (it runs when memory may be short).  When full, the
   oldest report is dropped. */
static pthread_mutex_t unraisable_lock = PTHREAD_MUTEX_INITIALIZER;
static char unraisable[UNRAISABLE_SIZE][COEXTRA_ERROR_SIZE];
static int unraisable_head;
static int unraisable_len;

static void
report_unraisable(const char *exc_class)
{
    int slot;

    pthread_mutex_lock(&unraisable_lock);
    if (unraisable_len == UNRAISABLE_SIZE) {
        unraisable_head = (unraisable_head + 1) % UNRAISABLE_SIZE;
        unraisable_len--;
    }
    slot = (unraisable_head + unraisable_len) % UNRAISABLE_SIZE;
    copy_name(unraisable[slot], COEXTRA_ERROR_SIZE, exc_class);
    unraisable_len++;
    pthread_mutex_unlock(&unraisable_lock);
}

int
coextra_take_unraisable(char *buf, size_t size)
{
    int found = 0;

    pthread_mutex_lock(&unraisable_lock);
    if (unraisable_len > 0) {
        if (buf != NULL) {
            copy_name(buf, size, unraisable[unraisable_head]);
        }
        unraisable_head = (unraisable_head + 1) % UNRAISABLE_SIZE;
        unraisable_len--;
        found = 1;
    }
    pthread_mutex_unlock(&unraisable_lock);
    return found;
}

/* ------------------------------------------------------------------ */
/* Interpreter state. */

typedef struct {
    coextra_freefunc free;
    int state; /* IDX_* */
} index_entry;

typedef struct {
    int id;
    coextra_hook fn;
    void *arg;
} hook_entry;

/* Out-of-line storage of one interpreter for one code object: a node of
   the interpreter's side table, keyed by the code object's address.  The
   entry is removed when the code object is destroyed, so a later object
   at the same address starts empty (R-FREE-8). */
typedef struct ool_entry {
    struct ool_entry *next; /* hash chain */
    coextra_object *code;
    intptr_t size;
    void *slots[];
} ool_entry;

struct coextra_interp {
    pthread_mutex_t lock;
    coextra_interp *prev; /* global list, under global_lock */
    coextra_interp *next;
    bool finalizing;
    index_entry *indices;
    intptr_t indices_cap;
    hook_entry *hooks;
    int nhooks;
    int hooks_cap;
    int next_hook_id;
    ool_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    size_t nentries;
    coextra_code *inline_head; /* code objects whose inline block it owns */
};

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static coextra_interp *interp_head;
static uint64_t next_serial = 1; /* atomic */

static void
lock(pthread_mutex_t *m)
{
    pthread_mutex_lock(m);
}

static void
unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

static bool
is_code(const coextra_object *obj)
{
    return obj != NULL && obj->ob_kind == COEXTRA_KIND_CODE;
}

static coextra_inline_extra *
inline_of(const coextra_object *code)
{
    if (code->ob_flags & COEXTRA_CO_INLINE_EXTRA) {
        return COEXTRA_INLINE(code);
    }
    return NULL;
}

/* The inline block of `code` if `interp` owns it, else NULL. */
static coextra_inline_extra *
owned_inline(coextra_interp *interp, const coextra_object *code)
{
    coextra_inline_extra *x = inline_of(code);

    if (x != NULL && __atomic_load_n(&x->owner, __ATOMIC_RELAXED) == interp) {
        return x;
    }
    return NULL;
}

static void *
slot_load(void **slot)
{
    return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
}

static void *
slot_exchange(void **slot, void *value)
{
    return __atomic_exchange_n(slot, value, __ATOMIC_ACQ_REL);
}

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

static size_t
hash_ptr(const void *p, size_t nbuckets)
{
    uintptr_t h = (uintptr_t)p;

    h ^= h >> 17;
    h *= (uintptr_t)0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return (size_t)h & (nbuckets - 1);
}

/* Caller holds interp->lock. */
static ool_entry **
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

static ool_entry *
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

static bool
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

/* Unlink and free an entry that holds no value any more, so that
   extra_bytes drops back to what is really used.  Caller holds the
   lock. */
static void
ool_remove_if_empty(coextra_interp *interp, ool_entry **link)
{
    ool_entry *e = *link;

    if (ool_empty(e)) {
        *link = e->next;
        interp->nentries--;
        mem_free(e);
    }
}

static intptr_t
ool_entry_bytes(const ool_entry *e)
{
    return (intptr_t)(sizeof(ool_entry) + (size_t)e->size * sizeof(void *));
}

/* ------------------------------------------------------------------ */
/* Detaching values.  These run under interp->lock and move values out
   of slots into a caller buffer; the caller frees them once unlocked. */

typedef struct {
    void *value;
    coextra_freefunc free;
} pending_free;

/* Free functions also run on error paths (objects dropped while a
   construction unwinds), so the caller's pending error is kept aside and
   restored; an error a free function leaves behind cannot be returned to
   anybody and is reported as unraisable, as a deallocator's would be. */
static void
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
            had_error = coextra_take_error(saved, sizeof(saved)) ? 1 : -1;
        }
        buf[i].free(buf[i].value);
        if (coextra_take_error(left, sizeof(left))) {
            report_unraisable(left);
        }
    }
    if (had_error > 0) {
        coextra_set_error(saved);
    }
}

static coextra_freefunc
free_of(const coextra_interp *interp, intptr_t index)
{
    return index < interp->indices_cap ? interp->indices[index].free : NULL;
}

/* Detach up to `max` values stored under `index` (or under every index
   when index < 0) anywhere in `interp`.  Returns how many. */
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
                *link = e->next;
                interp->nentries--;
                mem_free(e);
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
static void
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

/* ================================================================== */
/* PEP 8523: Index allocation.
   R-INDEX-1, R-INDEX-2, R-INDEX-3, R-INDEX-4, R-INDEX-5, R-INDEX-6,
   R-ALLOC-3, R-THREAD-3, R-INTERP-1 */
intptr_t
coextra_request_index(coextra_interp *interp, coextra_freefunc func)
{
    intptr_t i;

    lock(&interp->lock);
    if (interp->finalizing) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    /* Lowest free index first keeps inline blocks small (R-INDEX-6). */
    for (i = 0; i < interp->indices_cap; i++) {
        if (interp->indices[i].state == IDX_FREE) {
            break;
        }
    }
    if (i == interp->indices_cap) {
        intptr_t cap = interp->indices_cap;
        index_entry *grown;
        if (cap == COEXTRA_MAX_INDICES) {
            unlock(&interp->lock);
            coextra_set_error("RuntimeError");
            return -1;
        }
        cap = cap ? cap * 2 : 8;
        if (cap > COEXTRA_MAX_INDICES) {
            cap = COEXTRA_MAX_INDICES;
        }
        grown = mem_alloc((size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            unlock(&interp->lock);
            coextra_set_error("MemoryError");
            return -1;
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
    interp->indices[i].free = func;
    unlock(&interp->lock);
    return i;
}

/* PEP 8523: Index release.
   R-INDEX-7, R-INDEX-8, R-INDEX-9, R-INDEX-10, R-FREE-4 */
int
coextra_release_index(coextra_interp *interp, intptr_t index)
{
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    /* Invalid for Get/Set from now on, but not reusable until every
       value under it has been freed with its free function. */
    interp->indices[index].state = IDX_RELEASING;
    unlock(&interp->lock);

    drain(interp, index);

    lock(&interp->lock);
    interp->indices[index].state = IDX_FREE;
    interp->indices[index].free = NULL;
    unlock(&interp->lock);
    return 0;
}

/* ================================================================== */
/* PEP 8523: Storage, Get.
   R-STORE-1, R-STORE-2, R-STORE-3, R-STORE-6, R-STORE-8, R-STORE-10,
   R-FLAG-4, R-INTERP-2, R-INTERP-4, R-INDEX-10, R-THREAD-1 */
int
coextra_get_extra(coextra_interp *interp, coextra_object *code, intptr_t index,
                  void **extra)
{
    coextra_inline_extra *x;
    ool_entry *e;
    void *value = NULL;

    *extra = NULL;
    if (!is_code(code)) {
        coextra_set_error("SystemError");
        return -1;
    }
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    x = owned_inline(interp, code);
    if (x != NULL && index < x->size) {
        value = slot_load(&x->slots[index]);
    } else if ((e = ool_find(interp, code)) != NULL && index < e->size) {
        value = slot_load(&e->slots[index]);
    }
    unlock(&interp->lock);
    *extra = value;
    return 0;
}

/* Store `extra` (not NULL) for `code` under `index` in a new or larger
   out-of-line entry, just large enough for this index: consumers that use
   one index pay for one slot.  `link` is the code object's entry, if any,
   too short for `index`.  Everything that can fail happens before anything
   is changed (R-ALLOC-2).  Returns 0, or -1 with MemoryError set.  Caller
   holds interp->lock. */
static int
ool_store_new(coextra_interp *interp, coextra_object *code, ool_entry **link,
              intptr_t index, void *extra)
{
    intptr_t size = index + 1;
    ool_entry *e =
        mem_alloc(sizeof(ool_entry) + (size_t)size * sizeof(void *));

    if (e == NULL) {
        coextra_set_error("MemoryError");
        return -1;
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
            coextra_set_error("MemoryError");
            return -1;
        }
        h = hash_ptr(code, interp->nbuckets);
        e->next = interp->buckets[h];
        interp->buckets[h] = e;
        interp->nentries++;
        __atomic_or_fetch(&code->ob_marks, MARK_OUT_OF_LINE, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&e->slots[index], extra, __ATOMIC_RELEASE);
    return 0;
}

/* PEP 8523: Storage, Set; Ownership on overwrite and clear.
   R-STORE-2, R-STORE-3, R-STORE-4, R-STORE-5, R-STORE-7, R-STORE-9,
   R-STORE-11, R-FREE-1, R-FREE-2, R-FREE-4, R-FREE-5, R-FREE-6,
   R-FREE-9, R-FLAG-4, R-FLAG-5, R-FLAG-6, R-INTERP-2, R-INTERP-4,
   R-ALLOC-1, R-ALLOC-2, R-THREAD-1, R-THREAD-2 */
int
coextra_set_extra(coextra_interp *interp, coextra_object *code, intptr_t index,
                  void *extra)
{
    coextra_inline_extra *x;
    ool_entry **link = NULL;
    void *old = NULL;
    coextra_freefunc func;

    if (!is_code(code)) {
        /* The value stays the caller's: nothing is freed (R-STORE-9). */
        coextra_set_error("SystemError");
        return -1;
    }
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    func = interp->indices[index].free;
    x = owned_inline(interp, code);
    if (x != NULL && index < x->size) {
        /* Inline: no allocation ever (R-FLAG-6).  The exchange puts the
           new value in place before the old one is freed (R-FREE-9). */
        old = slot_exchange(&x->slots[index], extra);
    } else if ((link = ool_find_link(interp, code)) != NULL &&
               index < (*link)->size) {
        old = slot_exchange(&(*link)->slots[index], extra);
        if (extra == NULL) {
            ool_remove_if_empty(interp, link);
        }
    } else if (extra != NULL &&
               ool_store_new(interp, code, link, index, extra) < 0) {
        unlock(&interp->lock);
        return -1;
    }
    unlock(&interp->lock);
    /* Re-storing the same value is not a free (R-FREE-5); NULL is never
       freed (R-FREE-4).  No lock is held: the free function may
       re-enter (R-FREE-10). */
    if (old != NULL && old != extra) {
        pending_free one = {old, func};
        call_frees(&one, 1);
    }
    return 0;
}

/* PEP 8523: Storage, CompareExchange.
   R-STORE-12, R-STORE-13, R-THREAD-5, and for its errors R-STORE-7,
   R-STORE-9, R-ALLOC-1 */
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
        coextra_set_error("SystemError");
        return -1;
    }
    lock(&interp->lock);
    if (!index_allocated(interp, index)) {
        unlock(&interp->lock);
        coextra_set_error("SystemError");
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
           a concurrent lock-free reader sees old or new (R-THREAD-5,
           R-THREAD-6). */
        void *current = old;
        if (!__atomic_compare_exchange_n(slot, &current, desired, false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
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
        *expected = NULL;
        return 0;
    } else if (desired != NULL &&
               ool_store_new(interp, code, link, index, desired) < 0) {
        /* Nothing stored, nothing freed, *expected unchanged. */
        unlock(&interp->lock);
        return -1;
    }
    unlock(&interp->lock);
    /* The previous value leaves the slot as with Set: after the store,
       never NULL, never when stored again (R-STORE-12). */
    if (old != NULL && old != desired) {
        pending_free one = {old, func};
        call_frees(&one, 1);
    }
    return 1;
}

/* ================================================================== */
/* PEP 8523: Ownership at destruction.
   R-FREE-3, R-FREE-4, R-FREE-6, R-FREE-7, R-FREE-8, R-INTERP-3,
   R-COPY-3 */

/* Detach every value `interp` holds for `code`, in ascending index
   order; returns how many.  Caller holds interp->lock. */
static int
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

    for (i = 0; i < end; i++) {
        void *v = NULL;
        if (i < isize) {
            v = slot_exchange(&x->slots[i], NULL);
        }
        if (v == NULL && i < esize) {
            v = slot_exchange(&e->slots[i], NULL);
        }
        if (v != NULL) {
            buf[n].value = v;
            buf[n].free = free_of(interp, i);
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
        *link = e->next;
        interp->nentries--;
        mem_free(e);
    }
    return n;
}

static bool
holds_values_for(coextra_interp *interp, const coextra_object *code)
{
    return owned_inline(interp, code) != NULL ||
           ool_find(interp, code) != NULL;
}

static void
code_clear_extras(coextra_object *code)
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
       held, in ascending index order (R-FREE-7). */
    for (;;) {
        coextra_interp *it;
        n = -1;
        lock(&global_lock);
        for (it = interp_head; it != NULL; it = it->next) {
            lock(&it->lock);
            if (holds_values_for(it, code)) {
                n = detach_code(it, code, buf);
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
        call_frees(buf, n);
    }
}

static void
object_destroy(coextra_object *obj)
{
    if (obj->ob_kind == COEXTRA_KIND_CODE) {
        coextra_code *co = (coextra_code *)obj;
        intptr_t i;
        /* Values first, as CPython's code_dealloc does, so a free
           function still sees the constants alive. */
        code_clear_extras(obj);
        for (i = 0; i < co->co_nconsts; i++) {
            coextra_drop(co->co_consts[i]);
        }
        mem_free(co->co_consts);
    }
    mem_free(obj);
}

void
coextra_incref(coextra_object *obj)
{
    __atomic_add_fetch(&obj->ob_refcnt, 1, __ATOMIC_RELAXED);
}

void
coextra_drop(coextra_object *obj)
{
    if (obj == NULL) {
        return;
    }
    if (__atomic_sub_fetch(&obj->ob_refcnt, 1, __ATOMIC_ACQ_REL) == 0) {
        object_destroy(obj);
    }
}

/* ================================================================== */
/* PEP 8523: The CO_INLINE_EXTRA flag.
   R-FLAG-3 */
int
coextra_has_inline_extra(coextra_object *code)
{
    if (!is_code(code)) {
        coextra_set_error("SystemError");
        return -1;
    }
    return (code->ob_flags & COEXTRA_CO_INLINE_EXTRA) != 0;
}

/* ================================================================== */
/* PEP 8523: Constructor hooks, registration.
   R-HOOK-6, R-HOOK-7, R-HOOK-10, R-HOOK-11, R-ALLOC-5, R-INTERP-6 */
int
coextra_add_hook(coextra_interp *interp, coextra_hook hook, void *arg)
{
    int id;

    lock(&interp->lock);
    if (interp->finalizing) {
        /* Its chain was emptied for good: a consumer being torn down
           cannot come back through a free function. */
        unlock(&interp->lock);
        coextra_set_error("SystemError");
        return -1;
    }
    if (interp->nhooks == COEXTRA_MAX_HOOKS) {
        unlock(&interp->lock);
        coextra_set_error("RuntimeError");
        return -1;
    }
    if (interp->nhooks == interp->hooks_cap) {
        int cap = interp->hooks_cap ? interp->hooks_cap * 2 : 4;
        hook_entry *grown = mem_alloc((size_t)cap * sizeof(*grown));
        if (grown == NULL) {
            unlock(&interp->lock);
            coextra_set_error("MemoryError");
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
    /* Ids are never reused, so removing a stale id fails (R-HOOK-7). */
    id = interp->next_hook_id++;
    interp->hooks[interp->nhooks].id = id;
    interp->hooks[interp->nhooks].fn = hook;
    interp->hooks[interp->nhooks].arg = arg;
    interp->nhooks++;
    unlock(&interp->lock);
    return id;
}

/* R-HOOK-6, R-HOOK-7, R-HOOK-11 */
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
            interp->nhooks--;
            unlock(&interp->lock);
            return 0;
        }
    }
    unlock(&interp->lock);
    coextra_set_error("ValueError");
    return -1;
}

/* ================================================================== */
/* PEP 8523: Construction, zero cost and inline storage.
   R-FLAG-1, R-FLAG-2, R-FLAG-3, R-FLAG-7, R-FLAG-8, R-FREE-8,
   R-HOOK-1, R-HOOK-4, R-HOOK-5, R-HOOK-8, R-HOOK-9, R-HOOK-11,
   R-ALLOC-4, R-THREAD-4 */
coextra_object *
coextra_code_new(coextra_interp *interp, uint32_t flags,
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
            coextra_set_error("MemoryError");
            return NULL;
        }
    }
    lock(&interp->lock);
    /* Inline storage covers every index allocated at this moment; none
       at all when no consumer is active (R-FLAG-1, R-FLAG-2). */
    size = inline_size_now(interp);
    co = mem_alloc(
        sizeof(coextra_code) +
        (size ? sizeof(coextra_inline_extra) + (size_t)size * sizeof(void *)
              : 0));
    if (co == NULL) {
        unlock(&interp->lock);
        mem_free(owned);
        coextra_set_error("MemoryError");
        return NULL;
    }
    co->co_base.ob_refcnt = 1;
    co->co_base.ob_kind = COEXTRA_KIND_CODE;
    /* Only the implementation sets the flag (R-FLAG-7). */
    co->co_base.ob_flags = flags & ~(uint32_t)COEXTRA_CO_INLINE_EXTRA;
    co->co_serial = __atomic_fetch_add(&next_serial, 1, __ATOMIC_RELAXED);
    if (size) {
        coextra_inline_extra *x = COEXTRA_INLINE(co);
        co->co_base.ob_flags |= COEXTRA_CO_INLINE_EXTRA;
        x->owner = interp;
        x->size = size;
        x->prev = NULL;
        x->next = interp->inline_head;
        if (x->next != NULL) {
            COEXTRA_INLINE(x->next)->prev = co;
        }
        interp->inline_head = co;
    }
    /* The chain as it is now: hooks added or removed while these run
       take effect from the next construction (R-HOOK-11). */
    nhooks = interp->nhooks;
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
       lock held and no exception set (a caller's pending one is kept
       aside); an error is reported as unraisable and does not fail the
       construction (R-HOOK-5, R-HOOK-4, R-HOOK-8). */
    if (nhooks) {
        char saved[COEXTRA_ERROR_SIZE];
        int had_error = coextra_take_error(saved, sizeof(saved));
        for (i = 0; i < nhooks; i++) {
            char exc[COEXTRA_ERROR_SIZE];
            int rc = hooks[i].fn(&co->co_base, hooks[i].arg);
            int pending = coextra_take_error(exc, sizeof(exc));
            if (rc < 0 || pending) {
                /* -1 without an exception is a SystemError. */
                report_unraisable(pending ? exc : "SystemError");
            }
        }
        if (had_error) {
            coextra_set_error(saved);
        }
    }
    return &co->co_base;
}

coextra_object *
coextra_new_code(coextra_interp *interp, int nested, uint32_t flags)
{
    coextra_object *inner[16] = {NULL};
    coextra_object **consts = inner;
    coextra_object *code = NULL;
    int i, made = 0;

    if (nested < 0) {
        coextra_set_error("SystemError");
        return NULL;
    }
    if (nested > 16) {
        consts = mem_alloc((size_t)nested * sizeof(*consts));
        if (consts == NULL) {
            coextra_set_error("MemoryError");
            return NULL;
        }
    }
    /* Inner code objects first, as a compiler builds them (R-HOOK-2). */
    for (i = 0; i < nested; i++) {
        consts[i] = coextra_code_new(interp, 0, NULL, 0);
        if (consts[i] == NULL) {
            goto done;
        }
        made++;
    }
    code = coextra_code_new(interp, flags, consts, nested);
done:
    for (i = 0; i < made; i++) {
        coextra_drop(consts[i]);
    }
    if (consts != inner) {
        mem_free(consts);
    }
    return code;
}

coextra_object *
coextra_get_nested(coextra_object *code, int i)
{
    coextra_code *co = (coextra_code *)code;

    if (!is_code(code)) {
        coextra_set_error("SystemError");
        return NULL;
    }
    if (i < 0 || i >= co->co_nconsts) {
        return NULL;
    }
    coextra_incref(co->co_consts[i]);
    return co->co_consts[i];
}

/* PEP 8523: Copies.
   R-COPY-1, R-COPY-2, R-COPY-3, R-HOOK-3, R-FLAG-7 */
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
    /* The caller's flags: the copy decides its own inline storage
       (R-COPY-2), and values are never copied (R-COPY-1). */
    flags = code->ob_flags & ~(uint32_t)COEXTRA_CO_INLINE_EXTRA;
    if (how == 0 || co->co_nconsts == 0) {
        return coextra_code_new(interp, flags, co->co_consts, co->co_nconsts);
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
    copy = coextra_code_new(interp, flags, consts, co->co_nconsts);
done:
    for (i = 0; i < made; i++) {
        coextra_drop(consts[i]);
    }
    mem_free(consts);
    return copy;
}

coextra_object *
coextra_new_non_code(coextra_interp *interp)
{
    coextra_object *obj;

    (void)interp;
    obj = mem_alloc(sizeof(*obj));
    if (obj == NULL) {
        coextra_set_error("MemoryError");
        return NULL;
    }
    obj->ob_refcnt = 1;
    obj->ob_kind = COEXTRA_KIND_OTHER;
    return obj;
}

uintptr_t
coextra_code_id(coextra_object *code)
{
    if (!is_code(code)) {
        return 0;
    }
    return (uintptr_t)((coextra_code *)code)->co_serial;
}

uint32_t
coextra_co_flags(coextra_object *code)
{
    return code->ob_flags;
}

/* ================================================================== */
/* PEP 8523: Interpreters.
   R-INTERP-1, R-INTERP-3, R-INTERP-5, R-FREE-11 */
coextra_interp *
coextra_new_interpreter(void)
{
    coextra_interp *interp = mem_alloc(sizeof(*interp));

    if (interp == NULL) {
        coextra_set_error("MemoryError");
        return NULL;
    }
    pthread_mutex_init(&interp->lock, NULL);
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
    interp->nhooks = 0;
    for (i = 0; i < interp->indices_cap; i++) {
        if (interp->indices[i].state == IDX_ALLOCATED) {
            interp->indices[i].state = IDX_RELEASING;
        }
    }
    unlock(&interp->lock);

    drain(interp, -1);

    /* Code objects it constructed outlive it: their inline blocks lose
       their owner so that no later interpreter at the same address can
       mistake them for its own. */
    lock(&global_lock);
    lock(&interp->lock);
    for (co = interp->inline_head; co != NULL;) {
        coextra_inline_extra *x = COEXTRA_INLINE(co);
        co = x->next;
        x->prev = x->next = NULL;
        __atomic_store_n(&x->owner, NULL, __ATOMIC_RELAXED);
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
/* Observation.  R-FLAG-1, R-FLAG-8, R-FLAG-9 */
intptr_t
coextra_extra_bytes(coextra_object *code)
{
    coextra_inline_extra *x;
    coextra_interp *it;
    intptr_t total = 0;

    if (!is_code(code)) {
        coextra_set_error("SystemError");
        return -1;
    }
    x = inline_of(code);
    if (x != NULL) {
        total += (intptr_t)(sizeof(*x) + (size_t)x->size * sizeof(void *));
    }
    if (__atomic_load_n(&code->ob_marks, __ATOMIC_RELAXED) &
        MARK_OUT_OF_LINE) {
        lock(&global_lock);
        for (it = interp_head; it != NULL; it = it->next) {
            ool_entry *e;
            lock(&it->lock);
            e = ool_find(it, code);
            if (e != NULL) {
                total += ool_entry_bytes(e);
            }
            unlock(&it->lock);
        }
        unlock(&global_lock);
    }
    return total;
}

intptr_t
coextra_sizeof_code(coextra_object *code)
{
    intptr_t extra = coextra_extra_bytes(code);

    if (extra < 0) {
        return -1;
    }
    return (intptr_t)sizeof(coextra_code) + extra;
}
