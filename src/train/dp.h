/* dp.h — the process group of a data-parallel run (OpenMPI when lemma was
 * built with it, see the Makefile; otherwise a group of one).
 *
 *   if (lm_dp_start(&err)) ...;          // once, before training
 *   lm_dp_rank(), lm_dp_size()           // 0 and 1 outside mpirun
 *   ... lm_dp_send/recv/bcast ...
 *   lm_dp_stop();
 *
 * MPI is started only when the environment says mpirun started this process
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK), so a plain `lemma train`
 * never touches MPI. A lemma built without MPI that finds itself one of
 * several ranks fails in lm_dp_start with a message saying so, instead of
 * training K copies into one folder.
 *
 * Every call here is made by the main thread only. Transfers are exact byte
 * copies; sums are the caller's (train/run.c adds in rank order so that the
 * result does not depend on the number of ranks). A peer that dies makes
 * mpirun end the whole job (MPI's default error handler), which is the
 * stop-with-an-error a run wants: its checkpoints are written atomically. */
#ifndef LEMMA_TRAIN_DP_H
#define LEMMA_TRAIN_DP_H

#include <stddef.h>

#include "core/error.h"

/* 1 when this lemma was built with MPI. */
int lm_dp_built(void);
/* The number of ranks the launcher's environment announces (1 when none). */
int lm_dp_env_size(void);
/* This process's rank as the launcher's environment announces it (0 when
 * none): lets only one rank speak about a failure to start. */
int lm_dp_env_rank(void);
/* Joins the group (MPI_Init when launched by mpirun); idempotent. */
int lm_dp_start(lm_error *err);
int lm_dp_rank(void);
int lm_dp_size(void);
/* on: this rank acts as a group of one (rank 0 of 1) until called with
 * 0, for work it does alone while the other ranks wait for it, such as a
 * `lemma build` stage not written for ranks (a training run inside it then
 * trains in this process only). Returns the previous setting. */
int lm_dp_solo(int on);
/* Leaves the group (MPI_Finalize when started); idempotent. */
void lm_dp_stop(void);
/* Ends every rank of the job at once (MPI_Abort), for a rank that cannot go
 * on while the others wait for it. Outside MPI: exit(code). */
void lm_dp_abort(int code) __attribute__((noreturn));

/* Point to point and broadcast of raw bytes (any size: split into pieces
 * MPI's int counts can hold). */
int lm_dp_send(const void *buf, size_t bytes, int to, lm_error *err);
int lm_dp_recv(void *buf, size_t bytes, int from, lm_error *err);
int lm_dp_bcast(void *buf, size_t bytes, int root, lm_error *err);
/* A run that stops says so to the other ranks first, so that they stop
 * too and nobody needs lm_dp_abort; these record that it did. */
void lm_dp_mark_stop_told(void);
int lm_dp_stop_was_told(void);
/* Waits for every rank. */
int lm_dp_barrier(lm_error *err);

/* A broadcast the receiving ranks may wait long for (rank 0 doing work of
 * its own meanwhile): they sleep between checks instead of spinning on a
 * core, as MPI's blocking calls do. Matches only lm_dp_bcast_idle. */
int lm_dp_bcast_idle(void *buf, size_t bytes, int root, lm_error *err);

/* Rank 0: broadcast buf (kept by the caller until lm_dp_defer_end) just
 * before this rank's next send, receive, broadcast or barrier, if there is
 * one: a word the other ranks wait for (lm_dp_bcast of the same size) that
 * must reach them only if the work that follows involves them (sent with
 * lm_dp_bcast_idle) -- `lemma
 * build` says "train with me" this way, so that a stage that fails before
 * its run starts leaves them waiting for the build's next word instead of
 * inside a run that never comes. lm_dp_defer_end drops the word if it is
 * still pending and returns 1 if it was sent. */
void lm_dp_defer_bcast(const void *buf, size_t bytes);
int lm_dp_defer_end(void);

#endif
