/* report.c — report.json and report.md; see report.h. */
#include "prove/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "formats/jsonw.h"
#include "tasks/tasks.h"

/* ---- the synthetic domains as the ground truth ---- */

static const char *task_domain(void *ctx, const char *question) {
    (void)ctx;
    const lm_task_domain *d = lm_task_domain_of(question);
    if (!d) return NULL;
    /* A question in a domain's wording that does not parse has no ground truth. */
    lm_check_result r;
    lm_error err;
    return lm_task_check(question, "", &r, &err) == 0 ? d->name : NULL;
}

static int task_check(void *ctx, const char *question, const char *answer, double *score, int *step) {
    (void)ctx;
    lm_check_result r;
    lm_error err;
    if (lm_task_check(question, answer, &r, &err)) return -1;
    *score = r.score;
    if (step) *step = r.step;
    return 0;
}

static const lm_report_checker task_checker = {task_domain, task_check, NULL};
const lm_report_checker *lm_report_task_checker(void) { return &task_checker; }

/* ---- measuring ---- */

enum { NOT_ANSWERED = -2, NO_CHECK = -1 };

typedef struct agg {
    const char *domain;          /* NULL: every problem with a domain */
    int problems;
    int first, first_pass;       /* answered first proofs, those the checker scores 1 */
    int judged, agree;           /* valid verifications of checked proofs, those equal to the checker */
    double abs_err;
    int *pass_after;             /* problems whose best proof after round r scores 1 */
} agg;

typedef struct measure {
    const lm_prove_result *res;
    const lm_report_checker *chk;
    int rounds;
    const char **domain;         /* per problem */
    double **score;              /* per problem, per proof: checker score, NOT_ANSWERED or NO_CHECK */
    agg *aggs;                   /* aggs[0]: all; then one per domain in order of appearance */
    int n_aggs, cap_aggs;
    int unanswered;              /* requests whose answer failed in transport */
    int proofs, dropped_proofs, verifs, unscored_verifs, metas, rejected;
} measure;

static int proof_text(const lm_proof_state *pr, lm_text *t) {
    t->len = 0;
    return lm_text_append(t, pr->from_solution ? pr->from_solution : "", pr->from_solution_len);
}

static agg *agg_for(measure *m, const char *domain) {
    for (int i = 1; i < m->n_aggs; i++)
        if (!strcmp(m->aggs[i].domain, domain)) return &m->aggs[i];
    agg *a = &m->aggs[m->n_aggs++];
    a->domain = domain;
    return a;
}

static void agg_add(agg *a, const lm_problem_state *p, const double *score, int rounds) {
    a->problems++;
    for (int j = 0; j < p->n_proofs; j++) {
        const lm_proof_state *pr = &p->proofs[j];
        if (score[j] == NOT_ANSWERED) continue;
        if (pr->round == 0) {
            a->first++;
            a->first_pass += score[j] == 1;
        }
        if (!pr->usable || score[j] < 0) continue;
        for (int k = 0; k < pr->n_verifs; k++) {
            const lm_verif_state *v = &pr->verifs[k];
            if (!v->valid) continue;
            a->judged++;
            a->agree += v->score == score[j];
            a->abs_err += fabs(v->score - score[j]);
        }
    }
    for (int r = 0; r <= rounds; r++) a->pass_after[r] += p->best_after[r] >= 0 && score[p->best_after[r]] == 1;
}

static void measure_free(measure *m) {
    for (int i = 0; m->score && i < m->res->n; i++) free(m->score[i]);
    free(m->score);
    free(m->domain);
    for (int i = 0; m->aggs && i < m->cap_aggs; i++) free(m->aggs[i].pass_after);
    free(m->aggs);
}

static int measure_run(measure *m, lm_error *err) {
    const lm_prove_result *res = m->res;
    m->rounds = res->verify_mode ? 0 : res->opts.rounds;
    m->domain = calloc((size_t)res->n + 1, sizeof *m->domain);
    m->score = calloc((size_t)res->n + 1, sizeof *m->score);
    m->aggs = calloc((size_t)res->n + 1, sizeof *m->aggs);
    if (!m->domain || !m->score || !m->aggs) return lm_fail(err, "out of memory");
    m->cap_aggs = res->n + 1;
    for (int i = 0; i <= res->n; i++)
        if (!(m->aggs[i].pass_after = calloc((size_t)m->rounds + 1, sizeof(int)))) return lm_fail(err, "out of memory");
    m->n_aggs = 1;
    lm_text t = {0};
    for (int i = 0; i < res->n; i++) {
        const lm_problem_state *p = &res->problems[i];
        const char *q = p->problem->question;
        m->domain[i] = m->chk ? m->chk->domain(m->chk->ctx, q) : NULL;
        if (!(m->score[i] = calloc((size_t)p->n_proofs + 1, sizeof(double)))) {
            lm_text_free(&t);
            return lm_fail(err, "out of memory");
        }
        for (int j = 0; j < p->n_proofs; j++) {
            const lm_proof_state *pr = &p->proofs[j];
            double *s = &m->score[i][j];
            m->proofs += !res->verify_mode;
            if (!pr->rec) {
                *s = NOT_ANSWERED;
                m->unanswered++;
                continue;
            }
            if (!pr->usable) {
                m->dropped_proofs++;
                *s = m->domain[i] ? 0 : NO_CHECK; /* an answer that is no proof proves nothing */
            } else if (!m->domain[i]) {
                *s = NO_CHECK;
            } else {
                if (proof_text(pr, &t)) {
                    lm_text_free(&t);
                    return lm_fail(err, "out of memory");
                }
                if (m->chk->check(m->chk->ctx, q, t.data ? t.data : "", s, NULL)) *s = NO_CHECK;
            }
            for (int k = 0; k < pr->n_verifs; k++) {
                const lm_verif_state *v = &pr->verifs[k];
                m->verifs++;
                if (!v->rec) m->unanswered++;
                else if (!v->valid) m->unscored_verifs++;
                if (v->meta) m->metas++;
                m->rejected += v->rejected;
                if (res->opts.meta && v->valid && v->score <= LM_META_THRESHOLD && !v->meta) m->unanswered++;
            }
        }
        if (m->domain[i]) {
            agg_add(&m->aggs[0], p, m->score[i], m->rounds);
            agg_add(agg_for(m, m->domain[i]), p, m->score[i], m->rounds);
        }
    }
    lm_text_free(&t);
    return 0;
}

/* ---- writing ---- */


/* num/den as a JSON number, null when den is 0. */
static int jw_frac(lm_text *t, double num, int den) { return den ? jw_num(t, num / den) : jw_raw(t, "null"); }

static const char *pct(char *buf, double num, int den) {
    if (!den) return "–";
    snprintf(buf, 16, "%.1f%%", 100.0 * num / den);
    return buf;
}

static int json_agg(lm_text *t, const agg *a, int rounds) {
    int e = jw_raw(t, "{\"domain\":") || jw_str(t, a->domain ? a->domain : "all") || jw_raw(t, ",\"problems\":") ||
            jw_int(t, a->problems) || jw_raw(t, ",\"pass_at_1\":") || jw_frac(t, a->first_pass, a->first) ||
            jw_raw(t, ",\"first_proofs\":") || jw_int(t, a->first) || jw_raw(t, ",\"best_of_n\":") ||
            jw_frac(t, a->pass_after[0], a->problems) || jw_raw(t, ",\"verifier_agreement\":") ||
            jw_frac(t, a->agree, a->judged) || jw_raw(t, ",\"verifier_mae\":") || jw_frac(t, a->abs_err, a->judged) ||
            jw_raw(t, ",\"verifications_judged\":") || jw_int(t, a->judged) || jw_raw(t, ",\"pass_after_round\":[");
    for (int r = 0; r <= rounds; r++) e = e || (r && jw_raw(t, ",")) || jw_frac(t, a->pass_after[r], a->problems);
    return e || jw_raw(t, "]}");
}

static int json_settings(lm_text *t, const lm_prove_result *res) {
    const lm_prove_opts *o = &res->opts;
    int e = jw_raw(t, "\"settings\":{\"backend\":") || jw_str(t, res->backend) || jw_raw(t, ",\"verifications\":") ||
            jw_int(t, o->verifications);
    if (!res->verify_mode)
        e = e || jw_raw(t, ",\"samples\":") || jw_int(t, o->samples) || jw_raw(t, ",\"rounds\":") ||
            jw_int(t, o->rounds) || jw_raw(t, ",\"refine_top\":") || jw_int(t, o->refine_top) ||
            jw_raw(t, ",\"refine_samples\":") || jw_int(t, o->refine_samples) ||
            jw_raw(t, ",\"refine_verifications\":") || jw_int(t, o->refine_verifications);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    return e || jw_raw(t, ",\"max_tokens\":") || jw_int(t, o->max_tokens) || jw_raw(t, ",\"temperature\":") ||
           jw_num(t, o->temperature) || jw_raw(t, ",\"top_p\":") || jw_num(t, o->top_p) || jw_raw(t, ",\"seed\":") ||
           jw_raw(t, seed) || jw_raw(t, ",\"meta\":") || jw_raw(t, o->meta ? "true" : "false") || jw_raw(t, "}");
}

static int json_counts(lm_text *t, const measure *m) {
    return jw_raw(t, ",\"proofs\":") || jw_int(t, m->proofs) || jw_raw(t, ",\"dropped_proofs\":") ||
           jw_int(t, m->dropped_proofs) || jw_raw(t, ",\"verifications\":") || jw_int(t, m->verifs) ||
           jw_raw(t, ",\"unscored_verifications\":") || jw_int(t, m->unscored_verifs) ||
           jw_raw(t, ",\"meta_verifications\":") || jw_int(t, m->metas) || jw_raw(t, ",\"rejected_verifications\":") ||
           jw_int(t, m->rejected) || jw_raw(t, ",\"failed_requests\":") || jw_int(t, m->unanswered);
}

static int json_score(lm_text *t, double s) { return s >= 0 ? jw_num(t, s) : jw_raw(t, "null"); }

static int prove_json(const measure *m, lm_text *t) {
    const lm_prove_result *res = m->res;
    int e = jw_raw(t, "{\"command\":\"prove\",") || json_settings(t, res) || jw_raw(t, ",\"problems\":[");
    for (int i = 0; i < res->n && !e; i++) {
        const lm_problem_state *p = &res->problems[i];
        int b = p->best_after[m->rounds];
        const lm_proof_state *best = b >= 0 ? &p->proofs[b] : NULL;
        int first = 0, first_pass = 0;
        for (int j = 0; j < p->n_proofs; j++)
            if (p->proofs[j].round == 0 && m->score[i][j] != NOT_ANSWERED) {
                first++;
                first_pass += m->score[i][j] == 1;
            }
        e = (i && jw_raw(t, ",")) || jw_raw(t, "{\"id\":") || jw_str(t, p->problem->id) || jw_raw(t, ",\"domain\":") ||
            jw_str(t, m->domain[i]) || jw_raw(t, ",\"best_proof_id\":") || jw_str(t, best ? best->id : NULL) ||
            jw_raw(t, ",\"best_proof\":") ||
            (best ? jw_strn(t, best->from_solution, best->from_solution_len) : jw_raw(t, "null")) ||
            jw_raw(t, ",\"best_score\":") || (best ? jw_num(t, best->mean) : jw_raw(t, "null")) ||
            jw_raw(t, ",\"self_score\":") || (best ? jw_num(t, best->self_score) : jw_raw(t, "null")) ||
            jw_raw(t, ",\"verifications_counted\":") || jw_int(t, best ? best->n_counted : 0) ||
            jw_raw(t, ",\"passed\":") || jw_raw(t, p->stopped ? "true" : "false") || jw_raw(t, ",\"rounds_used\":") ||
            jw_int(t, p->rounds_used) || jw_raw(t, ",\"proofs\":") || jw_int(t, p->n_proofs);
        if (m->domain[i])
            e = e || jw_raw(t, ",\"checker_score\":") || (best ? json_score(t, m->score[i][b]) : jw_num(t, 0)) ||
                jw_raw(t, ",\"first_proofs\":") || jw_int(t, first) || jw_raw(t, ",\"first_proofs_passed\":") ||
                jw_int(t, first_pass);
        e = e || jw_raw(t, ",\"best_after_round\":[");
        for (int r = 0; r <= m->rounds; r++)
            e = e || (r && jw_raw(t, ",")) || jw_str(t, p->best_after[r] >= 0 ? p->proofs[p->best_after[r]].id : NULL);
        e = e || jw_raw(t, "]}");
    }
    e = e || jw_raw(t, "],\"summary\":{\"problems\":") || jw_int(t, res->n) || json_counts(t, m) ||
        jw_raw(t, ",\"all\":") || json_agg(t, &m->aggs[0], m->rounds) || jw_raw(t, ",\"domains\":[");
    for (int k = 1; k < m->n_aggs; k++) e = e || (k > 1 && jw_raw(t, ",")) || json_agg(t, &m->aggs[k], m->rounds);
    return e || jw_raw(t, "]}}\n");
}

/* s as a Markdown table cell: pipes escaped, line breaks as spaces. */
static int cell(lm_text *out, const char *s) {
    if (lm_text_append(out, "", 0)) return -1;
    for (const char *c = s; *c; c++)
        if (*c == '|' ? lm_text_append(out, "\\|", 2)
            : (*c == '\n' || *c == '\r') ? lm_text_append(out, " ", 1)
            : lm_text_append(out, c, 1))
            return -1;
    return 0;
}

static int md_settings(lm_text *t, const lm_prove_result *res) {
    const lm_prove_opts *o = &res->opts;
    if (res->verify_mode)
        return lm_text_appendf(t, "%d proof%s, %d verifications each, meta-verification %s; backend %s.\n\n", res->n,
                   res->n == 1 ? "" : "s", o->verifications, o->meta ? "on" : "off", res->backend);
    return lm_text_appendf(t,
               "%d problem%s; %d proofs each, %d verifications per proof; up to %d refinement round%s (top %d proofs "
               "x %d samples, %d verifications each); meta-verification %s; backend %s.\n\n",
               res->n, res->n == 1 ? "" : "s", o->samples, o->verifications, o->rounds, o->rounds == 1 ? "" : "s",
               o->refine_top, o->refine_samples, o->refine_verifications, o->meta ? "on" : "off", res->backend);
}

static int md_table_row(lm_text *t, const agg *a, int rounds) {
    char b1[16], b2[16], b3[16], b4[16];
    int e = lm_text_appendf(t, "| %s | %d | %s | %s | %s | ", a->domain ? a->domain : "**all**", a->problems,
                pct(b1, a->first_pass, a->first), pct(b2, a->pass_after[0], a->problems), pct(b3, a->agree, a->judged));
    if (a->judged) snprintf(b4, sizeof b4, "%.3f", a->abs_err / a->judged);
    e = e || lm_text_appendf(t, "%s |", a->judged ? b4 : "–");
    for (int r = 1; r <= rounds; r++) e = e || lm_text_appendf(t, " %s |", pct(b1, a->pass_after[r], a->problems));
    return e || lm_text_appendf(t, "\n");
}

static int md_failed(lm_text *t, const measure *m) {
    if (!m->unanswered) return 0;
    return lm_text_appendf(t, "\n**%d request%s failed in transport** (pool.jsonl has each reason); rerun the same command to ask %s "
                  "again.\n",
               m->unanswered, m->unanswered == 1 ? "" : "s", m->unanswered == 1 ? "it" : "them");
}

static int prove_md(const measure *m, lm_text *t) {
    const lm_prove_result *res = m->res;
    int e = lm_text_appendf(t, "# lemma prove\n\n") || md_settings(t, res);
    if (m->aggs[0].problems) {
        e = e || lm_text_appendf(t, "| domain | problems | pass@1 | best-of-%d | verifier agreement | verifier MAE |",
                     res->opts.samples);
        for (int r = 1; r <= m->rounds; r++) e = e || lm_text_appendf(t, " round %d |", r);
        e = e || lm_text_appendf(t, "\n|---|---:|---:|---:|---:|---:|");
        for (int r = 1; r <= m->rounds; r++) e = e || lm_text_appendf(t, "---:|");
        e = e || lm_text_appendf(t, "\n");
        for (int k = 1; k < m->n_aggs; k++) e = e || md_table_row(t, &m->aggs[k], m->rounds);
        if (m->n_aggs > 2) e = e || md_table_row(t, &m->aggs[0], m->rounds);
        e = e || lm_text_appendf(t, "\npass@1: the checker's pass rate of the first proofs. best-of-%d: of the proof the "
                        "verifier ranks first among them. verifier agreement: verifications whose score equals the "
                        "checker's (MAE: their mean absolute difference). round r: the checker's pass rate of the "
                        "best proof after refinement round r.\n",
                     res->opts.samples);
    }
    int others = 0;
    for (int i = 0; i < res->n; i++) others += !m->domain[i];
    if (others) {
        e = e || lm_text_appendf(t, "%s| problem | best score | self score | passed | rounds used | proofs |\n"
                        "|---|---:|---:|---|---:|---:|\n",
                     m->aggs[0].problems ? "\n" : "");
        for (int i = 0; i < res->n && !e; i++) {
            if (m->domain[i]) continue;
            const lm_problem_state *p = &res->problems[i];
            int b = p->best_after[m->rounds];
            char s1[32] = "–", s2[32] = "–";
            if (b >= 0) {
                snprintf(s1, sizeof s1, "%.3f", p->proofs[b].mean);
                snprintf(s2, sizeof s2, "%g", p->proofs[b].self_score);
            }
            lm_text id = {0};
            e = cell(&id, p->problem->id) || lm_text_appendf(t, "| %.200s | %s | %s | %s | %d | %d |\n", id.data, s1, s2,
                                                 p->stopped ? "yes" : "no", p->rounds_used, p->n_proofs);
            lm_text_free(&id);
        }
    }
    return e || md_failed(t, m);
}

static int verify_json(const measure *m, lm_text *t) {
    const lm_prove_result *res = m->res;
    int e = jw_raw(t, "{\"command\":\"verify\",") || json_settings(t, res) || jw_raw(t, ",\"proofs\":[");
    for (int i = 0; i < res->n && !e; i++) {
        const lm_problem_state *p = &res->problems[i];
        const lm_proof_state *pr = &p->proofs[0];
        e = (i && jw_raw(t, ",")) || jw_raw(t, "{\"id\":") || jw_str(t, p->problem->id) || jw_raw(t, ",\"domain\":") ||
            jw_str(t, m->domain[i]) || jw_raw(t, ",\"mean_score\":") ||
            (pr->n_counted ? jw_num(t, pr->mean) : jw_raw(t, "null")) || jw_raw(t, ",\"verifications_counted\":") ||
            jw_int(t, pr->n_counted) || jw_raw(t, ",\"scores\":[");
        for (int k = 0; k < pr->n_verifs; k++) {
            const lm_verif_state *v = &pr->verifs[k];
            e = e || (k && jw_raw(t, ",")) || (v->valid ? jw_num(t, v->score) : jw_raw(t, "null"));
        }
        e = e || jw_raw(t, "],\"rejected\":[");
        for (int k = 0, first = 1; k < pr->n_verifs; k++)
            if (pr->verifs[k].rejected) {
                e = e || (!first && jw_raw(t, ",")) || jw_int(t, k);
                first = 0;
            }
        e = e || jw_raw(t, "]");
        if (m->domain[i]) e = e || jw_raw(t, ",\"checker_score\":") || json_score(t, m->score[i][0]);
        e = e || jw_raw(t, "}");
    }
    e = e || jw_raw(t, "],\"summary\":{\"proofs\":") || jw_int(t, res->n) || json_counts(t, m) ||
        jw_raw(t, ",\"all\":") || json_agg(t, &m->aggs[0], 0) || jw_raw(t, ",\"domains\":[");
    for (int k = 1; k < m->n_aggs; k++) e = e || (k > 1 && jw_raw(t, ",")) || json_agg(t, &m->aggs[k], 0);
    return e || jw_raw(t, "]}}\n");
}

static int verify_md(const measure *m, lm_text *t) {
    const lm_prove_result *res = m->res;
    int e = lm_text_appendf(t, "# lemma verify\n\n") || md_settings(t, res) ||
            lm_text_appendf(t, "| proof | domain | verifier mean | verifications counted | rejected | checker |\n"
                   "|---|---|---:|---:|---:|---:|\n");
    for (int i = 0; i < res->n && !e; i++) {
        const lm_problem_state *p = &res->problems[i];
        const lm_proof_state *pr = &p->proofs[0];
        char mean[32] = "–", chk[32] = "–";
        int rejected = 0;
        for (int k = 0; k < pr->n_verifs; k++) rejected += pr->verifs[k].rejected;
        if (pr->n_counted) snprintf(mean, sizeof mean, "%.3f", pr->mean);
        if (m->domain[i] && m->score[i][0] >= 0) snprintf(chk, sizeof chk, "%g", m->score[i][0]);
        lm_text id = {0};
        e = cell(&id, p->problem->id) || lm_text_appendf(t, "| %.200s | %s | %s | %d | %d | %s |\n", id.data,
                                             m->domain[i] ? m->domain[i] : "–", mean, pr->n_counted, rejected, chk);
        lm_text_free(&id);
    }
    const agg *a = &m->aggs[0];
    if (a->judged) {
        char b[16];
        e = e || lm_text_appendf(t, "\nVerifier agreement with the checker: %s of %d verifications (mean absolute difference "
                        "%.3f).\n",
                     pct(b, a->agree, a->judged), a->judged, a->abs_err / a->judged);
    }
    return e || md_failed(t, m);
}

static int write_file(const char *dir, const char *name, const lm_text *t, lm_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lm_write_file_atomic(path, t->data ? t->data : "", t->len, err);
}

int lm_prove_report(const lm_prove_result *res, const lm_report_checker *chk, const char *dir, lm_text *md,
                    lm_text *json, lm_error *err) {
    measure m;
    memset(&m, 0, sizeof m);
    m.res = res;
    m.chk = chk;
    lm_text j = {0}, d = {0};
    int rc = measure_run(&m, err);
    if (!rc && (res->verify_mode ? verify_json(&m, &j) || verify_md(&m, &d) : prove_json(&m, &j) || prove_md(&m, &d)))
        rc = lm_fail(err, "out of memory");
    if (!rc && dir) rc = write_file(dir, "report.json", &j, err) || write_file(dir, "report.md", &d, err) ? -1 : 0;
    if (!rc && md && lm_text_append(md, d.data ? d.data : "", d.len)) rc = lm_fail(err, "out of memory");
    if (!rc && json && lm_text_append(json, j.data ? j.data : "", j.len)) rc = lm_fail(err, "out of memory");
    lm_text_free(&j);
    lm_text_free(&d);
    measure_free(&m);
    return rc;
}
