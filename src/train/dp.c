/* dp.c — the process group; see dp.h. Compiled with -DLEMMA_MPI and MPI's
 * include flags when the Makefile finds mpicc, else as a group of one. */
#include "train/dp.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#ifdef LEMMA_MPI
#include <mpi.h>
#endif

/* What the common launchers put in a rank's environment. */
int lm_dp_env_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (!*end && n >= 1 && n <= INT_MAX && (i < 3 || getenv("OMPI_COMM_WORLD_RANK") || getenv("PMI_RANK")))
                return (int)n;
        }
    }
    return 1;
}

int lm_dp_env_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) {
            char *end;
            long n = strtol(v, &end, 10);
            if (!*end && n >= 0 && n <= INT_MAX) return (int)n;
        }
    }
    return 0;
}

static int g_rank = 0, g_size = 1, g_started = 0;

static int g_told = 0;
void lm_dp_mark_stop_told(void) { g_told = 1; }
int lm_dp_stop_was_told(void) { return g_told; }

static const void *g_deferred;
static size_t g_deferred_bytes;
static int g_deferred_sent;

void lm_dp_defer_bcast(const void *buf, size_t bytes) {
    g_deferred = buf;
    g_deferred_bytes = bytes;
    g_deferred_sent = 0;
}

int lm_dp_defer_end(void) {
    g_deferred = NULL;
    return g_deferred_sent;
}

static int g_solo = 0;
int lm_dp_solo(int on) {
    int was = g_solo;
    g_solo = !!on;
    return was;
}

int lm_dp_rank(void) { return g_solo ? 0 : g_rank; }
int lm_dp_size(void) { return g_solo ? 1 : g_size; }

#ifdef LEMMA_MPI

int lm_dp_built(void) { return 1; }

static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

int lm_dp_start(lm_error *err) {
    if (g_started || !launched_by_mpirun()) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return lm_fail(err, "MPI_Init failed (started by mpirun, but MPI could not start)");
    g_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    return 0;
}

void lm_dp_stop(void) {
    if (!g_started) return;
    g_started = 0;
    MPI_Finalize();
}

void lm_dp_abort(int code) {
    if (g_started) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/* Pieces of at most 1 GiB: MPI counts are ints. */
#define PIECE ((size_t)1 << 30)

static int bcast_pieces(void *buf, size_t bytes, int root, lm_error *err);

/* The deferred word goes out before the transfer that needs the others. */
static int flush_deferred(lm_error *err) {
    if (!g_deferred) return 0;
    void *buf = (void *)g_deferred;
    g_deferred = NULL;
    g_deferred_sent = 1;
    return lm_dp_bcast_idle(buf, g_deferred_bytes, 0, err);
}

int lm_dp_send(const void *buf, size_t bytes, int to, lm_error *err) {
    if (flush_deferred(err)) return -1;
    for (size_t at = 0; at < bytes || (!bytes && !at); at += PIECE) {
        size_t n = bytes - at < PIECE ? bytes - at : PIECE;
        if (MPI_Send((const char *)buf + at, (int)n, MPI_BYTE, to, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            return lm_fail(err, "rank %d: sending %zu bytes to rank %d failed", g_rank, bytes, to);
        if (!bytes) break;
    }
    return 0;
}

int lm_dp_recv(void *buf, size_t bytes, int from, lm_error *err) {
    if (flush_deferred(err)) return -1;
    for (size_t at = 0; at < bytes || (!bytes && !at); at += PIECE) {
        size_t n = bytes - at < PIECE ? bytes - at : PIECE;
        int got = -1;
        MPI_Status st;
        if (MPI_Recv((char *)buf + at, (int)n, MPI_BYTE, from, 0, MPI_COMM_WORLD, &st) != MPI_SUCCESS ||
            MPI_Get_count(&st, MPI_BYTE, &got) != MPI_SUCCESS || got != (int)n)
            return lm_fail(err, "rank %d: receiving %zu bytes from rank %d failed (got %d)", g_rank, n, from, got);
        if (!bytes) break;
    }
    return 0;
}

int lm_dp_bcast(void *buf, size_t bytes, int root, lm_error *err) {
    return flush_deferred(err) || bcast_pieces(buf, bytes, root, err) ? -1 : 0;
}

static int bcast_pieces(void *buf, size_t bytes, int root, lm_error *err) {
    for (size_t at = 0; at < bytes; at += PIECE) {
        size_t n = bytes - at < PIECE ? bytes - at : PIECE;
        if (MPI_Bcast((char *)buf + at, (int)n, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS)
            return lm_fail(err, "rank %d: broadcast of %zu bytes from rank %d failed", g_rank, bytes, root);
    }
    return 0;
}

int lm_dp_bcast_idle(void *buf, size_t bytes, int root, lm_error *err) {
    if (bytes > PIECE) return lm_fail(err, "rank %d: a waiting broadcast of %zu bytes (at most 1 GiB)", g_rank, bytes);
    MPI_Request req;
    if (MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &req) != MPI_SUCCESS)
        return lm_fail(err, "rank %d: broadcast of %zu bytes from rank %d failed", g_rank, bytes, root);
    /* checks every 0.2 ms at first, then every 10 ms: a short wait costs
     * little latency, a long one (a stage rank 0 runs alone) no core */
    long ns = 200000;
    for (;;) {
        int done = 0;
        if (MPI_Test(&req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return lm_fail(err, "rank %d: broadcast of %zu bytes from rank %d failed", g_rank, bytes, root);
        if (done) return 0;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (ns < 10000000) ns *= 2;
    }
}

int lm_dp_barrier(lm_error *err) {
    if (flush_deferred(err)) return -1;
    if (MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) return lm_fail(err, "rank %d: barrier failed", g_rank);
    return 0;
}

#else /* no MPI: a group of one */

int lm_dp_built(void) { return 0; }

int lm_dp_start(lm_error *err) {
    int n = lm_dp_env_size();
    if (n > 1)
        return lm_fail(err, "started as one of %d ranks (mpirun), but this lemma was built without MPI: install "
                            "libopenmpi-dev (scripts/install-deps.sh) and rebuild, or run without mpirun",
                       n);
    g_started = 1;
    return 0;
}

void lm_dp_stop(void) { g_started = 0; }
void lm_dp_abort(int code) { exit(code); }

static int alone(lm_error *err) { return lm_fail(err, "no other rank: this lemma was built without MPI"); }
int lm_dp_send(const void *buf, size_t bytes, int to, lm_error *err) { return alone(err); }
int lm_dp_recv(void *buf, size_t bytes, int from, lm_error *err) { return alone(err); }
int lm_dp_bcast(void *buf, size_t bytes, int root, lm_error *err) { return 0; }
int lm_dp_bcast_idle(void *buf, size_t bytes, int root, lm_error *err) { return 0; }
int lm_dp_barrier(lm_error *err) { return 0; }

#endif
