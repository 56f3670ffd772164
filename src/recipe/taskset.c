/* taskset.c — problem sets, pretraining text and SFT examples from the
 * synthetic domains; see taskset.h. */
#include "recipe/taskset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "formats/json.h"
#include "formats/jsonw.h"
#include "prove/pipeline.h"
#include "prove/template.h"
#include "prove/templates.h"
#include "tasks/tasks.h"
#include "tokenizer/chat.h"

void lm_taskset_defaults(lm_taskset_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = LM_TASKSET_PROBLEMS;
    o->n = 100;
    o->dmin = o->dmax = 1;
    o->domains = "all";
    o->p_generate = 1;
    o->p_verify_clean = 0.5;
    o->p_verify_flawed = 0.5;
    o->p_refine = 0;
    o->p_meta = 0;
}

int lm_taskset_kind_parse(const char *s, lm_taskset_kind *out) {
    if (!strcmp(s, "problems")) *out = LM_TASKSET_PROBLEMS;
    else if (!strcmp(s, "text")) *out = LM_TASKSET_TEXT;
    else if (!strcmp(s, "sft")) *out = LM_TASKSET_SFT;
    else return -1;
    return 0;
}

/* ---- small writers ------------------------------------------------------------------ */

static int put(lm_text *t, const char *s) { return jw_raw(t, s); }
static int put_json_string(lm_text *t, const char *s, size_t n) { return jw_strn(t, s, n); }
static int put_str(lm_text *t, const char *s) { return jw_str(t, s); }

/* ---- the exclusion list: questions of another set, sorted for bsearch ------------------ */

typedef struct qlist {
    char **q;
    size_t n;
} qlist;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void qlist_free(qlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->q[i]);
    free(l->q);
}

static int qlist_load(const char *text, size_t len, qlist *l, lm_error *err) {
    memset(l, 0, sizeof *l);
    size_t cap = 0, line = 0;
    for (size_t pos = 0; pos < len; line++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (end > pos) {
            json_doc *d = json_parse(text + pos, end - pos, err);
            const json_value *q = d ? json_get(json_root(d), "question") : NULL;
            if (!q || q->type != JSON_STRING) {
                json_free(d);
                qlist_free(l);
                return d ? lm_fail(err, "exclusion set line %zu: no \"question\" string", line + 1)
                         : lm_fail_prefix(err, "exclusion set line %zu", line + 1);
            }
            if (l->n == cap) {
                cap = cap ? 2 * cap : 64;
                char **p = realloc(l->q, cap * sizeof *p);
                if (!p) {
                    json_free(d);
                    qlist_free(l);
                    return lm_fail(err, "out of memory");
                }
                l->q = p;
            }
            l->q[l->n] = strdup(q->str);
            json_free(d);
            if (!l->q[l->n]) {
                qlist_free(l);
                return lm_fail(err, "out of memory");
            }
            l->n++;
        }
        pos = end + 1;
    }
    qsort(l->q, l->n, sizeof *l->q, cmp_str);
    return 0;
}

static int qlist_has(const qlist *l, const char *q) {
    return l->n && bsearch(&q, l->q, l->n, sizeof *l->q, cmp_str) != NULL;
}

/* ---- templates ------------------------------------------------------------------------ */

typedef struct templates {
    lm_prompt_templates t;
    int loaded;
    const char *generation, *verification, *meta;
} templates;

static int templates_load(const char *json, templates *t, lm_error *err) {
    memset(t, 0, sizeof *t);
    if (!json) return lm_fail(err, "an sft set needs templates");
    if (lm_templates_parse(json, strlen(json), "templates", &t->t, err)) return -1;
    t->loaded = 1;
    t->generation = t->t.text[LM_TPL_GEN];
    t->verification = t->t.text[LM_TPL_VERIFY];
    t->meta = t->t.text[LM_TPL_META];
    return 0;
}

static void templates_free(templates *t) {
    if (t->loaded) lm_templates_free(&t->t);
}

/* A user turn and the assistant's answer as one SFT record. */
static int put_sft(lm_text *out, const char *user, const char *answer, lm_error *err) {
    lm_chat_msg m = {.role = "user", .content = user};
    lm_chat_opts co = {.add_generation_prompt = 1, .bos = ""};
    lm_text prompt = {0};
    if (lm_chat_render(&m, 1, &co, &prompt, err)) return -1;
    int rc = put(out, "{\"segments\": [{\"text\": ") || put_json_string(out, prompt.data, prompt.len) ||
             put(out, ", \"loss\": false}, {\"text\": ") || put_str(out, answer) || put(out, ", \"loss\": true}]}\n");
    lm_text_free(&prompt);
    return rc ? lm_fail(err, "out of memory") : 0;
}

static int fill1(const char *tmpl, const char *k, const char *v, lm_text *out, lm_error *err) {
    const char *keys[] = {k}, *vals[] = {v};
    return lm_template_fill(tmpl, keys, vals, 1, out, err);
}

static int fill2(const char *tmpl, const char *k1, const char *v1, const char *k2, const char *v2, lm_text *out,
                 lm_error *err) {
    const char *keys[] = {k1, k2}, *vals[] = {v1, v2};
    return lm_template_fill(tmpl, keys, vals, 2, out, err);
}

/* ---- the set -------------------------------------------------------------------------- */

static int pick_domains(const char *spec, const lm_task_domain **ds, int *nd, lm_error *err) {
    *nd = 0;
    if (!strcmp(spec, "all")) {
        for (int i = 0; i < lm_task_count(); i++) ds[(*nd)++] = lm_task_domain_at(i);
    } else {
        const char *p = spec;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(l < 63 ? l : 63), p);
            const lm_task_domain *d = lm_task_domain_find(name);
            if (!d) return lm_fail(err, "unknown domain \"%s\" (lemma tasks list shows them)", name);
            for (int i = 0; i < *nd; i++)
                if (ds[i] == d) return lm_fail(err, "domain \"%s\" is listed twice", name);
            if (*nd >= 64) return lm_fail(err, "too many domains");
            ds[(*nd)++] = d;
            p = c ? c + 1 : p + l;
        }
    }
    if (!*nd) return lm_fail(err, "no domains chosen");
    return 0;
}

/* The checker's analysis of solution with verdicts r, with its working when the set asks for it. */
static int analysis_of(const lm_taskset_opts *o, const char *q, const char *solution, const lm_check_result *r,
                       lm_text *out, lm_error *err) {
    if (o->working) return lm_task_worked_verification(q, solution, r, out, err);
    return lm_task_verification_text(solution, r, out) ? lm_fail(err, "out of memory") : 0;
}

/* One problem's records. u(k) gives the problem's k-th uniform draw. */
static int emit_problem(const lm_taskset_opts *o, const templates *tp, const lm_task_domain *d, const char *id,
                        uint64_t pseed, int diff, const char *q, const char *answer, lm_text *out, lm_error *err) {
    char num[96];
    int rc = 0;
    if (o->kind == LM_TASKSET_PROBLEMS) {
        snprintf(num, sizeof num, ", \"difficulty\": %d, \"seed\": %llu, \"question\": ", diff,
                 (unsigned long long)pseed);
        rc = put(out, "{\"id\": ") || put_str(out, id) || put(out, ", \"domain\": ") || put_str(out, d->name) ||
             put(out, num) || put_str(out, q) || put(out, ", \"proof\": ") || put_str(out, answer) || put(out, "}\n");
        return rc ? lm_fail(err, "out of memory") : 0;
    }
    /* a corrupted version and the checker's analysis of it */
    lm_text bad = {0}, analysis = {0}, clean_analysis = {0}, doc = {0}, prompt = {0};
    lm_corruption c;
    lm_check_result r, rc_clean;
    char *sol = NULL, *bad_sol = NULL;
    if (d->corrupt(q, answer, lm_rng_u64(pseed, LM_RNG_TASKS, 1000), &bad, &c, err) ||
        lm_task_check(q, bad.data, &r, err) || lm_task_check(q, answer, &rc_clean, err))
        goto fail;
    if (rc_clean.score != 1) {
        lm_fail(err, "%s: the reference proof checks as %g (%s: %s): a domain bug", id, rc_clean.score, rc_clean.kind,
                rc_clean.message);
        goto fail;
    }
    if (!(sol = lm_task_solution_copy(answer)) || !(bad_sol = lm_task_solution_copy(bad.data)) ||
        analysis_of(o, q, bad_sol, &r, &analysis, err) || analysis_of(o, q, sol, &rc_clean, &clean_analysis, err)) {
        if (!sol || !bad_sol) lm_fail(err, "out of memory");
        goto fail;
    }
    if (o->kind == LM_TASKSET_TEXT) {
        /* the question and its answer; the question, a flawed or clean solution and its analysis */
        int flawed = lm_rng_uniform(pseed, LM_RNG_TASKS, 1001) < 0.5;
        rc = put(&doc, "## Problem\n") || put(&doc, q) || put(&doc, "\n\n") || put(&doc, answer) ||
             put(out, "{\"text\": ") || put_json_string(out, doc.data, doc.len) || put(out, "}\n");
        doc.len = 0;
        rc = rc || put(&doc, "## Problem\n") || put(&doc, q) || put(&doc, "\n\n## Solution\n") ||
             put(&doc, flawed ? bad_sol : sol) || put(&doc, "\n\n## Evaluation\n") ||
             put(&doc, flawed ? analysis.data : clean_analysis.data) || put(out, "{\"text\": ") ||
             put_json_string(out, doc.data, doc.len) || put(out, "}\n");
        if (rc) lm_fail(err, "out of memory");
        goto done;
    }
    if (lm_rng_uniform(pseed, LM_RNG_TASKS, 1002) < o->p_generate) {
        if (fill1(tp->generation, "question", q, &prompt, err) || put_sft(out, prompt.data, answer, err)) goto fail;
    }
    if (lm_rng_uniform(pseed, LM_RNG_TASKS, 1003) < o->p_verify_clean) {
        prompt.len = 0;
        if (fill2(tp->verification, "statement", q, "proof", sol, &prompt, err) ||
            put_sft(out, prompt.data, clean_analysis.data, err))
            goto fail;
    }
    if (lm_rng_uniform(pseed, LM_RNG_TASKS, 1004) < o->p_verify_flawed) {
        prompt.len = 0;
        if (fill2(tp->verification, "statement", q, "proof", bad_sol, &prompt, err) ||
            put_sft(out, prompt.data, analysis.data, err))
            goto fail;
    }
    if (lm_rng_uniform(pseed, LM_RNG_TASKS, 1005) < o->p_refine && r.score < 1) {
        /* the flawed solution with its analysis -> the reference answer, in the
         * pipeline's own refinement prompt */
        lm_verif_state v = {.id = "v0", .valid = 1, .score = r.score, .rating = analysis.data,
                            .rating_len = analysis.len};
        lm_proof_state pr = {.id = "g0", .usable = 1, .solution = bad_sol, .solution_len = strlen(bad_sol),
                             .verifs = &v, .n_verifs = 1, .n_counted = 1, .mean = r.score};
        prompt.len = 0;
        if (lm_prove_refine_prompt(&tp->t, q, &pr, &prompt, err) || put_sft(out, prompt.data, answer, err)) goto fail;
    }
    if (lm_rng_uniform(pseed, LM_RNG_TASKS, 1006) < o->p_meta && r.score < 1) {
        /* a verification that reports a defect: the true analysis of the flawed
         * solution (reasonable, 1), or a made-up defect in the clean one (0) */
        int fake = lm_rng_uniform(pseed, LM_RNG_TASKS, 1007) < 0.5;
        lm_text rating = {0};
        const char *vals[3] = {q, fake ? sol : bad_sol, analysis.data};
        if (fake) {
            int nlines = 1;
            for (const char *c = sol; *c; c++) nlines += *c == '\n';
            lm_check_result made = r;
            made.step = 1 + (int)(lm_rng_u64(pseed, LM_RNG_TASKS, 1008) % (uint64_t)nlines);
            if (analysis_of(o, q, sol, &made, &rating, err)) {
                lm_text_free(&rating);
                goto fail;
            }
            vals[2] = rating.data;
        }
        const char *keys[3] = {"statement", "proof", "rating"};
        prompt.len = 0;
        rc = lm_template_fill(tp->meta, keys, vals, 3, &prompt, err) ||
             put_sft(out, prompt.data,
                     fake ? "Here is my analysis of the \"solution evaluation\":\nThe defect it reports is not in the "
                            "solution.\n\nBased on my analysis, I will rate the \"solution evaluation\" as:\n\\boxed{0}"
                          : "Here is my analysis of the \"solution evaluation\":\nThe defect it reports is real and its "
                            "score follows.\n\nBased on my analysis, I will rate the \"solution evaluation\" as:\n"
                            "\\boxed{1}",
                     err);
        lm_text_free(&rating);
        if (rc) goto fail;
    }
done:
    free(sol);
    free(bad_sol);
    lm_text_free(&bad);
    lm_text_free(&analysis);
    lm_text_free(&clean_analysis);
    lm_text_free(&doc);
    lm_text_free(&prompt);
    return rc ? -1 : 0;
fail:
    rc = -1;
    goto done;
}

int lm_taskset_build(const lm_taskset_opts *o, lm_text *out, lm_error *err) {
    const lm_task_domain *ds[64];
    int nd;
    if (o->dmin < 1 || o->dmax > 5 || o->dmin > o->dmax)
        return lm_fail(err, "difficulty %d..%d: expected 1 <= lo <= hi <= 5", o->dmin, o->dmax);
    if (o->n < 1) return lm_fail(err, "n = %lld: expected at least 1", (long long)o->n);
    if (pick_domains(o->domains, ds, &nd, err)) return -1;
    templates tp = {0};
    if (o->kind == LM_TASKSET_SFT && templates_load(o->templates_json, &tp, err)) return -1;
    qlist ex = {0};
    if (o->exclude && qlist_load(o->exclude, o->exclude_len, &ex, err)) {
        templates_free(&tp);
        return -1;
    }
    int rc = 0;
    int64_t skipped = 0;
    lm_text q = {0}, answer = {0};
    for (int64_t i = 0, made = 0; made < o->n && !rc; i++) {
        if (i > 4 * o->n + 1000) {
            rc = lm_fail(err, "the exclusion set rules out nearly every problem (%lld of %lld drawn): widen the "
                              "difficulty range or use fewer problems", (long long)skipped, (long long)i);
            break;
        }
        const lm_task_domain *d = ds[i % nd];
        uint64_t pseed = lm_rng_u64(o->seed, LM_RNG_TASKS, (uint64_t)i);
        int diff = o->dmin + (int)(lm_rng_u64(pseed, LM_RNG_TASKS, 0) % (uint64_t)(o->dmax - o->dmin + 1));
        q.len = answer.len = 0;
        if (d->generate(pseed, diff, &q, &answer, err)) {
            rc = lm_fail_prefix(err, "%s seed %llu", d->name, (unsigned long long)pseed);
            break;
        }
        if (qlist_has(&ex, q.data)) {
            skipped++;
            continue;
        }
        char id[96];
        snprintf(id, sizeof id, "%s-%06lld", d->name, (long long)made);
        rc = emit_problem(o, &tp, d, id, pseed, diff, q.data, answer.data, out, err);
        made++;
        if (!rc && o->progress && made % 1000 == 0 && o->progress(o->progress_ctx, made, o->n))
            rc = lm_fail(err, "interrupted");
    }
    lm_text_free(&q);
    lm_text_free(&answer);
    qlist_free(&ex);
    templates_free(&tp);
    if (!rc && !out->data) rc = lm_text_append(out, "", 0) ? lm_fail(err, "out of memory") : 0;
    return rc;
}

/* ---- the recipe's built-in input ------------------------------------------------------ */

int lm_taskset_opts_from_json(const json_value *def, const char *recipe_path, const char *input_name,
                              lm_taskset_opts *o, const char **exclude_name, const char **templates_path,
                              lm_error *err) {
    static const char *const keys[] = {"builtin", "sha256", "description", "set", "seed", "n", "difficulty",
                                       "domains", "exclude", "templates", "p_generate", "p_verify_clean",
                                       "p_verify_flawed", "p_refine", "p_meta", "working", NULL};
    const char *f = recipe_path, *w = input_name;
    lm_taskset_defaults(o);
    *exclude_name = *templates_path = NULL;
    char q[80]; /* an unknown key, quoted and escaped for the message */
    for (const json_value *m = def->child; m; m = m->next) {
        int known = 0;
        for (int i = 0; keys[i] && !known; i++) known = !strcmp(m->key, keys[i]);
        if (!known)
            return lm_fail(err, "%s: byte %zu: inputs.%s: unknown key %s for a tasks input", f, m->offset, w,
                           json_quote(q, sizeof q, m->key, m->key_len));
    }
    const json_value *v = json_get(def, "set");
    if (!v || v->type != JSON_STRING || lm_taskset_kind_parse(v->str, &o->kind))
        return lm_fail(err, "%s: byte %zu: inputs.%s.set: expected \"problems\", \"text\" or \"sft\"", f,
                       v ? v->offset : def->offset, w);
    int64_t x;
    if ((v = json_get(def, "seed"))) {
        if (!json_as_int(v, &x) || x < 0)
            return lm_fail(err, "%s: byte %zu: inputs.%s.seed: expected a non-negative integer", f, v->offset, w);
        o->seed = (uint64_t)x;
    }
    if (!(v = json_get(def, "n")) || !json_as_int(v, &x) || x < 1 || x > 100000000)
        return lm_fail(err, "%s: byte %zu: inputs.%s.n: expected an integer in [1, 100000000]", f,
                       v ? v->offset : def->offset, w);
    o->n = x;
    if ((v = json_get(def, "difficulty"))) {
        int64_t lo, hi;
        if (json_as_int(v, &lo)) hi = lo;
        else if (v->type != JSON_ARRAY || v->len != 2 || !json_as_int(json_at(v, 0), &lo) ||
                 !json_as_int(json_at(v, 1), &hi))
            lo = hi = 0;
        if (lo < 1 || hi > 5 || lo > hi)
            return lm_fail(err, "%s: byte %zu: inputs.%s.difficulty: expected d or [lo, hi] with 1 <= lo <= hi <= 5",
                           f, v->offset, w);
        o->dmin = (int)lo;
        o->dmax = (int)hi;
    }
    const char **strs[] = {&o->domains, exclude_name, templates_path};
    const char *skeys[] = {"domains", "exclude", "templates"};
    for (int i = 0; i < 3; i++)
        if ((v = json_get(def, skeys[i]))) {
            if (v->type != JSON_STRING || !v->len || strlen(v->str) != v->len)
                return lm_fail(err, "%s: byte %zu: inputs.%s.%s: expected a non-empty string", f, v->offset, w, skeys[i]);
            *strs[i] = v->str;
        }
    double *ps[] = {&o->p_generate, &o->p_verify_clean, &o->p_verify_flawed, &o->p_refine, &o->p_meta};
    const char *pkeys[] = {"p_generate", "p_verify_clean", "p_verify_flawed", "p_refine", "p_meta"};
    for (int i = 0; i < 5; i++)
        if ((v = json_get(def, pkeys[i])) && (!json_as_double(v, ps[i]) || !(*ps[i] >= 0 && *ps[i] <= 1)))
            return lm_fail(err, "%s: byte %zu: inputs.%s.%s: expected a probability in [0, 1]", f, v->offset, w, pkeys[i]);
    if ((v = json_get(def, "working"))) {
        if (!json_as_bool(v, &o->working))
            return lm_fail(err, "%s: byte %zu: inputs.%s.working: expected true or false", f, v->offset, w);
    }
    if (o->kind == LM_TASKSET_SFT && !*templates_path)
        return lm_fail(err, "%s: byte %zu: inputs.%s: an sft set needs \"templates\" (a templates file)", f, def->offset, w);
    return 0;
}
