#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int args_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static int first_stdout_errno;

int stdout_write(const void *data, size_t len) {
    errno = 0;
    if ((len && fwrite(data, 1, len, stdout) != len) || fflush(stdout) != 0) {
        if (!first_stdout_errno) first_stdout_errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

int stdout_errno(void) { return first_stdout_errno; }

int stdout_failed(const char *cmd) {
    if (!first_stdout_errno && !ferror(stdout)) return 0;
    fprintf(stderr, "lemma %s: cannot write to stdout: %s\n", cmd,
            first_stdout_errno ? strerror(first_stdout_errno) : "write error");
    return 1;
}
