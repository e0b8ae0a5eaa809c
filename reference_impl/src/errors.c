/*
 * errors.c -- the PEP's error convention on the reference's object
 * model: one pending exception class name per thread, and a queue of
 * unraisable reports (hook errors, errors left by free functions).
 */
#include "internal.h"

#include <string.h>

#define UNRAISABLE_SIZE 64

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

void
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
