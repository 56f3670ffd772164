/* memcheck.h — the memory check every command that loads a model makes
 * before loading (model/memplan.h): the plan from the checkpoint's headers
 * against the machine's available memory, refused with one line naming the
 * numbers unless --no-memory-check is given. */
#ifndef LEMMA_CLI_MEMCHECK_H
#define LEMMA_CLI_MEMCHECK_H

#include "cli/options.h"
#include "model/memplan.h"

/* --no-memory-check, for the table of every loading command. */
#define CLI_OPT_NO_MEMORY_CHECK(type, field)                                                               \
    {"--no-memory-check", NULL, CLI_FLAG, CLI_AT(type, field),                                             \
     .help = "load even when the weights, cache and buffers need more memory\n"                            \
             "than the machine has available (see lemma info)"}

/* 0: go on (the plan fits, or skip, or the plan cannot be read or the
 * tensors do not match the config: the loader then reports what is wrong
 * with the checkpoint in its own words). 1: refused,
 * after printing "lemma CMD: DIR needs ... but ... is available (...); pass
 * --no-memory-check to load anyway" on stderr. */
int cli_memory_check(const char *cmd, const char *dir, const lm_memplan_req *req, int skip);

/* The cache positions the batched engine reserves for max_seqs sequences of
 * max_ctx (infer/engine.c: at most a quarter of physical memory, at least
 * one full context). */
int64_t cli_engine_cache_tokens(const char *dir, int64_t max_ctx, int64_t max_seqs, lm_attn_mode attn);

#endif
