/* jsonw.c — JSON values appended to an lm_text; see jsonw.h. */
#include "formats/jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "formats/json.h" /* json_escape_byte */

int jw_raw(lm_text *t, const char *s) { return lm_text_append(t, s, strlen(s)); }

int jw_strn(lm_text *t, const char *s, size_t n) {
    if (lm_text_append(t, "\"", 1)) return -1;
    size_t run = 0, i = 0; /* s[run, i) is copied as it is when an escape comes */
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        char buf[8];
        const char *esc;
        size_t skip = 1;
        if (c >= 0x80) {
            size_t bad = lm_utf8_invalid_len((const unsigned char *)s + i, n - i);
            if (!bad) { /* a valid sequence: keep it whole */
                i += c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
                continue;
            }
            esc = LM_UTF8_REPLACEMENT;
            skip = bad;
        } else if (!(esc = json_escape_byte(c, buf))) {
            i++;
            continue;
        }
        if (lm_text_append(t, s + run, i - run) || lm_text_append(t, esc, strlen(esc))) return -1;
        i += skip;
        run = i;
    }
    if (lm_text_append(t, s + run, n - run)) return -1;
    return lm_text_append(t, "\"", 1);
}

int jw_str(lm_text *t, const char *s) { return s ? jw_strn(t, s, strlen(s)) : jw_raw(t, "null"); }

void jw_format_double(char buf[32], double v) {
    if (v == 0) v = 0; /* -0 reads as 0 */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

int jw_num(lm_text *t, double v) {
    if (!isfinite(v)) return jw_raw(t, "null");
    char buf[32];
    jw_format_double(buf, v);
    return jw_raw(t, buf);
}

int jw_int(lm_text *t, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return jw_raw(t, buf);
}
