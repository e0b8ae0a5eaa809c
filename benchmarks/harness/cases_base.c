/*
 * cases_base.c -- the physical floor and the side-table alternative.
 */
#include <stdlib.h>

#include "bench.h"
#include "chash.h"

/* Slots per raw object: room for the largest index the cases use. */
#define RAW_SLOTS 4
/* Keys in the side table besides the 64 that are looked up, so that the
   table has the size of one holding a module-sized program's code
   objects rather than a toy's (8192 slots, 128 KiB, within L2). */
#define CHASH_OTHER_KEYS 4032

static void **raw_slots[OBJ_COUNT];
static void *hash_keys[OBJ_COUNT];
static void *other_keys[CHASH_OTHER_KEYS];
static chash table;
static size_t base_index = 1;

int
base_setup(void)
{
    if (chash_init(&table, OBJ_COUNT + CHASH_OTHER_KEYS) < 0) {
        return -1;
    }
    for (size_t i = 0; i < OBJ_COUNT; i++) {
        raw_slots[i] = calloc(RAW_SLOTS, sizeof(void *));
        /* Keys are real heap blocks the size of a small code object,
           so their addresses are spread the way code objects are. */
        hash_keys[i] = malloc(160);
        if (raw_slots[i] == NULL || hash_keys[i] == NULL) {
            return -1;
        }
        raw_slots[i][base_index] = (void *)(uintptr_t)(i + 1);
    }
    for (size_t i = 0; i < CHASH_OTHER_KEYS; i++) {
        other_keys[i] = malloc(160);
        if (other_keys[i] == NULL) {
            return -1;
        }
    }
    /* Interleave the insertions so the looked-up keys are not all at
       the front of their probe sequences. */
    for (size_t i = 0; i < CHASH_OTHER_KEYS; i++) {
        chash_put(&table, other_keys[i], (void *)(uintptr_t)1);
        if (i % (CHASH_OTHER_KEYS / OBJ_COUNT) == 0) {
            size_t k = i / (CHASH_OTHER_KEYS / OBJ_COUNT);
            chash_put(&table, hash_keys[k], (void *)(uintptr_t)(k + 1));
        }
    }
    return 0;
}

void
base_teardown(void)
{
    for (size_t i = 0; i < OBJ_COUNT; i++) {
        free(raw_slots[i]);
        free(hash_keys[i]);
    }
    for (size_t i = 0; i < CHASH_OTHER_KEYS; i++) {
        free(other_keys[i]);
    }
    chash_fini(&table);
}

/* The floor: the consumer has the object and the value is one load
   away, at a known position.  Nothing is checked. */
static uintptr_t __attribute__((noinline))
case_raw_load(size_t n)
{
    uintptr_t acc = 0;
    size_t index = base_index;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        void **slots = raw_slots[i & OBJ_MASK];
        LAUNDER(slots);
        acc += (uintptr_t)slots[index];
    }
    return acc;
}

/* The seed's alternative: a lookup keyed by the code object address. */
static uintptr_t __attribute__((noinline))
case_c_hash_get(size_t n)
{
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        const void *key = hash_keys[i & OBJ_MASK];
        LAUNDER(key);
        acc += (uintptr_t)chash_get(&table, key);
    }
    return acc;
}

/* Latency variants (see bench.h): the value read names the next object
   (object i holds i + 1), so each load waits for the previous one. */
static uintptr_t __attribute__((noinline))
case_raw_load_chain(size_t n)
{
    size_t k = 0;
    size_t index = base_index;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        void **slots = raw_slots[k];
        LAUNDER(slots);
        k = (uintptr_t)slots[index] & OBJ_MASK;
    }
    return k;
}

static uintptr_t __attribute__((noinline))
case_c_hash_get_chain(size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const void *key = hash_keys[k];
        LAUNDER(key);
        k = (uintptr_t)chash_get(&table, key) & OBJ_MASK;
    }
    return k;
}

const bench_case base_cases[] = {
    {"raw_load", case_raw_load},
    {"c_hash_get", case_c_hash_get},
    {"raw_load_chain", case_raw_load_chain},
    {"c_hash_get_chain", case_c_hash_get_chain},
};
const size_t base_case_count = sizeof(base_cases) / sizeof(base_cases[0]);
