/*
 * minimal_impl.c -- the smallest complete library for the suite's C ABI.
 *
 * A worked example for docs/adapter.rst: code objects live in memory,
 * every value is stored out of line (a small array per code object), and
 * the optional capabilities declared are compare-and-exchange and
 * live-blocks (the library counts its heap blocks, so the suite checks
 * every test for leaks); the
 * suite runs the storage, index and free-function tests and reports the
 * rest as not applicable.
 *
 * Build and run the suite against it:
 *
 *     gcc -shared -fPIC -O2 -Wall -Wextra -Werror \
 *         -I conformance/abi -o minimal_impl.so docs/examples/minimal_impl.c
 *     pytest --pyargs coextra_conformance --coextra-impl=./minimal_impl.so
 *
 * meta_tests/test_docs_ext.py compiles this file and runs it.
 */
#include <stdlib.h>
#include <string.h>

#include "coextra_abi.h"

/* PEP 9999 asks for at least 255 indices (R-INDEX-2). */
#define MIN_INDICES 255

struct coextra_interp {
    coextra_freefunc free[MIN_INDICES];
    unsigned char used[MIN_INDICES];
};

/* One stored value: which interpreter stored it under which index. */
typedef struct {
    coextra_interp *interp;
    intptr_t index;
    void *value;
} slot;

struct coextra_object {
    long refcnt;
    int is_code;
    uint32_t flags;
    int nnested;
    coextra_object **nested;
    slot *slots;
    size_t nslots;
    /* Every live code object is on one list, so that finalizing an
       interpreter can free its values in all of them (R-FREE-11). */
    coextra_object *prev, *next;
};

static coextra_object *live_codes;

/* Heap blocks allocated and not yet freed: the suite reads the count
   before and after each test (live_blocks, COEXTRA_CAP_LIVE_BLOCKS). */
static intptr_t blocks;

static void *
counted_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    blocks += p != NULL;
    return p;
}

static void
counted_free(void *p)
{
    blocks -= p != NULL;
    free(p);
}

static intptr_t
live_blocks(void)
{
    return blocks;
}

/* Errors are per thread, as the ABI asks.  The class name is copied:
   the caller's string need not outlive the call.  "" means none. */
#define ERROR_SIZE 64
static _Thread_local char pending_error[ERROR_SIZE];

static void
set_error(const char *exc_class)
{
    strncpy(pending_error, exc_class, ERROR_SIZE - 1);
    pending_error[ERROR_SIZE - 1] = '\0';
}

static int
take_error(char *buf, size_t size)
{
    if (pending_error[0] == '\0') {
        return 0;
    }
    strncpy(buf, pending_error, size - 1);
    buf[size - 1] = '\0';
    pending_error[0] = '\0';
    return 1;
}

/* Errors that free functions leave behind; they cannot be returned to
   anybody, so they are reported as unraisable (R-FREE-12).  This example
   declares no threads capability, so one small queue will do. */
static char unraisable[8][ERROR_SIZE];
static int unraisable_count;

static int
take_unraisable(char *buf, size_t size)
{
    if (unraisable_count == 0) {
        return 0;
    }
    strncpy(buf, unraisable[0], size - 1);
    buf[size - 1] = '\0';
    unraisable_count--;
    memmove(unraisable, unraisable + 1,
            (size_t)unraisable_count * sizeof(unraisable[0]));
    return 1;
}

/* Call a free function with no error pending and give the caller's error
   back afterwards (R-FREE-12): code objects die while errors propagate. */
static void
call_free(coextra_freefunc free_func, void *value)
{
    char saved[ERROR_SIZE];

    if (free_func == NULL || value == NULL) {
        return;
    }
    memcpy(saved, pending_error, ERROR_SIZE);
    pending_error[0] = '\0';
    free_func(value);
    if (pending_error[0] != '\0' && unraisable_count < 8) {
        memcpy(unraisable[unraisable_count++], pending_error, ERROR_SIZE);
    }
    memcpy(pending_error, saved, ERROR_SIZE);
}

static coextra_interp *
new_interpreter(void)
{
    coextra_interp *interp = counted_calloc(1, sizeof(*interp));
    if (interp == NULL) {
        set_error("MemoryError");
    }
    return interp;
}

/* Remove slot i of code; the caller frees the value. */
static void
remove_slot(coextra_object *code, size_t i)
{
    code->slots[i] = code->slots[code->nslots - 1];
    code->nslots--;
}

static int
end_interpreter(coextra_interp *interp)
{
    for (coextra_object *code = live_codes; code; code = code->next) {
        size_t i = 0;
        while (i < code->nslots) {
            slot s = code->slots[i];
            if (s.interp != interp) {
                i++;
                continue;
            }
            remove_slot(code, i);
            call_free(interp->free[s.index], s.value);
        }
    }
    counted_free(interp);
    return 0;
}

static coextra_object *
new_object(int is_code, uint32_t flags)
{
    coextra_object *obj = counted_calloc(1, sizeof(*obj));
    if (obj == NULL) {
        set_error("MemoryError");
        return NULL;
    }
    obj->refcnt = 1;
    obj->is_code = is_code;
    /* Only the implementation may set the flag (R-FLAG-7); this one has
       no inline storage, so it never does. */
    obj->flags = flags & ~(uint32_t)COEXTRA_CO_INLINE_EXTRA;
    if (is_code) {
        obj->next = live_codes;
        if (live_codes != NULL) {
            live_codes->prev = obj;
        }
        live_codes = obj;
    }
    return obj;
}

static void drop(coextra_object *obj);

static coextra_object *
new_code(coextra_interp *interp, int nested, uint32_t flags)
{
    (void)interp;
    coextra_object *code = new_object(1, flags);
    if (code == NULL || nested == 0) {
        return code;
    }
    code->nested = counted_calloc((size_t)nested, sizeof(coextra_object *));
    if (code->nested == NULL) {
        set_error("MemoryError");
        drop(code);
        return NULL;
    }
    /* Inner code objects first, as a compiler builds them. */
    for (int i = 0; i < nested; i++) {
        code->nested[i] = new_object(1, 0);
        if (code->nested[i] == NULL) {
            drop(code);
            return NULL;
        }
        code->nnested++;
    }
    return code;
}

static coextra_object *
get_nested(coextra_object *code, int i)
{
    if (!code->is_code || i < 0 || i >= code->nnested) {
        set_error("IndexError");
        return NULL;
    }
    code->nested[i]->refcnt++;
    return code->nested[i];
}

static coextra_object *
new_non_code(coextra_interp *interp)
{
    (void)interp;
    return new_object(0, 0);
}

/* Free a dying code object's values, ascending index order (R-FREE-7). */
static void
free_all_values(coextra_object *code)
{
    while (code->nslots > 0) {
        size_t lowest = 0;
        for (size_t i = 1; i < code->nslots; i++) {
            if (code->slots[i].index < code->slots[lowest].index) {
                lowest = i;
            }
        }
        slot s = code->slots[lowest];
        remove_slot(code, lowest);
        call_free(s.interp->free[s.index], s.value);
    }
}

static void
drop(coextra_object *obj)
{
    if (--obj->refcnt > 0) {
        return;
    }
    if (obj->is_code) {
        free_all_values(obj);
        if (obj->prev != NULL) {
            obj->prev->next = obj->next;
        } else {
            live_codes = obj->next;
        }
        if (obj->next != NULL) {
            obj->next->prev = obj->prev;
        }
        for (int i = 0; i < obj->nnested; i++) {
            drop(obj->nested[i]);
        }
    }
    counted_free(obj->nested);
    counted_free(obj->slots);
    counted_free(obj);
}

static uintptr_t
code_id(coextra_object *code)
{
    return (uintptr_t)code;
}

static uint32_t
co_flags(coextra_object *code)
{
    return code->flags;
}

static intptr_t
request_index(coextra_interp *interp, coextra_freefunc free_func)
{
    /* The lowest free index keeps storage dense (R-INDEX-6). */
    for (intptr_t i = 0; i < MIN_INDICES; i++) {
        if (!interp->used[i]) {
            interp->used[i] = 1;
            interp->free[i] = free_func;
            return i;
        }
    }
    set_error("RuntimeError");
    return -1;
}

/* Shared argument checks of get and set (R-STORE-6 to R-STORE-9). */
static int
check_args(coextra_interp *interp, coextra_object *code, intptr_t index)
{
    if (!code->is_code || index < 0 || index >= MIN_INDICES ||
        !interp->used[index]) {
        set_error("SystemError");
        return -1;
    }
    return 0;
}

static slot *
find_slot(coextra_interp *interp, coextra_object *code, intptr_t index)
{
    for (size_t i = 0; i < code->nslots; i++) {
        if (code->slots[i].interp == interp && code->slots[i].index == index) {
            return &code->slots[i];
        }
    }
    return NULL;
}

static int
get_extra(coextra_interp *interp, coextra_object *code, intptr_t index,
          void **extra)
{
    *extra = NULL;
    if (check_args(interp, code, index) < 0) {
        return -1;
    }
    slot *s = find_slot(interp, code, index);
    if (s != NULL) {
        *extra = s->value;
    }
    return 0;
}

static int
set_extra(coextra_interp *interp, coextra_object *code, intptr_t index,
          void *extra)
{
    if (check_args(interp, code, index) < 0) {
        return -1;
    }
    slot *s = find_slot(interp, code, index);
    void *old = s != NULL ? s->value : NULL;
    if (old == extra) {
        /* Storing the value already there frees nothing (R-FREE-5). */
        return 0;
    }
    if (extra == NULL) {
        remove_slot(code, (size_t)(s - code->slots));
    } else if (s != NULL) {
        s->value = extra;
    } else {
        slot *grown = realloc(code->slots, (code->nslots + 1) * sizeof(slot));
        if (grown == NULL) {
            /* The slot keeps its old value (R-ALLOC-2). */
            set_error("MemoryError");
            return -1;
        }
        blocks += code->slots == NULL; /* realloc(NULL, n) is a new block */
        code->slots = grown;
        code->slots[code->nslots++] = (slot){interp, index, extra};
    }
    /* The new value is in place before the old one is freed (R-FREE-9). */
    call_free(interp->free[index], old);
    return 0;
}

/* Store `desired` only if the slot holds `*expected` (R-STORE-12); else
   report what it holds (R-STORE-13).  Without threads, comparing and
   storing in sequence is already atomic. */
static int
compare_exchange_extra(coextra_interp *interp, coextra_object *code,
                       intptr_t index, void **expected, void *desired)
{
    void *current;

    if (get_extra(interp, code, index, &current) < 0) {
        return -1;
    }
    if (current != *expected) {
        *expected = current;
        return 0;
    }
    return set_extra(interp, code, index, desired) < 0 ? -1 : 1;
}

static const coextra_table table = {
    .abi_version = COEXTRA_ABI_VERSION,
    .size = sizeof(coextra_table),
    .name = "minimal-example",
    .version = "1.0",
    .capabilities = COEXTRA_CAP_COMPARE_EXCHANGE | COEXTRA_CAP_LIVE_BLOCKS,
    .new_interpreter = new_interpreter,
    .end_interpreter = end_interpreter,
    .new_code = new_code,
    .get_nested = get_nested,
    .new_non_code = new_non_code,
    .drop = drop,
    .code_id = code_id,
    .co_flags = co_flags,
    .request_index = request_index,
    .get_extra = get_extra,
    .set_extra = set_extra,
    .take_error = take_error,
    .set_error = set_error,
    .take_unraisable = take_unraisable,
    .compare_exchange_extra = compare_exchange_extra,
    .live_blocks = live_blocks,
};

const coextra_table *
coextra_get_table(void)
{
    return &table;
}
