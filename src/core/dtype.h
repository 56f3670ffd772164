/* dtype.h — element types of stored tensors and their exact conversions.
 *
 * Weights stay in their stored type (memory-mapped); kernels convert on the
 * fly. FP8 here is E4M3 "fn" (no infinities, 0x7f/0xff = NaN, max 448), as in
 * the released DeepSeek-V3 checkpoints, always paired with a F32 scale tensor
 * `weight_scale_inv` of shape [ceil(rows/128), ceil(cols/128)]:
 * w[r][c] = fp8[r][c] * scale_inv[r/128][c/128]. */
#ifndef LEMMA_CORE_DTYPE_H
#define LEMMA_CORE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum lm_dtype {
    LM_DTYPE_F32 = 0,
    LM_DTYPE_BF16,
    LM_DTYPE_F16,
    LM_DTYPE_F8_E4M3,
    LM_DTYPE_F64,
    LM_DTYPE_I64,
    LM_DTYPE_I32,
    LM_DTYPE_I8,
    LM_DTYPE_U8,
    LM_DTYPE_BOOL,
    LM_DTYPE_COUNT
} lm_dtype;

enum { LM_FP8_BLOCK = 128 };

/* Q8 weights (lemma quantize --type q8): an I8 tensor [rows, cols] with a
 * companion `<name>_q8_scale`, F16 [rows, ceil(cols/32)]: w[r][c] =
 * q[r][c] * scale[r][c/32], exact in f32 (8 x 11 significant bits). The
 * same blocks as llama.cpp's Q8_0: 32 weights along a row, one F16 scale. */
enum { LM_Q8_BLOCK = 32 };

/* Bytes per element. */
size_t lm_dtype_size(lm_dtype t);
/* safetensors name ("F32", "BF16", "F8_E4M3", ...). */
const char *lm_dtype_name(lm_dtype t);
/* Parses a safetensors dtype name; returns -1 when unknown. */
int lm_dtype_parse(const char *name, size_t len, lm_dtype *out);

static inline float lm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t lm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float lm_f16_to_f32(uint16_t h);
uint16_t lm_f32_to_f16(float f);
/* Exact value of an E4M3fn byte (NaN for 0x7f/0xff). */
float lm_fp8e4m3_to_f32(uint8_t b);
/* Round to nearest even, saturating to +-448. */
uint8_t lm_f32_to_fp8e4m3(float f);

/* Quantizes one row of K floats to Q8: per block of 32 (the last may be
 * shorter), d = the F16 nearest to amax / 127, q = w / d rounded to nearest
 * even and clamped to [-127, 127] (0 where d is 0). Returns -1 when a value
 * is not finite or amax / 127 overflows F16 (|w| above ~8.3e6). */
int lm_q8_quantize_row(const float *w, int64_t K, int8_t *q, uint16_t *scales);

/* Converts n elements of type t at src to float. FP8 ignores scales here. */
void lm_convert_to_f32(float *dst, const void *src, lm_dtype t, size_t n);

/* Index of the first NaN or infinity among n elements of type t at src (read
 * from the bits, unaligned data fine), or -1 when all are finite or t is not
 * a floating type. Runs at memory speed: the common all-finite case is one
 * branch-free pass per block. */
int64_t lm_first_nonfinite(const void *src, lm_dtype t, int64_t n);
/* "NaN", "inf" or "-inf" for a non-finite element (read as lm_first_nonfinite
 * does), else "finite". */
const char *lm_nonfinite_name(const void *src, lm_dtype t, int64_t i);

#endif
