/* gen_reward.c — the generator's reward (gen_reward.h). */
#include "prove/gen_reward.h"

#include <math.h>
#include <string.h>

#include "prove/answer.h"

const char *lm_gen_format_name(lm_gen_format f) {
    switch (f) {
    case LM_GFMT_OK: return "ok";
    case LM_GFMT_NO_SPLIT: return "no_solution_split";
    case LM_GFMT_NO_SELF_SCORE: return "no_self_score";
    case LM_GFMT_BAD_SELF_SCORE: return "bad_self_score";
    }
    return "?";
}

lm_gen_format lm_gen_answer_read(const char *text, double *self_score, const char **solution, size_t *solution_len) {
    lm_answer_parts p;
    *self_score = -1;
    if (solution) *solution = NULL, *solution_len = 0;
    if (lm_answer_split(lm_answer_after_think(text), &p)) return LM_GFMT_NO_SPLIT;
    if (solution) *solution = p.solution, *solution_len = p.solution_len;
    const char *b;
    size_t n;
    if (lm_answer_last_boxed(p.self_eval, p.self_eval_len, &b, &n)) return LM_GFMT_NO_SELF_SCORE;
    double v;
    if (lm_parse_score(b, n, &v) || (v != 0 && v != 0.5 && v != 1)) return LM_GFMT_BAD_SELF_SCORE;
    *self_score = v;
    return LM_GFMT_OK;
}

double lm_gen_reward_of(const char *text, double r_y, double s, double alpha, double beta, double r_meta,
                        lm_gen_reward *r) {
    memset(r, 0, sizeof *r);
    r->why = lm_gen_answer_read(text, &r->self_score, NULL, NULL);
    r->r_y = r_y;
    if (r->why != LM_GFMT_OK) return 0;
    r->format = 1;
    r->r_z = (1 - fabs(r->self_score - s)) * r_meta;
    r->reward = r->format * (alpha * r_y + beta * r->r_z);
    return r->reward;
}
