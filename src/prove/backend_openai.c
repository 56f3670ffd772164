/* backend_openai.c — placeholder until the OpenAI-compatible backend lands
 * (its own branch implements prove/backend.h with libcurl). */
#include <string.h>

#include "prove/backend.h"

void lm_openai_opts_default(lm_openai_opts *o) {
    memset(o, 0, sizeof *o);
    o->api_key_env = "OPENAI_API_KEY";
    o->parallel = 8;
    o->timeout_s = 600;
    o->connect_timeout_s = 10;
    o->max_retries = 5;
    o->backoff_s = 1;
    o->max_reply_bytes = (int64_t)64 << 20;
}

lm_backend *lm_backend_openai_create(const lm_openai_opts *o, lm_error *err) {
    (void)o;
    lm_fail(err, "the OpenAI-compatible backend (--api-base) is not built yet");
    return NULL;
}
