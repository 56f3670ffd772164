/* init.c — random checkpoints: the tensor plan of a config, the counter-based
 * normal draws, FP8 block quantisation and the directory writer. See init.h
 * for the contract (values, dtypes, determinism). */
#include "model/init.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/mathfn.h"
#include "core/rng.h"
#include "formats/json.h"
#include "formats/safetensors.h"

/* ---- dtype names ---- */

int lm_init_dtype_parse(const char *s, lm_init_dtype *out) {
    if (!s) return -1;
    if (!strcmp(s, "f32") || !strcmp(s, "F32")) *out = LM_INIT_F32;
    else if (!strcmp(s, "bf16") || !strcmp(s, "BF16")) *out = LM_INIT_BF16;
    else if (!strcmp(s, "fp8") || !strcmp(s, "FP8") || !strcmp(s, "f8_e4m3")) *out = LM_INIT_FP8;
    else return -1;
    return 0;
}

const char *lm_init_dtype_name(lm_init_dtype d) {
    return d == LM_INIT_BF16 ? "bf16" : d == LM_INIT_FP8 ? "fp8" : "f32";
}

/* ---- the plan ---- */

typedef struct planner {
    const lm_config *cfg;
    lm_init_dtype dtype;
    lm_init_tensor *t;
    int64_t n, cap;
    lm_error *err;
    int count_only;              /* size the plan without storing it (lm_init_plan_size) */
    int64_t stored;              /* tensors in the file (FP8 scales included) */
    double file_bytes, header_bytes;
} planner;

/* One tensor of the arch table, planned with its stored dtype (arch.h's
 * roles: LINEAR is FP8 in an FP8 checkpoint, MATRIX BF16, BIAS always F32). */
static int plan_item(void *ctx, const lm_arch_item *it) {
    planner *p = ctx;
    lm_arch_role role = it->t->role;
    int fp8 = p->dtype == LM_INIT_FP8 && role == LM_ROLE_LINEAR;
    lm_dtype dtype = role == LM_ROLE_BIAS || p->dtype == LM_INIT_F32 ? LM_DTYPE_F32
                     : fp8                                         ? LM_DTYPE_F8_E4M3
                                                                   : LM_DTYPE_BF16;
    if (p->count_only) {
        size_t len = strlen(it->name);
        p->n++;
        p->stored++;
        double numel = it->ndim == 2 ? (double)it->shape[0] * (double)it->shape[1] : (double)it->shape[0];
        p->file_bytes += numel * (double)lm_dtype_size(dtype) + 8;
        p->header_bytes += (double)len + 96; /* name, dtype, shape and offsets as written */
        if (fp8) {
            p->stored++;
            p->file_bytes += ceil((double)it->shape[0] / LM_FP8_BLOCK) * ceil((double)it->shape[1] / LM_FP8_BLOCK) * 4 + 8;
            p->header_bytes += (double)len + 11 + 96;
        }
        return 0;
    }
    if (p->n == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 64;
        lm_init_tensor *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) return lm_fail(p->err, "out of memory planning tensors");
        p->t = t;
        p->cap = cap;
    }
    lm_init_tensor *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", it->name);
    t->ndim = it->ndim;
    t->shape[0] = it->shape[0];
    t->shape[1] = it->shape[1];
    t->numel = it->numel;
    t->kind = lm_init_kind_of(role);
    t->dtype = dtype;
    t->fp8 = fp8;
    if (it->mtp && it->t->scope == LM_AT_MTP) {
        size_t n = strlen(it->t->pattern);
        if (n >= 20 && !strcmp(it->t->pattern + n - 20, ".embed_tokens.weight")) t->values_of = "model.embed_tokens.weight";
        if (n >= 24 && !strcmp(it->t->pattern + n - 24, ".shared_head.head.weight"))
            t->values_of = p->cfg->tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    }
    return 0;
}

static int plan_all(planner *p) { return lm_arch_each(p->cfg, LM_ARCH_WITH_MTP, plan_item, p) ? -1 : 0; }

lm_init_kind lm_init_kind_of(lm_arch_role role) {
    return role == LM_ROLE_NORM ? LM_INIT_ONES : role == LM_ROLE_BIAS ? LM_INIT_ZEROS : LM_INIT_NORMAL;
}

int lm_init_plan_size(const lm_config *c, lm_init_dtype dtype, lm_init_size *size) {
    planner p = {c, dtype, NULL, 0, 0, NULL, 1, 0, 0, 0};
    plan_all(&p);
    size->tensors = p.n;
    size->stored = p.stored;
    size->file_bytes = p.file_bytes + p.header_bytes + 8;
    size->header_bytes = p.header_bytes + 64;
    /* the file in one block, plus per planned tensor the plan entry, its
     * lm_tensor_out (and its scale's), the offsets and the header text */
    size->memory_bytes = size->file_bytes + (double)p.n * (sizeof(lm_init_tensor) + 2 * sizeof(lm_tensor_out) + 16) +
                         size->header_bytes;
    return 0;
}

int lm_init_plan(const lm_config *c, lm_init_dtype dtype, lm_init_tensor **out, int64_t *n, lm_error *err) {
    planner p = {c, dtype, NULL, 0, 0, err, 0, 0, 0, 0};
    if (plan_all(&p)) {
        free(p.t);
        return -1;
    }
    *out = p.t;
    *n = p.n;
    return 0;
}

/* ---- the draws ---- */

uint64_t lm_init_name_key(const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then mixed */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) h = (h ^ *s) * 0x100000001b3ull;
    return lm_mix64(h ^ ((uint64_t)LM_RNG_INIT << 56));
}

/* Box-Muller pair p: draws 2p and 2p+1 (cos and sin branch). */
static void normal_pair(uint64_t seed, uint64_t key, uint64_t p, double *z0, double *z1) {
    double u1 = 1.0 - lm_rng_uniform(seed, key, 2 * p); /* (0, 1] */
    double u2 = lm_rng_uniform(seed, key, 2 * p + 1);
    double r = sqrt(-2.0 * lm_log(u1)), a = 2.0 * M_PI * u2;
    *z0 = r * lm_cos(a);
    *z1 = r * lm_sin(a);
}

double lm_init_normal(uint64_t seed, uint64_t key, uint64_t i) {
    double z0, z1;
    normal_pair(seed, key, i >> 1, &z0, &z1);
    return (i & 1) ? z1 : z0;
}

void lm_init_fill(const char *name, lm_init_kind kind, uint64_t seed, double std, int64_t first, int64_t n,
                  float *dst) {
    if (kind != LM_INIT_NORMAL) {
        float v = kind == LM_INIT_ONES ? 1.0f : 0.0f;
        for (int64_t j = 0; j < n; j++) dst[j] = v;
        return;
    }
    uint64_t key = lm_init_name_key(name);
    int64_t i = first, end = first + n;
    if (i < end && (i & 1)) {
        dst[0] = (float)(std * lm_init_normal(seed, key, (uint64_t)i));
        i++;
    }
    for (; i + 1 < end; i += 2) {
        double z0, z1;
        normal_pair(seed, key, (uint64_t)i >> 1, &z0, &z1);
        dst[i - first] = (float)(std * z0);
        dst[i + 1 - first] = (float)(std * z1);
    }
    if (i < end) dst[i - first] = (float)(std * lm_init_normal(seed, key, (uint64_t)i));
}

/* ---- FP8 ---- */

void lm_init_quantize_fp8(const float *w, int64_t rows, int64_t cols, uint8_t *codes, float *scale_inv) {
    const int64_t B = LM_FP8_BLOCK, bc = (cols + B - 1) / B;
    for (int64_t r0 = 0; r0 < rows; r0 += B) {
        int64_t r1 = r0 + B < rows ? r0 + B : rows;
        for (int64_t c0 = 0; c0 < cols; c0 += B) {
            int64_t c1 = c0 + B < cols ? c0 + B : cols;
            float m = 0;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) {
                    float a = fabsf(w[r * cols + c]);
                    if (a > m) m = a;
                }
            float s = m > 0 ? (float)((double)m / 448.0) : 1.0f;
            scale_inv[(r0 / B) * bc + c0 / B] = s;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    codes[r * cols + c] = lm_f32_to_fp8e4m3((float)((double)w[r * cols + c] / (double)s));
        }
    }
}

/* ---- options and config text ---- */

lm_init_opts lm_init_opts_default(void) {
    lm_init_opts o = {0, LM_INIT_F32, 0};
    return o;
}

int lm_init_std(const lm_init_opts *o, const char *config_json, size_t len, double *std, lm_error *err) {
    if (o->std > 0) {
        *std = o->std;
        return 0;
    }
    *std = 0.02;
    json_doc *doc = json_parse(config_json, len, err);
    if (!doc) return lm_fail_prefix(err, "config.json");
    const json_value *v = json_get(json_root(doc), "initializer_range");
    int rc = 0;
    if (v && v->type != JSON_NULL) {
        double x;
        if (!json_as_double(v, &x) || !(x > 0 && x <= 100))
            rc = lm_fail(err, "config.json: field 'initializer_range' at byte %zu must be a number in (0, 100]",
                         v->offset);
        else
            *std = x;
    }
    json_free(doc);
    return rc;
}

static const char FP8_QCONFIG[] =
    "\"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\", "
    "\"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}";

int lm_init_config_text(const char *config_json, size_t len, lm_init_dtype dtype, char **out, size_t *out_len,
                        lm_error *err) {
    json_doc *doc = json_parse(config_json, len, err);
    if (!doc) return lm_fail_prefix(err, "config.json");
    const json_value *root = json_root(doc);
    if (root->type != JSON_OBJECT || root->len == 0) {
        json_free(doc);
        return lm_fail(err, "config.json: expected a non-empty JSON object at the top level");
    }
    const json_value *qc = json_get(root, "quantization_config");
    int has_qc = qc && qc->type != JSON_NULL;
    const json_value *qm = has_qc ? json_get(qc, "quant_method") : NULL;
    int is_fp8 = qm && qm->type == JSON_STRING && !strcmp(qm->str, "fp8");
    size_t root_at = root->offset;
    json_free(doc);
    if (has_qc && (dtype != LM_INIT_FP8 || !is_fp8))
        return lm_fail(err, "config.json: has a quantization_config%s, which contradicts --dtype %s (use --dtype fp8 "
                       "or remove the field)",
                       is_fp8 ? " (fp8)" : " that is not fp8", lm_init_dtype_name(dtype));
    int insert = dtype == LM_INIT_FP8 && !has_qc;
    size_t extra = insert ? strlen(FP8_QCONFIG) + 8 : 0;
    char *t = malloc(len + extra + 1);
    if (!t) return lm_fail(err, "out of memory");
    size_t n = 0;
    if (insert) {
        /* {"quantization_config": {...},<the original members>} */
        memcpy(t, config_json, root_at + 1);
        n = root_at + 1;
        n += (size_t)sprintf(t + n, "\n  %s,", FP8_QCONFIG);
        memcpy(t + n, config_json + root_at + 1, len - root_at - 1);
        n += len - root_at - 1;
    } else {
        memcpy(t, config_json, len);
        n = len;
    }
    t[n] = 0;
    *out = t;
    *out_len = n;
    return 0;
}

/* ---- the writer ---- */

typedef struct fill_job {
    const lm_init_tensor *t;
    uint64_t seed;
    double std;
    float *dst;
} fill_job;

static void fill_worker(void *ctx, int ith, int nth) {
    const fill_job *j = ctx;
    int64_t b, e;
    lm_split(j->t->numel, ith, nth, 4096, &b, &e);
    if (e > b) lm_init_fill(j->t->values_of ? j->t->values_of : j->t->name, j->t->kind, j->seed, j->std, b, e - b,
                            j->dst + b);
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

int lm_model_init_random(const lm_config *cfg, const char *config_json, size_t config_len, const char *out_dir,
                         const lm_init_opts *opts, lm_pool *pool, lm_error *err) {
    /* Sized before anything is allocated: a config.json whose checkpoint no
     * reader accepts, or that does not fit in memory, is refused with the
     * numbers instead of after gigabytes of planning. */
    lm_init_size size;
    lm_init_plan_size(cfg, opts->dtype, &size);
    if (size.header_bytes > LM_ST_MAX_HEADER)
        return lm_fail(err, "config.json: %lld layers make %lld tensors, whose safetensors header would be about %.0f MB, "
                       "over the %.0f MB that readers accept", (long long)cfg->num_hidden_layers,
                       (long long)size.stored, size.header_bytes / 1e6, LM_ST_MAX_HEADER / 1e6);
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (ram > 0 && size.memory_bytes > ram)
        return lm_fail(err, "config.json: the %s checkpoint would be %.2f GiB, built in memory (%.2f GiB with its "
                       "bookkeeping), and this machine has %.2f GiB", lm_init_dtype_name(opts->dtype),
                       size.file_bytes / 1073741824.0, size.memory_bytes / 1073741824.0, ram / 1073741824.0);
    double std;
    if (lm_init_std(opts, config_json, config_len, &std, err)) return -1;
    char *ctext = NULL;
    size_t clen = 0;
    if (lm_init_config_text(config_json, config_len, opts->dtype, &ctext, &clen, err)) return -1;
    lm_init_tensor *plan = NULL;
    int64_t n = 0;
    if (lm_init_plan(cfg, opts->dtype, &plan, &n, err)) {
        free(ctext);
        return -1;
    }
    int rc = -1;
    int64_t nout = 0, max_numel = 0;
    int fp8 = opts->dtype == LM_INIT_FP8;
    lm_tensor_out *outs = calloc((size_t)(fp8 ? 2 * n : n), sizeof *outs);
    char (*snames)[LM_INIT_NAME_MAX + 16] = calloc((size_t)(fp8 ? n : 1), sizeof *snames);
    size_t *off = calloc((size_t)(2 * n), sizeof *off);
    float *scratch = NULL;
    unsigned char *block = MAP_FAILED;
    size_t total = 0;
    if (!outs || !snames || !off) {
        lm_fail(err, "out of memory");
        goto done;
    }
    /* Layout of the one block that holds every stored tensor. */
    for (int64_t i = 0; i < n; i++) {
        const lm_init_tensor *t = &plan[i];
        if (t->numel > max_numel) max_numel = t->numel;
        off[2 * i] = total;
        total = align64(total + (size_t)t->numel * lm_dtype_size(t->dtype));
        off[2 * i + 1] = total;
        if (t->fp8) {
            int64_t br = (t->shape[0] + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK, bc = (t->shape[1] + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
            total = align64(total + (size_t)(br * bc) * sizeof(float));
        }
    }
    block = mmap(NULL, total ? total : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) {
        lm_fail(err, "out of memory: %zu bytes for the weights", total);
        goto done;
    }
#ifdef MADV_HUGEPAGE
    madvise(block, total ? total : 1, MADV_HUGEPAGE);
#endif
    if (opts->dtype != LM_INIT_F32 && !(scratch = malloc((size_t)max_numel * sizeof(float)))) {
        lm_fail(err, "out of memory: %lld floats of scratch", (long long)max_numel);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        const lm_init_tensor *t = &plan[i];
        void *dst = block + off[2 * i];
        float *f = t->dtype == LM_DTYPE_F32 ? (float *)dst : scratch;
        fill_job job = {t, opts->seed, std, f};
        if (t->numel >= 65536) lm_pool_run(pool, fill_worker, &job);
        else fill_worker(&job, 0, 1);
        if (t->dtype == LM_DTYPE_BF16) {
            uint16_t *h = dst;
            for (int64_t k = 0; k < t->numel; k++) h[k] = lm_f32_to_bf16(f[k]);
        }
        lm_tensor_out *o = &outs[nout++];
        o->name = t->name;
        o->dtype = t->dtype;
        o->ndim = t->ndim;
        o->shape[0] = t->shape[0];
        o->shape[1] = t->shape[1];
        o->data = dst;
        if (t->fp8) {
            float *s = (float *)(block + off[2 * i + 1]);
            lm_init_quantize_fp8(f, t->shape[0], t->shape[1], dst, s);
            snprintf(snames[i], sizeof snames[i], "%s_scale_inv", t->name);
            lm_tensor_out *so = &outs[nout++];
            so->name = snames[i];
            so->dtype = LM_DTYPE_F32;
            so->ndim = 2;
            so->shape[0] = (t->shape[0] + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
            so->shape[1] = (t->shape[1] + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
            so->data = s;
        }
    }
    free(scratch);
    scratch = NULL;
    if (lm_mkdir_p(out_dir, err)) goto done;
    char meta[256], path[PATH_MAX];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"lemma_init\":\"seed %llu, std %.9g, %s\"}",
             (unsigned long long)opts->seed, std, lm_init_dtype_name(opts->dtype));
    /* Weights first, config last: a directory with a config.json is complete. */
    if (snprintf(path, sizeof path, "%s/model.safetensors", out_dir) >= (int)sizeof path) {
        lm_fail(err, "%s: path too long", out_dir);
        goto done;
    }
    if (lm_st_write(path, outs, nout, meta, err)) goto done;
    snprintf(path, sizeof path, "%s/config.json", out_dir);
    if (lm_write_file_atomic(path, ctext, clen, err)) goto done;
    rc = 0;
done:
    if (block != MAP_FAILED) munmap(block, total ? total : 1);
    free(scratch);
    free(off);
    free(snames);
    free(outs);
    free(plan);
    free(ctext);
    return rc;
}
