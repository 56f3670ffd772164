/* quantize.h — `lemma quantize`: a checkpoint with Q8 weights.
 *
 * Q8 (core/dtype.h): every matrix the forward only multiplies by or looks
 * rows up in (the arch table's 2-D tensors: projections, experts, shared
 * experts, embedding, head) becomes
 *   NAME            I8  [rows, cols]             q, in [-127, 127]
 *   NAME_q8_scale   F16 [rows, ceil(cols/32)]    d, one per 32 columns
 * with w = q * d (exact in f32). The router (`mlp.gate.weight`, whose scores
 * pick the experts) and every 1-D tensor (norms, routing bias) keep their
 * dtype, as do V3.2's indexer tensors (`self_attn.indexer.*`: its key
 * selection has its own FP8 emulation) and tensors outside the arch table
 * (an MTP layer). FP8 inputs are
 * dequantized (fp8 * block scale) first and lose their `_scale_inv`. The
 * model loader (model.h) takes the result like any checkpoint. */
#ifndef LEMMA_MODEL_QUANTIZE_H
#define LEMMA_MODEL_QUANTIZE_H

#include <stdint.h>

#include "core/error.h"

typedef struct lm_quantize_stats {
    int64_t matrices;      /* tensors quantized */
    int64_t params;        /* their elements */
    double bytes_in;       /* bytes of every tensor read (and scales) */
    double bytes_out;      /* bytes of every tensor written */
} lm_quantize_stats;

/* Reads the checkpoint in in_dir (config.json and safetensors, sharded or
 * not), writes out_dir/model.safetensors (atomically) with the Q8 tensors
 * and copies every other regular file of in_dir that is not a safetensors
 * file or index (config, tokenizer, generation config) byte for byte, except
 * that config.json loses an FP8 quantization_config (quant_method "fp8":
 * the Q8 model holds no FP8 weights), its other bytes kept.
 * out_dir is created; it must not hold a checkpoint already. The output is
 * streamed: each matrix is quantized row by row as the file reaches it, so
 * the memory is one matrix's scales and a row (plus the read-only mapping
 * of the input), not the model, and a model larger than RAM quantizes. The
 * file is written atomically; when a weight cannot be quantized (not
 * finite, too large for an F16 scale) the write is abandoned and nothing
 * is left: neither model.safetensors nor the copied files (out_dir is
 * removed when this call created it). */
int lm_quantize_q8(const char *in_dir, const char *out_dir, lm_quantize_stats *st, lm_error *err);

#endif
