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

/* kind of storage: linear in an attention/MLP block (FP8-able), other matrix
 * (embedding, head, router gate, eh_proj: BF16 in FP8 checkpoints), norm
 * vector, routing bias (always F32). */
typedef enum slot { SLOT_LINEAR, SLOT_MATRIX, SLOT_NORM, SLOT_BIAS } slot;

static int plan_add(planner *p, slot s, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int plan_add(planner *p, slot s, int64_t rows, int64_t cols, const char *fmt, ...) {
    if (p->count_only) {
        char name[LM_INIT_NAME_MAX];
        va_list ap;
        va_start(ap, fmt);
        int len = vsnprintf(name, sizeof name, fmt, ap);
        va_end(ap);
        int is_vec = s == SLOT_NORM || s == SLOT_BIAS;
        int fp8 = p->dtype == LM_INIT_FP8 && s == SLOT_LINEAR;
        double numel = is_vec ? (double)rows : (double)rows * (double)cols;
        double esz = s == SLOT_BIAS || p->dtype == LM_INIT_F32 ? 4 : fp8 ? 1 : 2;
        p->n++;
        p->stored++;
        p->file_bytes += numel * esz + 8;
        p->header_bytes += len + 96; /* name, dtype, shape and offsets as written */
        if (fp8) {
            p->stored++;
            p->file_bytes += ceil((double)rows / LM_FP8_BLOCK) * ceil((double)cols / LM_FP8_BLOCK) * 4 + 8;
            p->header_bytes += len + 11 + 96;
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
    lm_init_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    if (len < 0 || len >= (int)sizeof t->name) return lm_fail(p->err, "tensor name too long: '%s...'", t->name);
    t->ndim = (s == SLOT_NORM || s == SLOT_BIAS) ? 1 : 2;
    t->shape[0] = rows;
    t->shape[1] = t->ndim == 2 ? cols : 0;
    t->numel = t->ndim == 2 ? rows * cols : rows;
    t->kind = s == SLOT_NORM ? LM_INIT_ONES : s == SLOT_BIAS ? LM_INIT_ZEROS : LM_INIT_NORMAL;
    if (s == SLOT_BIAS || p->dtype == LM_INIT_F32) t->dtype = LM_DTYPE_F32;
    else if (p->dtype == LM_INIT_FP8 && s == SLOT_LINEAR) t->dtype = LM_DTYPE_F8_E4M3, t->fp8 = 1;
    else t->dtype = LM_DTYPE_BF16;
    p->n++;
    return 0;
}

/* One decoder layer's tensors (index l; l >= num_hidden_layers is MTP). */
static int plan_layer(planner *p, int64_t l) {
    const lm_config *c = p->cfg;
    int64_t D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim,
            dv = c->v_head_dim, C = c->kv_lora_rank, Q = c->q_lora_rank;
    long long L = (long long)l;
    const char *pre = "model.layers.";
    if (plan_add(p, SLOT_NORM, D, 0, "%s%lld.input_layernorm.weight", pre, L) ||
        plan_add(p, SLOT_NORM, D, 0, "%s%lld.post_attention_layernorm.weight", pre, L))
        return -1;
    if (Q == 0) {
        if (plan_add(p, SLOT_LINEAR, H * (dn + dr), D, "%s%lld.self_attn.q_proj.weight", pre, L)) return -1;
    } else if (plan_add(p, SLOT_LINEAR, Q, D, "%s%lld.self_attn.q_a_proj.weight", pre, L) ||
               plan_add(p, SLOT_NORM, Q, 0, "%s%lld.self_attn.q_a_layernorm.weight", pre, L) ||
               plan_add(p, SLOT_LINEAR, H * (dn + dr), Q, "%s%lld.self_attn.q_b_proj.weight", pre, L)) {
        return -1;
    }
    if (plan_add(p, SLOT_LINEAR, C + dr, D, "%s%lld.self_attn.kv_a_proj_with_mqa.weight", pre, L) ||
        plan_add(p, SLOT_NORM, C, 0, "%s%lld.self_attn.kv_a_layernorm.weight", pre, L) ||
        plan_add(p, SLOT_LINEAR, H * (dn + dv), C, "%s%lld.self_attn.kv_b_proj.weight", pre, L) ||
        plan_add(p, SLOT_LINEAR, D, H * dv, "%s%lld.self_attn.o_proj.weight", pre, L))
        return -1;
    if (!lm_config_layer_is_moe(c, l)) {
        int64_t I = c->intermediate_size;
        return plan_add(p, SLOT_LINEAR, I, D, "%s%lld.mlp.gate_proj.weight", pre, L) ||
                       plan_add(p, SLOT_LINEAR, I, D, "%s%lld.mlp.up_proj.weight", pre, L) ||
                       plan_add(p, SLOT_LINEAR, D, I, "%s%lld.mlp.down_proj.weight", pre, L)
                   ? -1
                   : 0;
    }
    int64_t E = c->n_routed_experts, Im = c->moe_intermediate_size;
    if (plan_add(p, SLOT_MATRIX, E, D, "%s%lld.mlp.gate.weight", pre, L)) return -1;
    if (c->topk_method == LM_TOPK_NOAUX_TC &&
        plan_add(p, SLOT_BIAS, E, 0, "%s%lld.mlp.gate.e_score_correction_bias", pre, L))
        return -1;
    for (int64_t e = 0; e < E; e++) {
        long long X = (long long)e;
        if (plan_add(p, SLOT_LINEAR, Im, D, "%s%lld.mlp.experts.%lld.gate_proj.weight", pre, L, X) ||
            plan_add(p, SLOT_LINEAR, Im, D, "%s%lld.mlp.experts.%lld.up_proj.weight", pre, L, X) ||
            plan_add(p, SLOT_LINEAR, D, Im, "%s%lld.mlp.experts.%lld.down_proj.weight", pre, L, X))
            return -1;
    }
    if (c->n_shared_experts > 0) {
        int64_t Is = Im * c->n_shared_experts;
        if (plan_add(p, SLOT_LINEAR, Is, D, "%s%lld.mlp.shared_experts.gate_proj.weight", pre, L) ||
            plan_add(p, SLOT_LINEAR, Is, D, "%s%lld.mlp.shared_experts.up_proj.weight", pre, L) ||
            plan_add(p, SLOT_LINEAR, D, Is, "%s%lld.mlp.shared_experts.down_proj.weight", pre, L))
            return -1;
    }
    return 0;
}

static int plan_all(planner *pp);

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

static int plan_all(planner *pl) {
    const lm_config *c = pl->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size, L = c->num_hidden_layers;
    int rc = plan_add(pl, SLOT_MATRIX, V, D, "model.embed_tokens.weight");
    for (int64_t l = 0; l < L && !rc; l++) rc = plan_layer(pl, l);
    if (!rc) rc = plan_add(pl, SLOT_NORM, D, 0, "model.norm.weight");
    if (!rc && !c->tie_word_embeddings) rc = plan_add(pl, SLOT_MATRIX, V, D, "lm_head.weight");
    /* MTP layers as in the released V3: a full decoder layer plus its own
     * embedding, two norms, the 2D -> D projection and a shared head. */
    for (int64_t k = 0; k < c->num_nextn_predict_layers && !rc; k++) {
        long long l = (long long)(L + k);
        rc = plan_layer(pl, L + k) ||
             plan_add(pl, SLOT_MATRIX, V, D, "model.layers.%lld.embed_tokens.weight", l) ||
             plan_add(pl, SLOT_NORM, D, 0, "model.layers.%lld.enorm.weight", l) ||
             plan_add(pl, SLOT_NORM, D, 0, "model.layers.%lld.hnorm.weight", l) ||
             plan_add(pl, SLOT_MATRIX, D, 2 * D, "model.layers.%lld.eh_proj.weight", l) ||
             plan_add(pl, SLOT_NORM, D, 0, "model.layers.%lld.shared_head.norm.weight", l) ||
             plan_add(pl, SLOT_MATRIX, V, D, "model.layers.%lld.shared_head.head.weight", l);
    }
    return rc ? -1 : 0;
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

static int mkdir_p(const char *dir, lm_error *err) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return lm_fail(err, "%s: path too long", dir);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || !*s) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) && errno != EEXIST) return lm_fail(err, "%s: cannot create directory: %s", p, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return lm_fail(err, "%s: not a directory", dir);
    return 0;
}

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
    if (e > b) lm_init_fill(j->t->name, j->t->kind, j->seed, j->std, b, e - b, j->dst + b);
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
    if (mkdir_p(out_dir, err)) goto done;
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
