/* safetensors.h — memory-mapped safetensors checkpoints, single or sharded.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
 * then the data; offsets are relative to the end of the header. Everything is
 * validated before use: header length against the file size, JSON, dtypes,
 * shapes (no overflow), offsets against the data size, byte size against
 * shape x dtype, no overlaps, no duplicate names. Tensor data is never copied:
 * lm_tensor.data points into the mapping and need not be aligned.
 *
 * A model directory holds model.safetensors, or model-0000i-of-0000N.safetensors
 * shards listed in model.safetensors.index.json ({"weight_map": {name: file}}). */
#ifndef LEMMA_FORMATS_SAFETENSORS_H
#define LEMMA_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/threadpool.h"

enum { LM_MAX_DIMS = 8 };

typedef struct lm_tensor {
    const char *name;
    lm_dtype dtype;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data;       /* into the file mapping */
    int file;               /* index into the set's files */
} lm_tensor;

typedef struct lm_tensor_set lm_tensor_set;

/* Opens one .safetensors file. */
int lm_st_open_file(const char *path, lm_tensor_set **out, lm_error *err);
/* Validates a safetensors image held in memory (bytes must outlive the set;
 * name is used in error messages). The file readers go through the same
 * checks; the fuzzer calls this. */
int lm_st_open_mem(const void *bytes, size_t len, const char *name, lm_tensor_set **out, lm_error *err);
/* Opens the checkpoint of a model directory (single file or sharded). */
int lm_st_open_dir(const char *dir, lm_tensor_set **out, lm_error *err);
void lm_st_close(lm_tensor_set *set);

int64_t lm_st_count(const lm_tensor_set *set);
const lm_tensor *lm_st_tensor(const lm_tensor_set *set, int64_t i);
/* Tensor by name, or NULL. O(1). */
const lm_tensor *lm_st_find(const lm_tensor_set *set, const char *name);
/* Path of file i of the set (for error messages). */
const char *lm_st_file_path(const lm_tensor_set *set, int file);
/* Total bytes of tensor data. */
size_t lm_st_total_bytes(const lm_tensor_set *set);

/* ---- checking values ---- */

/* Progress of a long scan: bytes done of total; return non-zero to stop. */
typedef int (*lm_st_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* Scans every floating-point tensor of the set (F32, F64, F16, BF16, E4M3)
 * for NaN and infinities, split across the pool's threads (pool may be NULL),
 * calling progress (when non-NULL) about every 256 MiB and at the end.
 * Returns 0 when every value is finite. Otherwise -1, *nbad (when non-NULL)
 * the number of tensors with a non-finite value, and err names the first
 * (in file order): "FILE: tensor 'NAME' has NaN at element 3, expected finite
 * values (2 of 145 tensors have non-finite values)". */
int lm_st_check_finite(const lm_tensor_set *set, lm_pool *pool, lm_st_progress_fn progress, void *ctx, int64_t *nbad,
                       lm_error *err);

/* ---- writing ---- */

typedef struct lm_tensor_out lm_tensor_out;
/* Puts a tensor's bytes (exactly numel * dtype size of them, with
 * lm_atomic_put) when lm_st_write reaches it in the file: an output made
 * tensor by tensor, never whole in memory. 0, or -1 with err (the write is
 * then abandoned and nothing is left at the path). */
typedef int (*lm_st_write_fn)(void *ctx, const lm_tensor_out *t, lm_atomic_writer *w, lm_error *err);

struct lm_tensor_out {
    const char *name;
    lm_dtype dtype;
    int ndim;
    int64_t shape[LM_MAX_DIMS];
    const void *data;       /* numel * dtype size bytes; or NULL and write: */
    lm_st_write_fn write;   /* called once, in file order, with ctx */
    void *ctx;
};

/* Writes tensors (sorted by name in the header, data 8-byte aligned) to path
 * atomically: a temporary file in the same directory, fsync, rename, fsync of
 * the directory. metadata_json is the "__metadata__" object text or NULL for
 * {"format":"pt"}. */
int lm_st_write(const char *path, const lm_tensor_out *tensors, int64_t n,
                const char *metadata_json, lm_error *err);

/* Readers refuse a safetensors header longer than this (the reference
 * safetensors library's limit too); lm_st_write refuses to write one. */
#define LM_ST_MAX_HEADER 100000000u

#endif
