/* vrl_meta.c — meta-verification prompts for the verifier_rl stage; see vrl_meta.h. */
#include "recipe/vrl_meta.h"

#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "prove/answer.h"
#include "prove/template.h"
#include "tasks/steptext.h"
#include "tokenizer/chat.h"

/* text with its last \boxed{...} content replaced by box */
static int rebox(const lm_text *in, const char *box, lm_text *out) {
    const char *b = NULL;
    for (const char *p = in->data; (p = strstr(p, "\\boxed{")); p += 7) b = p + 7;
    const char *e = b ? strchr(b, '}') : NULL;
    if (!e) return lm_text_append(out, in->data, in->len);
    return lm_text_append(out, in->data, (size_t)(b - in->data)) || lm_text_append(out, box, strlen(box)) ||
           lm_text_append(out, e, strlen(e));
}

/* the checker's analysis of solution with verdicts r: with its working when the question is known */
static int analysis(const char *question, const char *solution, const lm_check_result *r, lm_text *out, lm_error *err) {
    if (question) return lm_task_worked_verification(question, solution, r, out, err);
    return lm_task_verification_text(solution, r, out) ? lm_fail(err, "out of memory") : 0;
}

int lm_vrl_meta_rating(const char *question, const char *solution, const lm_check_result *r, uint64_t seed,
                       lm_text *out, lm_error *err) {
    int kind = (int)(lm_rng_u64(seed, LM_RNG_RL, 0) % 6), n = lm_lines_count(solution);
    int fault_line = r->score < 1 ? r->step : 0;
    /* lines known correct: before the faulty one, or all of them */
    int correct = fault_line > 0 ? fault_line - 1 : n;
    if (kind == 3 && correct < 1) kind = 4;
    if (kind == 5 && fault_line < 1) kind = 4;
    lm_text truth = {0};
    int rc = 0;
    if (kind == 3) {
        lm_check_result made = *r;
        made.step = 1 + (int)(lm_rng_u64(seed, LM_RNG_RL, 1) % (uint64_t)correct);
        if (made.score >= 1) {
            made.score = 0;
            snprintf(made.kind, sizeof made.kind, "%s", LM_ERR_ARITHMETIC);
            snprintf(made.message, sizeof made.message, "this step does not follow");
        }
        if (analysis(question, solution, &made, out, err)) {
            lm_text_free(&truth);
            return -1;
        }
    } else if (analysis(question, solution, r, &truth, err)) {
        lm_text_free(&truth);
        return -1;
    } else if (kind < 3) {
        rc = lm_text_append(out, truth.data, truth.len);
    } else if (kind == 4) {
        rc = rebox(&truth, r->score >= 1 ? "0" : "1", out);
    } else {
        char head[32];
        snprintf(head, sizeof head, "Step %d (", fault_line);
        const char *at = strstr(truth.data, head), *e = at ? strchr(at, '\n') : NULL;
        if (!e) rc = lm_text_append(out, truth.data, truth.len);
        else
            rc = lm_text_append(out, truth.data, (size_t)(at - truth.data)) ||
                 lm_text_append(out, "Something in the solution does not follow.", 43) ||
                 lm_text_append(out, e, strlen(e));
    }
    lm_text_free(&truth);
    return rc ? lm_fail(err, "out of memory") : 0;
}

void lm_vrl_meta_rating_of(const char *text, const char **begin, size_t *len) {
    const char *a = lm_answer_after_think(text), *box;
    size_t n, boxl;
    if (!lm_answer_last_boxed(a, strlen(a), &box, &boxl)) n = (size_t)(box + boxl + 1 - a);
    else n = strlen(a);
    lm_py_strip(a, n, begin, len);
}

int lm_vrl_meta_prompt(const lm_prompt_templates *tp, const char *question, const char *solution, const char *rating,
                       size_t rating_len, lm_text *out, lm_error *err) {
    lm_text r = {0}, user = {0};
    int rc = -1;
    if (lm_text_append(&r, rating, rating_len)) {
        lm_fail(err, "out of memory");
        goto done;
    }
    const char *keys[] = {"statement", "proof", "rating"}, *vals[] = {question, solution, r.data ? r.data : ""};
    if (lm_template_fill(tp->text[LM_TPL_META], keys, vals, 3, &user, err)) goto done;
    lm_chat_msg m = {.role = "user", .content = user.data};
    lm_chat_opts co = {.add_generation_prompt = 1};
    rc = lm_chat_render(&m, 1, &co, out, err);
done:
    lm_text_free(&r);
    lm_text_free(&user);
    return rc;
}
