/* memplan.h — the memory a run of a checkpoint needs, worked out from its
 * config.json and safetensors headers alone, before any weight is read, and
 * the machine's memory it is compared with.
 *
 *   lm_memplan p;
 *   lm_memplan_read("MODEL_DIR", &p, &err);            // headers only: a 685B checkpoint in milliseconds
 *   lm_memplan_size(&p, &(lm_memplan_req){.ctx = 4096, .seqs = 1, .rows = 256, .threads = 8});
 *   lm_meminfo mi; lm_meminfo_read(&mi, &err);          // /proc/meminfo or LEMMA_MEM_AVAILABLE
 *   if (lm_memplan_check(&p, &mi, &err)) ...            // err names the numbers
 *
 * What is counted:
 *  - weights: every tensor in the files, at its stored dtype (they are
 *    memory-mapped; the panel repacking of model.h replaces the mapped pages
 *    by one copy, so the resident size stays about this), including the MTP
 *    layers and the V3.2 indexer tensors whether or not the loader uses them;
 *  - cache: the KV cache (model.h lm_kv_floats_per_token, F32) for
 *    cache_tokens positions, its V3.2 index keys shown apart; when the model
 *    code does not keep index keys (yet) and config.json has `index_head_dim`,
 *    the official index cache (index_head_dim FP8 bytes + one F32 scale per
 *    128 per token and layer: 132 bytes for the released model);
 *  - buffers: the forward's work buffers for that many rows, context and
 *    threads (exactly what lm_fwd_create allocates), and, for training, the
 *    F32 parameters, gradients and two AdamW moments (16 bytes a parameter;
 *    the trainer's activations are not counted).
 * The machine's side is MemAvailable (what the kernel can hand out without
 * swapping; reclaimable page cache included), or the LEMMA_MEM_AVAILABLE
 * environment variable (bytes, or a number with K, M, G or T: binary units)
 * for tests and for operators who know better. */
#ifndef LEMMA_MODEL_MEMPLAN_H
#define LEMMA_MODEL_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/error.h"
#include "model/config.h"
#include "model/model.h"

typedef struct lm_memplan {
    lm_config cfg;
    int64_t files;                    /* safetensors files */
    int64_t tensors;                  /* tensors in them */
    int64_t count[LM_DTYPE_COUNT];    /* tensors by stored dtype */
    double bytes[LM_DTYPE_COUNT];     /* their bytes */
    double weight_bytes;              /* every tensor */
    int64_t mtp_tensors;              /* model.layers.{l >= num_hidden_layers}.* */
    double mtp_bytes;
    int64_t indexer_tensors;          /* *.self_attn.indexer.* (V3.2) */
    double indexer_bytes;
    int64_t params;                   /* elements of every tensor except FP8 scales */
    int64_t index_head_dim;           /* config.json's, 0 when absent */
    int64_t mismatched;               /* 1 when a tensor the forward needs (arch.h) is missing or of
                                         another shape: the loader will refuse the checkpoint */
    /* set by lm_memplan_size */
    int64_t ctx, seqs, cache_tokens;
    double kv_bytes_per_token;        /* all layers */
    double index_bytes_per_token;     /* all layers; 0 without the indexer */
    double cache_bytes;
    double buffer_bytes;              /* forward work buffers */
    double train_bytes;               /* parameters, gradients, AdamW moments (training only) */
    double total_bytes;
} lm_memplan;

/* What a command will allocate: a cache of cache_tokens positions (0: ctx x
 * seqs) for sequences of up to ctx positions, forward buffers for `rows`
 * tokens per call on `threads` threads, in attention mode attn; training
 * adds the optimiser state. */
typedef struct lm_memplan_req {
    int64_t ctx, seqs, cache_tokens, rows;
    int threads;
    lm_attn_mode attn;
    int training;
    int fp8_off;                      /* --fp8-emulation off: V3.2's latent cached as F32, not e4m3 codes */
} lm_memplan_req;

/* Reads MODEL_DIR/config.json and the safetensors headers (the mappings
 * are made and closed again; no tensor data page is touched). */
int lm_memplan_read(const char *dir, lm_memplan *p, lm_error *err);
/* The same from a config and an open tensor set (tests, and callers that
 * have them). */
int lm_memplan_from(const lm_config *cfg, const char *config_text, size_t config_len, const lm_tensor_set *set,
                    lm_memplan *p, lm_error *err);
/* Fills the cache, buffer and total fields for a request. */
void lm_memplan_size(lm_memplan *p, const lm_memplan_req *req);

typedef struct lm_meminfo {
    double total;                     /* MemTotal, bytes */
    double available;                 /* MemAvailable (or the override), bytes */
    const char *source;               /* "MemAvailable" or "LEMMA_MEM_AVAILABLE" */
} lm_meminfo;

/* /proc/meminfo, or LEMMA_MEM_AVAILABLE when set (an error when it does not parse). */
int lm_meminfo_read(lm_meminfo *mi, lm_error *err);
/* Parses /proc/meminfo text (name = for messages). */
int lm_meminfo_parse(const char *text, const char *name, lm_meminfo *mi, lm_error *err);
/* "64G", "1.5T", "123456" -> bytes (binary units); -1 when it does not parse. */
int lm_parse_bytes(const char *s, double *bytes);

/* 0 when the plan fits in mi->available; else -1 with err:
 * "DIR needs 642.1 GiB (weights 638.6 GiB + cache 2.1 GiB for 4096 tokens x 1
 * sequence + buffers 1.4 GiB) but 22.3 GiB is available (MemAvailable)". */
int lm_memplan_check(const lm_memplan *p, const char *dir, const lm_meminfo *mi, lm_error *err);

/* "1.50 GiB" into buf. */
const char *lm_human_bytes(double bytes, char *buf, size_t cap);

#endif
