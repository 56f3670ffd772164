#include "cli/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int args_opt(args *a, const char *name, const char *short_name, const char **val) {
    const char *s = a->argv[a->i];
    size_t nl = strlen(name);
    int match = 0;
    const char *inline_val = NULL;
    if (!strncmp(s, name, nl) && (s[nl] == 0 || s[nl] == '=')) {
        match = 1;
        if (s[nl] == '=') inline_val = s + nl + 1;
    } else if (short_name && !strcmp(s, short_name)) {
        match = 1;
    }
    if (!match) return 0;
    if (!val) {
        if (inline_val) {
            fprintf(stderr, "lemma %s: option %s takes no value\n", a->cmd, name);
            a->bad = 1;
        }
        return 1;
    }
    if (inline_val) {
        *val = inline_val;
    } else if (a->i + 1 < a->argc) {
        *val = a->argv[++a->i];
    } else {
        fprintf(stderr, "lemma %s: option %s needs a value\n", a->cmd, name);
        a->bad = 1;
        *val = NULL;
    }
    return 1;
}

int args_int(args *a, const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "lemma %s: %s '%s': expected an integer in %lld..%lld\n", a->cmd, opt, s, (long long)lo,
                (long long)hi);
        a->bad = 1;
        return -1;
    }
    *out = v;
    return 0;
}

int args_double(args *a, const char *opt, const char *s, double lo, double hi, double *out) {
    if (!s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "lemma %s: %s '%s': expected a number in %g..%g\n", a->cmd, opt, s, lo, hi);
        a->bad = 1;
        return -1;
    }
    *out = v;
    return 0;
}

int args_ids(args *a, const char *opt, const char *s, int32_t **ids, int64_t *n) {
    if (!s) return -1;
    int64_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *out = malloc((size_t)cap * sizeof *out);
    if (!out) {
        fprintf(stderr, "lemma %s: out of memory\n", a->cmd);
        a->bad = 1;
        return -1;
    }
    int64_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "lemma %s: %s: bad token id at character %lld of '%s' (expected comma-separated ids)\n",
                    a->cmd, opt, (long long)(p - s), s);
            free(out);
            a->bad = 1;
            return -1;
        }
        out[k++] = (int32_t)v;
        if (!*end) break;
        p = end + 1;
    }
    *ids = out;
    *n = k;
    return 0;
}

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
