/* threadpool.c — a persistent pool: the caller is thread 0, workers 1..n-1.
 *
 * Protocol (all shared words are C11 atomics; futexes are only used to sleep):
 *   - `gen` is the job generation. lm_pool_run stores fn/ctx, sets `pending`
 *     to n-1, then increments `gen` (release). A worker that sees a new
 *     generation (acquire) runs fn(ctx, ith, n), then decrements `pending`
 *     (acq_rel); the worker that brings it to 0 wakes the caller if it sleeps.
 *   - Waiting is a bounded spin (a few microseconds, with pause), then
 *     FUTEX_WAIT on the word. Sleepers are counted (`gen_sleepers`,
 *     `done_sleeping`) so that a wake-up syscall is made only when someone may
 *     sleep; the counter and the word are read with seq_cst ordering on both
 *     sides, so a wake-up cannot be lost (Dekker: the waiter announces itself
 *     then re-checks the word; FUTEX_WAIT re-checks it once more atomically).
 *   - One FUTEX_WAKE(INT_MAX) per job wakes all sleeping workers: O(n) work
 *     in the kernel, no O(n^2) hand-offs.
 *   - Shutdown: `stop` is set, then `gen` bumped and everyone woken.
 *   - Dynamic jobs (lm_pool_run_dynamic): generations go up by 2 and bit 0
 *     of `gen` marks a dynamic job, so a worker learns the kind together
 *     with the generation. Instead of `pending`, a worker must check in on
 *     `dstate` = [job generation:32 | closed:1 | active:31] with a CAS that
 *     succeeds only while the generation matches and the job is open; only
 *     then does it read fn/ctx. When its own fn returns, the caller sets the
 *     closed bit and waits for `active` to drain (spin, then futex on
 *     `dwake`); a worker that arrives later sees `closed` (or a newer
 *     generation) and skips the job without touching ctx. So a sleeping
 *     worker that wakes late costs the caller nothing.
 *
 * The pool is not re-entrant (fn may not call lm_pool_run on the same pool),
 * and one pool serves one caller thread at a time. */
#include "core/threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a waiter spins before sleeping (LEMMA_POOL_SPIN_US overrides).
 * Short: on a 2-core machine a spinning thread steals the core another
 * thread needs. No spinning at all when there are more threads than cores. */
#define SPIN_NS 4000

#define DCLOSED ((uint64_t)1 << 31)
#define DACTIVE (DCLOSED - 1)

typedef struct worker {
    lm_pool *pool;
    int ith;
    pthread_t tid;
} worker;

struct lm_pool {
    int n;                          /* threads including the caller */
    int64_t spin_ns;                /* bounded spin before sleeping; 0 when oversubscribed */
    worker *workers;                /* n-1 */
    _Alignas(64) atomic_uint gen;   /* job generation (futex word) */
    atomic_int gen_sleepers;        /* workers inside FUTEX_WAIT on gen */
    atomic_int stop;
    _Alignas(64) atomic_uint pending; /* workers still running the job (futex word) */
    atomic_int done_sleeping;       /* caller inside FUTEX_WAIT on pending */
    _Alignas(64) _Atomic uint64_t dstate; /* dynamic job: gen << 32 | closed | active */
    atomic_uint dwake;              /* bumped when the last active worker leaves (futex word) */
    _Alignas(64) lm_pool_fn _Atomic fn;
    void *_Atomic ctx;
};

static void futex_wait(atomic_uint *addr, unsigned val) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(atomic_uint *addr, int n) {
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until *word != val or SPIN_NS elapse; returns the last value seen. */
static unsigned spin_while_equal(atomic_uint *word, unsigned val, int64_t spin_ns) {
    unsigned v = atomic_load_explicit(word, memory_order_acquire);
    if (v != val || spin_ns <= 0) return v;
    int64_t t0 = now_ns();
    for (int i = 1;; i++) {
        cpu_relax();
        v = atomic_load_explicit(word, memory_order_acquire);
        if (v != val) return v;
        if ((i & 15) == 0 && now_ns() - t0 > spin_ns) return v;
    }
}

static void *worker_main(void *arg) {
    worker *w = (worker *)arg;
    lm_pool *p = w->pool;
    unsigned seen = 0; /* generation of the last job this worker ran */
    for (;;) {
        unsigned g = spin_while_equal(&p->gen, seen, p->spin_ns);
        while (g == seen) {
            atomic_fetch_add(&p->gen_sleepers, 1); /* seq_cst: announce, then re-check */
            g = atomic_load(&p->gen);
            if (g == seen) futex_wait(&p->gen, seen);
            atomic_fetch_sub(&p->gen_sleepers, 1);
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        if (g & 1) { /* dynamic: check in, unless the job is closed or gone */
            uint64_t st = atomic_load(&p->dstate);
            int in = 0;
            while ((uint32_t)(st >> 32) == g && !(st & DCLOSED))
                if (atomic_compare_exchange_weak(&p->dstate, &st, st + 1)) {
                    in = 1;
                    break;
                }
            if (!in) continue;
            lm_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
            void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
            fn(ctx, w->ith, p->n);
            st = atomic_fetch_sub(&p->dstate, 1);
            if ((st & DACTIVE) == 1 && (st & DCLOSED)) { /* last one out of a closed job */
                atomic_fetch_add(&p->dwake, 1);
                futex_wake(&p->dwake, 1);
            }
            continue;
        }
        lm_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
        fn(ctx, w->ith, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1) { /* seq_cst, pairs with done_sleeping */
            /* last one out: the caller may be asleep on `pending` */
            if (atomic_load(&p->done_sleeping)) futex_wake(&p->pending, 1);
        }
    }
    return NULL;
}

lm_pool *lm_pool_create(int nthreads) { return lm_pool_create_err(nthreads, NULL); }

/* Why thread i of n could not start: the error and the limits that bound
 * threads (processes per user, address space against the stack size). */
static void thread_fail(lm_error *err, int i, int n, int e) {
    struct rlimit nproc, as, stack;
    char lim[256] = "";
    size_t k = 0;
    if (getrlimit(RLIMIT_NPROC, &nproc) == 0 && nproc.rlim_cur != RLIM_INFINITY)
        k += (size_t)snprintf(lim + k, sizeof lim - k, "%s%llu processes per user (ulimit -u)", k ? ", " : "",
                              (unsigned long long)nproc.rlim_cur);
    if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY && getrlimit(RLIMIT_STACK, &stack) == 0 &&
        k < sizeof lim)
        k += (size_t)snprintf(lim + k, sizeof lim - k, "%s%llu MiB of address space (ulimit -v) with %llu MiB of stack per thread",
                              k ? ", " : "", (unsigned long long)(as.rlim_cur >> 20),
                              (unsigned long long)(stack.rlim_cur == RLIM_INFINITY ? 8 : stack.rlim_cur >> 20));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    lm_fail(err, "cannot start thread %d of %d: %s (limits here: %s; this machine has %ld cores, use fewer --threads)",
            i + 1, n, strerror(e), k ? lim : "none set, so the system ran out of threads or memory", ncpu);
}

lm_pool *lm_pool_create_err(int nthreads, lm_error *err) {
    if (nthreads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = c > 0 ? (int)c : 1;
    }
    lm_pool *p = (lm_pool *)aligned_alloc(64, (sizeof(lm_pool) + 63) / 64 * 64);
    if (!p) {
        lm_fail(err, "out of memory for a pool of %d threads", nthreads);
        return NULL;
    }
    p->n = nthreads;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *spin = getenv("LEMMA_POOL_SPIN_US");
    p->spin_ns = spin && *spin ? (int64_t)(atof(spin) * 1000) : SPIN_NS;
    if (ncpu > 0 && nthreads > ncpu) p->spin_ns = 0; /* oversubscribed: spinning only steals */
    atomic_init(&p->gen, 0);
    atomic_init(&p->gen_sleepers, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->done_sleeping, 0);
    atomic_init(&p->dstate, 0);
    atomic_init(&p->dwake, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    p->workers = NULL;
    if (nthreads > 1) {
        p->workers = (worker *)calloc((size_t)nthreads - 1, sizeof(worker));
        if (!p->workers) {
            free(p);
            lm_fail(err, "out of memory for a pool of %d threads", nthreads);
            return NULL;
        }
    }
    for (int i = 1; i < nthreads; i++) {
        worker *w = &p->workers[i - 1];
        w->pool = p;
        w->ith = i;
        int e = pthread_create(&w->tid, NULL, worker_main, w);
        if (e != 0) {
            p->n = i; /* shut down the ones already started */
            lm_pool_free(p);
            thread_fail(err, i, nthreads, e);
            return NULL;
        }
    }
    return p;
}

void lm_pool_free(lm_pool *p) {
    if (!p) return;
    if (p->n > 1) {
        atomic_store(&p->stop, 1);
        atomic_store(&p->gen, (atomic_load(&p->gen) & ~1u) + 2); /* seq_cst */
        futex_wake(&p->gen, INT_MAX);
        for (int i = 1; i < p->n; i++) pthread_join(p->workers[i - 1].tid, NULL);
    }
    free(p->workers);
    free(p);
}

int lm_pool_size(const lm_pool *p) { return p ? p->n : 1; }

void lm_pool_run(lm_pool *p, lm_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&p->pending, (unsigned)(p->n - 1), memory_order_relaxed);
    /* only the caller writes gen: next even generation, bit 0 clear (static) */
    atomic_store(&p->gen, (atomic_load_explicit(&p->gen, memory_order_relaxed) & ~1u) + 2); /* seq_cst: publishes fn/ctx/pending */
    if (atomic_load(&p->gen_sleepers) > 0) futex_wake(&p->gen, INT_MAX);

    fn(ctx, 0, p->n);

    unsigned left = atomic_load_explicit(&p->pending, memory_order_acquire);
    if (left == 0) return;
    int64_t t0 = now_ns();
    for (int i = 1; left != 0 && p->spin_ns > 0; i++) {
        cpu_relax();
        left = atomic_load_explicit(&p->pending, memory_order_acquire);
        if ((i & 15) == 0 && left != 0 && now_ns() - t0 > p->spin_ns) break;
    }
    while (left != 0) {
        atomic_store(&p->done_sleeping, 1); /* seq_cst: announce, then re-check */
        left = atomic_load(&p->pending);
        if (left != 0) futex_wait(&p->pending, left);
        atomic_store(&p->done_sleeping, 0);
        left = atomic_load_explicit(&p->pending, memory_order_acquire);
    }
}

void lm_pool_run_dynamic(lm_pool *p, lm_pool_fn fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    unsigned g = ((atomic_load_explicit(&p->gen, memory_order_relaxed) & ~1u) + 2) | 1u;
    atomic_store(&p->dstate, (uint64_t)g << 32); /* open, nobody in; publishes fn/ctx */
    atomic_store(&p->gen, g);                    /* seq_cst */
    if (atomic_load(&p->gen_sleepers) > 0) futex_wake(&p->gen, INT_MAX);

    fn(ctx, 0, p->n);

    uint64_t st = atomic_fetch_or(&p->dstate, DCLOSED); /* late arrivals now skip */
    if ((st & DACTIVE) == 0) return;
    int64_t t0 = now_ns();
    for (int i = 1; p->spin_ns > 0; i++) {
        cpu_relax();
        if ((atomic_load_explicit(&p->dstate, memory_order_acquire) & DACTIVE) == 0) return;
        if ((i & 15) == 0 && now_ns() - t0 > p->spin_ns) break;
    }
    for (;;) {
        unsigned w = atomic_load(&p->dwake); /* read before the re-check: no lost wake-up */
        if ((atomic_load(&p->dstate) & DACTIVE) == 0) return;
        futex_wait(&p->dwake, w);
    }
}
