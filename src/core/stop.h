/* stop.h — a process-wide stop request that long loops poll.
 *
 * Every loop that can run long (hashing a file, tokenizer training, building
 * token shards, training steps) checks lm_stop_requested() at least every
 * fraction of a second and then fails with "interrupted" (after saving what
 * lets it resume, where it can). The CLI turns SIGINT and SIGTERM into a
 * request:
 *
 *   lm_stop_on_signals();             // in a command, before the long work
 *   ... if (lm_stop_requested()) return lm_fail(err, "interrupted"); ...
 *
 * The first signal requests a stop and restores the default action, so a
 * second one ends the process at once. Handlers use SA_RESTART; loops poll
 * the flag rather than rely on interrupted system calls. */
#ifndef LEMMA_CORE_STOP_H
#define LEMMA_CORE_STOP_H

/* Installs the SIGINT and SIGTERM handlers described above. */
void lm_stop_on_signals(void);
/* Async-signal-safe. */
void lm_stop_request(void);
int lm_stop_requested(void);
/* Forgets a request (tests that stop and then go on in one process). */
void lm_stop_clear(void);

#endif
