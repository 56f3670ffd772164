/* backend_local.c — placeholder until the local-engine backend lands (its
 * own branch implements prove/backend.h's lm_backend_local_create). */
#include <stddef.h>

#include "prove/backend.h"

lm_backend *lm_backend_local_create(const lm_local_opts *o, lm_error *err) {
    (void)o;
    lm_fail(err, "the local-engine backend (--model) is not built yet");
    return NULL;
}
