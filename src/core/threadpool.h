/* threadpool.h — a persistent pool of worker threads.
 *
 * lm_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once on each of the nth
 * threads (the caller is thread 0) and returns when all are done. Workers
 * block on a futex between jobs (after a short bounded spin, 4 us by default,
 * LEMMA_POOL_SPIN_US to change, none when there are more threads than
 * cores): a pool that spin-waits collapses on a 2-core machine when anything
 * else runs.
 *
 * Determinism contract for users of the pool: fn must split work by output
 * (rows, columns, heads), never by reduction index, so that every output value
 * is computed by one thread in a fixed order and the result does not depend on
 * nth. lm_split() gives the canonical contiguous split. */
#ifndef LEMMA_CORE_THREADPOOL_H
#define LEMMA_CORE_THREADPOOL_H

#include <stdint.h>

#include "core/error.h"

typedef struct lm_pool lm_pool;
typedef void (*lm_pool_fn)(void *ctx, int ith, int nth);

/* nthreads <= 0 means all online cores. Returns NULL only on allocation or
 * pthread failure. */
lm_pool *lm_pool_create(int nthreads);
/* The same, saying why on failure: "cannot start thread 412 of 1000:
 * Resource temporarily unavailable (limits here: ...)". */
lm_pool *lm_pool_create_err(int nthreads, lm_error *err);
void lm_pool_free(lm_pool *pool);
int lm_pool_size(const lm_pool *pool);

/* Runs fn on all threads; pool may be NULL (runs fn(ctx, 0, 1) inline).
 * Not re-entrant: fn must not call lm_pool_run on the same pool. */
void lm_pool_run(lm_pool *pool, lm_pool_fn fn, void *ctx);

/* Like lm_pool_run, for jobs that share out their work themselves (an
 * atomic counter over items, say): threads that have not started fn by the
 * time the caller's own call returns are skipped, so a worker that wakes
 * late (20-60 us on a busy VM) does not delay the caller. fn must therefore
 * not rely on every ith running, and must leave no work unclaimed when it
 * returns on any thread. Returns when every thread that started fn has
 * finished it. */
void lm_pool_run_dynamic(lm_pool *pool, lm_pool_fn fn, void *ctx);

/* Thread ith's share [*begin, *end) of n items split into nth contiguous
 * chunks, each a multiple of `align` items (except the last). */
static inline void lm_split(int64_t n, int ith, int nth, int64_t align, int64_t *begin,
                            int64_t *end) {
    if (align < 1) align = 1;
    int64_t blocks = (n + align - 1) / align;
    int64_t b0 = blocks * ith / nth, b1 = blocks * (ith + 1) / nth;
    *begin = b0 * align < n ? b0 * align : n;
    *end = b1 * align < n ? b1 * align : n;
}

#endif
