/* recipe.c — recipe parsing and validation, canonical JSON, the synth-text
 * generator; see recipe.h and docs/recipe.md. */
#include "recipe/recipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "data/shards.h"
#include "recipe/taskset.h"

const char *lm_builtin_name(int builtin) {
    return builtin == LM_BUILTIN_BIBLE_KJV    ? "bible-kjv"
           : builtin == LM_BUILTIN_SYNTH_TEXT ? "synth-text"
           : builtin == LM_BUILTIN_TASKS      ? "tasks"
                                              : "file";
}

/* ---- canonical JSON --------------------------------------------------------- */

static int canon(const json_value *v, lm_text *out) {
    char buf[64];
    switch (v->type) {
    case JSON_NULL: return lm_text_append(out, "null", 4);
    case JSON_TRUE: return lm_text_append(out, "true", 4);
    case JSON_FALSE: return lm_text_append(out, "false", 5);
    case JSON_NUMBER: {
        int n = v->is_int ? snprintf(buf, sizeof buf, "%lld", (long long)v->inum) : snprintf(buf, sizeof buf, "%.17g", v->num);
        return lm_text_append(out, buf, (size_t)n);
    }
    case JSON_STRING: {
        size_t cap = v->len * 6 + 3, pos = 0;
        char *s = malloc(cap);
        if (!s) return -1;
        json_write_string(s, cap, &pos, v->str, v->len);
        int rc = lm_text_append(out, s, pos);
        free(s);
        return rc;
    }
    case JSON_ARRAY:
    case JSON_OBJECT: {
        int obj = v->type == JSON_OBJECT;
        if (lm_text_append(out, obj ? "{" : "[", 1)) return -1;
        for (const json_value *c = v->child; c; c = c->next) {
            if (c != v->child && lm_text_append(out, ",", 1)) return -1;
            if (obj) {
                size_t cap = c->key_len * 6 + 3, pos = 0;
                char *s = malloc(cap);
                if (!s) return -1;
                json_write_string(s, cap, &pos, c->key, c->key_len);
                int rc = lm_text_append(out, s, pos) || lm_text_append(out, ":", 1);
                free(s);
                if (rc) return -1;
            }
            if (canon(c, out)) return -1;
        }
        return lm_text_append(out, obj ? "}" : "]", 1);
    }
    }
    return -1;
}

int lm_json_canonical(const json_value *v, lm_text *out) { return canon(v, out); }

/* ---- synth-text ---------------------------------------------------------------- */

static const char *const adjs[] = {"small", "old", "bright", "quiet", "green", "heavy", "quick", "calm",
                                   "dark", "warm", "tall", "gentle", "brave", "tired", "clever", "round"};
static const char *const nouns[] = {"fox", "river", "stone", "bird", "tree", "house", "king", "child",
                                    "ship", "road", "horse", "lamp", "field", "door", "cloud", "garden"};
static const char *const verbs[] = {"sees", "finds", "follows", "carries", "hears", "watches", "keeps", "meets"};
static const char *const names[] = {"Anna", "Boris", "Chen", "Dara", "Emil", "Fatima", "Goran", "Hana"};
static const char *const places[] = {"by the river", "in the garden", "on the hill", "at the gate",
                                     "near the sea", "under the bridge", "in the morning", "at night"};

int lm_synth_text(uint64_t seed, int64_t lines, lm_text *out) {
    char line[256];
    for (int64_t i = 0; i < lines; i++) {
#define R(k, n) ((int)(lm_rng_u64(seed, LM_RNG_DATA, ((uint64_t)i << 4) | (k)) % (n)))
        int n = 0;
        switch (R(0, 4)) {
        case 0:
            n = snprintf(line, sizeof line, "The %s %s %s the %s %s.\n", adjs[R(1, 16)], nouns[R(2, 16)], verbs[R(3, 8)],
                         adjs[R(4, 16)], nouns[R(5, 16)]);
            break;
        case 1:
            n = snprintf(line, sizeof line, "%s %s a %s %s %s.\n", names[R(1, 8)], verbs[R(2, 8)], adjs[R(3, 16)],
                         nouns[R(4, 16)], places[R(5, 8)]);
            break;
        case 2: {
            int a = R(1, 50), b = R(2, 50);
            n = snprintf(line, sizeof line, "%d plus %d is %d.\n", a, b, a + b);
            break;
        }
        default:
            n = snprintf(line, sizeof line, "%s and %s walk %s, and the %s %s is %s.\n", names[R(1, 8)], names[R(2, 8)],
                         places[R(3, 8)], nouns[R(4, 16)], places[R(5, 8)], adjs[R(6, 16)]);
            break;
        }
#undef R
        if (lm_text_append(out, line, (size_t)n)) return -1;
    }
    if (!out->data && lm_text_append(out, "", 0)) return -1;
    return 0;
}

/* ---- parsing ---------------------------------------------------------------------- */

static int valid_name(const char *s, size_t n) {
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

/* Every key of obj is in allowed (NULL-terminated). */
static int check_keys(const json_value *obj, const char *const *allowed, const char *file, const char *where,
                      lm_error *err) {
    for (const json_value *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = strlen(allowed[i]) == c->key_len && !memcmp(allowed[i], c->key, c->key_len);
        if (!ok) {
            char q[80];
            lm_text keys = {0};
            for (int i = 0; allowed[i]; i++) {
                if (i) lm_text_append(&keys, ", ", 2);
                lm_text_append(&keys, allowed[i], strlen(allowed[i]));
            }
            lm_fail(err, "%s: byte %zu: %s: unknown key %s (expected one of: %s)", file, c->offset, where,
                    json_quote(q, sizeof q, c->key, c->key_len), keys.data ? keys.data : "");
            lm_text_free(&keys);
            return -1;
        }
    }
    return 0;
}

static int get_int(const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *file,
                   const char *where, lm_error *err) {
    const json_value *v = json_get(obj, key);
    if (!v) return 0;
    if (!json_as_int(v, out) || *out < lo || *out > hi)
        return lm_fail(err, "%s: byte %zu: %s.%s: expected an integer in [%lld, %lld]", file, v->offset, where, key,
                       (long long)lo, (long long)hi);
    return 0;
}

static int get_num(const json_value *obj, const char *key, double lo, double hi, const char *file, const char *where,
                   lm_error *err) {
    const json_value *v = json_get(obj, key);
    double d;
    if (v && (!json_as_double(v, &d) || !(d >= lo && d <= hi)))
        return lm_fail(err, "%s: byte %zu: %s.%s: expected a number in [%g, %g]", file, v->offset, where, key, lo, hi);
    return 0;
}

static int get_bool(const json_value *obj, const char *key, const char *file, const char *where, lm_error *err) {
    const json_value *v = json_get(obj, key);
    int b;
    if (v && !json_as_bool(v, &b))
        return lm_fail(err, "%s: byte %zu: %s.%s: expected true or false", file, v->offset, where, key);
    return 0;
}

static int parse_input(lm_recipe *r, const json_value *v, lm_recipe_input *in, lm_error *err) {
    const char *f = r->path;
    char where[128];
    snprintf(where, sizeof where, "inputs.%s", in->name);
    if (v->type != JSON_OBJECT)
        return lm_fail(err, "%s: byte %zu: %s: expected an object with \"builtin\" or \"path\"", f, v->offset, where);
    const json_value *b = json_get(v, "builtin"), *p = json_get(v, "path"), *h = json_get(v, "sha256");
    if (!!b == !!p)
        return lm_fail(err, "%s: byte %zu: %s: expected exactly one of \"builtin\" and \"path\"", f, v->offset, where);
    if (h) {
        uint8_t d[32];
        if (h->type != JSON_STRING || lm_sha256_parse(h->str, d))
            return lm_fail(err, "%s: byte %zu: %s.sha256: expected 64 hex digits", f, h->offset, where);
        lm_sha256_hex(d, in->sha256);
    }
    if (p) {
        static const char *const keys[] = {"path", "sha256", "description", NULL};
        if (check_keys(v, keys, f, where, err)) return -1;
        if (p->type != JSON_STRING || !p->len || strlen(p->str) != p->len)
            return lm_fail(err, "%s: byte %zu: %s.path: expected a file path", f, p->offset, where);
        in->path = p->str;
        size_t n = strlen(r->dir) + p->len + 2;
        in->resolved = malloc(n);
        if (!in->resolved) return lm_fail(err, "out of memory");
        if (p->str[0] == '/' || !strcmp(r->dir, ".")) snprintf(in->resolved, n, "%s", p->str);
        else snprintf(in->resolved, n, "%s/%s", r->dir, p->str);
        return 0;
    }
    if (b->type != JSON_STRING) return lm_fail(err, "%s: byte %zu: %s.builtin: expected a string", f, b->offset, where);
    if (!strcmp(b->str, "bible-kjv")) {
        static const char *const keys[] = {"builtin", "sha256", "description", NULL};
        if (check_keys(v, keys, f, where, err)) return -1;
        in->builtin = LM_BUILTIN_BIBLE_KJV;
    } else if (!strcmp(b->str, "synth-text")) {
        static const char *const keys[] = {"builtin", "sha256", "seed", "lines", "description", NULL};
        if (check_keys(v, keys, f, where, err)) return -1;
        in->builtin = LM_BUILTIN_SYNTH_TEXT;
        int64_t seed = 0, lines = 1000;
        if (get_int(v, "seed", 0, INT64_MAX, &seed, f, where, err)) return -1;
        if (get_int(v, "lines", 1, 100000000, &lines, f, where, err)) return -1;
        in->seed = (uint64_t)seed;
        in->lines = lines;
    } else if (!strcmp(b->str, "tasks")) {
        in->builtin = LM_BUILTIN_TASKS;
        in->exclude = -1;
        lm_taskset_opts o;
        const char *ex, *tp;
        if (lm_taskset_opts_from_json(v, f, in->name, &o, &ex, &tp, err)) return -1;
        if (ex) {
            for (int i = 0; i < r->n_inputs && in->exclude < 0; i++)
                if (&r->inputs[i] != in && !strcmp(r->inputs[i].name, ex) && r->inputs[i].builtin == LM_BUILTIN_TASKS)
                    in->exclude = i;
            if (in->exclude < 0 || &r->inputs[in->exclude] > in)
                return lm_fail(err, "%s: byte %zu: %s.exclude: \"%s\" is not an earlier tasks input", f,
                               json_get(v, "exclude")->offset, where, ex);
        }
        if (tp) {
            size_t n = strlen(r->dir) + strlen(tp) + 2;
            if (!(in->resolved = malloc(n))) return lm_fail(err, "out of memory");
            if (tp[0] == '/' || !strcmp(r->dir, ".")) snprintf(in->resolved, n, "%s", tp);
            else snprintf(in->resolved, n, "%s/%s", r->dir, tp);
        }
    } else {
        char q[80];
        return lm_fail(err, "%s: byte %zu: %s.builtin: unknown built-in %s (expected \"bible-kjv\", \"synth-text\" or \"tasks\")", f,
                       b->offset, where, json_quote(q, sizeof q, b->str, b->len));
    }
    return 0;
}

/* The stages whose model a post-training stage (verifier_rl, grpo, rft) can start from. */
static int is_post_trainable(int kind_id) {
    return kind_id == LM_STAGE_PRETRAIN || kind_id == LM_STAGE_SFT || kind_id == LM_STAGE_VERIFIER_RL ||
           kind_id == LM_STAGE_GRPO || kind_id == LM_STAGE_RFT;
}

static int parse_stage(lm_recipe *r, int si, const json_value *v, lm_error *err) {
    const char *f = r->path;
    lm_recipe_stage *st = &r->stages[si];
    char where[128];
    snprintf(where, sizeof where, "stages[%d]", si);
    if (v->type != JSON_OBJECT) return lm_fail(err, "%s: byte %zu: %s: expected an object", f, v->offset, where);
    const json_value *n = json_get(v, "name"), *k = json_get(v, "kind"), *in = json_get(v, "inputs");
    if (!n || n->type != JSON_STRING || !valid_name(n->str, n->len))
        return lm_fail(err, "%s: byte %zu: %s.name: expected a name of 1-64 characters a-z 0-9 _ -", f,
                       n ? n->offset : v->offset, where);
    st->name = n->str;
    snprintf(where, sizeof where, "stages[%d] (%s)", si, st->name);
    if (!strcmp(st->name, "inputs"))
        return lm_fail(err, "%s: byte %zu: %s.name: \"inputs\" is reserved (the build directory's inputs/)", f, n->offset,
                       where);
    for (int i = 0; i < si; i++)
        if (!strcmp(r->stages[i].name, st->name))
            return lm_fail(err, "%s: byte %zu: %s.name: a stage of that name comes earlier", f, n->offset, where);
    for (int i = 0; i < r->n_inputs; i++)
        if (!strcmp(r->inputs[i].name, st->name))
            return lm_fail(err, "%s: byte %zu: %s.name: an input has the same name", f, n->offset, where);
    st->def = v;
    if (!k || k->type != JSON_STRING) return lm_fail(err, "%s: byte %zu: %s.kind: expected a string", f, v->offset, where);
    st->kind = k->str;
    if (!strcmp(k->str, "tokenizer")) st->kind_id = LM_STAGE_TOKENIZER;
    else if (!strcmp(k->str, "data")) st->kind_id = LM_STAGE_DATA;
    else if (!strcmp(k->str, "pretrain")) st->kind_id = LM_STAGE_PRETRAIN;
    else if (!strcmp(k->str, "sft")) st->kind_id = LM_STAGE_SFT;
    else if (!strcmp(k->str, "verifier_rl")) st->kind_id = LM_STAGE_VERIFIER_RL;
    else if (!strcmp(k->str, "distill")) st->kind_id = LM_STAGE_DISTILL;
    else if (!strcmp(k->str, "grpo")) st->kind_id = LM_STAGE_GRPO;
    else if (!strcmp(k->str, "rft")) st->kind_id = LM_STAGE_RFT;
    else if (!strcmp(k->str, "verifier") || !strcmp(k->str, "rl"))
        return lm_fail(err, "%s: byte %zu: %s.kind: \"%s\" stages are planned but not implemented yet", f, k->offset,
                       where, k->str);
    else {
        char q[80];
        return lm_fail(err, "%s: byte %zu: %s.kind: unknown kind %s (expected tokenizer, data, pretrain, sft, verifier_rl, distill, grpo or rft)", f,
                       k->offset, where, json_quote(q, sizeof q, k->str, k->len));
    }
    if (!in || in->type != JSON_ARRAY || !in->len || in->len > 1024)
        return lm_fail(err, "%s: byte %zu: %s.inputs: expected a non-empty array of input or stage names", f,
                       in ? in->offset : v->offset, where);
    st->inputs = calloc(in->len, sizeof *st->inputs);
    st->input_ref = calloc(in->len, sizeof *st->input_ref);
    if (!st->inputs || !st->input_ref) return lm_fail(err, "out of memory");
    int ntext = 0, ntok = 0, ndata = 0, nmodel = 0;
    for (const json_value *e = in->child; e; e = e->next) {
        if (e->type != JSON_STRING)
            return lm_fail(err, "%s: byte %zu: %s.inputs: expected names (strings)", f, e->offset, where);
        int ref = 0, found = 0;
        for (int i = 0; i < r->n_inputs && !found; i++)
            if (!strcmp(r->inputs[i].name, e->str)) ref = i, found = 1;
        for (int i = 0; i < si && !found; i++)
            if (!strcmp(r->stages[i].name, e->str)) ref = -i - 1, found = 1;
        if (!found) {
            char q[80];
            int later = 0;
            for (int i = si; i < r->n_stages && !later; i++) {
                const json_value *sv = json_at(json_get(json_root(r->doc), "stages"), (size_t)i);
                const json_value *sn = sv ? json_get(sv, "name") : NULL;
                later = sn && sn->type == JSON_STRING && !strcmp(sn->str, e->str);
            }
            return lm_fail(err, "%s: byte %zu: %s.inputs: %s is %s", f, e->offset, where,
                           json_quote(q, sizeof q, e->str, e->len),
                           later ? "a stage that comes later (stages run in order)" : "not an input or an earlier stage");
        }
        for (int i = 0; i < st->n_inputs; i++)
            if (!strcmp(st->inputs[i], e->str))
                return lm_fail(err, "%s: byte %zu: %s.inputs: \"%s\" is listed twice", f, e->offset, where, e->str);
        st->inputs[st->n_inputs] = e->str;
        st->input_ref[st->n_inputs++] = ref;
        if (ref >= 0) ntext++;
        else if (r->stages[-ref - 1].kind_id == LM_STAGE_TOKENIZER) ntok++;
        else if (r->stages[-ref - 1].kind_id == LM_STAGE_DATA) ndata++;
        else if (st->kind_id == LM_STAGE_SFT &&
                 (r->stages[-ref - 1].kind_id == LM_STAGE_PRETRAIN || r->stages[-ref - 1].kind_id == LM_STAGE_SFT))
            nmodel++;
        else if ((st->kind_id == LM_STAGE_VERIFIER_RL || st->kind_id == LM_STAGE_GRPO || st->kind_id == LM_STAGE_RFT) &&
                 is_post_trainable(r->stages[-ref - 1].kind_id))
            nmodel++; /* post-training stages chain in any order, as the paper alternates them */
        else if (st->kind_id == LM_STAGE_DISTILL && r->stages[-ref - 1].kind_id >= LM_STAGE_PRETRAIN)
            nmodel++; /* the teacher, and maybe the student's start (stage_distill.c) */
        else
            return lm_fail(err, "%s: byte %zu: %s.inputs: \"%s\" is a %s stage, which a %s stage cannot take", f,
                           e->offset, where, e->str, r->stages[-ref - 1].kind, st->kind);
    }
    switch (st->kind_id) {
    case LM_STAGE_TOKENIZER: {
        static const char *const keys[] = {"name", "kind", "inputs", "description", "vocab_size", "min_frequency",
                                           "max_bytes", "digit_group", NULL};
        if (check_keys(v, keys, f, where, err)) return -1;
        if (ntok || ndata || !ntext)
            return lm_fail(err, "%s: byte %zu: %s.inputs: a tokenizer stage takes text inputs only", f, in->offset, where);
        int64_t x;
        if (!json_get(v, "vocab_size"))
            return lm_fail(err, "%s: byte %zu: %s: missing \"vocab_size\"", f, v->offset, where);
        if (get_int(v, "vocab_size", 263, 1 << 24, &x, f, where, err)) return -1;
        if (get_int(v, "min_frequency", 1, INT64_MAX, &x, f, where, err)) return -1;
        if (get_int(v, "max_bytes", 0, INT64_MAX, &x, f, where, err)) return -1;
        if (get_int(v, "digit_group", 1, 3, &x, f, where, err)) return -1;
        break;
    }
    case LM_STAGE_DATA: {
        static const char *const keys[] = {"name", "kind", "inputs", "description", "doc_sep", "val_fraction",
                                           "seed", "shard_tokens", "bos", "windows", NULL};
        if (check_keys(v, keys, f, where, err)) return -1;
        if (ndata || ntok != 1 || !ntext)
            return lm_fail(err, "%s: byte %zu: %s.inputs: a data stage takes text inputs and one tokenizer stage", f,
                           in->offset, where);
        int64_t x;
        const json_value *ds = json_get(v, "doc_sep");
        if (ds && (ds->type != JSON_STRING || lm_data_doc_sep_parse(ds->str) < 0))
            return lm_fail(err, "%s: byte %zu: %s.doc_sep: expected \"file\", \"line\" or \"blank\"", f, ds->offset, where);
        if (get_num(v, "val_fraction", 0, 0.5, f, where, err)) return -1;
        if (get_int(v, "seed", 0, INT64_MAX, &x, f, where, err)) return -1;
        if (get_int(v, "shard_tokens", 1, (int64_t)1 << 32, &x, f, where, err)) return -1;
        if (get_bool(v, "bos", f, where, err)) return -1;
        break;
    }
    case LM_STAGE_PRETRAIN:
        if (ndata != 1 || ntok > 1 || ntext)
            return lm_fail(err, "%s: byte %zu: %s.inputs: a pretrain stage takes one data stage and at most one tokenizer stage",
                           f, in->offset, where);
        break;
    case LM_STAGE_SFT:
        if (ndata != 1 || ntok > 1 || ntext || nmodel != 1)
            return lm_fail(err, "%s: byte %zu: %s.inputs: an sft stage takes one data stage, one pretrain or sft stage "
                                "(the model it starts from) and at most one tokenizer stage",
                           f, in->offset, where);
        if (json_get(v, "config"))
            return lm_fail(err, "%s: byte %zu: %s.config: an sft stage takes its config from the model it starts from",
                           f, json_get(v, "config")->offset, where);
        break;
    case LM_STAGE_VERIFIER_RL:
        /* its parameters are checked by the stage (stage_verifier_rl.c) */
        if (nmodel != 1 || ndata || ntok)
            return lm_fail(err, "%s: byte %zu: %s.inputs: a verifier_rl stage takes one model to train (a pretrain, "
                                "sft, verifier_rl, grpo or rft stage) and optionally problem sets whose questions it never "
                                "trains on (e.g. the held-out set)",
                           f, in->offset, where);
        break;
    case LM_STAGE_GRPO:
        /* its parameters are checked by the stage (stage_grpo.c) */
        if (nmodel != 1 || ndata || ntok)
            return lm_fail(err, "%s: byte %zu: %s.inputs: a grpo stage takes one model to train, also its verifier "
                                "(a pretrain, sft, verifier_rl, grpo or rft stage) and optionally problem sets whose "
                                "questions it never trains on (e.g. the held-out set)",
                           f, in->offset, where);
        break;
    case LM_STAGE_RFT:
        /* its parameters are checked by the stage (stage_rft.c) */
        if (nmodel != 1 || ndata || ntok)
            return lm_fail(err, "%s: byte %zu: %s.inputs: an rft stage takes one model to train (a pretrain, sft, "
                                "verifier_rl, grpo or rft stage) and optionally problem sets whose questions it "
                                "never trains on (e.g. the held-out set)",
                           f, in->offset, where);
        break;
    case LM_STAGE_DISTILL:
        /* its parameters are checked by the stage (stage_distill.c) */
        if (ndata != 1 || ntok > 1 || ntext || nmodel < 1 || nmodel > 2)
            return lm_fail(err, "%s: byte %zu: %s.inputs: a distill stage takes one data stage, the teacher (a model "
                                "stage), optionally a second model stage the student starts from, and at most one "
                                "tokenizer stage",
                           f, in->offset, where);
        break;
    }
    return 0;
}

lm_recipe *lm_recipe_parse(const char *text, size_t len, const char *path, lm_error *err) {
    lm_recipe *r = calloc(1, sizeof *r);
    if (!r) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    r->text = malloc(len + 1);
    r->path = strdup(path);
    if (!r->text || !r->path) goto oom;
    memcpy(r->text, text, len);
    r->text[len] = 0;
    r->len = len;
    const char *slash = strrchr(path, '/');
    r->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!r->dir) goto oom;
    uint8_t d[32];
    lm_sha256_buf(text, len, d);
    lm_sha256_hex(d, r->sha256);
    r->doc = json_parse(text, len, err);
    if (!r->doc) {
        lm_fail_prefix(err, "%s", path);
        goto fail;
    }
    const json_value *root = json_root(r->doc);
    if (root->type != JSON_OBJECT) {
        lm_fail(err, "%s: expected a JSON object", path);
        goto fail;
    }
    static const char *const keys[] = {"lemma_recipe", "name", "description", "inputs", "stages", NULL};
    if (check_keys(root, keys, path, "recipe", err)) goto fail;
    int64_t ver = 0;
    const json_value *v = json_get(root, "lemma_recipe");
    if (!v || !json_as_int(v, &ver) || ver != LM_RECIPE_VERSION) {
        lm_fail(err, "%s: byte %zu: \"lemma_recipe\": expected %d (the recipe format version)", path, v ? v->offset : 0,
                LM_RECIPE_VERSION);
        goto fail;
    }
    v = json_get(root, "name");
    if (v) {
        if (v->type != JSON_STRING || !valid_name(v->str, v->len)) {
            lm_fail(err, "%s: byte %zu: \"name\": expected a name of 1-64 characters a-z 0-9 _ -", path, v->offset);
            goto fail;
        }
        r->name = v->str;
    } else {
        const char *b = slash ? slash + 1 : path;
        size_t n = strlen(b);
        if (n > 5 && !strcmp(b + n - 5, ".json")) n -= 5;
        r->name_buf = strndup(b, n);
        if (!r->name_buf) goto oom;
        r->name = r->name_buf;
    }
    const json_value *ins = json_get(root, "inputs"), *sts = json_get(root, "stages");
    if (!ins || ins->type != JSON_OBJECT) {
        lm_fail(err, "%s: byte %zu: \"inputs\": expected an object of named inputs", path, ins ? ins->offset : 0);
        goto fail;
    }
    if (!sts || sts->type != JSON_ARRAY || !sts->len) {
        lm_fail(err, "%s: byte %zu: \"stages\": expected a non-empty array", path, sts ? sts->offset : 0);
        goto fail;
    }
    if (ins->len > 4096 || sts->len > 4096) {
        lm_fail(err, "%s: too many inputs or stages (4096 at most)", path);
        goto fail;
    }
    r->inputs = calloc(ins->len ? ins->len : 1, sizeof *r->inputs);
    r->stages = calloc(sts->len, sizeof *r->stages);
    if (!r->inputs || !r->stages) goto oom;
    for (const json_value *e = ins->child; e; e = e->next) {
        lm_recipe_input *in = &r->inputs[r->n_inputs];
        if (!valid_name(e->key, e->key_len)) {
            char q[80];
            lm_fail(err, "%s: byte %zu: inputs: %s: expected a name of 1-64 characters a-z 0-9 _ -", path, e->offset,
                    json_quote(q, sizeof q, e->key, e->key_len));
            goto fail;
        }
        in->name = e->key;
        for (int i = 0; i < r->n_inputs; i++)
            if (!strcmp(r->inputs[i].name, in->name)) {
                lm_fail(err, "%s: byte %zu: inputs: \"%s\" is given twice", path, e->offset, in->name);
                goto fail;
            }
        in->def = e;
        r->n_inputs++;
        if (parse_input(r, e, in, err)) goto fail;
    }
    r->n_stages = (int)sts->len;
    int si = 0;
    for (const json_value *e = sts->child; e; e = e->next, si++)
        if (parse_stage(r, si, e, err)) goto fail;
    return r;
oom:
    lm_fail(err, "out of memory");
fail:
    lm_recipe_free(r);
    return NULL;
}

lm_recipe *lm_recipe_load(const char *path, lm_error *err) {
    char *text = NULL;
    size_t len = 0;
    if (lm_read_file(path, (size_t)16 << 20, &text, &len, err)) return NULL;
    lm_recipe *r = lm_recipe_parse(text, len, path, err);
    free(text);
    return r;
}

void lm_recipe_free(lm_recipe *r) {
    if (!r) return;
    for (int i = 0; i < r->n_inputs; i++) free(r->inputs[i].resolved);
    if (r->stages)
        for (int i = 0; i < r->n_stages; i++) {
            free(r->stages[i].inputs);
            free(r->stages[i].input_ref);
        }
    free(r->inputs);
    free(r->stages);
    json_free(r->doc);
    free(r->text);
    free(r->path);
    free(r->dir);
    free(r->name_buf);
    free(r);
}

int lm_recipe_stage_index(const lm_recipe *r, const char *name) {
    for (int i = 0; i < r->n_stages; i++)
        if (!strcmp(r->stages[i].name, name)) return i;
    return -1;
}
