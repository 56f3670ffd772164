/* kernels.h — the numeric kernels of the forward pass.
 *
 * Each kernel is written once (kernels_simd.h) over a thin vector layer per
 * path — scalar, AVX2, AVX-512 — picked at run time (lm_cpu_isa). Every
 * path computes the canonical arithmetic of docs/arithmetic.md, so results
 * are the same bits on every x86-64 whatever the path (tests compare every
 * path bit for bit). All threaded kernels split work by output so results
 * never depend on the thread count either (see threadpool.h).
 *
 * Shapes: T = tokens (rows of activations), K = input features, N = output
 * features. A weight is a Linear in Hugging Face layout: [N, K] row-major,
 * y = x W^T, read in its stored dtype (no up-front conversion). */
#ifndef LEMMA_CORE_KERNELS_H
#define LEMMA_CORE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/threadpool.h"

/* How an lm_mat's elements lie in memory. */
typedef enum lm_layout {
    /* W[n][k] at element n*K + k (Hugging Face; what files hold). */
    LM_LAYOUT_ROWS = 0,
    /* Panels: rows padded with zero rows to a multiple of LM_PANEL (16),
     * cut into blocks of LM_PANEL_BLOCK (128) rows (the last block: the
     * rest), each block stored column by column: W[128q + r][k] at element
     * 128q*K + k*R_q + r, R_q the block's row count (lm_panel_rows). The
     * decode matvec then reads one contiguous stream per block, 8 panels of
     * 16 rows' weights for each k, without transposes (docs/arithmetic.md).
     * Same dtype, same scale_inv: a block is one 128-row FP8 scale block. */
    LM_LAYOUT_PANELS = 1,
} lm_layout;

enum { LM_PANEL = 16, LM_PANEL_BLOCK = 128 };

/* A read-only weight matrix view, usually pointing into an mmapped file
 * (row-major) or into panels the model packed at load. */
typedef struct lm_mat {
    lm_dtype dtype;          /* F32, BF16, F16, F8_E4M3 or I8 (Q8: core/dtype.h) */
    int64_t rows, cols;      /* N, K */
    const void *data;        /* rows*cols elements in `layout`; need not be aligned */
    const float *scale_inv;  /* F8_E4M3 only: [ceil(rows/128), ceil(cols/128)] */
    lm_layout layout;        /* LM_LAYOUT_ROWS (0) unless packed */
    /* F8_E4M3 in panels: no byte is a NaN code (0x7f, 0xff), as checked
     * while packing, so the decode matvec skips the NaN patch of its FP8
     * conversion (a quarter of its work). Set only by whoever checked. */
    int fp8_nan_free;
    /* I8 (Q8) in rows: F16 scales [rows, ceil(cols/32)]. In panels the
     * scales follow the weights in the same buffer (lm_q8_panel_scales). */
    const uint16_t *q8_scale;
    /* BF16 in rows only: lm_matmul multiplies by the bf16 pair chain of
     * mixed-precision training (core/bf16gemm.h: x rounded to bf16, the
     * vdpbf16ps arithmetic) instead of the fp32 chain. Set by training's
     * bf16 weight views; inference never sets it. */
    int bf16_pairs;
} lm_mat;

typedef enum lm_isa { LM_ISA_SCALAR = 0, LM_ISA_AVX2 = 1, LM_ISA_AVX512 = 2 } lm_isa;

/* Best ISA this CPU supports (cached). LEMMA_ISA=scalar|avx2|avx512 in the
 * environment caps it (for tests and benchmarks). */
lm_isa lm_cpu_isa(void);
/* Forces the ISA used by the dispatching kernels (tests); returns the old one.
 * Requests above what the CPU supports are capped. */
lm_isa lm_set_isa(lm_isa isa);
const char *lm_isa_name(lm_isa isa);
/* The ISA the dispatching kernels use now (lm_cpu_isa() unless lm_set_isa
 * lowered it): other modules' per-ISA kernels follow it. */
lm_isa lm_kernel_isa(void);

/* y[T, N] = x[T, K] @ W^T, W = [N, K] in any weight dtype. x and y are F32,
 * row strides K and N, y not overlapping x. Threaded over N (and T for large
 * T) in tiles taken dynamically; the bits of y depend on (T, K, dtype, ISA)
 * only, never on the pool size. pool may be NULL; concurrent calls from
 * different threads are fine (scratch is thread-local). FP8 needs
 * W->scale_inv. */
void lm_matmul(lm_pool *pool, float *y, const float *x, int64_t T, const lm_mat *W);

/* y[t, n] = sum over k < K of a[t*lda + k] * b[k*ldb + n] for t < T, n < N:
 * a product against b's rows read in place (attention's P V over cached
 * value rows), each output the canonical chain acc = fma(a, b, acc) from
 * +0, k ascending — the bits lm_matmul gives with W = b^T as an F32 [N, K]
 * matrix, on every path, without transposing b. y (row stride ldy) must not
 * overlap a or b. Threaded over columns; the bits never depend on the pool.
 * pool may be NULL. */
void lm_matmul_nn(lm_pool *pool, float *y, int64_t ldy, const float *a, int64_t lda, int64_t T, const float *b,
                  int64_t ldb, int64_t K, int64_t N);

/* Row r of W converted to float (with the FP8 block scale applied): out[K].
 * Any layout. */
void lm_mat_row(const lm_mat *W, int64_t r, float *out);

/* Bytes of W (F32, BF16, F16, F8_E4M3 or I8) in LM_LAYOUT_PANELS: rows
 * rounded up to a multiple of LM_PANEL; I8 adds its scales, packed the same
 * way as an F16 matrix [rows, ceil(cols/32)] right after the weights. */
size_t lm_mat_panel_bytes(const lm_mat *W);
/* Writes blocks [q0, q1) of row-major W in LM_LAYOUT_PANELS into dst
 * (lm_mat_panel_bytes of W, the whole matrix; padding rows zero). The
 * result, with layout LM_LAYOUT_PANELS, data = dst and W's other fields,
 * gives lm_matmul the same bits as W. Blocks split the work for threads.
 * Returns how many FP8 NaN bytes the blocks hold (0 for other dtypes): none
 * in the whole matrix allows fp8_nan_free. */
int64_t lm_mat_pack_panels(const lm_mat *W, void *dst, int64_t q0, int64_t q1);

/* Blocks of a panel matrix, and the rows R_q of block q (128, or the rest
 * rounded up to LM_PANEL for the last). */
static inline int64_t lm_panel_blocks(const lm_mat *W) { return (W->rows + LM_PANEL_BLOCK - 1) / LM_PANEL_BLOCK; }
static inline int64_t lm_panel_rows(const lm_mat *W, int64_t q) {
    int64_t padded = (W->rows + LM_PANEL - 1) / LM_PANEL * LM_PANEL, left = padded - q * LM_PANEL_BLOCK;
    return left < LM_PANEL_BLOCK ? left : LM_PANEL_BLOCK;
}

/* The Q8 scales of an I8 matrix in panels (F16, panel layout, cols
 * ceil(cols/32)): they follow the weights, rows padded to LM_PANEL. */
static inline const uint16_t *lm_q8_panel_scales(const lm_mat *W) {
    return (const uint16_t *)((const uint8_t *)W->data + (size_t)((W->rows + LM_PANEL - 1) / LM_PANEL * LM_PANEL) *
                                                             (size_t)W->cols);
}
static inline int64_t lm_q8_scale_cols(const lm_mat *W) { return (W->cols + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK; }

/* The accuracy reference used by tests (single-threaded): y[T, N] = x[T, K]
 * @ W^T with a double accumulator. Not the canonical arithmetic (that is
 * every path of lm_matmul, docs/arithmetic.md); results stay within a
 * stated tolerance of it. */
void lm_matmul_ref(float *y, const float *x, int64_t T, const lm_mat *W);

/* ---- element-wise and row kernels (single row unless noted) ---- */

/* y = x * rsqrt(mean(x^2) + eps) * w, n elements (y may alias x). */
void lm_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);
/* out[i] = silu(gate[i]) * up[i] (out may alias gate). */
void lm_swiglu(float *out, const float *gate, const float *up, int64_t n);
/* In place, numerically stable; n >= 1. */
void lm_softmax(float *x, int64_t n);
/* out[i] = lm_expf(x[i] - shift) and out[i] = lm_sigmoidf(x[i]) (core/mathfn.h),
 * vectorised, the same bits as the scalar functions (out may alias x). */
void lm_exp_shifted(float *out, const float *x, float shift, int64_t n);
void lm_sigmoid(float *out, const float *x, int64_t n);
/* Indices of the k largest values, largest first; ties go to the smaller
 * index. NaN counts as smaller than everything. k <= n. */
void lm_topk(const float *x, int64_t n, int k, int *idx);

/* Rotates interleaved pairs (x[2i], x[2i+1]) by (cos[i], sin[i]), i < d/2. */
void lm_rope_interleaved(float *x, const float *cos_t, const float *sin_t, int64_t d);

/* ---- internals shared by kernels.c and the per-ISA files (not for callers) ---- */

/* One ISA's implementations. matvec computes rows [n0, n1) of y for all T
 * tokens (n0 a multiple of LM_PANEL when W is in panels) (used when T <= matvec_max_t[W dtype], indexed F32, BF16, F16,
 * F8_E4M3); gemm computes the tile t in [t0, t1), n in [n0, n1). packed[]
 * is per thread and per lm_matmul call ({-1, -1} at first): gemm records
 * there which x rows it left packed in its scratch, and skips packing them
 * again for the next tile on the same rows. Both compute each y element
 * by the canonical fma chain of docs/arithmetic.md, which depends on
 * nothing but the inputs: not on the tile bounds, the thread count, the
 * path or the ISA. */
typedef struct lm_kernel_table {
    int matvec_max_t[5]; /* by lm_kernel_dtype_index */
    void (*matvec)(float *y, const float *x, int64_t T, const lm_mat *W, int64_t n0, int64_t n1);
    void (*gemm)(float *y, const float *x, int64_t T, const lm_mat *W, int64_t t0, int64_t t1,
                 int64_t n0, int64_t n1, int64_t packed[2]);
    void (*rmsnorm)(float *y, const float *x, const float *w, int64_t n, float eps);
    void (*swiglu)(float *out, const float *gate, const float *up, int64_t n);
    void (*softmax)(float *x, int64_t n);
    void (*exp_shifted)(float *out, const float *x, float shift, int64_t n);
    void (*sigmoid)(float *out, const float *x, int64_t n);
    void (*nn)(float *y, int64_t ldy, const float *a, int64_t lda, int64_t T, const float *b, int64_t ldb,
               int64_t K, int64_t N);
} lm_kernel_table;

/* Index of a kernel weight dtype in matvec_max_t: F32 0, BF16 1, F16 2,
 * F8_E4M3 3, I8 4; -1 for dtypes the kernels do not take. */
static inline int lm_kernel_dtype_index(lm_dtype dt) {
    return dt <= LM_DTYPE_F8_E4M3 ? (int)dt : dt == LM_DTYPE_I8 ? 4 : -1;
}

/* All of them are kernels_simd.h over one vector layer each; they give the
 * same bits (docs/arithmetic.md). scalar_fma is the scalar path compiled
 * with FMA instructions, used when the CPU has them. */
extern const lm_kernel_table lm_kernels_scalar;
extern const lm_kernel_table lm_kernels_scalar_fma;
extern const lm_kernel_table lm_kernels_avx2;
extern const lm_kernel_table lm_kernels_avx512;

/* The vector layers' FP8 conversion without the NaN patch (a pseudo dtype
 * for the kernels only: a matrix with fp8_nan_free). LM_DT_FP8_WIDE: the
 * same without the f16 step (AVX-512 layer only, panel matvec of a NaN-free
 * matrix on scale blocks with |scale| < 2^8): the byte widened to 32 bits
 * and moved into f32 position is value * 2^-120, the block factor then
 * scale * 2^120 (docs/arithmetic.md: the same single rounding). */
enum { LM_DT_FP8_NAN_FREE = 64, LM_DT_FP8_WIDE = 65 };

/* Tests: forces lm_matmul onto one path for every T (0 = automatic, 1 =
 * matvec, 2 = gemm) so both are checked on every shape; returns the old
 * setting. Process-wide: not for use while other threads call lm_matmul. */
int lm_matmul_force_path(int path);

/* Thread-local scratch buffer number `slot` (0..3) of at least `bytes`,
 * 64-byte aligned, reused across calls (grown rarely, freed at thread exit).
 * Aborts when memory runs out. */
void *lm_scratch(int slot, size_t bytes);

#endif
