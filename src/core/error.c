#include "core/error.h"

#include <stdio.h>
#include <string.h>

int lm_fail(lm_error *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int lm_fail_prefix(lm_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* "prefix: old", cut to fit (built by hand: snprintf of a buffer into
     * one of the same size draws a truncation warning) */
    size_t np = strnlen(prefix, sizeof prefix), no = strnlen(err->msg, sizeof err->msg - 1), cap = sizeof err->msg - 1;
    if (np + 2 > cap) np = cap - 2;
    if (no > cap - np - 2) no = cap - np - 2;
    memmove(err->msg + np + 2, err->msg, no);
    memcpy(err->msg, prefix, np);
    err->msg[np] = ':';
    err->msg[np + 1] = ' ';
    err->msg[np + 2 + no] = 0;
    return -1;
}

int lm_fail_suffix(lm_error *err, const char *fmt, ...) {
    if (!err) return -1;
    size_t n = strlen(err->msg);
    if (n + 1 >= sizeof err->msg) return -1;
    err->msg[n] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n + 1, sizeof err->msg - n - 1, fmt, ap);
    va_end(ap);
    return -1;
}
