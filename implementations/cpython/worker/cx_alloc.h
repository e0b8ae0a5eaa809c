/*
 * cx_alloc.h -- allocation failure on request: CPython's "mem" and "object"
 * allocators wrapped so that the suite can make the n-th allocation fail.
 *
 * Part of the _coextra_cpython extension: _coextra_cpython.c includes
 * it (one translation unit, so that every helper stays static).
 */
#ifndef CX_ALLOC_H
#define CX_ALLOC_H

/* -- allocation failure ------------------------------------------------- */

/* fail_allocations(after, count) is served by wrapping CPython's "mem"
   and "object" allocator domains.  Failures are armed only while an API
   call (or a construction the suite asked for) runs, so the worker's own
   bookkeeping between calls neither consumes nor suffers them. */
static PyMemAllocatorEx cx_orig_mem, cx_orig_obj;
static long cx_fail_after, cx_fail_count;
static int cx_armed;

static int
cx_should_fail(void)
{
    if (!cx_armed) {
        return 0;
    }
    if (cx_fail_after > 0) {
        cx_fail_after--;
        return 0;
    }
    if (cx_fail_count > 0) {
        cx_fail_count--;
        return 1;
    }
    return 0;
}

static void *
cx_malloc(void *ctx, size_t size)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    return cx_should_fail() ? NULL : orig->malloc(orig->ctx, size);
}

static void *
cx_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    return cx_should_fail() ? NULL : orig->calloc(orig->ctx, nelem, elsize);
}

static void *
cx_realloc(void *ctx, void *ptr, size_t size)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    return cx_should_fail() ? NULL : orig->realloc(orig->ctx, ptr, size);
}

static void
cx_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    orig->free(orig->ctx, ptr);
}

static void
cx_install_allocators(void)
{
    PyMemAllocatorEx mem = {&cx_orig_mem, cx_malloc, cx_calloc, cx_realloc,
                            cx_free};
    PyMemAllocatorEx obj = {&cx_orig_obj, cx_malloc, cx_calloc, cx_realloc,
                            cx_free};

    /* The wrappers hand every call to the allocator they replace, so
       blocks allocated before and after installation mix freely. */
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &cx_orig_mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cx_orig_obj);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
}

#define CX_ARM() (cx_armed = 1)
#define CX_DISARM() (cx_armed = 0)

static PyObject *
cx_fail_allocations(PyObject *Py_UNUSED(self), PyObject *args)
{
    long after, count;

    if (!PyArg_ParseTuple(args, "ll", &after, &count)) {
        return NULL;
    }
    cx_fail_after = after;
    cx_fail_count = count;
    Py_RETURN_NONE;
}

#endif /* CX_ALLOC_H */
