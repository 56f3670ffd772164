/* pretok.c — pre-tokenizers: split text into the pieces BPE runs on.
 *
 * DeepSeek-V3 (and lemma's own trained tokenizers) use a Sequence of three
 * Split steps, all "Isolated" (matches and the gaps between them are pieces):
 *   1. \p{N}{1,3}
 *   2. [一-龥぀-ゟ゠-ヿ]+
 *   3. [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
 *      | ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * each applied to every piece of the step before. The reference runs them
 * with Oniguruma (leftmost-first alternation, backtracking); this file has a
 * hand-written scanner with the same semantics, fused into one pass:
 *   - a maximal run of \p{N} is cut into groups of 3 code points from the left;
 *   - a maximal run of CJK (step 2's class) and a maximal run of anything that
 *     is neither N nor CJK each go through step 3 on their own (the regex sees
 *     only that run: its end is the end of the string for (?!\S) and for
 *     every greedy repeat);
 *   - step 3 at position i tries the alternatives in order (r3_match, where
 *     each one's backtracking is worked out by hand); where none matches, the
 *     character is part of a gap, and a gap is a piece too.
 * Character classes come from the Unicode 16.0 tables (unicode.h), with
 * Oniguruma's \s (White_Space: U+0085 yes, U+FEFF no).
 *
 * Any other Split regex is compiled with PCRE2 (UTF, UCP, JIT) after \s, \S
 * and \p{L}, \p{M}, \p{N}, \p{P}, \p{S} (\P outside classes) are rewritten
 * into explicit classes from the White_Space set and lemma's Unicode 16 table
 * (PCRE2 10.42's own tables are Unicode 14); other properties (\p{Lu},
 * scripts) stay PCRE2's. Digits and String splits are done natively. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"

const char *const lm_deepseek_patterns[3] = {
    "\\p{N}{1,3}",
    "[\xe4\xb8\x80-\xe9\xbe\xa5\xe3\x81\x80-\xe3\x82\x9f\xe3\x82\xa0-\xe3\x83\xbf]+",
    ("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
     " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
};

enum { L = LM_U_L, M = LM_U_M, N = LM_U_N, P = LM_U_P, S = LM_U_S, WS = LM_U_WS, CJK = LM_U_CJK, CRLF = LM_U_CRLF };

static inline unsigned cls_at(const unsigned char *s, size_t i, size_t *len) {
    unsigned c = s[i];
    if (c < 0x80) {
        *len = 1;
        return lm_uni_stage2[c]; /* block 0 of stage2 is U+0000..U+007F */
    }
    uint32_t cp;
    *len = lm_utf8_decode(s + i, &cp);
    return lm_uni_class(cp);
}

static inline size_t char_len(const unsigned char *s, size_t i) {
    unsigned c = s[i];
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

/* End of the run of characters whose class has a bit of mask. */
static inline size_t run_with(const unsigned char *s, size_t i, size_t end, unsigned mask) {
    while (i < end) {
        size_t l;
        if (!(cls_at(s, i, &l) & mask)) break;
        i += l;
    }
    return i;
}

/* End of the run of characters whose class has no bit of mask. */
static inline size_t run_without(const unsigned char *s, size_t i, size_t end, unsigned mask) {
    while (i < end) {
        size_t l;
        if (cls_at(s, i, &l) & mask) break;
        i += l;
    }
    return i;
}

static inline int ascii_alpha(unsigned c) { return (unsigned)((c | 32) - 'a') < 26; }

#define NO_MATCH ((size_t)-1)

/* Step 3 at position i of the string s[.. end): the end of the match, or NO_MATCH. */
static size_t r3_match(const unsigned char *s, size_t i, size_t end) {
    size_t l0;
    unsigned c0 = cls_at(s, i, &l0);
    size_t i1 = i + l0;
    unsigned b0 = s[i];
    /* [!"#...~][A-Za-z]+ : the 32 ASCII punctuation/symbol characters. */
    if (b0 < 0x80 && (c0 & (P | S)) && i1 < end && ascii_alpha(s[i1])) {
        size_t j = i1 + 1;
        while (j < end && ascii_alpha(s[j])) j++;
        return j;
    }
    /* [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+ : with the optional character
     * first (greedy), then without it. */
    if (!(c0 & (CRLF | L | P | S)) && i1 < end) {
        size_t l1;
        if (cls_at(s, i1, &l1) & (L | M)) return run_with(s, i1 + l1, end, L | M);
    }
    if (c0 & (L | M)) return run_with(s, i1, end, L | M);
    /* ' '?[\p{P}\p{S}]+[\r\n]* */
    if (b0 == ' ' && i1 < end) {
        size_t l1;
        if (cls_at(s, i1, &l1) & (P | S)) {
            size_t j = run_with(s, i1 + l1, end, P | S);
            while (j < end && (s[j] == '\r' || s[j] == '\n')) j++;
            return j;
        }
    }
    if (c0 & (P | S)) {
        size_t j = run_with(s, i1, end, P | S);
        while (j < end && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    if (!(c0 & WS)) return NO_MATCH;
    /* \s*[\r\n]+ : \s* takes the whole whitespace run, then gives back one
     * character at a time until [\r\n]+ can match: the match ends just after
     * the run's last CR/LF. */
    size_t j = i, last_crlf_end = 0, last_start = i, count = 0;
    while (j < end) {
        size_t l;
        unsigned c = cls_at(s, j, &l);
        if (!(c & WS)) break;
        if (c & CRLF) last_crlf_end = j + l;
        last_start = j;
        j += l;
        count++;
    }
    if (last_crlf_end) return last_crlf_end;
    /* \s+(?!\S) : the whole run at the end of the string, else all of it but
     * its last character (which is then followed by whitespace). */
    if (j == end) return j;
    if (count >= 2) return last_start;
    /* \s+ : a single whitespace character before a non-space. */
    return j;
}

/* Step 3 over s[start, end): matches and gaps, in order. */
static int r3_split(const unsigned char *s, size_t start, size_t end, pt_emit_fn emit, void *ctx) {
    size_t i = start, gap = start;
    while (i < end) {
        size_t m = r3_match(s, i, end);
        if (m == NO_MATCH) {
            i += char_len(s, i);
            continue;
        }
        if (gap < i && emit(ctx, gap, i)) return -1;
        if (emit(ctx, i, m)) return -1;
        i = gap = m;
    }
    if (gap < end && emit(ctx, gap, end)) return -1;
    return 0;
}

int lm_pretok_deepseek(const unsigned char *s, size_t n, pt_emit_fn emit, void *ctx) {
    return lm_pretok_deepseek_digits(s, n, 3, emit, ctx);
}

int lm_pretok_deepseek_digits(const unsigned char *s, size_t n, int group, pt_emit_fn emit, void *ctx) {
    size_t pos = 0;
    while (pos < n) {
        size_t l;
        unsigned c = cls_at(s, pos, &l);
        if (c & N) {
            /* \p{N}{1,group}, repeatedly, over the run of N. */
            size_t start = pos, k = 0;
            pos += l;
            k = 1;
            while (pos < n) {
                size_t l2;
                if (!(cls_at(s, pos, &l2) & N)) break;
                if (k == (size_t)group) {
                    if (emit(ctx, start, pos)) return -1;
                    start = pos;
                    k = 0;
                }
                pos += l2;
                k++;
            }
            if (emit(ctx, start, pos)) return -1;
        } else {
            size_t end = (c & CJK) ? run_with(s, pos + l, n, CJK) : run_without(s, pos + l, n, N | CJK);
            if (r3_split(s, pos, end, emit, ctx)) return -1;
            pos = end;
        }
    }
    return 0;
}

/* ---- Generic pipeline ---------------------------------------------------- */

typedef struct span {
    size_t a, b;
    int m; /* is a match */
} span;

typedef struct span_vec {
    span *v;
    size_t n, cap;
} span_vec;

static int sv_push(span_vec *sv, size_t a, size_t b, int m) {
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 64;
        span *nv = realloc(sv->v, cap * sizeof *nv);
        if (!nv) return -1;
        sv->v = nv;
        sv->cap = cap;
    }
    sv->v[sv->n++] = (span){a, b, m};
    return 0;
}

typedef struct match_ctx {
    span_vec *out;
    size_t prev;
} match_ctx;

/* Appends a match [a, b) (with the gap before it) to the match list. */
static int add_match(match_ctx *mc, size_t a, size_t b) {
    if (a == b) return 0; /* empty matches make empty pieces, which are dropped */
    if (mc->prev < a && sv_push(mc->out, mc->prev, a, 0)) return -1;
    if (sv_push(mc->out, a, b, 1)) return -1;
    mc->prev = b;
    return 0;
}

/* Matches of the hand-written DeepSeek regex h (1..3) in s[a, b). */
static int hand_matches(int h, const unsigned char *s, size_t a, size_t b, match_ctx *mc) {
    size_t i = a;
    while (i < b) {
        size_t l;
        unsigned c = cls_at(s, i, &l);
        if (h == 1) {
            if (!(c & N)) { i += l; continue; }
            size_t st = i, k = 0;
            while (i < b && k < 3) {
                size_t l2;
                if (!(cls_at(s, i, &l2) & N)) break;
                i += l2;
                k++;
            }
            if (add_match(mc, st, i)) return -1;
        } else if (h == 2) {
            if (!(c & CJK)) { i += l; continue; }
            size_t e = run_with(s, i + l, b, CJK);
            if (add_match(mc, i, e)) return -1;
            i = e;
        } else {
            size_t m = r3_match(s, i, b);
            if (m == NO_MATCH) { i += l; continue; }
            if (add_match(mc, i, m)) return -1;
            i = m;
        }
    }
    return 0;
}

static int pcre_matches(const pt_step *st, const unsigned char *s, size_t a, size_t b, match_ctx *mc,
                        lm_error *err) {
    pcre2_code *re = st->re;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return lm_fail(err, "out of memory");
    size_t pos = a;
    int rc = 0;
    while (pos <= b) {
        int r = pcre2_match(re, s + a, b - a, pos - a, 0, md, NULL);
        if (r == PCRE2_ERROR_NOMATCH) break;
        if (r < 0) { /* e.g. the match limit, on a regex that backtracks without end */
            PCRE2_UCHAR msg[160];
            char q[96];
            pcre2_get_error_message(r, msg, sizeof msg);
            rc = lm_fail(err, "pre-tokenizer Split regex %s failed on the text at byte %zu (a %zu-byte piece): %s",
                         json_quote(q, sizeof q, st->pattern ? st->pattern : "?", st->pattern ? st->pattern_len : 1),
                         pos, b - a, (char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = a + ov[0], me = a + ov[1];
        if (add_match(mc, ms, me)) { rc = lm_fail(err, "out of memory"); break; }
        if (me == ms) {
            if (me >= b) break;
            pos = me + char_len(s, me);
        } else {
            pos = me;
        }
    }
    pcre2_match_data_free(md);
    return rc;
}

static int literal_matches(const pt_step *st, const unsigned char *s, size_t a, size_t b, match_ctx *mc) {
    if (st->literal_len == 0) return 0;
    size_t i = a;
    while (i + st->literal_len <= b) {
        const unsigned char *f = memmem(s + i, b - i, st->literal, st->literal_len);
        if (!f) break;
        size_t ms = (size_t)(f - s);
        if (add_match(mc, ms, ms + st->literal_len)) return -1;
        i = ms + st->literal_len;
    }
    return 0;
}

static int digit_matches(const pt_step *st, const unsigned char *s, size_t a, size_t b, match_ctx *mc) {
    size_t i = a;
    while (i < b) {
        size_t l;
        unsigned c = cls_at(s, i, &l);
        if (!(c & N)) { i += l; continue; }
        size_t e = st->individual_digits ? i + l : run_with(s, i + l, b, N);
        if (add_match(mc, i, e)) return -1;
        i = e;
    }
    return 0;
}

/* The GPT-2 pattern of ByteLevel(use_regex): 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|
 * ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ — hand-written like step 3. */
static size_t gpt2_match(const unsigned char *s, size_t i, size_t end) {
    if (s[i] == '\'' && i + 1 < end) {
        unsigned c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < end) {
            unsigned d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return i + 3;
        }
    }
    size_t l0;
    unsigned c0 = cls_at(s, i, &l0);
    if (s[i] == ' ' && i + 1 < end) {
        size_t l1;
        unsigned c1 = cls_at(s, i + 1, &l1);
        if (c1 & L) return run_with(s, i + 1 + l1, end, L);
        if (c1 & N) return run_with(s, i + 1 + l1, end, N);
        if (!(c1 & (WS | L | N))) return run_without(s, i + 1 + l1, end, WS | L | N);
    }
    if (c0 & L) return run_with(s, i + l0, end, L);
    if (c0 & N) return run_with(s, i + l0, end, N);
    if (!(c0 & (WS | L | N))) return run_without(s, i + l0, end, WS | L | N);
    if (!(c0 & WS)) return NO_MATCH;
    size_t k = i, last_start = i, count = 0;
    while (k < end) {
        size_t l;
        if (!(cls_at(s, k, &l) & WS)) break;
        last_start = k;
        k += l;
        count++;
    }
    if (k == end) return k;
    if (count >= 2) return last_start;
    return k;
}

static int gpt2_matches(const unsigned char *s, size_t a, size_t b, match_ctx *mc) {
    size_t i = a;
    while (i < b) {
        size_t m = gpt2_match(s, i, b);
        if (m == NO_MATCH) { i += char_len(s, i); continue; }
        if (add_match(mc, i, m)) return -1;
        i = m;
    }
    return 0;
}

/* Splits each piece of in by step st into out (HF's split with behaviours). */
static int apply_step(const pt_step *st, const unsigned char *s, const span_vec *in, span_vec *out,
                      span_vec *tmp, lm_error *err) {
    out->n = 0;
    for (size_t p = 0; p < in->n; p++) {
        size_t a = in->v[p].a, b = in->v[p].b;
        tmp->n = 0;
        match_ctx mc = {tmp, a};
        int rc = 0;
        switch (st->kind) {
        case PT_SPLIT_REGEX:
            rc = st->hand ? hand_matches(st->hand, s, a, b, &mc) : pcre_matches(st, s, a, b, &mc, err);
            break;
        case PT_SPLIT_STRING: rc = literal_matches(st, s, a, b, &mc); break;
        case PT_DIGITS: rc = digit_matches(st, s, a, b, &mc); break;
        case PT_BYTELEVEL_REGEX: rc = gpt2_matches(s, a, b, &mc); break;
        }
        if (rc) return err && err->msg[0] ? -1 : lm_fail(err, "out of memory"); /* the step's message stands */
        if (mc.prev < b && sv_push(tmp, mc.prev, b, 0)) return lm_fail(err, "out of memory");
        int inv = st->invert;
        split_behavior bh = st->kind == PT_DIGITS ? (st->individual_digits ? SB_ISOLATED : SB_CONTIGUOUS)
                            : st->kind == PT_BYTELEVEL_REGEX ? SB_ISOLATED : st->behavior;
        size_t first = out->n;
        int prev_match = 0;
        if (bh == SB_MERGED_NEXT) {
            for (size_t k = tmp->n; k-- > 0;) {
                span sp = tmp->v[k];
                int m = sp.m ^ inv;
                if (m && !prev_match && out->n > first) out->v[out->n - 1].a = sp.a;
                else if (sv_push(out, sp.a, sp.b, 0)) return lm_fail(err, "out of memory");
                prev_match = m;
            }
            for (size_t x = first, y = out->n; x + 1 < y; x++, y--) {
                span t = out->v[x];
                out->v[x] = out->v[y - 1];
                out->v[y - 1] = t;
            }
            continue;
        }
        for (size_t k = 0; k < tmp->n; k++) {
            span sp = tmp->v[k];
            int m = sp.m ^ inv;
            int r = 0;
            switch (bh) {
            case SB_ISOLATED: r = sv_push(out, sp.a, sp.b, 0); break;
            case SB_REMOVED: if (!m) r = sv_push(out, sp.a, sp.b, 0); break;
            case SB_MERGED_PREV:
                if (m && !prev_match && out->n > first) out->v[out->n - 1].b = sp.b;
                else r = sv_push(out, sp.a, sp.b, 0);
                break;
            case SB_CONTIGUOUS:
                if (m == prev_match && out->n > first) out->v[out->n - 1].b = sp.b;
                else r = sv_push(out, sp.a, sp.b, 0);
                break;
            default: break;
            }
            if (r) return lm_fail(err, "out of memory");
            prev_match = m;
        }
    }
    return 0;
}

int lm_pretok_run(const pt_config *pc, const unsigned char *s, size_t n, pt_emit_fn emit, void *ctx,
                  lm_error *err) {
    if (n == 0) return 0;
    if (pc->deepseek) {
        if (lm_pretok_deepseek(s, n, emit, ctx)) return -1;
        return 0;
    }
    if (pc->nsteps == 0) return emit(ctx, 0, n) ? -1 : 0;
    span_vec a = {0}, b = {0}, tmp = {0};
    int rc = 0;
    if (sv_push(&a, 0, n, 0)) rc = lm_fail(err, "out of memory");
    for (int k = 0; !rc && k < pc->nsteps; k++) {
        rc = apply_step(&pc->steps[k], s, &a, &b, &tmp, err);
        span_vec t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; !rc && i < a.n; i++)
        if (a.v[i].b > a.v[i].a && emit(ctx, a.v[i].a, a.v[i].b)) rc = -1;
    free(a.v);
    free(b.v);
    free(tmp.v);
    return rc;
}

/* ---- Compiling ------------------------------------------------------------ */

/* Oniguruma's \s, as the body of a character class. */
static const char ws_class[] = "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}"
                               "\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

typedef struct rbuf {
    char *p;
    size_t n, cap;
} rbuf;

static int rb_put(rbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* The code points of a general category group (one LM_U_* bit) as the body
 * of a PCRE2 character class, from lemma's Unicode 16 table. */
static int class_ranges(unsigned bit, rbuf *out) {
    uint32_t cp = 0;
    while (cp < 0x110000) {
        if (!(lm_uni_class(cp) & bit)) { cp++; continue; }
        uint32_t a = cp;
        while (cp + 1 < 0x110000 && (lm_uni_class(cp + 1) & bit)) cp++;
        char item[48];
        int l = a == cp ? snprintf(item, sizeof item, "\\x{%X}", a) : snprintf(item, sizeof item, "\\x{%X}-\\x{%X}", a, cp);
        if (rb_put(out, item, (size_t)l)) return -1;
        cp++;
    }
    return 0;
}

/* \p{L} \pL etc. at p[i] (after the backslash): the LM_U bit, with *len the
 * escape's length after the backslash; 0 when not one of L M N P S. */
static unsigned prop_escape(const char *p, size_t n, size_t i, size_t *len) {
    if (i + 1 >= n || (p[i] != 'p' && p[i] != 'P')) return 0;
    char x;
    if (p[i + 1] == '{') {
        if (i + 3 >= n || p[i + 3] != '}') return 0;
        x = p[i + 2];
        *len = 4;
    } else {
        x = p[i + 1];
        *len = 2;
    }
    switch (x) {
    case 'L': return LM_U_L;
    case 'M': return LM_U_M;
    case 'N': return LM_U_N;
    case 'P': return LM_U_P;
    case 'S': return LM_U_S;
    default: return 0;
    }
}

/* Rewrites \s, \S and \p{L|M|N|P|S} (and \P outside classes) so that PCRE2
 * sees Oniguruma's White_Space set and lemma's Unicode 16 categories
 * instead of its own older tables. */
static char *rewrite_classes(const char *p, size_t n) {
    rbuf out = {0}, cls[32] = {{0}};
    int in_class = 0, rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            size_t el;
            unsigned bit = prop_escape(p, n, i + 1, &el);
            if (bit && !(in_class && p[i + 1] == 'P')) {
                unsigned k = 0;
                while ((bit >> k) != 1) k++;
                if (!cls[k].n && class_ranges(bit, &cls[k])) { rc = -1; break; }
                if (in_class) rc = rb_put(&out, cls[k].p, cls[k].n);
                else
                    rc = rb_put(&out, p[i + 1] == 'P' ? "[^" : "[", p[i + 1] == 'P' ? 2 : 1) ||
                         rb_put(&out, cls[k].p, cls[k].n) || rb_put(&out, "]", 1);
                i += el;
                continue;
            }
            if (d == 's' && in_class) { rc = rb_put(&out, ws_class, sizeof ws_class - 1); i++; continue; }
            if ((d == 's' || d == 'S') && !in_class) {
                rc = rb_put(&out, d == 'S' ? "[^" : "[", d == 'S' ? 2 : 1) || rb_put(&out, ws_class, sizeof ws_class - 1) ||
                     rb_put(&out, "]", 1);
                i++;
                continue;
            }
            rc = rb_put(&out, p + i, 2);
            i++;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            rc = rb_put(&out, "[", 1);
            /* a ']' right after '[' or '[^' is literal */
            if (i + 1 < n && p[i + 1] == '^') { rc |= rb_put(&out, "^", 1); i++; }
            if (i + 1 < n && p[i + 1] == ']') { rc |= rb_put(&out, "]", 1); i++; }
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        rc = rb_put(&out, &c, 1);
    }
    for (int k = 0; k < 32; k++) free(cls[k].p);
    if (rc || !out.p) {
        free(out.p);
        return rc ? NULL : strdup("");
    }
    return out.p;
}

int lm_pretok_compile(pt_step *st, const char *pattern, size_t len, lm_error *err) {
    if (!(st->pattern = malloc(len + 1))) return lm_fail(err, "out of memory");
    memcpy(st->pattern, pattern, len);
    st->pattern[len] = 0;
    st->pattern_len = len;
    for (int h = 0; h < 3; h++)
        if (strlen(lm_deepseek_patterns[h]) == len && memcmp(lm_deepseek_patterns[h], pattern, len) == 0) {
            st->hand = h + 1;
            return 0;
        }
    char *rw = rewrite_classes(pattern, len);
    if (!rw) return lm_fail(err, "out of memory");
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)rw, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK,
                                   &ec, &eo, NULL);
    free(rw);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return lm_fail(err, "regex does not compile (PCRE2): %s", (char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is unavailable */
    st->re = re;
    return 0;
}

void lm_pretok_free(pt_config *pc) {
    for (int i = 0; i < pc->nsteps; i++) {
        if (pc->steps[i].re) pcre2_code_free(pc->steps[i].re);
        free(pc->steps[i].literal);
        free(pc->steps[i].pattern);
    }
    free(pc->steps);
    pc->steps = NULL;
    pc->nsteps = 0;
}
