/* kernels.c — ISA dispatch, thread splitting, scratch. The kernels
 * themselves are kernels_simd.h (one driver, one vector layer per path);
 * lm_matmul_ref (double accumulation) is the accuracy reference.
 *
 * Matmul threading: y is cut into tiles by output — ranges of N rows of W
 * for T <= matvec_max_t (decode), [T chunk x N chunk] blocks otherwise — and
 * threads take tiles from an atomic counter. Every path computes every y
 * element by the canonical operation sequence whatever tile it falls in, so
 * the result is bit-identical for any number of threads (and any order in
 * which they happen to take tiles) and any path. */
#include "core/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "core/bf16gemm.h"

/* ---- CPU features and dispatch ---- */

/* F16C (CPUID.1:ECX bit 29): clang has no __builtin_cpu_supports("f16c"). */
static int cpu_has_f16c(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1;
#else
    return 0;
#endif
}

static lm_isa detect_isa(void) {
    lm_isa best = LM_ISA_SCALAR;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
        best = LM_ISA_AVX2;
    if (best == LM_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        best = LM_ISA_AVX512;
#endif
    const char *env = getenv("LEMMA_ISA");
    if (env && *env) {
        lm_isa cap = best;
        if (!strcmp(env, "scalar")) cap = LM_ISA_SCALAR;
        else if (!strcmp(env, "avx2")) cap = LM_ISA_AVX2;
        else if (!strcmp(env, "avx512")) cap = LM_ISA_AVX512;
        if (cap < best) best = cap;
    }
    return best;
}

static atomic_int cpu_isa_cached = -1; /* detect_isa() result */
static atomic_int cur_isa = -1;        /* what the kernels use now */

lm_isa lm_cpu_isa(void) {
    int v = atomic_load_explicit(&cpu_isa_cached, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect_isa();
        atomic_store_explicit(&cpu_isa_cached, v, memory_order_relaxed);
    }
    return (lm_isa)v;
}

static inline lm_isa active_isa(void) {
    int v = atomic_load_explicit(&cur_isa, memory_order_relaxed);
    if (v < 0) {
        v = (int)lm_cpu_isa();
        atomic_store_explicit(&cur_isa, v, memory_order_relaxed);
    }
    return (lm_isa)v;
}

lm_isa lm_kernel_isa(void) { return active_isa(); }

lm_isa lm_set_isa(lm_isa isa) {
    lm_isa old = active_isa();
    lm_isa cap = lm_cpu_isa();
    if ((int)isa < 0) isa = LM_ISA_SCALAR;
    if (isa > cap) isa = cap;
    atomic_store_explicit(&cur_isa, (int)isa, memory_order_relaxed);
    return old;
}

const char *lm_isa_name(lm_isa isa) {
    switch (isa) {
    case LM_ISA_SCALAR: return "scalar";
    case LM_ISA_AVX2: return "avx2";
    case LM_ISA_AVX512: return "avx512";
    }
    return "?";
}

static int cpu_has_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static const lm_kernel_table *isa_table(lm_isa isa) {
    if (isa == LM_ISA_AVX512) return &lm_kernels_avx512;
    if (isa == LM_ISA_AVX2) return &lm_kernels_avx2;
    static atomic_int fma = -1;
    int f = atomic_load_explicit(&fma, memory_order_relaxed);
    if (f < 0) atomic_store_explicit(&fma, f = cpu_has_fma(), memory_order_relaxed);
    return f ? &lm_kernels_scalar_fma : &lm_kernels_scalar;
}

/* ---- thread-local scratch ---- */

enum { SCRATCH_SLOTS = 4 };
typedef struct scratch_set {
    void *p[SCRATCH_SLOTS];
    size_t cap[SCRATCH_SLOTS];
} scratch_set;

static __thread scratch_set *tls_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *v) {
    scratch_set *s = (scratch_set *)v;
    for (int i = 0; i < SCRATCH_SLOTS; i++) free(s->p[i]);
    free(s);
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_free); }

static void scratch_oom(size_t bytes) {
    fprintf(stderr, "lemma: out of memory allocating %zu bytes of kernel scratch\n", bytes);
    abort();
}

void *lm_scratch(int slot, size_t bytes) {
    scratch_set *s = tls_scratch;
    if (!s) {
        pthread_once(&scratch_once, scratch_key_init);
        s = (scratch_set *)calloc(1, sizeof *s);
        if (!s) scratch_oom(sizeof *s);
        pthread_setspecific(scratch_key, s);
        tls_scratch = s;
    }
    if (s->cap[slot] >= bytes) return s->p[slot];
    /* grow by at least 1.5x so a slowly growing size reallocates rarely */
    size_t cap = bytes + bytes / 2;
    size_t align = 64;
    if (cap >= (1u << 21)) align = 1u << 21;
    cap = (cap + align - 1) / align * align;
    free(s->p[slot]);
    s->p[slot] = aligned_alloc(align, cap);
    if (!s->p[slot]) scratch_oom(cap);
    if (align > 64) madvise(s->p[slot], cap, MADV_HUGEPAGE);
    s->cap[slot] = cap;
    return s->p[slot];
}

/* ---- weight rows ---- */

static inline int64_t fp8_scale_cols(const lm_mat *W) {
    return (W->cols + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
}

/* Element offset of W[r][c] in W's layout. */
static inline size_t mat_elem_index(const lm_mat *W, int64_t r, int64_t c) {
    if (W->layout == LM_LAYOUT_PANELS) {
        int64_t q = r / LM_PANEL_BLOCK;
        return (size_t)(q * LM_PANEL_BLOCK) * (size_t)W->cols + (size_t)c * (size_t)lm_panel_rows(W, q) +
               (size_t)(r % LM_PANEL_BLOCK);
    }
    return (size_t)r * (size_t)W->cols + (size_t)c;
}

/* The Q8 scale of W[r][c] (I8), either layout. */
static inline float q8_scale_of(const lm_mat *W, int64_t r, int64_t c) {
    int64_t KS = lm_q8_scale_cols(W), j = c / LM_Q8_BLOCK;
    if (W->layout != LM_LAYOUT_PANELS) return lm_f16_to_f32(W->q8_scale[r * KS + j]);
    int64_t q = r / LM_PANEL_BLOCK;
    return lm_f16_to_f32(lm_q8_panel_scales(W)[(q * LM_PANEL_BLOCK) * KS + j * lm_panel_rows(W, q) + r % LM_PANEL_BLOCK]);
}

void lm_mat_row(const lm_mat *W, int64_t r, float *out) {
    int64_t K = W->cols;
    size_t es = lm_dtype_size(W->dtype);
    if (W->layout == LM_LAYOUT_PANELS) {
        /* a gather (embedding lookups of a tied head, the absorbed kv_b at
         * setup): element by element, exact conversions either way */
        const uint8_t *d = (const uint8_t *)W->data;
        for (int64_t c = 0; c < K; c++) lm_convert_to_f32(out + c, d + mat_elem_index(W, r, c) * es, W->dtype, 1);
    } else {
        const uint8_t *row = (const uint8_t *)W->data + (size_t)r * (size_t)K * es;
        lm_convert_to_f32(out, row, W->dtype, (size_t)K);
    }
    if (W->dtype == LM_DTYPE_F8_E4M3) {
        const float *s = W->scale_inv + (r / LM_FP8_BLOCK) * fp8_scale_cols(W);
        for (int64_t c = 0; c < K; c++) out[c] *= s[c / LM_FP8_BLOCK];
    }
    if (W->dtype == LM_DTYPE_I8)
        for (int64_t c = 0; c < K; c++) out[c] *= q8_scale_of(W, r, c); /* exact: 8 x 11 bits */
}

size_t lm_mat_panel_bytes(const lm_mat *W) {
    size_t panels = (size_t)((W->rows + LM_PANEL - 1) / LM_PANEL);
    size_t b = panels * LM_PANEL * (size_t)W->cols * lm_dtype_size(W->dtype);
    if (W->dtype == LM_DTYPE_I8) b += panels * LM_PANEL * (size_t)lm_q8_scale_cols(W) * 2;
    return b;
}

/* Block q of row-major src, element size ES: column k of the block is
 * R_q consecutive elements (rows past N zero). Rows are read in pieces of
 * a few KB so the writes, one per row down each column, stay in cache. */
static inline __attribute__((always_inline)) void pack_block(const int ES, uint8_t *dst, const uint8_t *src,
                                                               const lm_mat *W, int64_t q) {
    int64_t N = W->rows, K = W->cols, R = lm_panel_rows(W, q), r0 = q * LM_PANEL_BLOCK;
    uint8_t *bd = dst + (size_t)r0 * (size_t)K * ES;
    for (int64_t k0 = 0; k0 < K; k0 += 256) {
        int64_t k1 = k0 + 256 < K ? k0 + 256 : K;
        for (int64_t r = 0; r < R; r++) {
            if (r0 + r >= N) {
                for (int64_t k = k0; k < k1; k++) memset(bd + ((size_t)k * (size_t)R + (size_t)r) * ES, 0, ES);
                continue;
            }
            const uint8_t *row = src + (size_t)(r0 + r) * (size_t)K * ES;
            for (int64_t k = k0; k < k1; k++)
                memcpy(bd + ((size_t)k * (size_t)R + (size_t)r) * ES, row + (size_t)k * ES, ES);
        }
    }
}

int64_t lm_mat_pack_panels(const lm_mat *W, void *dst, int64_t q0, int64_t q1) {
    size_t es = lm_dtype_size(W->dtype);
    int64_t nan = 0;
    for (int64_t q = q0; q < q1; q++) {
        switch (es) {
        case 4: pack_block(4, dst, W->data, W, q); break;
        case 2: pack_block(2, dst, W->data, W, q); break;
        default: pack_block(1, dst, W->data, W, q); break;
        }
        if (W->dtype == LM_DTYPE_I8) { /* the scales, as an F16 matrix of their own, after the weights */
            lm_mat S = {.dtype = LM_DTYPE_F16, .rows = W->rows, .cols = lm_q8_scale_cols(W), .data = W->q8_scale};
            lm_mat P = *W;
            P.data = dst;
            pack_block(2, (uint8_t *)lm_q8_panel_scales(&P), (const uint8_t *)S.data, &S, q);
        }
        if (W->dtype == LM_DTYPE_F8_E4M3) {
            const uint8_t *b = (const uint8_t *)dst + (size_t)(q * LM_PANEL_BLOCK) * (size_t)W->cols;
            size_t n = (size_t)lm_panel_rows(W, q) * (size_t)W->cols;
            for (size_t i = 0; i < n; i++) nan += (b[i] & 0x7f) == 0x7f;
        }
    }
    return nan;
}

/* Exact value of W[r][c] in double (FP8: byte value times scale, exact). */
static inline double mat_elem_exact(const lm_mat *W, int64_t r, int64_t c) {
    size_t i = mat_elem_index(W, r, c);
    const uint8_t *d = (const uint8_t *)W->data;
    uint16_t h;
    switch (W->dtype) {
    case LM_DTYPE_F32: {
        float f;
        memcpy(&f, d + 4 * i, 4);
        return f;
    }
    case LM_DTYPE_BF16: memcpy(&h, d + 2 * i, 2); return lm_bf16_to_f32(h);
    case LM_DTYPE_F16: memcpy(&h, d + 2 * i, 2); return lm_f16_to_f32(h);
    case LM_DTYPE_F8_E4M3:
        return (double)lm_fp8e4m3_to_f32(d[i]) *
               (double)W->scale_inv[(r / LM_FP8_BLOCK) * fp8_scale_cols(W) + c / LM_FP8_BLOCK];
    case LM_DTYPE_I8: return (double)(int8_t)d[i] * (double)q8_scale_of(W, r, c);
    default: return NAN;
    }
}

void lm_matmul_ref(float *y, const float *x, int64_t T, const lm_mat *W) {
    int64_t N = W->rows, K = W->cols;
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += mat_elem_exact(W, n, k) * (double)x[t * K + k];
            y[t * N + n] = (float)acc;
        }
}

/* ---- other weight dtypes (never in a model: F64 and integers) ----
 * Row of W to f32, then the canonical fma chain in k order. */

static void gemm_other(float *y, const float *x, const lm_mat *W, int64_t t0, int64_t t1, int64_t n0, int64_t n1) {
    int64_t N = W->rows, K = W->cols;
    float *row = (float *)lm_scratch(0, (size_t)K * sizeof(float));
    for (int64_t n = n0; n < n1; n++) {
        lm_mat_row(W, n, row);
        for (int64_t t = t0; t < t1; t++) {
            const float *xt = x + t * K;
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++) acc = fmaf(row[k], xt[k], acc);
            y[t * N + n] = acc;
        }
    }
}

/* Work is cut into tiles handed out through an atomic counter, so a thread
 * that runs late (woken late, or sharing its core with another process)
 * just takes fewer tiles. Which thread computes a tile never changes its
 * bits: the kernels' operation order per element ignores tile bounds. */
enum {
    MV_TILE_ROWS = 128,   /* matvec, several threads: rows of W per tile at most (one FP8 scale block) */
    GEMM_TILE_COLS = 192, /* gemm: columns of y per tile at most (16 x 12, 32 x 6) */
    GEMM_TILE_ROWS = 256, /* gemm: tokens per tile */
};

/* Tile size along N: `max`, or less (down to a multiple of `quantum`) so that
 * there are about 4 tiles per thread when there are many threads. */
static int64_t tile_len(int64_t n, int64_t other_tiles, int nth, int64_t max, int64_t quantum) {
    int64_t want = 4 * (int64_t)nth;
    int64_t len = (n * other_tiles + want - 1) / want;
    len = (len + quantum - 1) / quantum * quantum;
    return len < quantum ? quantum : len > max ? max : len;
}

typedef struct mm_job {
    float *y;
    const float *x;
    int64_t T;
    const lm_mat *W;
    const lm_kernel_table *tab; /* NULL: gemm_other */
    int matvec;                 /* path, fixed for the whole call */
    int64_t ntiles, tiles_n;    /* tiles in all, tiles along N */
    int64_t tile_n;             /* rows of W (columns of y) per tile */
    atomic_llong next;          /* next tile to hand out */
} mm_job;

static atomic_int forced_path; /* lm_matmul_force_path */

int lm_matmul_force_path(int path) { return atomic_exchange(&forced_path, path); }

static void mm_task(void *arg, int ith, int nth) {
    (void)ith, (void)nth;
    mm_job *j = (mm_job *)arg;
    int64_t T = j->T, N = j->W->rows;
    int64_t packed[2] = {-1, -1}; /* x rows this thread has packed (gemm) */
    for (;;) {
        int64_t id = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (id >= j->ntiles) return;
        if (j->matvec) {
            int64_t n0 = id * j->tile_n, n1 = n0 + j->tile_n < N ? n0 + j->tile_n : N;
            j->tab->matvec(j->y, j->x, T, j->W, n0, n1);
            continue;
        }
        int64_t tb = id / j->tiles_n, nb = id % j->tiles_n;
        int64_t t0 = tb * GEMM_TILE_ROWS, t1 = t0 + GEMM_TILE_ROWS < T ? t0 + GEMM_TILE_ROWS : T;
        int64_t n0 = nb * j->tile_n, n1 = n0 + j->tile_n < N ? n0 + j->tile_n : N;
        if (j->tab) j->tab->gemm(j->y, j->x, T, j->W, t0, t1, n0, n1, packed);
        else gemm_other(j->y, j->x, j->W, t0, t1, n0, n1);
    }
}

void lm_matmul(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W) {
    if (T <= 0 || W->rows <= 0) return;
    if (W->cols <= 0) {
        memset(y, 0, (size_t)T * (size_t)W->rows * sizeof(float));
        return;
    }
    if (W->bf16_pairs && W->dtype == LM_DTYPE_BF16 && W->layout == LM_LAYOUT_ROWS) {
        lm_bf16_operand xa = {x, LM_DTYPE_F32, W->cols, 1}, wb = {W->data, LM_DTYPE_BF16, W->cols, 1};
        lm_bf16_gemm(pool, y, W->rows, T, W->rows, W->cols, &xa, &wb, 0);
        return;
    }
    mm_job j;
    j.y = y, j.x = x, j.T = T, j.W = W;
    int di = lm_kernel_dtype_index(W->dtype);
    j.tab = di >= 0 ? isa_table(active_isa()) : NULL;
    int path = atomic_load_explicit(&forced_path, memory_order_relaxed);
    j.matvec = j.tab && (path == 1 || (path == 0 && T <= j.tab->matvec_max_t[di]));
    int64_t N = W->rows;
    /* a tiny problem: not worth waking the pool */
    if ((double)T * (double)N * (double)W->cols < 32768.0) pool = NULL;
    int nth = lm_pool_size(pool);
    if (j.matvec) {
        /* One thread: the whole matrix in one call, so the kernel runs its
         * widest interleave of independent chains (a 64-row tile leaves T = 1
         * with 4 panels' chains, a 16-row one with 1: latency-bound). Several:
         * panels in whole 128-row blocks (one stream each) unless that leaves
         * threads idle, and never under 64 rows (4 panels, 4 row groups). */
        int64_t quantum = W->layout == LM_LAYOUT_PANELS && N >= 2 * LM_PANEL_BLOCK * nth ? LM_PANEL_BLOCK : 64;
        j.tile_n = nth == 1 ? N : tile_len(N, 1, nth, MV_TILE_ROWS, quantum);
        j.tiles_n = (N + j.tile_n - 1) / j.tile_n;
        j.ntiles = j.tiles_n;
    } else {
        int64_t tiles_t = (T + GEMM_TILE_ROWS - 1) / GEMM_TILE_ROWS;
        j.tile_n = tile_len(N, tiles_t, nth, GEMM_TILE_COLS, 48);
        j.tiles_n = (N + j.tile_n - 1) / j.tile_n;
        j.ntiles = j.tiles_n * tiles_t;
    }
    atomic_init(&j.next, 0);
    if (j.ntiles == 1) pool = NULL;
    lm_pool_run_dynamic(pool, mm_task, &j);
}

/* ---- row kernels (kernels_simd.h) ---- */

void lm_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    isa_table(active_isa())->rmsnorm(y, x, w, n, eps);
}

void lm_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    isa_table(active_isa())->swiglu(out, gate, up, n);
}

typedef struct nn_job {
    const lm_kernel_table *tab;
    float *y;
    const float *a, *b;
    int64_t ldy, lda, T, ldb, K, N;
} nn_job;

/* Columns in chunks of 64 (whole vectors on every path). */
static void nn_part(void *ctx, int ith, int nth) {
    nn_job *j = ctx;
    int64_t n0, n1;
    lm_split(j->N, ith, nth, 64, &n0, &n1);
    if (n1 > n0) j->tab->nn(j->y + n0, j->ldy, j->a, j->lda, j->T, j->b + n0, j->ldb, j->K, n1 - n0);
}

void lm_matmul_nn(lm_pool *pool, float *y, int64_t ldy, const float *a, int64_t lda, int64_t T, const float *b,
                  int64_t ldb, int64_t K, int64_t N) {
    if (T <= 0 || N <= 0) return;
    nn_job job = {isa_table(active_isa()), y, a, b, ldy, lda, T, ldb, K, N};
    if (N < 128) pool = NULL; /* a dispatch costs more than a share of so few columns */
    lm_pool_run(pool, nn_part, &job);
}

void lm_softmax(float *x, int64_t n) { isa_table(active_isa())->softmax(x, n); }

void lm_exp_shifted(float *out, const float *x, float shift, int64_t n) {
    isa_table(active_isa())->exp_shifted(out, x, shift, n);
}

void lm_sigmoid(float *out, const float *x, int64_t n) { isa_table(active_isa())->sigmoid(out, x, n); }

/* NaN ranks below everything; among equal values the earlier index wins,
 * which the scan order gives for free (a later equal value is not better). */
static inline int topk_better(float a, float b) {
    if (isnan(a)) return 0;
    if (isnan(b)) return 1;
    return a > b;
}

void lm_topk(const float *x, int64_t n, int k, int *idx) {
    if (k <= 0) return;
    int cnt = 0; /* idx[0..cnt) sorted best first */
    for (int64_t i = 0; i < n; i++) {
        if (cnt == k && !topk_better(x[i], x[idx[k - 1]])) continue;
        int pos = cnt < k ? cnt : k - 1; /* slot the new one may take */
        while (pos > 0 && topk_better(x[i], x[idx[pos - 1]])) {
            idx[pos] = idx[pos - 1];
            pos--;
        }
        idx[pos] = (int)i;
        if (cnt < k) cnt++;
    }
}

void lm_rope_interleaved(float *x, const float *cos_t, const float *sin_t, int64_t d) {
    for (int64_t i = 0; i < d / 2; i++) {
        float a = x[2 * i], b = x[2 * i + 1], c = cos_t[i], s = sin_t[i];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}
