/*
 * table.c -- exports the reference implementation through the suite's
 * C ABI (conformance/abi/coextra_abi.h): one table of function pointers
 * returned by coextra_get_table().
 */
#include "coextra.h"
#include "coextra_abi.h"

/* The reference and the ABI must agree on the flag bit and on the
   capacities the suite relies on. */
_Static_assert(COEXTRA_CO_INLINE_EXTRA == 0x20000000,
               "CO_INLINE_EXTRA differs from the PEP");
_Static_assert(COEXTRA_MAX_INDICES >= 255,
               "fewer indices than PyUnstable_CODE_EXTRA_MIN_INDICES");
_Static_assert(COEXTRA_MAX_HOOKS >= 8,
               "fewer hooks than PyUnstable_CODE_MIN_CONSTRUCTOR_HOOKS");

#ifndef COEXTRA_REFERENCE_VERSION
#define COEXTRA_REFERENCE_VERSION "1.0.0"
#endif

static const coextra_table table = {
    .abi_version = COEXTRA_ABI_VERSION,
    .size = sizeof(coextra_table),
    .name = "reference",
    .version = COEXTRA_REFERENCE_VERSION,
    /* The reference implements the whole PEP. */
    .capabilities =
        (COEXTRA_CAP_RELEASE | COEXTRA_CAP_INLINE_FLAG |
         COEXTRA_CAP_STORAGE_SIZE | COEXTRA_CAP_SIZEOF | COEXTRA_CAP_HOOKS |
         COEXTRA_CAP_INTERPRETERS | COEXTRA_CAP_FINALIZE |
         COEXTRA_CAP_THREADS | COEXTRA_CAP_ALLOC_FAILURE | COEXTRA_CAP_COPY |
         COEXTRA_CAP_COMPARE_EXCHANGE | COEXTRA_CAP_OWN_GIL |
         COEXTRA_CAP_LIVE_BLOCKS | COEXTRA_CAP_EXIT_FINALIZATION),

    .new_interpreter = coextra_new_interpreter,
    .end_interpreter = coextra_end_interpreter,
    .new_code = coextra_new_code,
    .get_nested = coextra_get_nested,
    .copy_code = coextra_copy_code,
    .new_non_code = coextra_new_non_code,
    .drop = coextra_drop,
    .code_id = coextra_code_id,
    .co_flags = coextra_co_flags,

    .request_index = coextra_request_index,
    .release_index = coextra_release_index,
    .get_extra = coextra_get_extra,
    .set_extra = coextra_set_extra,
    .add_hook = coextra_add_hook,
    .remove_hook = coextra_remove_hook,
    .has_inline_extra = coextra_has_inline_extra,

    .extra_bytes = coextra_extra_bytes,
    .sizeof_code = coextra_sizeof_code,
    .fail_allocations = coextra_fail_allocations,
    .take_error = coextra_take_error,
    .set_error = coextra_set_error,
    .take_unraisable = coextra_take_unraisable,

    /* ABI minor 1 */
    .compare_exchange_extra = coextra_compare_exchange_extra,

    /* ABI minor 2 */
    .live_blocks = coextra_live_blocks,
};

const coextra_table *
coextra_get_table(void)
{
    return &table;
}
