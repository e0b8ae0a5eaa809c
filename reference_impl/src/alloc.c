/*
 * alloc.c -- the reference's allocator: calloc with a count of live
 * blocks and failure injection (coextra_fail_allocations), so that the
 * suite can make any allocation fail (R-ALLOC-*) and check for leaks.
 */
#include "internal.h"

#include <stdlib.h>

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

void *
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

void
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
