/*
 * cases_reference.c -- the reference implementation, compiled in.
 *
 * The harness is compiled directly against reference_impl/src (the
 * header here, each of its C files as its own object file, no link-time
 * optimisation), so it sees the reference exactly as a C consumer
 * would: the static inline fast path is inlined into the loop, every
 * other function is a call.
 */
#include <stdio.h>

#include "bench.h"
#include "coextra.h"

static coextra_interp *interp;
static coextra_object *inline_codes[OBJ_COUNT];
static coextra_object *fallback_codes[OBJ_COUNT];
static intptr_t plain_index = -1;
static intptr_t free_index = -1;
static volatile long frees;

static void
count_free(void *value)
{
    (void)value;
    frees++;
}

static void
report_error(const char *what)
{
    char buf[COEXTRA_ERROR_SIZE] = "no exception";
    coextra_take_error(buf, sizeof(buf));
    fprintf(stderr, "reference: %s failed: %s\n", what, buf);
}

int
reference_setup(void)
{
    interp = coextra_new_interpreter();
    if (interp == NULL) {
        report_error("coextra_new_interpreter");
        return -1;
    }
    /* Built while no consumer is active: no inline storage, so every
       get and set on these goes to the out-of-line storage. */
    for (int i = 0; i < OBJ_COUNT; i++) {
        fallback_codes[i] = coextra_new_code(interp, 0, 0);
        if (fallback_codes[i] == NULL) {
            report_error("coextra_new_code");
            return -1;
        }
    }
    plain_index = coextra_request_index(interp, NULL);
    free_index = coextra_request_index(interp, count_free);
    if (plain_index < 0 || free_index < 0) {
        report_error("coextra_request_index");
        return -1;
    }
    /* Built with two consumers active: inline storage for both. */
    for (int i = 0; i < OBJ_COUNT; i++) {
        inline_codes[i] = coextra_new_code(interp, 0, 0);
        if (inline_codes[i] == NULL) {
            report_error("coextra_new_code");
            return -1;
        }
        if (!coextra_has_inline_extra(inline_codes[i]) ||
            coextra_has_inline_extra(fallback_codes[i])) {
            fprintf(stderr, "reference: unexpected inline flags\n");
            return -1;
        }
        void *value = (void *)(uintptr_t)(i + 1);
        if (coextra_set_extra(interp, inline_codes[i], plain_index, value) <
                0 ||
            coextra_set_extra(interp, inline_codes[i], free_index, value) <
                0 ||
            coextra_set_extra(interp, fallback_codes[i], plain_index, value) <
                0) {
            report_error("coextra_set_extra");
            return -1;
        }
    }
    return 0;
}

void
reference_teardown(void)
{
    for (int i = 0; i < OBJ_COUNT; i++) {
        coextra_drop(inline_codes[i]);
        coextra_drop(fallback_codes[i]);
    }
    coextra_end_interpreter(interp);
    interp = NULL;
}

/* The loops of the cases below differ only in the code objects, the
   index and the function called.  Each case stays a noinline function
   of its own (one loop per measurement); these bodies are always
   inlined into it with constant arguments, so each case compiles to the
   loop it would be if written out. */
enum { GET_FAST, GET_CALL };

static inline __attribute__((always_inline)) uintptr_t
get_loop(size_t n, coextra_object *const *codes, intptr_t index, int how)
{
    uintptr_t acc = 0;
    coextra_interp *in = interp;
    LAUNDER(index);
    LAUNDER(in);
    for (size_t i = 0; i < n; i++) {
        coextra_object *co = codes[i & OBJ_MASK];
        void *value;
        LAUNDER(co);
        if ((how == GET_FAST ? coextra_get_extra_fast(in, co, index, &value)
                             : coextra_get_extra(in, co, index, &value)) < 0) {
            return 0;
        }
        acc += (uintptr_t)value;
    }
    return acc;
}

/* Every store changes the slot. */
static inline __attribute__((always_inline)) uintptr_t
set_loop(size_t n, intptr_t index)
{
    uintptr_t acc = 0;
    coextra_interp *in = interp;
    LAUNDER(index);
    LAUNDER(in);
    for (size_t i = 0; i < n; i++) {
        coextra_object *co = inline_codes[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)coextra_set_extra(in, co, index,
                                            (void *)(uintptr_t)(i + 1));
    }
    return acc;
}

/* The consumer's fast path on code objects with inline storage. */
static uintptr_t __attribute__((noinline))
case_reference_get_inline(size_t n)
{
    return get_loop(n, inline_codes, plain_index, GET_FAST);
}

/* The same fast path on code objects built before the consumer: the
   flag test fails and it falls back to the out-of-line storage. */
static uintptr_t __attribute__((noinline))
case_reference_get_fallback(size_t n)
{
    return get_loop(n, fallback_codes, plain_index, GET_FAST);
}

/* The full API function on inline storage, for a consumer that does not
   use the fast path (the cost of the call and the index check). */
static uintptr_t __attribute__((noinline))
case_reference_get_call(size_t n)
{
    return get_loop(n, inline_codes, plain_index, GET_CALL);
}

/* The index has no free function. */
static uintptr_t __attribute__((noinline))
case_reference_set(size_t n)
{
    return set_loop(n, plain_index);
}

/* Every store overwrites a non-NULL value: one free call per store. */
static uintptr_t __attribute__((noinline))
case_reference_set_free(size_t n)
{
    return set_loop(n, free_index);
}

/* Latency variant (see bench.h): object i holds i + 1, the next one. */
static uintptr_t __attribute__((noinline))
case_reference_get_inline_chain(size_t n)
{
    size_t k = 0;
    intptr_t index = plain_index;
    coextra_interp *in = interp;
    LAUNDER(index);
    LAUNDER(in);
    for (size_t i = 0; i < n; i++) {
        coextra_object *co = inline_codes[k];
        void *value;
        LAUNDER(co);
        if (coextra_get_extra_fast(in, co, index, &value) < 0) {
            return 0;
        }
        k = (uintptr_t)value & OBJ_MASK;
    }
    return k;
}

const bench_case reference_cases[] = {
    {"reference_get_inline", case_reference_get_inline},
    {"reference_get_inline_chain", case_reference_get_inline_chain},
    {"reference_get_fallback", case_reference_get_fallback},
    {"reference_get_call", case_reference_get_call},
    {"reference_set", case_reference_set},
    {"reference_set_free", case_reference_set_free},
};
const size_t reference_case_count =
    sizeof(reference_cases) / sizeof(reference_cases[0]);

static volatile long hook_calls;

/* The cheapest possible consumer: it only counts, so the figure is the
   cost of the hook chain itself. */
static int
count_hook(coextra_object *code, void *arg)
{
    (void)code;
    (void)arg;
    hook_calls++;
    return 0;
}

int
reference_hook_ns(size_t n, int hooks, double *ns_per_code)
{
    /* A fresh interpreter without consumers: the code objects carry no
       inline storage, so the only difference is the hook. */
    coextra_interp *hi = coextra_new_interpreter();
    int ids[COEXTRA_MAX_HOOKS];
    if (hi == NULL || hooks > COEXTRA_MAX_HOOKS) {
        report_error("coextra_new_interpreter");
        return -1;
    }
    for (int h = 0; h < hooks; h++) {
        ids[h] = coextra_add_hook(hi, count_hook, NULL);
        if (ids[h] < 0) {
            report_error("coextra_add_hook");
            return -1;
        }
    }
    double start = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        coextra_object *co = coextra_new_code(hi, 0, 0);
        if (co == NULL) {
            report_error("coextra_new_code");
            return -1;
        }
        coextra_drop(co);
    }
    *ns_per_code = (bench_now_ns() - start) / (double)n;
    for (int h = 0; h < hooks; h++) {
        if (coextra_remove_hook(hi, ids[h]) < 0) {
            report_error("coextra_remove_hook");
            return -1;
        }
    }
    if (coextra_end_interpreter(hi) < 0) {
        report_error("coextra_end_interpreter");
        return -1;
    }
    return 0;
}

int
reference_memory(int consumers, long *extra_bytes, long *size)
{
    coextra_interp *mi = coextra_new_interpreter();
    if (mi == NULL) {
        report_error("coextra_new_interpreter");
        return -1;
    }
    for (int k = 0; k < consumers; k++) {
        if (coextra_request_index(mi, NULL) < 0) {
            report_error("coextra_request_index");
            return -1;
        }
    }
    coextra_object *co = coextra_new_code(mi, 0, 0);
    if (co == NULL) {
        report_error("coextra_new_code");
        return -1;
    }
    /* Measured after every consumer stored a value, which is when the
       stock design allocates; the flag-gated design allocated at
       construction and must not grow here (R-FLAG-6). */
    for (int k = 0; k < consumers; k++) {
        if (coextra_set_extra(mi, co, k, (void *)(uintptr_t)1) < 0) {
            report_error("coextra_set_extra");
            return -1;
        }
    }
    *extra_bytes = (long)coextra_extra_bytes(co);
    *size = (long)coextra_sizeof_code(co);
    coextra_drop(co);
    if (coextra_end_interpreter(mi) < 0) {
        report_error("coextra_end_interpreter");
        return -1;
    }
    return 0;
}
