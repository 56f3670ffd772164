/* shards.h — token shards for training: `lemma data` writes them
 * (write.c, with documents.c cutting the inputs), the trainer reads
 * fixed-size windows from them (read.c).
 *
 *   lm_data_opts o; lm_data_opts_default(&o); o.doc_sep = LM_DOC_LINE;
 *   lm_data_build(files, nfiles, "tok_dir", "data_dir", &o, &err);
 *
 *   lm_data *d = lm_data_open("data_dir", &err);
 *   int32_t ids[B*T], targets[B*T];
 *   lm_data_window(d, LM_SPLIT_TRAIN, seed, step, micro, B, T, ids, targets, &err);
 *   lm_data_close(d);
 *
 * ---- Documents -------------------------------------------------------------
 * Every input file is cut into documents:
 *   - a file whose name ends in ".jsonl" holds one record per non-empty line:
 *       {"text": "..."}                              every token carries loss
 *       {"segments": [{"text": "...", "loss": false},  {"text": "...", "loss": true}, ...]}
 *     (the SFT form: only the tokens of segments with "loss": true are
 *     trained on; a chat renderer turns a conversation into segments, prompt
 *     and markers with loss false, the answer with loss true). JSONL text is
 *     encoded with special-token matching on, so "<｜User｜>" in a segment is
 *     the single added token.
 *   - any other file is plain text, split by doc_sep: LM_DOC_FILE (the whole
 *     file is one document; the default), LM_DOC_LINE (every line),
 *     LM_DOC_BLANK (paragraphs separated by one or more blank lines).
 *     Separators and the file's trailing newlines are not part of a document;
 *     documents that are empty or only white space are skipped. Plain text is
 *     encoded with special-token matching off (a corpus cannot inject
 *     control tokens).
 * Each document becomes [BOS] tokens EOS (BOS when o.bos and the tokenizer
 * has one; EOS always, so an EOS sits between any two documents).
 *
 * ---- Train / validation split ---------------------------------------------
 * By document, from its content: u = the first 8 bytes (big-endian) of
 * SHA-256(seed as 8 little-endian bytes || document bytes) / 2^64, and the
 * document is validation data iff u < val_fraction ("document bytes": the
 * text of a plain document, the whole line of a JSONL record). Identical
 * documents therefore always land on the same side, adding or reordering
 * files moves no other document, and the rule needs no state. When
 * val_fraction > 0, there are at least two documents and the rule picks none,
 * the document with the smallest u is validation data.
 *
 * ---- Files in DATA_DIR -----------------------------------------------------
 * train-00000.bin, ..., val-00000.bin, ...: shards. A shard holds whole
 * documents (a new one is started once a shard reaches shard_tokens at a
 * document boundary). Layout, little-endian:
 *     0  char[8]  magic "LMTOKENS"
 *     8  u32      version (1)
 *    12  u32      flags: bit 0 LM_SHARD_MASKED
 *    16  u64      n = number of tokens
 *    24  u32      vocab_size of the tokenizer
 *    28  u32      number of documents
 *    32  u8[32]   SHA-256 of the tokenizer's tokenizer.json
 *    64  u32[n]   token ids
 *        u8[n]    only with LM_SHARD_MASKED: loss[i] = 1 when token i counts
 *                 as a target (is trained on), 0 when it does not
 * The file size must be exactly 64 + 4n (+ n). Shards without a masked
 * document carry no loss bytes (every token counts).
 * index.json: {"format": "lemma-tokens", "version": 1, "tokenizer_sha256",
 * "vocab_size", "bos_id", "eos_id", "doc_sep", "bos", "val_fraction",
 * "seed", "shard_tokens", "sources": [{"file" (base name), "bytes",
 * "sha256", "documents"}], "splits": {"train"|"val": {"tokens",
 * "documents", "shards": [{"file", "tokens", "documents", "masked"}]}}}.
 * It holds no absolute path or time, so the same inputs give the same bytes.
 *
 * ---- Windows ---------------------------------------------------------------
 * A window is T+1 consecutive tokens of one shard starting at s: ids[t] =
 * tok[s+t], targets[t] = tok[s+t+1], or -1 when that token carries no loss.
 * Windows may span document boundaries (the EOS tells the model). For row
 * r = micro*B + b of a step, x = lm_rng_u64(lm_rng_u64(lm_rng_u64(seed,
 * LM_RNG_DATA, step), split, 0), LM_RNG_DATA, r), and the start is the
 * floor(x * S / 2^64)-th of the S possible starts of the split (all shards,
 * in order; a shard of n tokens has max(0, n - T) starts). So the data of a
 * step is a pure function of (seed, step, row): nothing to save but the step,
 * and splitting a batch into micro-batches of B rows draws the same windows.
 * With "windows": "document" in index.json (lm_data_opts.doc_windows, for
 * SFT data: every example is seen with its prompt), the S starts are instead
 * the positions of the BOS tokens from which T+1 tokens fit in the shard,
 * in shard order: a window then holds a whole document from its start (and
 * the beginning of the next ones), never the tail of a document without
 * its head. Evaluation uses non-overlapping windows in file order instead
 * (lm_data_eval_window).
 *
 * Thread safety: an open lm_data is read-only; windows may be drawn from many
 * threads at once. */
#ifndef LEMMA_DATA_SHARDS_H
#define LEMMA_DATA_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum { LM_SPLIT_TRAIN = 0, LM_SPLIT_VAL = 1 };
enum { LM_DOC_FILE = 0, LM_DOC_LINE = 1, LM_DOC_BLANK = 2 };
enum { LM_SHARD_MASKED = 1 };
enum { LM_SHARD_HEADER = 64, LM_SHARD_VERSION = 1 };
#define LM_SHARD_MAGIC "LMTOKENS"

typedef struct lm_data_opts {
    double val_fraction;     /* [0, 0.5]; default 0.01 */
    int64_t shard_tokens;    /* tokens per shard before a new one starts; default 1<<24 */
    uint64_t seed;           /* of the split rule; default 0 */
    int doc_sep;             /* LM_DOC_*; default LM_DOC_FILE */
    int bos;                 /* put BOS before every document; default 1 */
    int doc_windows;         /* training windows start at a document's BOS (index.json "windows":
                                "document"); default 0: at any token */
    /* Optional, called now and then: phase "scan" (hashing, splitting) or
     * "tokenize", bytes done of total, tokens written so far. A non-zero
     * return stops the build with an error. */
    int (*progress)(void *ctx, const char *phase, int64_t done, int64_t total, int64_t tokens);
    void *progress_ctx;
    /* Optional: a line for the user about what the build removes (stale
     * shards of an earlier build in out_dir). */
    void (*notice)(void *ctx, const char *msg);
    void *notice_ctx;
} lm_data_opts;

void lm_data_opts_default(lm_data_opts *o);
/* "file" | "line" | "blank" -> LM_DOC_*, or -1. */
int lm_data_doc_sep_parse(const char *s);
const char *lm_data_doc_sep_name(int doc_sep);

/* Tokenises files (in the order given) with the tokenizer in tokenizer_dir
 * (a directory with tokenizer.json, or the file) into out_dir (created when
 * missing, with lemma's .lemma-made marker): shards first, index.json last,
 * each written atomically; shards of an earlier build that the new index does
 * not list are removed (o->notice says so). out_dir must be new, empty, made
 * by lemma or an earlier lemma data output: anything else is an error naming
 * it, so that no file of the user's is overwritten or removed. Inputs
 * must be regular files (a device or FIFO is refused, without blocking). A
 * stop request (core/stop.h) is seen between documents and fails with
 * "interrupted". Errors:
 * missing tokenizer, unreadable file, a JSONL line that is not a record
 * (file:line), no documents at all, out of memory, write errors. */
int lm_data_build(const char *const *files, int nfiles, const char *tokenizer_dir, const char *out_dir,
                  const lm_data_opts *o, lm_error *err);

/* ---- reading ---- */

typedef struct lm_data lm_data;

/* Opens DATA_DIR/index.json and maps every shard it lists, checking each
 * header (magic, version, flags, token count, vocab size, tokenizer hash
 * against the index) and file size. */
lm_data *lm_data_open(const char *dir, lm_error *err);
void lm_data_close(lm_data *d);

int64_t lm_data_tokens(const lm_data *d, int split);
int64_t lm_data_documents(const lm_data *d, int split);
int lm_data_shard_count(const lm_data *d, int split);
int32_t lm_data_vocab_size(const lm_data *d);
int32_t lm_data_eos(const lm_data *d);           /* -1 when unknown */
int32_t lm_data_bos(const lm_data *d);           /* -1 when unknown */
/* 64 hex digits: SHA-256 of the tokenizer.json the data was made with. */
const char *lm_data_tokenizer_sha256(const lm_data *d);
/* Number of possible window starts of the split for length T (0: no shard
 * has more than T tokens). */
int64_t lm_data_starts(const lm_data *d, int split, int64_t T);

/* B rows of T positions for micro-batch `micro` of `step` (rows micro*B ..
 * micro*B+B-1 of the step), as described above. ids and targets are [B, T]
 * row-major. Errors: bad split/B/T, a split with no shard longer than T, an
 * id >= vocab_size in a shard (names shard and offset). */
int lm_data_window(const lm_data *d, int split, uint64_t seed, int64_t step, int64_t micro, int64_t B,
                   int64_t T, int32_t *ids, int32_t *targets, lm_error *err);
/* The start a row gets (split, token offset within the split's
 * concatenated shards); for tests and tools. */
int64_t lm_data_window_start(const lm_data *d, int split, uint64_t seed, int64_t step, int64_t row, int64_t T);

/* Non-overlapping windows for evaluation: window k of a shard starts at
 * k*T (while k*T + T < n), numbered across the split's shards in order. */
int64_t lm_data_eval_count(const lm_data *d, int split, int64_t T);
/* Rows first .. first+B-1 of that numbering (first + B <= count). */
int lm_data_eval_window(const lm_data *d, int split, int64_t first, int64_t B, int64_t T, int32_t *ids,
                        int32_t *targets, lm_error *err);

/* Validates one shard image in memory (the fuzzer and lm_data_open use it):
 * fills n, flags, vocab, docs, hash. */
typedef struct lm_shard_info {
    uint64_t n;
    uint32_t flags, vocab_size, documents;
    uint8_t tokenizer_sha256[32];
} lm_shard_info;
int lm_shard_check(const void *bytes, size_t len, const char *name, lm_shard_info *info, lm_error *err);

#endif
