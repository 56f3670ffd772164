/* read.c — the trainer's side of token shards: lm_data_open checks
 * index.json and every shard it lists, then training and evaluation windows
 * are drawn from the mappings (rules in shards.h, "Windows"). */
#include "data/shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "data/shards_internal.h"
#include "formats/json.h"

int lm_shard_check(const void *bytes, size_t len, const char *name, lm_shard_info *info, lm_error *err) {
    const uint8_t *p = bytes;
    if (len < LM_SHARD_HEADER)
        return lm_fail(err, "%s: %zu bytes, shorter than the %d-byte shard header", name, len, LM_SHARD_HEADER);
    if (memcmp(p, LM_SHARD_MAGIC, 8)) return lm_fail(err, "%s: byte 0: not a token shard (magic is not \"LMTOKENS\")", name);
    uint32_t ver = lm_get_u32(p + 8);
    if (ver != LM_SHARD_VERSION) return lm_fail(err, "%s: byte 8: shard version %u, expected %d", name, ver, LM_SHARD_VERSION);
    info->flags = lm_get_u32(p + 12);
    if (info->flags & ~(uint32_t)LM_SHARD_MASKED)
        return lm_fail(err, "%s: byte 12: unknown flags 0x%x", name, info->flags);
    info->n = lm_get_u64(p + 16);
    info->vocab_size = lm_get_u32(p + 24);
    info->documents = lm_get_u32(p + 28);
    memcpy(info->tokenizer_sha256, p + 32, 32);
    uint64_t per = (info->flags & LM_SHARD_MASKED) ? 5 : 4;
    if (info->n > (UINT64_MAX - LM_SHARD_HEADER) / 5 || LM_SHARD_HEADER + info->n * per != (uint64_t)len)
        return lm_fail(err, "%s: size %zu bytes, but the header's %llu tokens%s need %llu (truncated or corrupt)", name,
                       len, (unsigned long long)info->n, per == 5 ? " with loss mask" : "",
                       info->n > (UINT64_MAX - LM_SHARD_HEADER) / 5 ? 0ull
                                                                      : (unsigned long long)(LM_SHARD_HEADER + info->n * per));
    if (info->vocab_size == 0) return lm_fail(err, "%s: byte 24: vocab size 0", name);
    return 0;
}

typedef struct shard {
    char *path;
    const uint8_t *map;
    size_t len;
    const uint8_t *ids;       /* n little-endian u32 */
    const uint8_t *loss;      /* NULL or n bytes */
    int64_t n;
    int64_t docs;
    int64_t *doc_at;          /* document windows: the positions of the BOS tokens, ascending */
    int64_t ndoc_at;
} shard;

struct lm_data {
    shard *sh[2];
    int nsh[2];
    int64_t tokens[2], docs[2];
    int32_t vocab, bos, eos;
    char tok_hex[65];
    int doc_windows;          /* training windows start at a document's BOS ("windows": "document") */
};

/* The BOS positions of a shard, for document windows. */
static int index_documents(shard *sh, int32_t bos, lm_error *err) {
    int64_t n = 0;
    for (int64_t t = 0; t < sh->n; t++) n += lm_get_u32(sh->ids + 4 * t) == (uint32_t)bos;
    if (!(sh->doc_at = malloc((size_t)(n ? n : 1) * sizeof *sh->doc_at))) return lm_fail(err, "out of memory");
    for (int64_t t = 0; t < sh->n; t++)
        if (lm_get_u32(sh->ids + 4 * t) == (uint32_t)bos) sh->doc_at[sh->ndoc_at++] = t;
    return 0;
}

/* Documents of a shard that start a full window of T (+1) tokens. */
static int64_t doc_starts(const shard *sh, int64_t T) {
    int64_t lo = 0, hi = sh->ndoc_at; /* first index with doc_at + T >= n */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sh->doc_at[mid] + T < sh->n) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int json_int_field(const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                          const char *path, lm_error *err) {
    const json_value *v = json_get(obj, key);
    if (!v) return lm_fail(err, "%s: missing \"%s\"", path, key);
    if (!json_as_int(v, out) || *out < lo || *out > hi)
        return lm_fail(err, "%s: byte %zu: \"%s\": expected an integer in [%lld, %lld]", path, v->offset, key,
                       (long long)lo, (long long)hi);
    return 0;
}

lm_data *lm_data_open(const char *dir, lm_error *err) {
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/index.json", dir);
    char *text = NULL;
    size_t tlen = 0;
    if (lm_read_file(ipath, (size_t)64 << 20, &text, &tlen, err)) return NULL;
    json_doc *doc = json_parse(text, tlen, err);
    free(text);
    if (!doc) {
        lm_fail_prefix(err, "%s", ipath);
        return NULL;
    }
    lm_data *d = calloc(1, sizeof *d);
    if (!d) {
        json_free(doc);
        lm_fail(err, "out of memory");
        return NULL;
    }
    const json_value *root = json_root(doc), *v;
    int64_t x;
    v = json_get(root, "format");
    if (!v || v->type != JSON_STRING || strcmp(v->str, "lemma-tokens")) {
        lm_fail(err, "%s: \"format\": expected \"lemma-tokens\"", ipath);
        goto fail;
    }
    if (json_int_field(root, "version", LM_SHARD_VERSION, LM_SHARD_VERSION, &x, ipath, err)) goto fail;
    if (json_int_field(root, "vocab_size", 1, INT32_MAX, &x, ipath, err)) goto fail;
    d->vocab = (int32_t)x;
    if (json_int_field(root, "eos_id", -1, INT32_MAX, &x, ipath, err)) goto fail;
    d->eos = (int32_t)x;
    if (json_int_field(root, "bos_id", -1, INT32_MAX, &x, ipath, err)) goto fail;
    d->bos = (int32_t)x;
    if ((v = json_get(root, "windows"))) {
        if (v->type != JSON_STRING || (strcmp(v->str, "document") && strcmp(v->str, "any"))) {
            lm_fail(err, "%s: byte %zu: \"windows\": expected \"document\" or \"any\"", ipath, v->offset);
            goto fail;
        }
        d->doc_windows = !strcmp(v->str, "document");
        if (d->doc_windows && d->bos < 0) {
            lm_fail(err, "%s: \"windows\": \"document\" needs a BOS token before every document (bos_id is -1)", ipath);
            goto fail;
        }
    }
    v = json_get(root, "tokenizer_sha256");
    uint8_t th[32];
    if (!v || v->type != JSON_STRING || lm_sha256_parse(v->str, th)) {
        lm_fail(err, "%s: \"tokenizer_sha256\": expected 64 hex digits", ipath);
        goto fail;
    }
    lm_sha256_hex(th, d->tok_hex);
    const json_value *splits = json_get(root, "splits");
    if (!splits || splits->type != JSON_OBJECT) {
        lm_fail(err, "%s: \"splits\": expected an object", ipath);
        goto fail;
    }
    for (int s = 0; s < 2; s++) {
        const json_value *sp = json_get(splits, lm_split_name(s));
        if (!sp) {
            lm_fail(err, "%s: \"splits\": missing \"%s\"", ipath, lm_split_name(s));
            goto fail;
        }
        const json_value *arr = json_get(sp, "shards");
        if (!arr || arr->type != JSON_ARRAY) {
            lm_fail(err, "%s: \"splits.%s.shards\": expected an array", ipath, lm_split_name(s));
            goto fail;
        }
        if (arr->len > 1000000) {
            lm_fail(err, "%s: \"splits.%s.shards\": too many shards", ipath, lm_split_name(s));
            goto fail;
        }
        d->sh[s] = calloc(arr->len ? arr->len : 1, sizeof(shard));
        if (!d->sh[s]) {
            lm_fail(err, "out of memory");
            goto fail;
        }
        for (const json_value *e = arr->child; e; e = e->next) {
            shard *sh = &d->sh[s][d->nsh[s]++];
            const json_value *f = json_get(e, "file");
            if (!f || f->type != JSON_STRING || !f->len || memchr(f->str, '/', f->len) || f->str[0] == '.' ||
                strlen(f->str) != f->len) {
                lm_fail(err, "%s: byte %zu: shard \"file\": expected a file name in the directory", ipath, e->offset);
                goto fail;
            }
            int64_t tokens;
            if (json_int_field(e, "tokens", 0, INT64_MAX / 8, &tokens, ipath, err)) goto fail;
            size_t pl = strlen(dir) + f->len + 2;
            sh->path = malloc(pl);
            if (!sh->path) {
                lm_fail(err, "out of memory");
                goto fail;
            }
            snprintf(sh->path, pl, "%s/%s", dir, f->str);
            lm_mapped m;
            if (lm_map_file(sh->path, &m, err)) goto fail;
            sh->map = (const uint8_t *)m.p;
            sh->len = m.len;
            lm_shard_info info;
            if (lm_shard_check(sh->map, sh->len, sh->path, &info, err)) goto fail;
            if ((int64_t)info.n != tokens) {
                lm_fail(err, "%s: %llu tokens, but %s says %lld", sh->path, (unsigned long long)info.n, ipath,
                        (long long)tokens);
                goto fail;
            }
            if (memcmp(info.tokenizer_sha256, th, 32)) {
                lm_fail(err, "%s: byte 32: tokenizer hash differs from %s's tokenizer_sha256", sh->path, ipath);
                goto fail;
            }
            if ((int32_t)info.vocab_size != d->vocab) {
                lm_fail(err, "%s: byte 24: vocab size %u, but %s says %d", sh->path, info.vocab_size, ipath, d->vocab);
                goto fail;
            }
            sh->n = (int64_t)info.n;
            sh->docs = info.documents;
            sh->ids = sh->map + LM_SHARD_HEADER;
            sh->loss = (info.flags & LM_SHARD_MASKED) ? sh->ids + 4 * info.n : NULL;
            if (d->doc_windows && index_documents(sh, d->bos, err)) goto fail;
            d->tokens[s] += sh->n;
            d->docs[s] += sh->docs;
        }
    }
    json_free(doc);
    return d;
fail:
    json_free(doc);
    lm_data_close(d);
    return NULL;
}

void lm_data_close(lm_data *d) {
    if (!d) return;
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < d->nsh[s]; i++) {
            if (d->sh[s][i].len) munmap((void *)d->sh[s][i].map, d->sh[s][i].len);
            free(d->sh[s][i].path);
            free(d->sh[s][i].doc_at);
        }
        free(d->sh[s]);
    }
    free(d);
}

static int split_ok(int split) { return split == LM_SPLIT_TRAIN || split == LM_SPLIT_VAL; }

int64_t lm_data_tokens(const lm_data *d, int split) { return split_ok(split) ? d->tokens[split] : 0; }
int64_t lm_data_documents(const lm_data *d, int split) { return split_ok(split) ? d->docs[split] : 0; }
int lm_data_shard_count(const lm_data *d, int split) { return split_ok(split) ? d->nsh[split] : 0; }
int32_t lm_data_vocab_size(const lm_data *d) { return d->vocab; }
int32_t lm_data_eos(const lm_data *d) { return d->eos; }
int32_t lm_data_bos(const lm_data *d) { return d->bos; }
const char *lm_data_tokenizer_sha256(const lm_data *d) { return d->tok_hex; }

int64_t lm_data_starts(const lm_data *d, int split, int64_t T) {
    if (!split_ok(split) || T < 1) return 0;
    int64_t S = 0;
    for (int i = 0; i < d->nsh[split]; i++)
        if (d->doc_windows) S += doc_starts(&d->sh[split][i], T);
        else if (d->sh[split][i].n > T) S += d->sh[split][i].n - T;
    return S;
}

static uint64_t row_key(uint64_t seed, int split, int64_t step, int64_t row) {
    uint64_t k = lm_rng_u64(seed, LM_RNG_DATA, (uint64_t)step);
    k = lm_rng_u64(k, (uint64_t)split, 0);
    return lm_rng_u64(k, LM_RNG_DATA, (uint64_t)row);
}

int64_t lm_data_window_start(const lm_data *d, int split, uint64_t seed, int64_t step, int64_t row, int64_t T) {
    int64_t S = lm_data_starts(d, split, T);
    if (S <= 0) return -1;
    uint64_t x = row_key(seed, split, step, row);
    return (int64_t)(((unsigned __int128)x * (uint64_t)S) >> 64);
}

/* Copies the window at shard sh, start s into one row. */
static int fill_row(const lm_data *d, const shard *sh, int64_t s, int64_t T, int32_t *ids, int32_t *targets,
                    lm_error *err) {
    const uint8_t *p = sh->ids + 4 * s;
    for (int64_t t = 0; t <= T; t++) {
        uint32_t id = lm_get_u32(p + 4 * t);
        if (id >= (uint32_t)d->vocab)
            return lm_fail(err, "%s: byte %lld: token id %u >= vocab size %d", sh->path,
                           (long long)(LM_SHARD_HEADER + 4 * (s + t)), id, d->vocab);
        if (t < T) ids[t] = (int32_t)id;
        if (t > 0) targets[t - 1] = (sh->loss && !sh->loss[s + t]) ? -1 : (int32_t)id;
    }
    return 0;
}

/* Finds the shard holding the k-th start (in the split's order of starts). */
static const shard *locate(const lm_data *d, int split, int64_t T, int64_t k, int64_t *s) {
    for (int i = 0; i < d->nsh[split]; i++) {
        const shard *sh = &d->sh[split][i];
        int64_t here = d->doc_windows ? doc_starts(sh, T) : sh->n > T ? sh->n - T : 0;
        if (k < here) {
            *s = d->doc_windows ? sh->doc_at[k] : k;
            return sh;
        }
        k -= here;
    }
    return NULL;
}

static int check_shape(const lm_data *d, int split, int64_t B, int64_t T, lm_error *err) {
    if (!split_ok(split)) return lm_fail(err, "bad split %d", split);
    if (B < 1 || T < 1 || T > ((int64_t)1 << 40) || B > ((int64_t)1 << 40) / T)
        return lm_fail(err, "bad window shape B=%lld, T=%lld", (long long)B, (long long)T);
    if (lm_data_starts(d, split, T) <= 0)
        return lm_fail(err, "%s split: no shard holds more than %lld tokens (%lld tokens in %d shards)",
                       lm_split_name(split), (long long)T, (long long)d->tokens[split], d->nsh[split]);
    return 0;
}

int lm_data_window(const lm_data *d, int split, uint64_t seed, int64_t step, int64_t micro, int64_t B, int64_t T,
                   int32_t *ids, int32_t *targets, lm_error *err) {
    if (check_shape(d, split, B, T, err)) return -1;
    if (step < 0 || micro < 0) return lm_fail(err, "bad step %lld or micro-batch %lld", (long long)step, (long long)micro);
    for (int64_t b = 0; b < B; b++) {
        int64_t k = lm_data_window_start(d, split, seed, step, micro * B + b, T), s = 0;
        const shard *sh = locate(d, split, T, k, &s);
        if (fill_row(d, sh, s, T, ids + b * T, targets + b * T, err)) return -1;
    }
    return 0;
}

int64_t lm_data_eval_count(const lm_data *d, int split, int64_t T) {
    if (!split_ok(split) || T < 1) return 0;
    int64_t c = 0;
    for (int i = 0; i < d->nsh[split]; i++)
        if (d->sh[split][i].n > T) c += (d->sh[split][i].n - 1) / T;
    return c;
}

int lm_data_eval_window(const lm_data *d, int split, int64_t first, int64_t B, int64_t T, int32_t *ids,
                        int32_t *targets, lm_error *err) {
    if (check_shape(d, split, B, T, err)) return -1;
    int64_t count = lm_data_eval_count(d, split, T);
    if (first < 0 || first > count - B)
        return lm_fail(err, "%s split: eval rows %lld..%lld, but there are %lld windows of %lld tokens",
                       lm_split_name(split), (long long)first, (long long)(first + B - 1), (long long)count, (long long)T);
    int i = 0;
    int64_t k = first;
    for (int64_t b = 0; b < B; b++, k++) {
        for (;;) {
            const shard *sh = &d->sh[split][i];
            int64_t w = sh->n > T ? (sh->n - 1) / T : 0;
            if (k < w) break;
            k -= w;
            i++;
        }
        if (fill_row(d, &d->sh[split][i], k * T, T, ids + b * T, targets + b * T, err)) return -1;
    }
    return 0;
}
