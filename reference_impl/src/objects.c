/*
 * objects.c -- the reference's object model, which the suite's C ABI
 * drives: reference counting and destruction, code objects built the
 * way a compiler builds them, and what sys.getsizeof() would report.
 * The PEP's behaviour they rely on (construction, freeing values at
 * destruction) lives in coextra.c.
 */
#include "internal.h"

static void
object_destroy(coextra_object *obj)
{
    if (obj->ob_kind == COEXTRA_KIND_CODE) {
        coextra_code *co = (coextra_code *)obj;
        intptr_t i;
        /* Values first, as CPython's code_dealloc does, so a free
           function still sees the constants alive. */
        clear_code_extras(obj); /* R-FREE-3 */
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
        consts[i] = construct_code(interp, 0, NULL, 0);
        if (consts[i] == NULL) {
            goto done;
        }
        made++;
    }
    code = construct_code(interp, flags, consts, nested);
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
    if (x != NULL) { /* R-FLAG-9: the inline block */
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
                total += ool_entry_bytes(e); /* R-FLAG-9: out of line */
            }
            unlock(&it->lock);
        }
        unlock(&global_lock);
    }
    return total;
}

/* R-FLAG-9 */
intptr_t
coextra_sizeof_code(coextra_object *code)
{
    intptr_t extra = coextra_extra_bytes(code);

    if (extra < 0) {
        return -1;
    }
    return (intptr_t)sizeof(coextra_code) + extra;
}
