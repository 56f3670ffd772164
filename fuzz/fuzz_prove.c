/* fuzz_prove.c — libFuzzer target: arbitrary bytes as the inputs of the proof
 * pipeline: a pool.jsonl line (lm_pool_rec_parse), a problems file
 * (lm_problems_parse, both as problems and as proofs), a templates file
 * (lm_templates_parse) and a model's answer (\boxed{} scores, the heading
 * split). Each either fails with one line naming the input, or yields a
 * consistent result: a parsed pool record formats back to a line that parses
 * to the same record; a score is in [0, 1]; spans lie inside the text.
 *
 * FUZZ_SEEDS: templates/\*.json
 * FUZZ_MAX_LEN: 8192
 * FUZZ_DICT: fuzz/json.dict
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "prove/answer.h"
#include "prove/pool.h"
#include "prove/problems.h"
#include "prove/templates.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

static void one_line(const lm_error *err, const char *name) {
    require(err->msg[0] && !strchr(err->msg, '\n'));
    require(!strncmp(err->msg, name, strlen(name)) || !strncmp(err->msg, "out of memory", 13));
}

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    lm_error err;

    lm_pool_rec r, back;
    if (lm_pool_rec_parse(s, size, "pool.jsonl", 1, &r, &err) == 0) {
        lm_text line = {0};
        require(lm_pool_rec_format(&r, &line) == 0);
        require(lm_pool_rec_parse(line.data, line.len, "pool.jsonl", 1, &back, &err) == 0);
        require(same(r.id, back.id) && same(r.problem_id, back.problem_id) && r.kind == back.kind &&
                r.round == back.round && r.failed == back.failed && r.n_parents == back.n_parents &&
                same(r.prompt_hash, back.prompt_hash) && r.seed == back.seed);
        /* the parser took valid UTF-8, so the text comes back byte for byte */
        if (!r.failed)
            require(same(r.finish_reason, back.finish_reason) && r.has_score == back.has_score && same(r.text, back.text) &&
                    same(r.reasoning, back.reasoning));
        lm_pool_rec_clear(&back);
        lm_pool_rec_clear(&r);
        lm_text_free(&line);
    } else {
        one_line(&err, "pool.jsonl:1");
    }

    for (int need_proof = 0; need_proof < 2; need_proof++) {
        lm_problem_set ps;
        if (lm_problems_parse(s, size, "p.jsonl", need_proof, &ps, &err) == 0) {
            require(ps.n > 0);
            for (int i = 0; i < ps.n; i++) require(ps.items[i].id[0] && ps.items[i].question[0] && (!need_proof || ps.items[i].proof));
            lm_problems_free(&ps);
        } else {
            one_line(&err, "p.jsonl");
        }
    }

    lm_prompt_templates t;
    if (lm_templates_parse(s, size, "t.json", &t, &err) == 0) {
        for (int k = 0; k < LM_TPL_COUNT; k++) require(t.text[k] != NULL);
        lm_templates_free(&t);
    } else {
        one_line(&err, "t.json");
    }

    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    size_t n = strlen(text);
    double v;
    if (lm_answer_score(text, n, &v) == 0) require(v >= 0 && v <= 1);
    const char *b;
    size_t bl;
    if (lm_answer_last_boxed(text, n, &b, &bl) == 0) require(b >= text && b + bl <= text + n && bl > 0);
    lm_answer_parts p;
    const char *a = lm_answer_after_think(text);
    require(a >= text && a <= text + n);
    if (lm_answer_split(a, &p) == 0)
        require(p.solution >= a && p.solution + p.solution_len <= text + n && p.self_eval + p.self_eval_len <= text + n &&
                p.from_solution + p.from_solution_len <= text + n);
    free(text);
    return 0;
}
