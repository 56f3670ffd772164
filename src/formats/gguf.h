/* gguf.h — writing GGUF v3 files (llama.cpp's model container).
 *
 * Layout (little-endian): "GGUF", u32 version 3, u64 tensor count, u64
 * key/value count; the key/values (string key, u32 value type, value); the
 * tensor infos (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64
 * offset into the data section); padding to general.alignment (32); the
 * tensor data, each tensor padded to 32 bytes. Strings are u64 length +
 * bytes. ne[0] is the innermost (contiguous) dimension: a row-major
 * [rows, cols] matrix is ne = {cols, rows}.
 *
 *   lm_gguf *g = lm_gguf_new();
 *   lm_gguf_kv_str(g, "general.architecture", "deepseek2");
 *   lm_gguf_tensor(g, "token_embd.weight", LM_GGML_F32, 2, (int64_t[]){D, V});
 *   lm_atomic_writer *w = lm_atomic_begin(path, &err);
 *   lm_gguf_write_header(g, w);                      // key/values, tensor infos, padding
 *   for each tensor in order: lm_atomic_put(w, bytes, lm_gguf_tensor_bytes(g, i)); lm_gguf_pad(g, w, i);
 *   lm_atomic_finish(w, &err);
 *
 * The header is built in memory (it is small next to the data: the
 * DeepSeek-V3 vocabulary is ~3 MB); the data is streamed by the caller. */
#ifndef LEMMA_FORMATS_GGUF_H
#define LEMMA_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/fileio.h"

/* ggml tensor types this writer knows (ggml.h's numbering). */
typedef enum lm_ggml_type {
    LM_GGML_F32 = 0,
    LM_GGML_F16 = 1,
    LM_GGML_Q8_0 = 8,
    LM_GGML_BF16 = 30,
} lm_ggml_type;

enum { LM_GGUF_ALIGN = 32, LM_Q8_0_BLOCK = 32, LM_Q8_0_BYTES = 34 /* f16 scale + 32 int8 */ };

/* Bytes of n elements of type t (n a multiple of 32 for Q8_0). */
uint64_t lm_ggml_bytes(lm_ggml_type t, uint64_t n);
const char *lm_ggml_type_name(lm_ggml_type t);

typedef struct lm_gguf lm_gguf;

lm_gguf *lm_gguf_new(void);
void lm_gguf_free(lm_gguf *g);

/* Key/values, in the order added. Each returns 0, or -1 when out of memory
 * (kept: lm_gguf_write_header reports it). */
int lm_gguf_kv_u32(lm_gguf *g, const char *key, uint32_t v);
int lm_gguf_kv_f32(lm_gguf *g, const char *key, float v);
int lm_gguf_kv_bool(lm_gguf *g, const char *key, int v);
int lm_gguf_kv_str(lm_gguf *g, const char *key, const char *v);
/* Arrays: strings given with their lengths (they may hold any bytes), i32. */
int lm_gguf_kv_str_array(lm_gguf *g, const char *key, const char *const *v, const size_t *len, uint64_t n);
int lm_gguf_kv_i32_array(lm_gguf *g, const char *key, const int32_t *v, uint64_t n);

/* A tensor info (data offsets are laid out in the order added). Returns its
 * index, or -1 when out of memory. */
int64_t lm_gguf_tensor(lm_gguf *g, const char *name, lm_ggml_type type, int ndim, const int64_t *ne);
int64_t lm_gguf_tensor_count(const lm_gguf *g);
int64_t lm_gguf_kv_count(const lm_gguf *g);
uint64_t lm_gguf_tensor_bytes(const lm_gguf *g, int64_t i);
/* Total bytes of the file the header and tensors describe. */
uint64_t lm_gguf_file_bytes(const lm_gguf *g);

/* Writes everything before the data. -1 with err when an earlier call ran
 * out of memory. */
int lm_gguf_write_header(lm_gguf *g, lm_atomic_writer *w, lm_error *err);
/* The zero bytes after tensor i's data. */
void lm_gguf_pad(const lm_gguf *g, lm_atomic_writer *w, int64_t i);

/* Encoders of one row of n floats into type t (Q8_0: n a multiple of 32).
 * Q8_0 blocks: d = max|x| / 127 stored as F16, q = round(x / d) (0 when d
 * is 0), as ggml's reference quantiser. */
void lm_ggml_encode_row(lm_ggml_type t, const float *x, int64_t n, void *out);

#endif
