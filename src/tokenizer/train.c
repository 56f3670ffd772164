/* train.c — placeholder, the trainer is being written. */
#include "tokenizer/train.h"

#include <string.h>

const char *const lm_bpe_special_tokens[LM_BPE_NSPECIAL] = {0};
void lm_bpe_train_defaults(lm_bpe_train_opts *o) { memset(o, 0, sizeof *o); o->vocab_size = 8000; o->min_frequency = 2; }
int lm_bpe_train_files(const char *const *files, int nfiles, const lm_bpe_train_opts *o, const char *out_dir, lm_error *err) {
    (void)files; (void)nfiles; (void)o; (void)out_dir;
    return lm_fail(err, "not implemented yet");
}
