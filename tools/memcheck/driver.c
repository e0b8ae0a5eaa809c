/*
 * driver.c -- replay operation sequences against the reference
 * implementation, linked directly, for valgrind memcheck and ASan.
 *
 * Values stored under indices with a "heap" or "reenter" free function
 * are real malloc'd blocks and the free function really frees them, so
 * the memory checker itself verifies exactly-once freeing: a second free
 * is an invalid free, a value never freed is a definite leak.  On top of
 * that the driver counts outstanding values and the library's live heap
 * blocks, and fails if either is non-zero after the final cleanup.
 *
 * Usage: driver FILE...     (see README.md for the sequence format)
 */
/* strtok_r is POSIX; -std=c11 hides it otherwise. */
#define _POSIX_C_SOURCE 200809L

#include "coextra.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVARS 64
#define MAX_TOKENS 8

enum { KIND_NONE, KIND_HEAP, KIND_REENTER };
enum { HOOK_RECORD, HOOK_FAIL, HOOK_SET, HOOK_NEWCODE };

typedef struct {
    int live;
    int interp; /* interpreter variable */
    intptr_t index;
    int kind;
} index_var;

typedef struct {
    int live;
    int interp;
    int id;
    int action;
    int index; /* index variable, for HOOK_SET */
} hook_var;

static coextra_interp *interps[NVARS];
static coextra_object *objs[NVARS];
static index_var indices[NVARS];
static hook_var hooks[NVARS];

static const char *cur_file = "";
static char cur_text[160]; /* the operation being run, for errors */
static int cur_line;
static long outstanding;     /* atomic: heap values not yet freed */
static long hook_calls;      /* atomic */
static long small_value = 1; /* atomic */

/* Re-entrancy target of the "reenter" free function. */
static coextra_interp *target_interp;
static coextra_object *target_code;
static int target_index = -1;

static _Thread_local int in_newcode_hook;
static _Thread_local int in_reenter_free;

static void
die(const char *msg)
{
    fprintf(stderr, "%s:%d: %s (operation: %s)\n", cur_file, cur_line, msg,
            cur_text);
    exit(2);
}

/* -- values ---------------------------------------------------------- */

static void *
heap_value(void)
{
    void *p = malloc(16);

    if (p == NULL) {
        die("out of memory in the driver");
    }
    __atomic_add_fetch(&outstanding, 1, __ATOMIC_RELAXED);
    return p;
}

static void *
int_value(void)
{
    /* Odd small integers: opaque words that are never pointers. */
    long n = __atomic_fetch_add(&small_value, 2, __ATOMIC_RELAXED);
    return (void *)(uintptr_t)n;
}

static void
heap_free(void *value)
{
    __atomic_sub_fetch(&outstanding, 1, __ATOMIC_RELAXED);
    free(value);
}

/* Frees, then uses the API from inside a free function. */
static void
reenter_free(void *value)
{
    char exc[COEXTRA_ERROR_SIZE];
    coextra_interp *interp = target_interp;
    coextra_object *code = target_code;
    void *got;

    heap_free(value);
    /* A hook may store a reenter value in the code object built here,
       whose destruction would come back: re-enter one level only. */
    if (interp == NULL || code == NULL || in_reenter_free) {
        return;
    }
    in_reenter_free = 1;
    if (target_index >= 0 && indices[target_index].live &&
        interps[indices[target_index].interp] == interp) {
        index_var *x = &indices[target_index];
        if (coextra_get_extra(interp, code, x->index, &got) < 0) {
            coextra_take_error(exc, sizeof(exc));
        }
        if (x->kind == KIND_NONE &&
            coextra_set_extra(interp, code, x->index, int_value()) < 0) {
            coextra_take_error(exc, sizeof(exc));
        }
    }
    code = coextra_new_code(interp, 1, 0);
    if (code == NULL) {
        coextra_take_error(exc, sizeof(exc));
    }
    coextra_drop(code);
    in_reenter_free = 0;
}

static coextra_freefunc
free_of_kind(int kind)
{
    switch (kind) {
    case KIND_HEAP:
        return heap_free;
    case KIND_REENTER:
        return reenter_free;
    default:
        return NULL;
    }
}

static void *
value_for(const index_var *x)
{
    return x->kind == KIND_NONE ? int_value() : heap_value();
}

/* The caller still owns a value that was not stored. */
static void
discard_value(const index_var *x, void *value)
{
    if (value != NULL && x->kind != KIND_NONE) {
        heap_free(value);
    }
}

/* -- hooks ------------------------------------------------------------ */

static int
driver_hook(coextra_object *code, void *arg)
{
    hook_var *h = arg;
    coextra_object *made;

    __atomic_add_fetch(&hook_calls, 1, __ATOMIC_RELAXED);
    switch (h->action) {
    case HOOK_FAIL:
        coextra_set_error("RuntimeError");
        return -1;
    case HOOK_SET:
        if (indices[h->index].live && indices[h->index].interp == h->interp) {
            index_var *x = &indices[h->index];
            void *value = value_for(x);
            if (coextra_set_extra(interps[h->interp], code, x->index, value) <
                0) {
                /* The error stays pending: reported as unraisable. */
                discard_value(x, value);
                return -1;
            }
        }
        return 0;
    case HOOK_NEWCODE:
        if (in_newcode_hook) {
            return 0;
        }
        in_newcode_hook = 1;
        made = coextra_new_code(interps[h->interp], 0, 0);
        in_newcode_hook = 0;
        if (made == NULL) {
            return -1;
        }
        coextra_drop(made);
        return 0;
    default:
        return 0;
    }
}

/* -- parsing ------------------------------------------------------------ */

/* Parse "<prefix><n>" into a variable number; -1 if malformed. */
static int
var(const char *tok, char prefix)
{
    char *end;
    long n;

    if (tok == NULL || tok[0] != prefix) {
        return -1;
    }
    n = strtol(tok + 1, &end, 10);
    if (*end != '\0' || n < 0 || n >= NVARS) {
        return -1;
    }
    return (int)n;
}

static long
number(const char *tok)
{
    char *end;
    long n;

    if (tok == NULL) {
        die("missing number");
    }
    n = strtol(tok, &end, 0);
    if (*end != '\0') {
        die("malformed number");
    }
    return n;
}

/* Result of one operation, checked against an optional "!Class". */
typedef struct {
    int done; /* 0: skipped (a variable was empty) */
    int failed;
    char exc[COEXTRA_ERROR_SIZE];
} outcome;

static void
finish(outcome *out, int failed)
{
    out->done = 1;
    out->failed = failed;
    out->exc[0] = '\0';
    if (coextra_take_error(out->exc, sizeof(out->exc)) && !failed) {
        die("an operation succeeded but left an error pending");
    }
    if (failed && out->exc[0] == '\0') {
        die("an operation failed without setting an error");
    }
}

/* -- threads ------------------------------------------------------------- */

typedef struct {
    coextra_interp *interp;
    coextra_object *shared;
    index_var *x;
    long rounds;
} thread_job;

static void *
thread_main(void *arg)
{
    thread_job *job = arg;
    char exc[COEXTRA_ERROR_SIZE];
    coextra_object *own = coextra_new_code(job->interp, 0, 0);
    long i;

    for (i = 0; i < job->rounds; i++) {
        void *value = value_for(job->x);
        void *got;
        if (coextra_set_extra(job->interp, job->shared, job->x->index, value) <
            0) {
            coextra_take_error(exc, sizeof(exc));
            discard_value(job->x, value);
        }
        if (own != NULL) {
            value = value_for(job->x);
            if (coextra_set_extra(job->interp, own, job->x->index, value) <
                0) {
                coextra_take_error(exc, sizeof(exc));
                discard_value(job->x, value);
            } else if (coextra_get_extra(job->interp, own, job->x->index,
                                         &got) < 0 ||
                       got != value) {
                fprintf(stderr, "thread read back a different value\n");
                abort();
            }
        }
    }
    if (own == NULL) {
        coextra_take_error(exc, sizeof(exc));
    }
    coextra_drop(own);
    return NULL;
}

static void
run_threads(int n, long rounds, int c, int x)
{
    pthread_t tids[16];
    thread_job job;
    int i;

    if (n > 16) {
        die("at most 16 threads");
    }
    job.interp = interps[indices[x].interp];
    job.shared = objs[c];
    job.x = &indices[x];
    job.rounds = rounds;
    for (i = 0; i < n; i++) {
        if (pthread_create(&tids[i], NULL, thread_main, &job) != 0) {
            die("pthread_create failed");
        }
    }
    for (i = 0; i < n; i++) {
        pthread_join(tids[i], NULL);
    }
}

/* -- operations ------------------------------------------------------- */

static void exec_line(char *line);

static void
end_interp(int i)
{
    int k;

    if (coextra_end_interpreter(interps[i]) < 0) {
        die("end_interpreter failed");
    }
    if (target_interp == interps[i]) {
        /* Forget the target before dropping it: its destruction may run
           the reenter free function. */
        coextra_object *code = target_code;
        target_code = NULL;
        target_interp = NULL;
        coextra_drop(code);
    }
    interps[i] = NULL;
    for (k = 0; k < NVARS; k++) {
        if (indices[k].interp == i) {
            indices[k].live = 0;
        }
        if (hooks[k].interp == i) {
            hooks[k].live = 0;
        }
    }
}

static void
put_obj(int c, coextra_object *obj)
{
    coextra_drop(objs[c]);
    objs[c] = obj;
}

static uint64_t rng_state;

static uint64_t
rng(void)
{
    /* xorshift64*: fixed seeds make random sequences reproducible. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static int
pick(int n)
{
    return (int)(rng() % (uint64_t)n);
}

static void
run_random(unsigned long seed, long steps)
{
    static const char *kinds[] = {"heap", "none", "reenter"};
    static const char *actions[] = {"record", "fail", "set", "newcode"};
    static const char *copies[] = {"replace", "marshal"};
    static const char *values[] = {"new", "new", "new", "null", "same"};
    char line[128];
    long s;
    int i;

    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "interp I%d", i);
        exec_line(line);
    }
    for (s = 0; s < steps; s++) {
        int r = pick(100);
        int I = pick(3), C = pick(10), C2 = pick(10), X = pick(6);
        if (r < 30) {
            snprintf(line, sizeof(line), "set C%d X%d %s", C, X,
                     values[pick(5)]);
        } else if (r < 40) {
            snprintf(line, sizeof(line), "get C%d X%d", C, X);
        } else if (r < 50) {
            snprintf(line, sizeof(line), "code C%d I%d %d", C, I, pick(3));
        } else if (r < 55) {
            snprintf(line, sizeof(line), "copy C%d I%d C%d %s", C, I, C2,
                     copies[pick(2)]);
        } else if (r < 57) {
            snprintf(line, sizeof(line), "nested C%d C%d %d", C, C2, pick(2));
        } else if (r < 59) {
            snprintf(line, sizeof(line), "noncode C%d I%d", C, I);
        } else if (r < 67) {
            snprintf(line, sizeof(line), "drop C%d", C);
        } else if (r < 74) {
            snprintf(line, sizeof(line), "request X%d I%d %s", X, I,
                     kinds[pick(3)]);
        } else if (r < 78) {
            snprintf(line, sizeof(line), "release X%d", X);
        } else if (r < 83) {
            snprintf(line, sizeof(line), "hook H%d I%d %s X%d", pick(4), I,
                     actions[pick(4)], X);
        } else if (r < 86) {
            snprintf(line, sizeof(line), "unhook H%d", pick(4));
        } else if (r < 91) {
            snprintf(line, sizeof(line), "fail %d %d", pick(4), 1 + pick(2));
        } else if (r < 93) {
            snprintf(line, sizeof(line), "target I%d C%d X%d", I, C, X);
        } else if (r < 95) {
            snprintf(line, sizeof(line), "inline C%d", C);
        } else if (r < 97) {
            snprintf(line, sizeof(line), "bytes C%d", C);
        } else if (r < 98) {
            snprintf(line, sizeof(line), "unraisable");
        } else {
            /* Finalize an interpreter and start a fresh one in its
               variable: values in shared code objects must go. */
            snprintf(line, sizeof(line), "end I%d", I);
            exec_line(line);
            snprintf(line, sizeof(line), "interp I%d", I);
        }
        exec_line(line);
    }
    coextra_fail_allocations(0, 0);
}

/* -- the operations, one function each ------------------------------ */

/* Each operation reads its operands from tok[1..] (NULL past the last)
   and, when it ran, records its result in *out for the "!Class"
   check.  One whose variable is empty is skipped and leaves *out
   untouched.  Malformed operands stop the run with the operation's
   usage line. */
typedef void (*op_fn)(char **tok, outcome *out);

typedef struct {
    const char *name;
    const char *usage;
    op_fn run;
} operation;

static const operation *cur_op;

/* A variable operand "<prefix><n>", or the usage line and exit. */
static int
need_var(const char *tok, char prefix)
{
    int v = var(tok, prefix);

    if (v < 0) {
        die(cur_op->usage);
    }
    return v;
}

static void
op_interp(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I');

    if (interps[i] != NULL) {
        end_interp(i);
    }
    interps[i] = coextra_new_interpreter();
    finish(out, interps[i] == NULL);
}

static void
op_end(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I');

    if (interps[i] != NULL) {
        end_interp(i);
        finish(out, 0);
    }
}

static void
op_code(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C'), i = need_var(tok[2], 'I');

    if (interps[i] != NULL) {
        int nested = tok[3] != NULL ? (int)number(tok[3]) : 0;
        uint32_t flags = tok[4] != NULL ? (uint32_t)number(tok[4]) : 0;
        coextra_object *obj = coextra_new_code(interps[i], nested, flags);
        finish(out, obj == NULL);
        put_obj(c, obj);
    }
}

static void
op_noncode(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C'), i = need_var(tok[2], 'I');

    if (interps[i] != NULL) {
        coextra_object *obj = coextra_new_non_code(interps[i]);
        finish(out, obj == NULL);
        put_obj(c, obj);
    }
}

static bool
is_code_var(int c)
{
    return objs[c] != NULL && objs[c]->ob_kind == COEXTRA_KIND_CODE;
}

static void
op_copy(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C'), i = need_var(tok[2], 'I');
    int src = need_var(tok[3], 'C');

    if (tok[4] == NULL) {
        die(cur_op->usage);
    }
    if (interps[i] != NULL && is_code_var(src)) {
        int how = strcmp(tok[4], "marshal") == 0;
        coextra_object *obj = coextra_copy_code(interps[i], objs[src], how);
        finish(out, obj == NULL);
        put_obj(c, obj);
    }
}

static void
op_nested(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C'), src = need_var(tok[2], 'C');

    if (is_code_var(src)) {
        coextra_object *obj =
            coextra_get_nested(objs[src], (int)number(tok[3]));
        if (obj != NULL) {
            finish(out, 0);
            put_obj(c, obj);
        }
    }
}

static void
op_drop(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C');

    if (objs[c] != NULL) {
        put_obj(c, NULL);
        finish(out, 0);
    }
}

static void
op_request(char **tok, outcome *out)
{
    int x = need_var(tok[1], 'X'), i = need_var(tok[2], 'I');
    int kind;
    intptr_t index;

    if (tok[3] == NULL) {
        die(cur_op->usage);
    }
    kind = strcmp(tok[3], "heap") == 0      ? KIND_HEAP
           : strcmp(tok[3], "reenter") == 0 ? KIND_REENTER
                                            : KIND_NONE;
    if (interps[i] != NULL) {
        index = coextra_request_index(interps[i], free_of_kind(kind));
        finish(out, index < 0);
        if (index >= 0) {
            indices[x].live = 1;
            indices[x].interp = i;
            indices[x].index = index;
            indices[x].kind = kind;
        }
    }
}

static void
op_release(char **tok, outcome *out)
{
    int x = need_var(tok[1], 'X');

    if (indices[x].live) {
        int rc = coextra_release_index(interps[indices[x].interp],
                                       indices[x].index);
        finish(out, rc < 0);
        indices[x].live = 0;
    }
}

static void
op_get(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C'), x = need_var(tok[2], 'X');
    coextra_interp *interp;
    void *value = NULL;
    void *fast = (void *)1;
    int rc;

    if (objs[c] == NULL || !indices[x].live) {
        return;
    }
    interp = interps[indices[x].interp];
    rc = coextra_get_extra(interp, objs[c], indices[x].index, &value);
    finish(out, rc < 0);
    if (rc < 0) {
        return;
    }
    if (tok[3] != NULL && (strcmp(tok[3], "null") == 0) != (value == NULL)) {
        die("get read an unexpected value");
    }
    /* The header's inline fast path must agree. */
    rc = coextra_get_extra_fast(interp, objs[c], indices[x].index, &fast);
    if (rc != 0 || fast != value) {
        die("coextra_get_extra_fast disagrees");
    }
}

static void
op_set(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C'), x = need_var(tok[2], 'X');
    const char *what = tok[3] != NULL ? tok[3] : "new";
    int fresh = strcmp(what, "new") == 0;
    index_var *ix = &indices[x];
    coextra_interp *interp;
    void *value = NULL;
    int rc;

    if (objs[c] == NULL || !ix->live) {
        return;
    }
    interp = interps[ix->interp];
    if (fresh) {
        value = value_for(ix);
    } else if (strcmp(what, "same") == 0) {
        /* Re-store what is there: must not be freed. */
        if (coextra_get_extra(interp, objs[c], ix->index, &value) < 0) {
            coextra_take_error(NULL, 0);
            value = NULL;
        }
    }
    rc = coextra_set_extra(interp, objs[c], ix->index, value);
    finish(out, rc < 0);
    if (rc < 0 && fresh) {
        discard_value(ix, value);
    }
}

/* getraw, setraw, releaseraw: invalid uses, with arbitrary index
   numbers and any object. */
static void
op_getraw(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I'), c = need_var(tok[2], 'C');
    void *value = (void *)1;
    int rc;

    if (interps[i] != NULL && objs[c] != NULL) {
        rc = coextra_get_extra(interps[i], objs[c], number(tok[3]), &value);
        if (rc < 0 && value != NULL) {
            die("failed get left *extra set");
        }
        finish(out, rc < 0);
    }
}

static void
op_setraw(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I'), c = need_var(tok[2], 'C');

    if (interps[i] != NULL && objs[c] != NULL) {
        int rc = coextra_set_extra(interps[i], objs[c], number(tok[3]),
                                   int_value());
        finish(out, rc < 0);
    }
}

static void
op_releaseraw(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I');

    if (interps[i] != NULL) {
        int rc = coextra_release_index(interps[i], number(tok[2]));
        finish(out, rc < 0);
    }
}

static void
op_hook(char **tok, outcome *out)
{
    int hv = need_var(tok[1], 'H'), i = need_var(tok[2], 'I');
    int x = tok[4] != NULL ? need_var(tok[4], 'X') : 0;
    hook_var *h = &hooks[hv];
    int id;

    if (tok[3] == NULL) {
        die(cur_op->usage);
    }
    if (interps[i] == NULL || h->live) {
        return;
    }
    h->interp = i;
    h->index = x;
    h->action = strcmp(tok[3], "fail") == 0      ? HOOK_FAIL
                : strcmp(tok[3], "set") == 0     ? HOOK_SET
                : strcmp(tok[3], "newcode") == 0 ? HOOK_NEWCODE
                                                 : HOOK_RECORD;
    id = coextra_add_hook(interps[i], driver_hook, h);
    finish(out, id < 0);
    if (id >= 0) {
        h->id = id;
        h->live = 1;
    }
}

static void
op_unhook(char **tok, outcome *out)
{
    int hv = need_var(tok[1], 'H');

    if (hooks[hv].live) {
        int rc = coextra_remove_hook(interps[hooks[hv].interp], hooks[hv].id);
        finish(out, rc < 0);
        hooks[hv].live = 0;
    }
}

static void
op_unhookraw(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I');

    if (interps[i] != NULL) {
        int rc = coextra_remove_hook(interps[i], (int)number(tok[2]));
        finish(out, rc < 0);
    }
}

/* A number read from a code object, checked against tok[2] if given. */
static void
check_count(char **tok, intptr_t got, outcome *out)
{
    finish(out, got < 0);
    if (got >= 0 && tok[2] != NULL && got != number(tok[2])) {
        die("unexpected inline flag or extra byte count");
    }
}

static void
op_inline(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C');

    if (objs[c] != NULL) {
        check_count(tok, coextra_has_inline_extra(objs[c]), out);
    }
}

static void
op_bytes(char **tok, outcome *out)
{
    int c = need_var(tok[1], 'C');
    intptr_t got;

    if (objs[c] == NULL) {
        return;
    }
    got = coextra_extra_bytes(objs[c]);
    if (got >= 0 &&
        coextra_sizeof_code(objs[c]) != (intptr_t)sizeof(coextra_code) + got) {
        die("sizeof is not base size plus extra bytes");
    }
    check_count(tok, got, out);
}

static void
op_target(char **tok, outcome *out)
{
    int i = need_var(tok[1], 'I'), c = need_var(tok[2], 'C');
    int x = tok[3] != NULL ? var(tok[3], 'X') : -1;

    (void)out;
    if (interps[i] != NULL && objs[c] != NULL) {
        coextra_object *old = target_code;
        coextra_incref(objs[c]);
        target_code = objs[c];
        target_interp = interps[i];
        target_index = x;
        coextra_drop(old);
    }
}

/* fillindices, fillhooks: exhaust indices or hooks; with a count,
   exactly that many more must succeed before the failure. */
static void
fill(char **tok, outcome *out, bool hooks_not_indices)
{
    static hook_var record = {1, 0, 0, HOOK_RECORD, 0};
    int i = need_var(tok[1], 'I');
    long limit = hooks_not_indices ? COEXTRA_MAX_HOOKS : COEXTRA_MAX_INDICES;
    long count = 0;

    if (interps[i] == NULL) {
        return;
    }
    for (;;) {
        int rc = hooks_not_indices
                     ? coextra_add_hook(interps[i], driver_hook, &record)
                     : (int)coextra_request_index(interps[i], heap_free);
        if (rc < 0) {
            break;
        }
        count++;
    }
    finish(out, 1);
    if (strcmp(out->exc, "RuntimeError") == 0 && tok[2] != NULL &&
        (count != number(tok[2]) || count > limit)) {
        die("capacity differs from the expected count");
    }
}

static void
op_fillindices(char **tok, outcome *out)
{
    fill(tok, out, false);
}

static void
op_fillhooks(char **tok, outcome *out)
{
    fill(tok, out, true);
}

static void
op_fail(char **tok, outcome *out)
{
    (void)out;
    coextra_fail_allocations(number(tok[1]), number(tok[2]));
}

static void
op_unraisable(char **tok, outcome *out)
{
    long count = 0;

    (void)out;
    while (coextra_take_unraisable(NULL, 0)) {
        count++;
    }
    if (tok[1] != NULL && count != number(tok[1])) {
        die("unexpected number of unraisable reports");
    }
}

static void
op_hookcalls(char **tok, outcome *out)
{
    long count = __atomic_exchange_n(&hook_calls, 0, __ATOMIC_RELAXED);

    (void)out;
    if (count != number(tok[1])) {
        die("unexpected number of hook calls");
    }
}

static void
op_threads(char **tok, outcome *out)
{
    int c, x;

    (void)out;
    c = need_var(tok[3], 'C');
    x = need_var(tok[4], 'X');
    if (objs[c] != NULL && indices[x].live) {
        run_threads((int)number(tok[1]), number(tok[2]), c, x);
    }
}

static void
op_random(char **tok, outcome *out)
{
    (void)out;
    run_random((unsigned long)number(tok[1]), number(tok[2]));
}

/* The sequence language: README.md describes each operation. */
static const operation operations[] = {
    {"interp", "interp I<n>", op_interp},
    {"end", "end I<n>", op_end},
    {"code", "code C<n> I<n> [nested [flags]]", op_code},
    {"noncode", "noncode C<n> I<n>", op_noncode},
    {"copy", "copy C<n> I<n> C<m> replace|marshal", op_copy},
    {"nested", "nested C<n> C<m> k", op_nested},
    {"drop", "drop C<n>", op_drop},
    {"request", "request X<n> I<n> heap|none|reenter", op_request},
    {"release", "release X<n>", op_release},
    {"get", "get C<n> X<n> [null|nonnull]", op_get},
    {"set", "set C<n> X<n> [new|null|same]", op_set},
    {"getraw", "getraw I<n> C<n> N", op_getraw},
    {"setraw", "setraw I<n> C<n> N", op_setraw},
    {"releaseraw", "releaseraw I<n> N", op_releaseraw},
    {"hook", "hook H<n> I<n> record|fail|set|newcode [X<n>]", op_hook},
    {"unhook", "unhook H<n>", op_unhook},
    {"unhookraw", "unhookraw I<n> N", op_unhookraw},
    {"inline", "inline C<n> [0|1]", op_inline},
    {"bytes", "bytes C<n> [N]", op_bytes},
    {"target", "target I<n> C<n> [X<n>]", op_target},
    {"fillindices", "fillindices I<n> [N]", op_fillindices},
    {"fillhooks", "fillhooks I<n> [N]", op_fillhooks},
    {"fail", "fail AFTER COUNT", op_fail},
    {"unraisable", "unraisable [N]", op_unraisable},
    {"hookcalls", "hookcalls N", op_hookcalls},
    {"threads", "threads N ROUNDS C<n> X<n>", op_threads},
    {"random", "random SEED STEPS", op_random},
};

static const operation *
find_operation(const char *name)
{
    size_t k;

    for (k = 0; k < sizeof(operations) / sizeof(operations[0]); k++) {
        if (strcmp(operations[k].name, name) == 0) {
            return &operations[k];
        }
    }
    die("unknown operation");
    return NULL;
}

static void
exec_line(char *line)
{
    char *tok[MAX_TOKENS + 1] = {NULL};
    char *expect = NULL;
    int n = 0;
    char *save = NULL;
    char *t;
    const operation *op;
    outcome out = {0, 0, ""};

    snprintf(cur_text, sizeof(cur_text), "%s", line);
    cur_text[strcspn(cur_text, "\r\n")] = '\0';
    for (t = strtok_r(line, " \t\r\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (t[0] == '#') {
            break;
        }
        if (t[0] == '!') {
            expect = t + 1;
            continue;
        }
        if (n == MAX_TOKENS) {
            die("too many tokens");
        }
        tok[n++] = t;
    }
    if (n == 0) {
        return;
    }
    op = find_operation(tok[0]);
    cur_op = op;
    op->run(tok, &out);

    if (expect != NULL) {
        if (!out.done) {
            die("expectation on a skipped operation (empty variable)");
        }
        if (strcmp(expect, "ok") == 0
                ? out.failed
                : !out.failed || strcmp(expect, out.exc) != 0) {
            fprintf(stderr, "%s:%d: expected %s, got %s\n", cur_file, cur_line,
                    expect, out.failed ? out.exc : "ok");
            exit(2);
        }
    }
}

/* Drop everything, finalize every interpreter, check for leaks. */
static int
cleanup(void)
{
    int k;
    long left;
    intptr_t blocks;
    coextra_object *code;

    coextra_fail_allocations(0, 0);
    code = target_code;
    target_code = NULL;
    target_interp = NULL;
    coextra_drop(code);
    for (k = 0; k < NVARS; k++) {
        put_obj(k, NULL);
    }
    for (k = 0; k < NVARS; k++) {
        if (interps[k] != NULL) {
            end_interp(k);
        }
    }
    while (coextra_take_unraisable(NULL, 0)) {
    }
    memset(indices, 0, sizeof(indices));
    memset(hooks, 0, sizeof(hooks));
    left = __atomic_load_n(&outstanding, __ATOMIC_RELAXED);
    blocks = coextra_live_blocks();
    if (left != 0 || blocks != 0) {
        fprintf(stderr, "%s: %ld values never freed, %ld live blocks\n",
                cur_file, left, (long)blocks);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    char line[512];
    int i, status = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SEQUENCE...\n", argv[0]);
        return 2;
    }
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (f == NULL) {
            perror(argv[i]);
            return 2;
        }
        cur_file = argv[i];
        cur_line = 0;
        while (fgets(line, sizeof(line), f) != NULL) {
            cur_line++;
            exec_line(line);
        }
        fclose(f);
        cur_line = 0;
        status |= cleanup();
        printf("%s: ok\n", argv[i]);
    }
    return status;
}
