/* reward.c — the verifier's reward R_format · R_score; see reward.h. */
#include "prove/reward.h"

#include <math.h>
#include <stdlib.h>
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

/* The answer after its thinking ("</think>"), as the pipeline reads it. */
static const char *answer_of(const char *text, size_t n) {
    const char *end = text + n, *a = text;
    for (const char *p = text; (p = find(p, (size_t)(end - p), "</think>")); p += 8) a = p + 8;
    return a;
}

static double reward_with(const char *open_phrase, const char *score_phrase, const char *text, size_t n, double label,
                          lm_verify_reward *r) {
    const char *end = text + n, *a = answer_of(text, n);
    size_t an = (size_t)(end - a);
    const char *open = find(a, an, open_phrase);
    if (!open) return fail(r, LM_VFMT_NO_OPEN);
    const char *after_open = open + strlen(open_phrase);
    const char *phrase = find(after_open, (size_t)(end - after_open), score_phrase);
    if (!phrase) return fail(r, LM_VFMT_NO_SCORE_PHRASE);
    const char *tail = phrase + strlen(score_phrase);
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

double lm_verify_reward_of(const char *text, size_t n, double label, lm_verify_reward *r) {
    return reward_with(LM_VERIFY_PHRASE_OPEN, LM_VERIFY_PHRASE_SCORE, text, n, label, r);
}

double lm_meta_reward_of(const char *text, size_t n, double label, lm_verify_reward *r) {
    return reward_with(LM_META_PHRASE_OPEN, LM_META_PHRASE_SCORE, text, n, label, r);
}

/* ---- the faithfulness label --------------------------------------------------- */

const char *lm_meta_fault_name(lm_meta_fault f) {
    switch (f) {
    case LM_META_FAITHFUL: return "faithful";
    case LM_META_BAD_FORMAT: return "bad_format";
    case LM_META_WRONG_SCORE: return "wrong_score";
    case LM_META_INVENTED_DEFECT: return "invented_defect";
    case LM_META_DENIED_DEFECT: return "denied_defect";
    case LM_META_MISSED_DEFECT: return "missed_defect";
    }
    return "?";
}

lm_meta_truth lm_meta_truth_of(const char *solution, double score, int step) {
    lm_meta_truth t = {.score = score, .step = score >= 1 ? 0 : step, .n_steps = 0};
    for (const char *p = solution; *p;) {
        const char *e = strchr(p, '\n');
        if (!e) e = p + strlen(p);
        for (const char *q = p; q < e; q++)
            if (*q != ' ' && *q != '\t' && *q != '\r') {
                t.n_steps++;
                break;
            }
        p = *e ? e + 1 : e;
    }
    return t;
}

static double labelled(lm_meta_label *out, double label, lm_meta_fault why) {
    out->label = label;
    out->why = why;
    return label;
}

double lm_meta_label_of(const char *verification, size_t n, const lm_meta_truth *t, lm_meta_label *out) {
    out->claimed_step = 0;
    lm_verify_reward vr;
    lm_verify_reward_of(verification, n, t->score, &vr);
    if (!vr.format) return labelled(out, 0, LM_META_BAD_FORMAT);
    /* the claims: the lines between the two phrases (both exist: the format holds) */
    const char *end = verification + n, *a = answer_of(verification, n);
    const char *from = find(a, (size_t)(end - a), LM_VERIFY_PHRASE_OPEN) + strlen(LM_VERIFY_PHRASE_OPEN);
    const char *to = find(from, (size_t)(end - from), LM_VERIFY_PHRASE_SCORE);
    int invented = 0, denied = 0, named = 0;
    for (const char *p = from; p < to;) {
        const char *e = memchr(p, '\n', (size_t)(to - p));
        if (!e) e = to;
        const char *q = p;
        while (q < e && (*q == ' ' || *q == '\t' || *q == '*' || *q == '-')) q++;
        if (e - q > 5 && !memcmp(q, "Step ", 5) && q[5] >= '0' && q[5] <= '9') {
            long k = 0;
            for (q += 5; q < e && *q >= '0' && *q <= '9'; q++) k = k < 100000000 ? k * 10 + (*q - '0') : k;
            int ok = (size_t)(e - q) >= 7 && !memcmp(q, " checks", 7);
            if (ok) {
                denied |= t->step > 0 && k == t->step;
            } else {
                int known_correct = t->step > 0 ? k < t->step : 1;
                invented |= k < 1 || k > t->n_steps || known_correct;
                named |= t->step > 0 && k == t->step;
                if (!out->claimed_step) out->claimed_step = (int)k;
            }
        }
        p = e + 1;
    }
    if (vr.predicted != t->score) return labelled(out, 0, LM_META_WRONG_SCORE);
    if (invented) return labelled(out, 0, LM_META_INVENTED_DEFECT);
    if (denied) return labelled(out, 0, LM_META_DENIED_DEFECT);
    if (t->step > 0 && !named) return labelled(out, 0.5, LM_META_MISSED_DEFECT);
    return labelled(out, 1, LM_META_FAITHFUL);
}
