/*
 * coextra.h -- public interface of the PEP 9999 reference implementation.
 *
 * The reference implements the whole PEP on a small object model of its
 * own: interpreter states, reference-counted objects, and code objects
 * whose co_flags may carry CO_INLINE_EXTRA.  Every API function takes the
 * interpreter explicitly; it stands for the calling thread's current
 * interpreter of the PEP's C API.  The mapping is:
 *
 *   coextra_request_index      PyUnstable_Eval_RequestCodeExtraIndex
 *   coextra_release_index      PyUnstable_Eval_ReleaseCodeExtraIndex
 *   coextra_get_extra          PyUnstable_Code_GetExtra
 *   coextra_set_extra          PyUnstable_Code_SetExtra
 *   coextra_compare_exchange_extra
 *                              PyUnstable_Code_CompareExchangeExtra
 *   coextra_add_hook           PyUnstable_Code_AddConstructorHook
 *   coextra_remove_hook        PyUnstable_Code_RemoveConstructorHook
 *   coextra_has_inline_extra   PyUnstable_Code_HasInlineExtra
 *
 * Errors follow the PEP: a function returns -1 (or NULL) and leaves an
 * exception class name pending for the calling thread, which
 * coextra_take_error() returns and clears.
 *
 * Everything is thread-safe.  Free functions and constructor hooks are
 * always called with no internal lock held, so they may call back into
 * any function here.
 */
#ifndef COEXTRA_H
#define COEXTRA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The co_flags bit that marks inline extra storage (same value as the
   suite's ABI header, which may be included as well). */
#ifndef COEXTRA_CO_INLINE_EXTRA
#define COEXTRA_CO_INLINE_EXTRA 0x20000000
#endif

/* Index capacity per interpreter: exactly the PEP's minimum
   (PyUnstable_CODE_EXTRA_MIN_INDICES).  A larger number buys nothing
   for real consumers and makes exhaustion tests slower. */
#define COEXTRA_MAX_INDICES 255

/* Constructor hooks per interpreter (the PEP asks for at least 8). */
#define COEXTRA_MAX_HOOKS 32

/* Longest exception class name kept by the error state, with its NUL. */
#define COEXTRA_ERROR_SIZE 64

typedef struct coextra_interp coextra_interp;
typedef struct coextra_object coextra_object;

typedef void (*coextra_freefunc)(void *value);
typedef int (*coextra_hook)(coextra_object *code, void *arg);

/* Object kinds (coextra_object.ob_kind). */
#define COEXTRA_KIND_CODE 1
#define COEXTRA_KIND_OTHER 2

/* Every object starts with this header.  ob_flags is the code object's
   co_flags and 0 for every other kind, so that the inline fast path can
   test the flag without first checking the kind. */
struct coextra_object {
    intptr_t ob_refcnt; /* atomic */
    uint16_t ob_kind;   /* COEXTRA_KIND_*, fixed */
    uint16_t ob_marks;  /* private bits, atomic */
    uint32_t ob_flags;  /* co_flags; fixed after construction */
};

/* A code object.  There is no field for extra storage: a code object
   built while no consumer is active carries zero extra bytes.  When
   ob_flags has COEXTRA_CO_INLINE_EXTRA, a coextra_inline_extra block
   follows the struct in the same allocation. */
typedef struct coextra_code {
    coextra_object co_base;
    uint64_t co_serial; /* code_id: unique, never reused */
    intptr_t co_nconsts;
    coextra_object **co_consts; /* nested code objects (strong refs) */
} coextra_code;

/* Trailing inline storage.  Values in it belong to `owner`, the
   interpreter that constructed the code object; other interpreters keep
   their values for this code object out of line. */
typedef struct coextra_inline_extra {
    coextra_interp *owner; /* atomic; NULL once owner is finalized */
    intptr_t size;         /* number of slots */
    coextra_code *prev;    /* owner's list of inline code objects */
    coextra_code *next;
    void *slots[]; /* atomic words */
} coextra_inline_extra;

#define COEXTRA_INLINE(obj)                                                   \
    ((coextra_inline_extra *)((char *)(obj) + sizeof(coextra_code)))

/* -- PEP API (see the mapping above) ------------------------------- */

intptr_t coextra_request_index(coextra_interp *interp, coextra_freefunc func);
int coextra_release_index(coextra_interp *interp, intptr_t index);
int coextra_get_extra(coextra_interp *interp, coextra_object *code,
                      intptr_t index, void **extra);
int coextra_set_extra(coextra_interp *interp, coextra_object *code,
                      intptr_t index, void *extra);
int coextra_compare_exchange_extra(coextra_interp *interp,
                                   coextra_object *code, intptr_t index,
                                   void **expected, void *desired);
int coextra_add_hook(coextra_interp *interp, coextra_hook hook, void *arg);
int coextra_remove_hook(coextra_interp *interp, int hook_id);
int coextra_has_inline_extra(coextra_object *code);

/* Fast path of coextra_get_extra for a consumer that holds `index`
 * (it requested it and has not released it): when the value lives in the
 * code object's inline storage it is read without a call or a lock.
 *
 * Cost on the inline path: 4 loads (ob_flags, owner, size, the slot),
 * one store (*extra), three compare-and-branch pairs and no call; gcc -O2
 * on x86-64 emits exactly that (testb/movq/cmpq/movq from memory).
 * Otherwise it
 * falls back to coextra_get_extra, which also validates the index; the
 * fast path skips that check, so for a released index covered by the
 * inline storage it reads NULL instead of failing. */
static inline int
coextra_get_extra_fast(coextra_interp *interp, coextra_object *code,
                       intptr_t index, void **extra)
{
    if (code->ob_flags & COEXTRA_CO_INLINE_EXTRA) {
        coextra_inline_extra *x = COEXTRA_INLINE(code);
        if (__atomic_load_n(&x->owner, __ATOMIC_RELAXED) == interp &&
            (uintptr_t)index < (uintptr_t)x->size) {
            *extra = __atomic_load_n(&x->slots[index], __ATOMIC_ACQUIRE);
            return 0;
        }
    }
    return coextra_get_extra(interp, code, index, extra);
}

/* -- object model -------------------------------------------------- */

/* A fresh interpreter, or NULL with MemoryError. */
coextra_interp *coextra_new_interpreter(void);
/* Finalize: free every value stored under its indices (inline and out of
   line, in every live code object), then the interpreter itself.  Code
   objects it constructed stay alive while referenced. */
int coextra_end_interpreter(coextra_interp *interp);

/* Compile-like construction (the ABI's new_code): construct `nested`
   code objects first, then one holding them as constants, each through
   the PEP's constructor (inline storage, then the hook chain).  Caller
   flags never include CO_INLINE_EXTRA. */
coextra_object *coextra_new_code(coextra_interp *interp, int nested,
                                 uint32_t flags);
/* New reference to constant i, or NULL (no error set) past the end. */
coextra_object *coextra_get_nested(coextra_object *code, int i);
/* how: 0 = replace() (shares the constants), 1 = marshal round trip
   (copies nested code objects too, inner first). */
coextra_object *coextra_copy_code(coextra_interp *interp, coextra_object *code,
                                  int how);
coextra_object *coextra_new_non_code(coextra_interp *interp);
void coextra_incref(coextra_object *obj);
/* Release one reference; the last one destroys the object. */
void coextra_drop(coextra_object *obj);
uintptr_t coextra_code_id(coextra_object *code);
/* co_flags as the caller sees them (private bits masked). */
uint32_t coextra_co_flags(coextra_object *code);

/* -- observation --------------------------------------------------- */

/* Bytes spent on extra storage: inline block plus out-of-line entries of
   every interpreter. */
intptr_t coextra_extra_bytes(coextra_object *code);
/* What sys.getsizeof() would say: the struct plus coextra_extra_bytes. */
intptr_t coextra_sizeof_code(coextra_object *code);
/* The next `after` allocations succeed, then `count` fail. */
void coextra_fail_allocations(long after, long count);
/* Number of live heap blocks (for leak checks in tests). */
intptr_t coextra_live_blocks(void);
int coextra_take_error(char *buf, size_t size);
void coextra_set_error(const char *exc_class);
int coextra_take_unraisable(char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* COEXTRA_H */
