/* test_threadpool.c — the persistent pool: every thread runs every job once,
 * results written by workers are visible to the caller when lm_pool_run
 * returns, oversubscription (8 threads on 2 cores) does not collapse, two
 * pools can be driven from two threads at once, and pools shut down cleanly
 * whether idle, fresh or busy a moment before. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/threadpool.h"
#include "test.h"

enum { MAXT = 16 };

typedef struct count_job {
    int nth_seen[MAXT];  /* nth each thread was given (plain writes: one writer each) */
    long runs[MAXT];     /* how many times thread ith ran */
    atomic_long total;   /* all calls */
    long payload[MAXT];  /* written by worker ith, read by the caller */
    long round;
} count_job;

static void count_fn(void *ctx, int ith, int nth) {
    count_job *j = (count_job *)ctx;
    j->nth_seen[ith] = nth;
    j->runs[ith]++;
    j->payload[ith] = j->round * 1000 + ith;
    atomic_fetch_add_explicit(&j->total, 1, memory_order_relaxed);
}

/* Runs `runs` jobs on an n-thread pool and checks every count and payload. */
static void many_jobs(int n, long runs) {
    lm_pool *p = lm_pool_create(n);
    CHECK(p != NULL);
    if (!p) return;
    CHECK(lm_pool_size(p) == n);
    count_job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.total, 0);
    long bad_payload = 0;
    double t0 = lm_now_s();
    for (long r = 0; r < runs; r++) {
        j.round = r;
        lm_pool_run(p, count_fn, &j);
        for (int i = 0; i < n; i++) bad_payload += j.payload[i] != r * 1000 + i;
    }
    double dt = lm_now_s() - t0;
    printf("  %d threads: %ld runs in %.3f s (%.2f us/run)\n", n, runs, dt, dt / runs * 1e6);
    CHECK(atomic_load(&j.total) == runs * n);
    for (int i = 0; i < n; i++) {
        CHECKF(j.runs[i] == runs, "thread %d ran %ld of %ld", i, j.runs[i], runs);
        CHECK(j.nth_seen[i] == n);
    }
    CHECKF(bad_payload == 0, "%ld payloads not visible", bad_payload);
    lm_pool_free(p);
}

TEST(null_pool_runs_inline) {
    count_job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.total, 0);
    lm_pool_run(NULL, count_fn, &j);
    CHECK(j.runs[0] == 1 && j.nth_seen[0] == 1 && atomic_load(&j.total) == 1);
    CHECK(lm_pool_size(NULL) == 1);
    lm_pool *p = lm_pool_create(1);
    CHECK(p && lm_pool_size(p) == 1);
    lm_pool_run(p, count_fn, &j);
    CHECK(j.runs[0] == 2 && j.nth_seen[0] == 1);
    lm_pool_free(p);
    lm_pool_free(NULL);
}

TEST(default_size_is_online_cores) {
    lm_pool *p = lm_pool_create(0);
    CHECK(p != NULL);
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(lm_pool_size(p) == (c > 0 ? c : 1));
    lm_pool_free(p);
}

TEST(tiny_jobs_1_thread) { many_jobs(1, 100000); }
TEST(tiny_jobs_2_threads) { many_jobs(2, 100000); }
TEST(tiny_jobs_3_threads) { many_jobs(3, 30000); }
/* 8 threads on 2 cores: must finish in about the time of the others, not
 * collapse into scheduler ping-pong. */
TEST(tiny_jobs_8_threads_oversubscribed) { many_jobs(8, 20000); }

/* Jobs of uneven length: workers that finish early go to sleep and must be
 * woken for the next job; the caller may be the slow one or not. */
typedef struct uneven_job {
    long round;
    atomic_long sum;
} uneven_job;

static void uneven_fn(void *ctx, int ith, int nth) {
    uneven_job *j = (uneven_job *)ctx;
    if ((j->round + ith) % nth == 0) usleep(200); /* one thread is slow each round */
    atomic_fetch_add(&j->sum, ith + 1);
}

TEST(uneven_jobs_sleep_and_wake) {
    for (int n = 2; n <= 8; n *= 2) {
        lm_pool *p = lm_pool_create(n);
        CHECK(p != NULL);
        if (!p) return;
        uneven_job j;
        atomic_init(&j.sum, 0);
        for (j.round = 0; j.round < 200; j.round++) {
            lm_pool_run(p, uneven_fn, &j);
            if (j.round % 50 == 0) usleep(2000); /* let everyone fall asleep */
        }
        CHECK(atomic_load(&j.sum) == 200L * n * (n + 1) / 2);
        lm_pool_free(p);
    }
}

TEST(destroy_idle_fresh_and_after_work) {
    for (int rep = 0; rep < 20; rep++) { /* fresh: workers may not have started yet */
        lm_pool *p = lm_pool_create(1 + rep % 8);
        CHECK(p != NULL);
        lm_pool_free(p);
    }
    lm_pool *p = lm_pool_create(4);
    CHECK(p != NULL);
    if (!p) return;
    count_job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.total, 0);
    lm_pool_run(p, count_fn, &j);
    usleep(20000); /* idle long enough that every worker sleeps in the kernel */
    lm_pool_free(p);
    CHECK(atomic_load(&j.total) == 4);
    p = lm_pool_create(4); /* destroy right after a job: workers may still spin */
    CHECK(p != NULL);
    if (!p) return;
    lm_pool_run(p, count_fn, &j);
    lm_pool_free(p);
    CHECK(atomic_load(&j.total) == 8);
}

/* Two pools driven from two caller threads at once. */
typedef struct driver_arg {
    int n;
    long runs;
    long ok;
} driver_arg;

static void *driver(void *v) {
    driver_arg *a = (driver_arg *)v;
    lm_pool *p = lm_pool_create(a->n);
    if (!p) return NULL;
    count_job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.total, 0);
    for (long r = 0; r < a->runs; r++) {
        j.round = r;
        lm_pool_run(p, count_fn, &j);
    }
    a->ok = atomic_load(&j.total) == a->runs * a->n;
    for (int i = 0; i < a->n; i++) a->ok &= j.runs[i] == a->runs;
    lm_pool_free(p);
    return NULL;
}

TEST(two_pools_two_callers) {
    driver_arg a = {2, 20000, 0}, b = {3, 20000, 0};
    pthread_t ta, tb;
    CHECK(pthread_create(&ta, NULL, driver, &a) == 0);
    CHECK(pthread_create(&tb, NULL, driver, &b) == 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(a.ok && b.ok);
}

/* Dynamic jobs: items handed out by an atomic counter; every item must be
 * done exactly once, whoever shows up. Static and dynamic jobs alternate, and
 * sleeps make workers arrive late (after the caller closed the job). */
enum { ITEMS = 64 };
typedef struct dyn_job {
    atomic_int next;
    atomic_int done[ITEMS];
    int slow; /* microseconds per item on workers (ith > 0) */
} dyn_job;

static void dyn_fn(void *ctx, int ith, int nth) {
    (void)nth;
    dyn_job *j = (dyn_job *)ctx;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= ITEMS) return;
        if (ith > 0 && j->slow) usleep((useconds_t)j->slow);
        atomic_fetch_add(&j->done[i], 1);
    }
}

static void dynamic_jobs(int n, long runs) {
    lm_pool *p = lm_pool_create(n);
    CHECK(p != NULL);
    if (!p) return;
    count_job cj;
    memset(&cj, 0, sizeof cj);
    atomic_init(&cj.total, 0);
    long bad = 0, static_runs = 0;
    double t0 = lm_now_s();
    for (long r = 0; r < runs; r++) {
        dyn_job j; /* on the stack: late workers must never touch it */
        atomic_init(&j.next, 0);
        for (int i = 0; i < ITEMS; i++) atomic_init(&j.done[i], 0);
        j.slow = (r % 97 == 0) ? 50 : 0;
        if (r % 1000 == 999) usleep(3000); /* everyone falls asleep */
        lm_pool_run_dynamic(p, dyn_fn, &j);
        for (int i = 0; i < ITEMS; i++) bad += atomic_load(&j.done[i]) != 1;
        memset(&j, 0xff, sizeof j); /* a late reader would now see garbage */
        if (r % 3 == 0) {
            cj.round = static_runs++;
            lm_pool_run(p, count_fn, &cj);
        }
    }
    double dt = lm_now_s() - t0;
    printf("  %d threads: %ld dynamic runs in %.3f s\n", n, runs, dt);
    CHECKF(bad == 0, "%ld items not done exactly once", bad);
    CHECK(atomic_load(&cj.total) == static_runs * n);
    for (int i = 0; i < n; i++) CHECK(cj.runs[i] == static_runs);
    lm_pool_free(p);
}

TEST(dynamic_jobs_1_thread) { dynamic_jobs(1, 20000); }
TEST(dynamic_jobs_2_threads) { dynamic_jobs(2, 20000); }
TEST(dynamic_jobs_3_threads) { dynamic_jobs(3, 10000); }
TEST(dynamic_jobs_8_threads) { dynamic_jobs(8, 5000); }

TEST(split_covers_exactly) {
    for (int64_t n = 0; n < 300; n += 7)
        for (int nth = 1; nth <= 9; nth++)
            for (int64_t align = 1; align <= 64; align *= 4) {
                int64_t next = 0;
                for (int i = 0; i < nth; i++) {
                    int64_t b, e;
                    lm_split(n, i, nth, align, &b, &e);
                    CHECK(b == next && e >= b && e <= n);
                    CHECK(b % align == 0 || b == n);
                    next = e;
                }
                CHECK(next == n);
            }
}

int main(void) {
    RUN(null_pool_runs_inline);
    RUN(default_size_is_online_cores);
    RUN(tiny_jobs_1_thread);
    RUN(tiny_jobs_2_threads);
    RUN(tiny_jobs_3_threads);
    RUN(tiny_jobs_8_threads_oversubscribed);
    RUN(uneven_jobs_sleep_and_wake);
    RUN(destroy_idle_fresh_and_after_work);
    RUN(two_pools_two_callers);
    RUN(dynamic_jobs_1_thread);
    RUN(dynamic_jobs_2_threads);
    RUN(dynamic_jobs_3_threads);
    RUN(dynamic_jobs_8_threads);
    RUN(split_covers_exactly);
    return test_report("test_threadpool");
}
