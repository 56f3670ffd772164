/* decode.c — ids back to text, whole (lm_tokenizer_decode) or one id at a
 * time (the streaming decoder, which holds back a character cut between
 * tokens). See tokenizer.h for the contract. */
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "tokenizer/tok_internal.h"

static int id_bytes(const lm_tokenizer *tok, int32_t id, const char **s, size_t *n, lm_error *err) {
    if (id < 0 || id >= tok->nids || tok->len[id] == LM_TOK_NONE)
        return lm_fail(err, "id %d is not a token (vocab size %d)", id, tok->nids);
    *s = tok->blob + tok->off[id];
    *n = tok->len[id];
    return 0;
}

int lm_tokenizer_decode(const lm_tokenizer *tok, const int32_t *ids, size_t n, int flags, lm_text *out,
                        lm_error *err) {
    lm_text raw = {0};
    lm_text *dst = (flags & LM_TOK_RAW) ? out : &raw;
    size_t len0 = out->len;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if (id_bytes(tok, ids[i], &s, &l, err)) {
            lm_text_free(&raw);
            out->len = len0;
            if (out->data) out->data[len0] = 0;
            return -1;
        }
        if ((flags & LM_TOK_SKIP_SPECIAL) && (tok->kind[ids[i]] & 2)) continue;
        if (lm_text_append(dst, s, l)) { lm_text_free(&raw); return lm_fail(err, "out of memory"); }
    }
    int rc = 0;
    if (!(flags & LM_TOK_RAW)) {
        if (raw.len || !out->data) rc = lm_utf8_sanitize(raw.data ? raw.data : "", raw.len, out);
        if (rc) rc = lm_fail(err, "out of memory");
    } else if (!out->data) {
        rc = lm_text_append(out, "", 0);
    }
    lm_text_free(&raw);
    return rc;
}

void lm_tok_stream_init(lm_tok_stream *st, const lm_tokenizer *tok, int flags) {
    memset(st, 0, sizeof *st);
    st->tok = tok;
    st->flags = flags;
}

int lm_tok_stream_push(lm_tok_stream *st, int32_t id, lm_text *out, lm_error *err) {
    const char *s;
    size_t n;
    if (id_bytes(st->tok, id, &s, &n, err)) return -1;
    if ((st->flags & LM_TOK_SKIP_SPECIAL) && (st->tok->kind[id] & 2)) return 0;
    if (st->flags & LM_TOK_RAW) return lm_text_append(out, s, n) ? lm_fail(err, "out of memory") : 0;
    unsigned char stackbuf[512];
    size_t tot = (size_t)st->npend + n;
    unsigned char *buf = tot <= sizeof stackbuf ? stackbuf : malloc(tot);
    if (!buf) return lm_fail(err, "out of memory");
    memcpy(buf, st->pend, (size_t)st->npend);
    memcpy(buf + st->npend, s, n);
    size_t i = 0, run = 0;
    int rc = 0;
    st->npend = 0;
    while (i < tot && !rc) {
        if (buf[i] < 0x80) { i++; continue; }
        size_t l;
        int r = lm_utf8_check(buf + i, tot - i, &l);
        if (r == 1) { i += l; continue; }
        rc = lm_text_append(out, (const char *)buf + run, i - run);
        if (r < 0) { /* incomplete at the end: hold it back */
            memcpy(st->pend, buf + i, l);
            st->npend = (int)l;
            run = i = tot;
            break;
        }
        if (!rc) rc = lm_text_append(out, LM_UTF8_REPLACEMENT, 3);
        i += l;
        run = i;
    }
    if (!rc && run < tot) rc = lm_text_append(out, (const char *)buf + run, tot - run);
    if (buf != stackbuf) free(buf);
    return rc ? lm_fail(err, "out of memory") : 0;
}

int lm_tok_stream_finish(lm_tok_stream *st, lm_text *out) {
    int rc = 0;
    if (st->npend) rc = lm_text_append(out, LM_UTF8_REPLACEMENT, 3);
    st->npend = 0;
    return rc;
}
