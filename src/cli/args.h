/* args.h — what the subcommands share besides their options (those are in
 * options.h): stdout that notices a failed write at once, the default
 * thread count. */
#ifndef LEMMA_CLI_ARGS_H
#define LEMMA_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Streaming output on stdout: writes len bytes and flushes, so that a
 * stdout that cannot take them (a full disk, /dev/full) is noticed now, not
 * after minutes of generation. Returns 0, or -1 with the reason kept for
 * stdout_failed. */
int stdout_write(const void *data, size_t len);
/* True when a write to stdout has failed (stdout_write's or stdio's); then
 * prints "lemma CMD: cannot write to stdout: REASON". main() checks once more
 * when the command returns. */
int stdout_failed(const char *cmd);
/* The errno of the first failed stdout_write, or 0. */
int stdout_errno(void);

/* Default thread count: all online cores. */
int args_default_threads(void);

#endif
