/* reward.c — the verifier's reward R_format · R_score; see reward.h. */
#include "prove/reward.h"

#include <math.h>
#include <string.h>

#include "prove/answer.h"

const char *lm_verify_format_name(lm_verify_format f) {
    switch (f) {
    case LM_VFMT_OK: return "ok";
    case LM_VFMT_NO_OPEN: return "no_open_phrase";
    case LM_VFMT_NO_SCORE_PHRASE: return "no_score_phrase";
    case LM_VFMT_NO_BOX: return "no_box";
    case LM_VFMT_BAD_SCORE: return "bad_score";
    }
    return "?";
}

/* First occurrence of needle in s[0..n), or NULL (memmem without _GNU_SOURCE
 * subtleties: the text may hold NUL bytes, which never match a phrase). */
static const char *find(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++)
        if (s[i] == needle[0] && !memcmp(s + i, needle, k)) return s + i;
    return NULL;
}

static double fail(lm_verify_reward *r, lm_verify_format why) {
    r->why = why;
    r->format = 0;
    r->predicted = -1;
    r->score = 0;
    r->reward = 0;
    return 0;
}

double lm_verify_reward_of(const char *text, size_t n, double label, lm_verify_reward *r) {
    /* the answer after its thinking, as the pipeline reads verifications */
    const char *end = text + n, *a = text;
    for (const char *p = text; (p = find(p, (size_t)(end - p), "</think>")); p += 8) a = p + 8;
    size_t an = (size_t)(end - a);
    const char *open = find(a, an, LM_VERIFY_PHRASE_OPEN);
    if (!open) return fail(r, LM_VFMT_NO_OPEN);
    const char *after_open = open + strlen(LM_VERIFY_PHRASE_OPEN);
    const char *phrase = find(after_open, (size_t)(end - after_open), LM_VERIFY_PHRASE_SCORE);
    if (!phrase) return fail(r, LM_VFMT_NO_SCORE_PHRASE);
    const char *tail = phrase + strlen(LM_VERIFY_PHRASE_SCORE);
    /* the pipeline's score is the last non-empty box of the whole answer; it
     * must lie after the phrase */
    const char *b;
    size_t bl;
    if (lm_answer_last_boxed(a, an, &b, &bl) || b < tail) return fail(r, LM_VFMT_NO_BOX);
    double s;
    if (lm_parse_score(b, bl, &s) || (s != 0 && s != 0.5 && s != 1)) return fail(r, LM_VFMT_BAD_SCORE);
    r->why = LM_VFMT_OK;
    r->format = 1;
    r->predicted = s;
    r->score = 1 - fabs(s - label);
    r->reward = r->format * r->score;
    return r->reward;
}
