/* evaluate.c — `lemma eval`'s table, JSON and charts; see evaluate.h. */
#include "prove/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "formats/jsonw.h"
#include "prove/reward.h"
#include "train/plot.h"

/* ---- the estimators ---- */

/* C(x, k) / C(n, k) for 0 <= k <= n, as a product of k ratios (no overflow). */
static double comb_ratio(int x, int k, int n) {
    if (x < k) return 0;
    double r = 1;
    for (int i = 0; i < k; i++) r *= (double)(x - i) / (double)(n - i);
    return r;
}

double lm_eval_pass_at_k(int n, int c, int k) {
    if (n < 1 || k < 1 || k > n || c < 0 || c > n) return 0;
    return 1 - comb_ratio(n - c, k, n);
}

double lm_eval_best_of_k(int n, const int *groups, const int *passes, int n_groups, int k) {
    if (n < 1 || k < 1 || k > n) return 0;
    double e = 0;
    int above = 0;
    for (int g = 0; g < n_groups && above < n; g++) {
        int m = groups[g];
        if (m < 1 || above + m > n) break;
        double top = comb_ratio(n - above, k, n) - comb_ratio(n - above - m, k, n);
        e += top * passes[g] / m;
        above += m;
    }
    return e;
}

/* ---- grading ---- */

enum { N_LABELS = 3, N_COLS = 4 }; /* checker labels 0, 0.5, 1; scores 0, 0.5, 1, other */
static const char *const col_names[N_COLS] = {"0", "0.5", "1", "other"};
static int score_col(double s) { return s == 0 ? 0 : s == 0.5 ? 1 : s == 1 ? 2 : 3; }

/* The faithfulness labels of verifications (prove/reward.h), in
 * lm_meta_fault order, x what the meta-verifier said of them. */
enum { N_FAULTS = LM_META_MISSED_DEFECT + 1, N_META_COLS = 5 };
static const char *const meta_col_names[N_META_COLS] = {"0", "0.5", "1", "other", "not asked"};
static const double fault_label[N_FAULTS] = {1, 0, 0, 0, 0, 0.5};
/* The rows in the order a reader wants them: faithful first, missed, then the false claims. */
static const lm_meta_fault fault_order[N_FAULTS] = {LM_META_FAITHFUL,        LM_META_MISSED_DEFECT,
                                                    LM_META_INVENTED_DEFECT, LM_META_DENIED_DEFECT,
                                                    LM_META_WRONG_SCORE,     LM_META_BAD_FORMAT};

typedef struct agg {
    const char *domain;                 /* NULL: every graded problem */
    int problems;
    int kmax;                           /* the curve's last N */
    double pass1, best_n, oracle_n;     /* sums over problems */
    double best[LM_EVAL_MAX_CURVE + 1], oracle[LM_EVAL_MAX_CURVE + 1];
    double *by_round, *pass1_by_round;  /* [rounds + 1] */
    int64_t verif[N_LABELS][N_COLS];    /* checker label x verification score */
    int64_t counted_judged, counted_agree; /* the verifications meta-verification kept */
    int64_t self[N_LABELS][N_COLS];     /* checker label x self-score */
    int64_t self_missing;               /* usable proofs without a self-score */
    int64_t first_dropped;              /* first proofs not received or not splittable */
    int64_t meta[N_FAULTS][N_META_COLS]; /* valid verifications: faithfulness label x meta-verifier's score */
    double faith_sum;                   /* their labels (0, 0.5, 1) summed */
} agg;

typedef struct eval {
    const lm_prove_result *res;
    const lm_report_checker *chk;
    int rounds, samples, kmax;
    agg *aggs;                          /* aggs[0]: all; then one per domain in order of appearance */
    int n_aggs;
    int ungraded;                       /* problems without a domain */
    int failed_requests;
    /* one problem's scratch */
    double *pass;                       /* per proof: 1 when the checker scores it 1 */
    double *score;                      /* per proof: the checker's score (0 when not received or unusable) */
    int *step;                          /* per proof: the checker's first failing step (0: none) */
    int *idx, *groups, *passes;
    double best[LM_EVAL_MAX_CURVE + 1], oracle[LM_EVAL_MAX_CURVE + 1], best_n, oracle_n;
    double *by_round, *pass1_by_round;
} eval;

static int scored(const lm_proof_state *pr) { return pr->rec && pr->usable && pr->n_counted > 0; }

/* Best first: higher mean counted verification, then higher self-score. */
static int by_key(const void *a, const void *b, void *proofs) {
    const lm_proof_state *x = (const lm_proof_state *)proofs + *(const int *)a,
                         *y = (const lm_proof_state *)proofs + *(const int *)b;
    if (x->mean != y->mean) return x->mean > y->mean ? -1 : 1;
    if (x->self_score != y->self_score) return x->self_score > y->self_score ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

/* The tie groups of the scored proofs among the first `count` of idx (sorted
 * here); returns the number of groups. */
static int rank(eval *e, const lm_problem_state *p, int count) {
    qsort_r(e->idx, (size_t)count, sizeof *e->idx, by_key, p->proofs);
    int ng = 0;
    for (int i = 0; i < count; i++) {
        const lm_proof_state *pr = &p->proofs[e->idx[i]];
        if (!i || pr->mean != p->proofs[e->idx[i - 1]].mean || pr->self_score != p->proofs[e->idx[i - 1]].self_score) {
            e->groups[ng] = 0;
            e->passes[ng] = 0;
            ng++;
        }
        e->groups[ng - 1]++;
        e->passes[ng - 1] += e->pass[e->idx[i]] == 1;
    }
    return ng;
}

/* The expected pass of the pick (ties even) among the proofs of rounds <= round. */
static double pick(eval *e, const lm_problem_state *p, int round, int k) {
    int n = 0, m = 0;
    for (int j = 0; j < p->n_proofs; j++) {
        if (p->proofs[j].round > round) continue;
        n++;
        if (scored(&p->proofs[j])) e->idx[m++] = j;
    }
    int ng = rank(e, p, m);
    return lm_eval_best_of_k(n, e->groups, e->passes, ng, k < 0 ? n : k);
}

static int grade(eval *e, int i, lm_error *err) {
    const lm_problem_state *p = &e->res->problems[i];
    const char *q = p->problem->question;
    int n = 0, c = 0;
    for (int j = 0; j < p->n_proofs; j++) {
        const lm_proof_state *pr = &p->proofs[j];
        e->score[j] = 0;
        e->step[j] = 0;
        if (pr->rec && pr->usable) {
            /* The checker reads the proof as the verifiers saw it, with its self-evaluation (report.c does the same). */
            char *text = strndup(pr->from_solution ? pr->from_solution : "", pr->from_solution_len);
            if (!text) return lm_fail(err, "out of memory");
            int rc = e->chk->check(e->chk->ctx, q, text, &e->score[j], &e->step[j]);
            free(text);
            if (rc) return lm_fail(err, "problem %s: the checker cannot grade proof %s", p->problem->id, pr->id);
        }
        e->pass[j] = e->score[j] == 1;
        if (pr->round == 0) {
            n++;
            c += e->pass[j] == 1;
        }
    }
    if (n < 1) return lm_fail(err, "problem %s: no first proof in the run", p->problem->id);
    for (int k = 1; k <= e->kmax; k++) {
        e->oracle[k] = lm_eval_pass_at_k(n, c, k);
        e->best[k] = pick(e, p, 0, k);
    }
    e->oracle_n = lm_eval_pass_at_k(n, c, n);
    e->best_n = pick(e, p, 0, n);
    for (int r = 0; r <= e->rounds; r++) {
        e->by_round[r] = pick(e, p, r, -1);
        int nr = 0, cr = 0;
        for (int j = 0; j < p->n_proofs; j++)
            if (p->proofs[j].round == r) nr++, cr += e->pass[j] == 1;
        e->pass1_by_round[r] = nr ? (double)cr / nr : e->pass1_by_round[r - 1]; /* round 0 always has proofs */
    }
    for (int t = 0; t < 2; t++) {
        agg *a = &e->aggs[0];
        if (t) {
            const char *d = e->chk->domain(e->chk->ctx, q);
            a = NULL;
            for (int k = 1; k < e->n_aggs && !a; k++)
                if (!strcmp(e->aggs[k].domain, d)) a = &e->aggs[k];
            if (!a) (a = &e->aggs[e->n_aggs++])->domain = d;
        }
        a->problems++;
        a->pass1 += (double)c / n;
        a->best_n += e->best_n;
        a->oracle_n += e->oracle_n;
        for (int k = 1; k <= e->kmax; k++) a->best[k] += e->best[k], a->oracle[k] += e->oracle[k];
        for (int r = 0; r <= e->rounds; r++) a->by_round[r] += e->by_round[r], a->pass1_by_round[r] += e->pass1_by_round[r];
        for (int j = 0; j < p->n_proofs; j++) {
            const lm_proof_state *pr = &p->proofs[j];
            if (!pr->rec || !pr->usable) {
                a->first_dropped += pr->round == 0;
                continue;
            }
            int row = score_col(e->score[j]);
            if (row >= N_LABELS) return lm_fail(err, "problem %s: the checker scored proof %s %g, not 0, 0.5 or 1",
                                                p->problem->id, pr->id, e->score[j]);
            /* The solution part is what the verifiers saw; their "Step k" claims count its non-empty lines. */
            char *sol = strndup(pr->solution ? pr->solution : "", pr->solution_len);
            if (!sol) return lm_fail(err, "out of memory");
            lm_meta_truth truth = lm_meta_truth_of(sol, e->score[j], e->step[j]);
            free(sol);
            for (int v = 0; v < pr->n_verifs; v++) {
                const lm_verif_state *vs = &pr->verifs[v];
                if (!vs->valid) continue;
                a->verif[row][score_col(vs->score)]++;
                if (!vs->rejected) a->counted_judged++, a->counted_agree += vs->score == e->score[j];
                lm_meta_label ml;
                a->faith_sum +=
                    lm_meta_label_of(vs->rating ? vs->rating : "", vs->rating ? vs->rating_len : 0, &truth, &ml);
                /* not asked (the pipeline meta-verifies only low scores), no score, or a score outside {0, 0.5, 1} */
                a->meta[ml.why][!vs->meta ? 4 : !vs->meta_valid ? 3 : score_col(vs->meta_score)]++;
            }
            if (pr->has_self_score) a->self[row][score_col(pr->self_score)]++;
            else a->self_missing++;
        }
    }
    return 0;
}

static void eval_free(eval *e) {
    for (int i = 0; e->aggs && i <= e->res->n; i++) {
        free(e->aggs[i].by_round);
        free(e->aggs[i].pass1_by_round);
    }
    free(e->aggs);
    free(e->pass);
    free(e->score);
    free(e->step);
    free(e->idx);
    free(e->groups);
    free(e->passes);
    free(e->by_round);
    free(e->pass1_by_round);
}

static int eval_run(eval *e, lm_error *err) {
    const lm_prove_result *res = e->res;
    if (res->verify_mode) return lm_fail(err, "lemma eval grades a prove run, not a verify run");
    e->rounds = res->opts.rounds;
    e->samples = res->opts.samples;
    e->kmax = e->samples < LM_EVAL_MAX_CURVE ? e->samples : LM_EVAL_MAX_CURVE;
    int most = 1;
    for (int i = 0; i < res->n; i++) most = res->problems[i].n_proofs > most ? res->problems[i].n_proofs : most;
    size_t nr = (size_t)e->rounds + 1;
    if (!(e->aggs = calloc((size_t)res->n + 1, sizeof *e->aggs)) || !(e->pass = calloc((size_t)most, sizeof(double))) ||
        !(e->score = calloc((size_t)most, sizeof(double))) || !(e->step = calloc((size_t)most, sizeof(int))) ||
        !(e->idx = calloc((size_t)most, sizeof(int))) ||
        !(e->groups = calloc((size_t)most, sizeof(int))) || !(e->passes = calloc((size_t)most, sizeof(int))) ||
        !(e->by_round = calloc(nr, sizeof(double))) || !(e->pass1_by_round = calloc(nr, sizeof(double))))
        return lm_fail(err, "out of memory");
    for (int i = 0; i <= res->n; i++) {
        e->aggs[i].kmax = e->kmax;
        if (!(e->aggs[i].by_round = calloc(nr, sizeof(double))) || !(e->aggs[i].pass1_by_round = calloc(nr, sizeof(double))))
            return lm_fail(err, "out of memory");
    }
    e->n_aggs = 1;
    for (int i = 0; i < res->n; i++) {
        const lm_problem_state *p = &res->problems[i];
        for (int j = 0; j < p->n_proofs; j++) {
            e->failed_requests += !p->proofs[j].rec;
            for (int v = 0; v < p->proofs[j].n_verifs; v++) e->failed_requests += !p->proofs[j].verifs[v].rec;
        }
        if (!e->chk->domain(e->chk->ctx, p->problem->question)) {
            e->ungraded++;
            continue;
        }
        if (grade(e, i, err)) return -1;
    }
    if (!e->aggs[0].problems)
        return lm_fail(err, "none of the %d problems belongs to a synthetic domain: the checker can grade none", res->n);
    return 0;
}

/* ---- results.json ---- */

static int jw_mean(lm_text *t, double sum, int64_t den) { return den ? jw_num(t, sum / (double)den) : jw_raw(t, "null"); }

static int64_t diag(const int64_t m[N_LABELS][N_COLS]) { return m[0][0] + m[1][1] + m[2][2]; }
static int64_t total(const int64_t m[N_LABELS][N_COLS]) {
    int64_t s = 0;
    for (int r = 0; r < N_LABELS; r++)
        for (int c = 0; c < N_COLS; c++) s += m[r][c];
    return s;
}

static int json_confusion(lm_text *t, const int64_t m[N_LABELS][N_COLS]) {
    int e = jw_raw(t, "{\"rows\":\"checker score 0, 0.5, 1\",\"columns\":[\"0\",\"0.5\",\"1\",\"other\"],\"counts\":[");
    for (int r = 0; r < N_LABELS; r++) {
        e = e || (r && jw_raw(t, ",")) || jw_raw(t, "[");
        for (int c = 0; c < N_COLS; c++) e = e || (c && jw_raw(t, ",")) || jw_int(t, m[r][c]);
        e = e || jw_raw(t, "]");
    }
    return e || jw_raw(t, "]}");
}

/* Verifications of a label row the meta-verifier was asked about, and those it rated as the label says. */
static int64_t meta_asked(const agg *a, int f) { return a->meta[f][0] + a->meta[f][1] + a->meta[f][2] + a->meta[f][3]; }
static int64_t meta_right(const agg *a, int f) { return a->meta[f][score_col(fault_label[f])]; }
static int64_t meta_sum(const agg *a, int64_t (*fn)(const agg *, int)) {
    int64_t s = 0;
    for (int f = 0; f < N_FAULTS; f++) s += fn(a, f);
    return s;
}
static int64_t verif_labelled(const agg *a, int f) { return meta_asked(a, f) + a->meta[f][4]; }

static int json_meta(lm_text *t, const agg *a) {
    int e = jw_raw(t, ",\"verification_faithfulness\":") ||
            jw_mean(t, a->faith_sum, meta_sum(a, verif_labelled)) || jw_raw(t, ",\"meta_verifier\":{\"asked\":") ||
            jw_int(t, meta_sum(a, meta_asked)) || jw_raw(t, ",\"accuracy\":") ||
            jw_mean(t, (double)meta_sum(a, meta_right), meta_sum(a, meta_asked)) || jw_raw(t, ",\"labels\":[");
    for (int r = 0; r < N_FAULTS; r++) e = e || (r && jw_raw(t, ",")) || jw_str(t, lm_meta_fault_name(fault_order[r]));
    e = e || jw_raw(t, "],\"label_values\":[");
    for (int r = 0; r < N_FAULTS; r++) e = e || (r && jw_raw(t, ",")) || jw_num(t, fault_label[fault_order[r]]);
    e = e || jw_raw(t, "],\"columns\":[");
    for (int c = 0; c < N_META_COLS; c++) e = e || (c && jw_raw(t, ",")) || jw_str(t, meta_col_names[c]);
    e = e || jw_raw(t, "],\"counts\":[");
    for (int r = 0; r < N_FAULTS; r++) {
        e = e || (r && jw_raw(t, ",")) || jw_raw(t, "[");
        for (int c = 0; c < N_META_COLS; c++) e = e || (c && jw_raw(t, ",")) || jw_int(t, a->meta[fault_order[r]][c]);
        e = e || jw_raw(t, "]");
    }
    e = e || jw_raw(t, "],\"accuracy_by_label\":[");
    for (int r = 0; r < N_FAULTS; r++)
        e = e || (r && jw_raw(t, ",")) ||
            jw_mean(t, (double)meta_right(a, fault_order[r]), meta_asked(a, fault_order[r]));
    return e || jw_raw(t, "]}");
}

static int json_list(lm_text *t, const double *v, int from, int to, int64_t den) {
    int e = jw_raw(t, "[");
    for (int i = from; i <= to; i++) e = e || (i > from && jw_raw(t, ",")) || jw_mean(t, v[i], den);
    return e || jw_raw(t, "]");
}

static int json_agg(lm_text *t, const agg *a, int rounds) {
    int64_t judged = total(a->verif), self_judged = total(a->self);
    int e = jw_raw(t, "\"problems\":") || jw_int(t, a->problems) || jw_raw(t, ",\"pass_at_1\":") ||
            jw_mean(t, a->pass1, a->problems) || jw_raw(t, ",\"best_of_n\":") || jw_mean(t, a->best_n, a->problems) ||
            jw_raw(t, ",\"oracle_pass_at_n\":") || jw_mean(t, a->oracle_n, a->problems) ||
            jw_raw(t, ",\"verifier_agreement\":") || jw_mean(t, (double)diag(a->verif), judged) ||
            jw_raw(t, ",\"pass_by_round\":") || json_list(t, a->by_round, 0, rounds, a->problems) ||
            jw_raw(t, ",\"pass_at_1_by_round\":") || json_list(t, a->pass1_by_round, 0, rounds, a->problems) ||
            jw_raw(t, ",\"best_of_n_curve\":{\"n\":[");
    for (int k = 1; k <= a->kmax; k++) e = e || (k > 1 && jw_raw(t, ",")) || jw_int(t, k);
    e = e || jw_raw(t, "],\"best_of_n\":") || json_list(t, a->best, 1, a->kmax, a->problems) ||
        jw_raw(t, ",\"pass_at_1\":[");
    for (int k = 1; k <= a->kmax; k++) e = e || (k > 1 && jw_raw(t, ",")) || jw_mean(t, a->pass1, a->problems);
    e = e || jw_raw(t, "],\"oracle_pass_at_n\":") || json_list(t, a->oracle, 1, a->kmax, a->problems) ||
        jw_raw(t, "},\"verifier\":{\"judged\":") || jw_int(t, judged) || jw_raw(t, ",\"agreement\":") ||
        jw_mean(t, (double)diag(a->verif), judged) || jw_raw(t, ",\"kept_by_meta_verification\":") ||
        jw_int(t, a->counted_judged) || jw_raw(t, ",\"agreement_of_kept\":") ||
        jw_mean(t, (double)a->counted_agree, a->counted_judged) || jw_raw(t, ",\"confusion\":") ||
        json_confusion(t, a->verif) || jw_raw(t, "},\"self_evaluation\":{\"judged\":") || jw_int(t, self_judged) ||
        jw_raw(t, ",\"agreement\":") || jw_mean(t, (double)diag(a->self), self_judged) ||
        jw_raw(t, ",\"without_self_score\":") || jw_int(t, a->self_missing) || jw_raw(t, ",\"confusion\":") ||
        json_confusion(t, a->self) || jw_raw(t, "},\"first_proofs_dropped\":") || jw_int(t, a->first_dropped) ||
        json_meta(t, a);
    return e;
}

static int json_settings(lm_text *t, const lm_prove_result *res) {
    const lm_prove_opts *o = &res->opts;
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    return jw_raw(t, "\"settings\":{\"backend\":") || jw_str(t, res->backend) || jw_raw(t, ",\"samples\":") ||
           jw_int(t, o->samples) || jw_raw(t, ",\"verifications\":") || jw_int(t, o->verifications) ||
           jw_raw(t, ",\"rounds\":") || jw_int(t, o->rounds) || jw_raw(t, ",\"refine_top\":") ||
           jw_int(t, o->refine_top) || jw_raw(t, ",\"refine_samples\":") || jw_int(t, o->refine_samples) ||
           jw_raw(t, ",\"refine_verifications\":") || jw_int(t, o->refine_verifications) ||
           jw_raw(t, ",\"max_tokens\":") || jw_int(t, o->max_tokens) || jw_raw(t, ",\"temperature\":") ||
           jw_num(t, o->temperature) || jw_raw(t, ",\"top_p\":") || jw_num(t, o->top_p) || jw_raw(t, ",\"seed\":") ||
           jw_raw(t, seed) || jw_raw(t, ",\"meta\":") || jw_raw(t, o->meta ? "true" : "false") || jw_raw(t, "}");
}

static int results_json(const eval *e, lm_text *t) {
    int x = jw_raw(t, "{\"command\":\"eval\",") || json_settings(t, e->res) || jw_raw(t, ",\"problems_ungraded\":") ||
            jw_int(t, e->ungraded) || jw_raw(t, ",\"failed_requests\":") || jw_int(t, e->failed_requests) ||
            jw_raw(t, ",") || json_agg(t, &e->aggs[0], e->rounds) || jw_raw(t, ",\"domains\":[");
    for (int k = 1; k < e->n_aggs; k++)
        x = x || (k > 1 && jw_raw(t, ",")) || jw_raw(t, "{\"domain\":") || jw_str(t, e->aggs[k].domain) ||
            jw_raw(t, ",") || json_agg(t, &e->aggs[k], e->rounds) || jw_raw(t, "}");
    return x || jw_raw(t, "]}\n");
}

/* ---- report.md ---- */

static const char *pct(char *buf, double sum, int64_t den) {
    if (!den) return "–";
    snprintf(buf, 16, "%.1f%%", 100.0 * sum / (double)den);
    return buf;
}

static int md_confusion(lm_text *t, const char *what, const int64_t m[N_LABELS][N_COLS]) {
    int e = lm_text_appendf(t, "| checker \\ %s | 0 | 0.5 | 1 | other |\n|---|---:|---:|---:|---:|\n", what);
    for (int r = 0; r < N_LABELS; r++)
        e = e || lm_text_appendf(t, "| %s | %lld | %lld | %lld | %lld |\n", col_names[r], (long long)m[r][0],
                                 (long long)m[r][1], (long long)m[r][2], (long long)m[r][3]);
    return e;
}

static int md_meta(lm_text *t, const agg *a, int meta_on) {
    char b[3][16];
    int64_t labelled = meta_sum(a, verif_labelled), asked = meta_sum(a, meta_asked);
    if (labelled) snprintf(b[0], sizeof b[0], "%.3f", a->faith_sum / (double)labelled);
    else snprintf(b[0], sizeof b[0], "–");
    int x = lm_text_appendf(t,
                            "\n## Meta-verifier vs the checker's faithfulness labels\n\n%lld verifications labelled "
                            "by what the checker knows of their proof (the first failing step): mean label %s. ",
                            (long long)labelled, b[0]);
    if (meta_on)
        x = x || lm_text_appendf(t, "The meta-verifier was asked about %lld of them (the pipeline meta-verifies "
                                    "scores below 1) and rated %s as the label says.\n\n",
                                 (long long)asked, pct(b[1], (double)meta_sum(a, meta_right), asked));
    else
        x = x || lm_text_appendf(t, "Meta-verification was off.\n\n");
    x = x || lm_text_appendf(t, "| label (value) \\ meta score | 0 | 0.5 | 1 | other | not asked | meta accuracy |\n"
                                "|---|---:|---:|---:|---:|---:|---:|\n");
    for (int r = 0; r < N_FAULTS && !x; r++) {
        int f = fault_order[r];
        x = lm_text_appendf(t, "| %s (%g) | %lld | %lld | %lld | %lld | %lld | %s |\n", lm_meta_fault_name(f),
                            fault_label[f],
                            (long long)a->meta[f][0], (long long)a->meta[f][1], (long long)a->meta[f][2],
                            (long long)a->meta[f][3], (long long)a->meta[f][4],
                            pct(b[2], (double)meta_right(a, f), meta_asked(a, f)));
    }
    return x || lm_text_appendf(t, "\nLabels (prove/reward.h, lm_meta_label_of): faithful, the real first defect named "
                                   "(or none blamed on a clean proof); missed_defect, right score but the defect not "
                                   "named; invented_defect, a line known correct blamed; denied_defect, the failing "
                                   "line said to check; wrong_score; bad_format, the fixed phrases missing.\n");
}

static int report_md(const eval *e, const char *pipeline_md, lm_text *t) {
    const lm_prove_result *res = e->res;
    const lm_prove_opts *o = &res->opts;
    const agg *all = &e->aggs[0];
    char b[6][16];
    int x = lm_text_appendf(t, "# lemma eval\n\n%d problem%s graded by the exact checker", all->problems,
                            all->problems == 1 ? "" : "s");
    if (e->ungraded) x = x || lm_text_appendf(t, " (%d more without a domain, not graded)", e->ungraded);
    x = x || lm_text_appendf(t,
                             "; %d proofs each, %d verifications per proof; up to %d refinement round%s (top %d x %d "
                             "samples, %d verifications each); meta-verification %s; backend %s.\n\n",
                             o->samples, o->verifications, o->rounds, o->rounds == 1 ? "" : "s", o->refine_top,
                             o->refine_samples, o->refine_verifications, o->meta ? "on" : "off", res->backend);
    x = x || lm_text_appendf(t,
                             "| domain | problems | pass@1 | best-of-%d | oracle pass@%d | verifier agreement | "
                             "self-evaluation agreement | pass after round %d |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
                             e->samples, e->samples, e->rounds);
    for (int k = 1; k <= e->n_aggs && !x; k++) {
        const agg *a = &e->aggs[k % e->n_aggs]; /* the domains, then all */
        x = lm_text_appendf(t, "| %s | %d | %s | %s | %s | %s | %s | %s |\n", a->domain ? a->domain : "**all**",
                            a->problems, pct(b[0], a->pass1, a->problems), pct(b[1], a->best_n, a->problems),
                            pct(b[2], a->oracle_n, a->problems), pct(b[3], (double)diag(a->verif), total(a->verif)),
                            pct(b[4], (double)diag(a->self), total(a->self)),
                            pct(b[5], a->by_round[e->rounds], a->problems));
    }
    x = x || lm_text_appendf(t, "\n## Best-of-N\n\n![best-of-N vs pass@1 vs oracle pass@N](best_of_n.svg)\n\n"
                                "| N | best-of-N by its own verification | pass@1 | oracle pass@N |\n|---:|---:|---:|---:|\n");
    for (int k = 1; k <= e->kmax && !x; k++)
        x = lm_text_appendf(t, "| %d | %s | %s | %s |\n", k, pct(b[0], all->best[k], all->problems),
                            pct(b[1], all->pass1, all->problems), pct(b[2], all->oracle[k], all->problems));
    x = x || lm_text_appendf(t, "\n## Refinement rounds\n\n![pass by refinement round](pass_by_round.svg)\n\n"
                                "| round | pass of the pipeline's pick | pass@1 of the round's proofs |\n|---:|---:|---:|\n");
    for (int r = 0; r <= e->rounds && !x; r++)
        x = lm_text_appendf(t, "| %d | %s | %s |\n", r, pct(b[0], all->by_round[r], all->problems),
                            pct(b[1], all->pass1_by_round[r], all->problems));
    x = x || lm_text_appendf(t, "\n## Verifier vs checker\n\n%lld verifications judged, %s agree with the checker",
                             (long long)total(all->verif), pct(b[0], (double)diag(all->verif), total(all->verif)));
    if (o->meta)
        x = x || lm_text_appendf(t, "; of the %lld that meta-verification kept, %s", (long long)all->counted_judged,
                                 pct(b[1], (double)all->counted_agree, all->counted_judged));
    x = x || lm_text_appendf(t, ".\n\n") || md_confusion(t, "verifier", all->verif);
    x = x || lm_text_appendf(t, "\n## Self-evaluation vs checker\n\n%lld proofs with a self-score, %s agree with the "
                                "checker; %lld without one.\n\n",
                             (long long)total(all->self), pct(b[0], (double)diag(all->self), total(all->self)),
                             (long long)all->self_missing) ||
        md_confusion(t, "self-score", all->self);
    x = x || md_meta(t, all, o->meta);
    x = x || lm_text_appendf(t,
                             "\npass@1: a first proof's chance to pass. best-of-N: the pass of the proof the model's own "
                             "mean verification score (then its self-score; still tied: an even draw) ranks first "
                             "among N of them. oracle pass@N: some proof of N passes. Each is the exact expectation "
                             "over the N-subsets of the %d first proofs, averaged over problems. round r: the proof "
                             "the same rule picks among the proofs of rounds <= r; pass@1 of round r's proofs. See "
                             "docs/prove.md.\n",
                             e->samples);
    if (e->failed_requests)
        x = x || lm_text_appendf(t, "\n**%d request%s failed in transport** and count as failed proofs or missing "
                                    "verifications; rerun the same command to ask again.\n",
                                 e->failed_requests, e->failed_requests == 1 ? "" : "s");
    if (pipeline_md && *pipeline_md) {
        const char *body = pipeline_md;
        if (!strncmp(body, "# lemma prove\n", 14)) body += 14;
        x = x || lm_text_appendf(t, "\n## The pipeline's report (lemma prove)\n%s", body);
    }
    return x;
}

/* ---- charts ---- */

static int charts(const eval *e, lm_text *best_svg, lm_text *round_svg, lm_error *err) {
    const agg *a = &e->aggs[0];
    int kmax = e->kmax, rounds = e->rounds;
    int64_t *x = calloc((size_t)(kmax > rounds + 1 ? kmax : rounds + 1), sizeof *x);
    double *y = calloc((size_t)(3 * kmax + 2 * (rounds + 1)), sizeof *y);
    if (!x || !y) {
        free(x);
        free(y);
        return lm_fail(err, "out of memory");
    }
    double *best = y, *p1 = y + kmax, *orc = y + 2 * kmax, *pick_r = y + 3 * kmax, *p1_r = pick_r + rounds + 1;
    for (int k = 1; k <= kmax; k++) {
        x[k - 1] = k;
        best[k - 1] = a->best[k] / a->problems;
        p1[k - 1] = a->pass1 / a->problems;
        orc[k - 1] = a->oracle[k] / a->problems;
    }
    char sub[256];
    snprintf(sub, sizeof sub, "%d problems graded by the exact checker; %d proofs each, %d verifications per proof",
             a->problems, e->samples, e->res->opts.verifications);
    lm_plot_lines c1 = {.title = "lemma eval: best-of-N vs pass@1 vs oracle pass@N", .subtitle = sub,
                        .panel = "pass rate", .x_label = "N (proofs sampled per problem)", .x = x, .n = kmax,
                        .series = {{"best-of-N by its own verification", best}, {"pass@1", p1}, {"oracle pass@N", orc}},
                        .n_series = 3, .y_lo = 0, .y_hi = 1};
    int rc = lm_plot_lines_svg(&c1, best_svg, err);
    if (!rc) {
        for (int r = 0; r <= rounds; r++) {
            x[r] = r;
            pick_r[r] = a->by_round[r] / a->problems;
            p1_r[r] = a->pass1_by_round[r] / a->problems;
        }
        lm_plot_lines c2 = {.title = "lemma eval: pass rate by refinement round", .subtitle = sub, .panel = "pass rate",
                            .x_label = "refinement round", .x = x, .n = rounds + 1,
                            .series = {{"the pipeline's pick (own verification)", pick_r},
                                       {"pass@1 of the round's proofs", p1_r}},
                            .n_series = 2, .y_lo = 0, .y_hi = 1};
        rc = lm_plot_lines_svg(&c2, round_svg, err);
    }
    free(x);
    free(y);
    return rc;
}

static int write_file(const char *dir, const char *name, const lm_text *t, lm_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lm_write_file_atomic(path, t->data ? t->data : "", t->len, err);
}

int lm_eval_report(const lm_prove_result *res, const lm_report_checker *chk, const char *dir, const char *pipeline_md,
                   lm_text *md, lm_text *json, lm_error *err) {
    eval e;
    memset(&e, 0, sizeof e);
    e.res = res;
    e.chk = chk;
    lm_text j = {0}, d = {0}, s1 = {0}, s2 = {0};
    int rc = eval_run(&e, err);
    if (!rc && (results_json(&e, &j) || report_md(&e, pipeline_md, &d))) rc = lm_fail(err, "out of memory");
    if (!rc) rc = charts(&e, &s1, &s2, err);
    if (!rc && dir)
        rc = write_file(dir, "results.json", &j, err) || write_file(dir, "best_of_n.svg", &s1, err) ||
                     write_file(dir, "pass_by_round.svg", &s2, err) || write_file(dir, "report.md", &d, err)
                 ? -1
                 : 0;
    if (!rc && md && lm_text_append(md, d.data ? d.data : "", d.len)) rc = lm_fail(err, "out of memory");
    if (!rc && json && lm_text_append(json, j.data ? j.data : "", j.len)) rc = lm_fail(err, "out of memory");
    lm_text_free(&j);
    lm_text_free(&d);
    lm_text_free(&s1);
    lm_text_free(&s2);
    eval_free(&e);
    return rc;
}
