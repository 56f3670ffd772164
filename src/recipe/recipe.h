/* recipe.h — a build recipe: named inputs with their SHA-256, and stages in
 * order (tokenizer, data, pretrain, sft, verifier_rl; later rl, distill). The
 * format is documented in docs/recipe.md; in short:
 *
 *   {"lemma_recipe": 1, "name": "default",
 *    "inputs": {"kjv": {"builtin": "bible-kjv", "sha256": "cd45..."},
 *               "notes": {"path": "corpus/notes.txt", "sha256": "..."}},
 *    "stages": [
 *      {"name": "tokenizer", "kind": "tokenizer", "inputs": ["kjv"], "vocab_size": 2048},
 *      {"name": "data", "kind": "data", "inputs": ["kjv", "tokenizer"], "doc_sep": "line"},
 *      {"name": "model", "kind": "pretrain", "inputs": ["data", "tokenizer"], "config": {...}, "steps": 1000}]}
 *
 *   lm_recipe *r = lm_recipe_load("recipes/default.json", &err);
 *   ... r->inputs[i], r->stages[j] ...
 *   lm_recipe_free(r);
 *
 * Loading validates everything that can be checked without running a stage:
 * the version, names (unique, [a-z0-9_-], 1..64 bytes), input specs, stage
 * kinds, every stage input naming a recipe input or an earlier stage of the
 * right kind, and the parameters of the tokenizer and data kinds (known keys,
 * types, ranges). Errors name the recipe file, the JSON path and byte offset.
 * Pretrain parameters are checked by the pretrain stage itself. */
#ifndef LEMMA_RECIPE_RECIPE_H
#define LEMMA_RECIPE_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "formats/json.h"

enum { LM_RECIPE_VERSION = 1 };

/* Built-in inputs: text lemma makes itself (no file in the recipe). */
enum lm_builtin {
    LM_BUILTIN_NONE = 0,
    LM_BUILTIN_BIBLE_KJV,   /* `bible -f Gen1:1-Rev22:21` (Debian bible-kjv): one verse per line */
    LM_BUILTIN_SYNTH_TEXT,  /* lm_synth_text(seed, lines): generated sentences, one per line */
    LM_BUILTIN_TASKS,       /* a set from the synthetic domains (recipe/taskset.h), JSONL */
};

typedef struct lm_recipe_input {
    const char *name;
    int builtin;             /* enum lm_builtin */
    const char *path;        /* file inputs: as written in the recipe */
    char *resolved;          /* file inputs: path relative to the recipe's directory; tasks inputs: the
                                templates file, so resolved (NULL when none) */
    int exclude;             /* tasks inputs: index of the input whose questions are excluded, or -1 */
    char sha256[65];         /* expected hash, "" when the recipe gives none */
    uint64_t seed;           /* synth-text */
    int64_t lines;           /* synth-text */
    const json_value *def;
} lm_recipe_input;

enum { LM_STAGE_TOKENIZER = 1, LM_STAGE_DATA, LM_STAGE_PRETRAIN, LM_STAGE_SFT, LM_STAGE_VERIFIER_RL,
       LM_STAGE_DISTILL, LM_STAGE_GRPO, LM_STAGE_RFT, LM_STAGE_LAST = LM_STAGE_RFT };

typedef struct lm_recipe_stage {
    const char *name;
    const char *kind;        /* as written */
    int kind_id;             /* LM_STAGE_* */
    const json_value *def;   /* the stage object (its parameters) */
    int n_inputs;
    const char **inputs;     /* names, in recipe order */
    int *input_ref;          /* >= 0: index of a recipe input; < 0: -(stage index) - 1 */
} lm_recipe_stage;

typedef struct lm_recipe {
    json_doc *doc;
    char *text;              /* the recipe bytes */
    size_t len;
    char *path;              /* as given */
    char *dir;               /* its directory ("." when none) */
    char sha256[65];         /* of the recipe bytes */
    const char *name;        /* "name", else the file name without .json */
    char *name_buf;
    int n_inputs;
    lm_recipe_input *inputs;
    int n_stages;
    lm_recipe_stage *stages;
} lm_recipe;

lm_recipe *lm_recipe_load(const char *path, lm_error *err);
/* The same from bytes in memory (path names the file in messages and sets the
 * directory that relative input paths start from). The fuzzer calls this. */
lm_recipe *lm_recipe_parse(const char *text, size_t len, const char *path, lm_error *err);
void lm_recipe_free(lm_recipe *r);

/* Index of a stage by name, or -1. */
int lm_recipe_stage_index(const lm_recipe *r, const char *name);
const char *lm_builtin_name(int builtin);

/* A canonical, one-line JSON text of v (members in source order, no
 * spaces, integers as integers, other numbers with 17 significant digits),
 * appended to out: the stage key hashes this, so layout and comments-free
 * reformatting of a recipe do not rebuild anything. -1 out of memory. */
int lm_json_canonical(const json_value *v, lm_text *out);

/* The synth-text built-in: `lines` lines of simple English-like sentences
 * and small arithmetic facts, a pure function of (seed, line index).
 * Appends to out; -1 out of memory. */
int lm_synth_text(uint64_t seed, int64_t lines, lm_text *out);

#endif
