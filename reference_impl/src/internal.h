/*
 * internal.h -- what the reference's C files share and nobody else sees.
 *
 *   alloc.c       allocator with failure injection, live block count
 *   errors.c      per-thread error state, unraisable queue
 *   side_table.c  out-of-line storage: one hash table per interpreter
 *   drain.c       detaching values under a lock, freeing them after it
 *   objects.c     the object model: references, destruction, observation
 *   coextra.c     the PEP's API, in the PEP's order
 *
 * Locking.  One global mutex protects the list of live interpreters and
 * their lifetime; each interpreter has its own mutex for its indices,
 * hooks, side table and list of inline code objects.  Lock order is
 * global, then interpreter; never two interpreters at once.  No lock is
 * held while a free function or a constructor hook runs: values are
 * first detached under the lock, then freed after it is released.
 *
 * Everything declared here is hidden: the shared library exports only
 * the functions of coextra.h.
 */
#ifndef COEXTRA_INTERNAL_H
#define COEXTRA_INTERNAL_H

#include "coextra.h"

#include <pthread.h>
#include <stdbool.h>

#define INTERNAL __attribute__((visibility("hidden")))

/* Private bit in ob_marks: some interpreter may hold out-of-line values
   for this code object, so destruction must look in the side tables. */
#define MARK_OUT_OF_LINE 0x1

/* Index states.  RELEASING: no longer valid for Get/Set but not yet
   reusable, while its values are being freed (R-INDEX-8, R-INDEX-10). */
#define IDX_FREE 0
#define IDX_ALLOCATED 1
#define IDX_RELEASING 2

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

/* A value detached from its slot, waiting for its free function. */
typedef struct {
    void *value;
    coextra_freefunc free;
} pending_free;

/* The live interpreters (coextra.c), under global_lock. */
INTERNAL extern pthread_mutex_t global_lock;
INTERNAL extern coextra_interp *interp_head;

/* alloc.c: every allocation of the reference goes through these, so
   that coextra_fail_allocations can make any of them fail.  Blocks are
   zeroed. */
INTERNAL void *mem_alloc(size_t size);
INTERNAL void mem_free(void *p);

/* errors.c: queue an exception class name as unraisable; never
   allocates. */
INTERNAL void report_unraisable(const char *exc_class);

/* side_table.c.  Caller holds interp->lock for all of them. */
INTERNAL ool_entry **ool_find_link(coextra_interp *interp,
                                   const coextra_object *code);
INTERNAL ool_entry *ool_find(coextra_interp *interp,
                             const coextra_object *code);
INTERNAL bool ool_empty(const ool_entry *e);
INTERNAL void ool_remove_if_empty(coextra_interp *interp, ool_entry **link);
INTERNAL void ool_unlink(coextra_interp *interp, ool_entry **link);
INTERNAL int ool_store_new(coextra_interp *interp, coextra_object *code,
                           ool_entry **link, intptr_t index, void *extra);
INTERNAL intptr_t ool_entry_bytes(const ool_entry *e);

/* drain.c */
INTERNAL void call_frees(const pending_free *buf, int n);
INTERNAL void drain(coextra_interp *interp, intptr_t index);
INTERNAL int detach_code(coextra_interp *interp, coextra_object *code,
                         pending_free *buf);

/* coextra.c: the PEP's code-object constructor (inline storage, then
   the hook chain), and the freeing of a dying code object's values. */
INTERNAL coextra_object *construct_code(coextra_interp *interp, uint32_t flags,
                                        coextra_object *const *consts,
                                        intptr_t nconsts);
INTERNAL void clear_code_extras(coextra_object *code);

static inline void
lock(pthread_mutex_t *m)
{
    pthread_mutex_lock(m);
}

static inline void
unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

static inline bool
is_code(const coextra_object *obj)
{
    return obj != NULL && obj->ob_kind == COEXTRA_KIND_CODE;
}

static inline coextra_inline_extra *
inline_of(const coextra_object *code)
{
    if (code->ob_flags & COEXTRA_CO_INLINE_EXTRA) {
        return COEXTRA_INLINE(code);
    }
    return NULL;
}

/* The inline block of `code` if `interp` owns it, else NULL. */
static inline coextra_inline_extra *
owned_inline(coextra_interp *interp, const coextra_object *code)
{
    coextra_inline_extra *x = inline_of(code);

    if (x != NULL && __atomic_load_n(&x->owner, __ATOMIC_RELAXED) == interp) {
        return x;
    }
    return NULL;
}

static inline void *
slot_load(void **slot)
{
    return __atomic_load_n(slot, __ATOMIC_ACQUIRE);
}

static inline void *
slot_exchange(void **slot, void *value)
{
    return __atomic_exchange_n(slot, value, __ATOMIC_ACQ_REL);
}

#endif /* COEXTRA_INTERNAL_H */
