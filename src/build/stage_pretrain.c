/* stage_pretrain.c — the "pretrain" stage kind of `lemma build`.
 *
 * PLACEHOLDER until `lemma train` lands: the engineer who writes the trainer
 * replaces this file. What the stage gets (stages.h): st->def holds the
 * recipe's parameters (docs/recipe.md lists those the default recipe uses:
 * config, steps, batch, seq, lr, warmup, schedule, seed, ...), the input of
 * kind "data" is the DATA_DIR to train on, the input of kind "tokenizer" (if
 * any) is the tokenizer directory to copy next to the weights, and the run
 * goes into st->out_dir (latest/ a complete HF model directory; metrics.jsonl
 * and logs/ are not hashed). st->resume says an interrupted run of the same
 * stage key is in st->out_dir. */
#include "build/stages.h"

int lm_stage_pretrain(const lm_stage *st, const char *build_dir, lm_error *err) {
    (void)build_dir;
    (void)st;
    return lm_fail(err, "pretrain stage needs lemma train (not built yet)");
}
