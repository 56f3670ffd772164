/* train.h — learn a byte-level BPE tokenizer (DeepSeek-V3 style) from text.
 *
 *   lm_bpe_train_opts o; lm_bpe_train_defaults(&o); o.vocab_size = 8000;
 *   lm_bpe_trainer *t = lm_bpe_trainer_new(&o, &err);
 *   lm_bpe_trainer_feed(t, text, len, &err);            // as often as needed
 *   lm_text json = {0}, cfg = {0};
 *   lm_bpe_trainer_finish(t, &json, &cfg, &err);         // tokenizer.json, tokenizer_config.json
 *   lm_bpe_trainer_free(t);
 *
 * Text is pre-tokenized with DeepSeek-V3's pre-tokenizer (after the special
 * token strings are cut out, as HF's trainer does), the distinct pieces are
 * counted, and merges are learned greedily: the most frequent adjacent pair,
 * ties broken by the smaller (left id, right id), until the vocabulary is
 * full or no pair reaches min_frequency. Ids: the 7 special tokens
 * (BOS <｜begin▁of▁sentence｜>, EOS <｜end▁of▁sentence｜>, pad <｜▁pad▁｜>,
 * <｜User｜>, <｜Assistant｜>, <think>, </think>), then the 256 bytes in byte
 * order, then one id per merge. Deterministic: the output depends only on the
 * bytes fed (in order) and the options. The written tokenizer.json loads in
 * Hugging Face tokenizers and lemma alike and encodes identically. */
#ifndef LEMMA_TOKENIZER_TRAIN_H
#define LEMMA_TOKENIZER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct lm_bpe_train_opts {
    int32_t vocab_size;      /* total ids, specials and bytes included (default 8000) */
    int64_t min_frequency;   /* least count of a pair to merge (default 2) */
    size_t max_bytes;        /* lm_bpe_train_files: stop reading after this many bytes (0: all) */
    int digit_group;         /* numbers are cut into groups of at most this many digits before BPE:
                                3 (DeepSeek-V3's \p{N}{1,3}, the default) or 1 (every digit its own
                                piece, written as "\p{N}": arithmetic stays digit by digit) */
    int (*progress)(void *ctx, const char *msg); /* optional, called now and then */
    void *progress_ctx;
} lm_bpe_train_opts;

typedef struct lm_bpe_trainer lm_bpe_trainer;

enum { LM_BPE_NSPECIAL = 7 };
/* The special tokens, in id order. */
extern const char *const lm_bpe_special_tokens[LM_BPE_NSPECIAL];

void lm_bpe_train_defaults(lm_bpe_train_opts *o);
lm_bpe_trainer *lm_bpe_trainer_new(const lm_bpe_train_opts *o, lm_error *err);
int lm_bpe_trainer_feed(lm_bpe_trainer *t, const char *text, size_t len, lm_error *err);
int lm_bpe_trainer_finish(lm_bpe_trainer *t, lm_text *tokenizer_json, lm_text *config_json, lm_error *err);
void lm_bpe_trainer_free(lm_bpe_trainer *t);

/* Reads the files (in the order given), trains, writes DIR/tokenizer.json and
 * DIR/tokenizer_config.json (creating DIR). Each file must be a regular file
 * (a device or FIFO is refused: it could be read without end) and is read up
 * to the size it had when opened. Reading, counting and merging poll
 * lm_stop_requested() (core/stop.h) and fail with "interrupted". */
int lm_bpe_train_files(const char *const *files, int nfiles, const lm_bpe_train_opts *o, const char *out_dir,
                       lm_error *err);

#endif
