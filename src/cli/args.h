/* args.h — small helpers for subcommand options: options may appear
 * anywhere, as "--name value" or "--name=value". */
#ifndef LEMMA_CLI_ARGS_H
#define LEMMA_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

typedef struct args {
    int argc;
    char **argv;
    int i;              /* current index */
    const char *cmd;    /* for messages */
    int bad;            /* an error was printed */
} args;

/* True when argv[i] is --name or -short (short may be NULL); on a match,
 * *val gets the value (from "=value" or the next argument) when val != NULL. */
int args_opt(args *a, const char *name, const char *short_name, const char **val);
/* Parses integers and reals with range checks; print an error and set bad. */
int args_int(args *a, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out);
int args_double(args *a, const char *opt, const char *s, double lo, double hi, double *out);
/* "1,5,9" -> malloc'd int32 array. */
int args_ids(args *a, const char *opt, const char *s, int32_t **ids, int64_t *n);
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
