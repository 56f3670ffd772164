/* test_prove.c — the proof pipeline (src/prove/): answer parsing, templates,
 * problems files, pool.jsonl, the pipeline against a scripted backend
 * (selection, pairing, early stop, meta-verification, resume), the report. */
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#include "core/fileio.h"
#include "core/sha256.h"
#include "formats/json.h"
#include "prove/answer.h"
#include "prove/backend_scripted.h"
#include "prove/evaluate.h"
#include "prove/fingerprint.h"
#include "prove/outdir.h"
#include "prove/pipeline.h"
#include "prove/pool.h"
#include "prove/problems.h"
#include "prove/report.h"
#include "prove/template.h"
#include "prove/templates.h"

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lemma_test_prove_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void remove_tmpdir(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(s, f);
    fclose(f);
}

static char *read_text(const char *path) {
    char *t;
    size_t n;
    lm_error err;
    return lm_read_file(path, 1u << 30, &t, &n, &err) ? NULL : t;
}

static int span_is(const char *b, size_t n, const char *want) { return strlen(want) == n && !memcmp(b, want, n); }

/* 1 when rc is 0 and the span is want; else prints what it is. */
static int check_span(int rc, const char *b, size_t n, const char *want) {
    if (rc == 0 && span_is(b, n, want)) return 1;
    printf("  span: rc %d, '%.*s', expected '%s'\n", rc, rc ? 0 : (int)n, rc ? "" : b, want);
    return 0;
}

/* ---- answers ---- */

static int boxed_is(const char *s, const char *want) {
    const char *b;
    size_t n;
    int rc = lm_answer_last_boxed(s, strlen(s), &b, &n);
    if (!want) return rc == -1;
    return rc == 0 && span_is(b, n, want);
}

TEST(boxed_last_non_empty) {
    CHECK(boxed_is("\\boxed{1}", "1"));
    CHECK(boxed_is("a \\boxed{0} b \\boxed{ 0.5 } c", "0.5"));
    CHECK(boxed_is("\\boxed{1} then \\boxed{ } and \\boxed{}", "1"));
    CHECK(boxed_is("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"));
    CHECK(boxed_is("\\boxed{\\{0,1\\}}", "\\{0,1\\}"));
    CHECK(boxed_is("\\boxed{a \\} b}", "a \\} b"));
    CHECK(boxed_is("\\boxed{\\boxed{1}}", "1"));
    CHECK(boxed_is("\\boxed{1} \\boxed{2", "1"));        /* an unclosed box is no box */
    CHECK(boxed_is("\\boxed{ \\boxed{1}", "1"));         /* nor does it hide the box inside it */
    CHECK(boxed_is("no box here", NULL));
    CHECK(boxed_is("\\boxed{", NULL));
    CHECK(boxed_is("\\boxed{\xc2\xa0\xe3\x80\x80}", NULL)); /* U+00A0 U+3000: white space to Python */
    CHECK(boxed_is("\\boxed{1}\\", "1"));
    /* linear even on many unclosed boxes */
    size_t n = 7 * 200000;
    char *big = malloc(n + 16);
    for (size_t i = 0; i < n; i += 7) memcpy(big + i, "\\boxed{", 7);
    strcpy(big + n, "");
    CHECK(boxed_is(big, NULL));
    memcpy(big, "\\boxed{1}", 9);
    CHECK(boxed_is(big, "1"));
    free(big);
}

static int score_is(const char *s, double want) {
    double v = -1;
    int rc = lm_parse_score(s, strlen(s), &v);
    if (want < 0) return rc == -1;
    return rc == 0 && v == want;
}

TEST(score_like_python_float) {
    CHECK(score_is("1", 1));
    CHECK(score_is(" 0.5\n", 0.5));
    CHECK(score_is("1.", 1));
    CHECK(score_is(".5", 0.5));
    CHECK(score_is("+1", 1));
    CHECK(score_is("-0", 0));
    CHECK(score_is("5e-1", 0.5));
    CHECK(score_is("0_0", 0));
    CHECK(score_is("0.2_5", 0.25));
    CHECK(score_is("1__0", -1));
    CHECK(score_is("_1", -1));
    CHECK(score_is("1_", -1));
    CHECK(score_is("1_.5", -1));
    CHECK(score_is("2", -1));     /* not a score */
    CHECK(score_is("-0.5", -1));
    CHECK(score_is("inf", -1));
    CHECK(score_is("nan", -1));
    CHECK(score_is("0x1", -1));
    CHECK(score_is("1/2", -1));
    CHECK(score_is("", -1));
    CHECK(score_is("\\frac{1}{2}", -1));
    double v;
    const char *t = "## Self Evaluation\nok\n\\boxed{0}\nand finally \\boxed{ 1 }";
    CHECK(lm_answer_score(t, strlen(t), &v) == 0 && v == 1);
}

TEST(strip_think_split) {
    const char *b;
    size_t n;
    lm_py_strip(" \t\x1c" "a b\xc2\x85\xe2\x80\xa8\n", strlen(" \t\x1c" "a b\xc2\x85\xe2\x80\xa8\n"), &b, &n);
    CHECK(span_is(b, n, "a b"));
    lm_py_strip("\xc3\xa9", 2, &b, &n); /* é is not white space */
    CHECK(n == 2);
    CHECK(!strcmp(lm_answer_after_think("a</think>b</think> c"), " c"));
    CHECK(!strcmp(lm_answer_after_think("no think"), "no think"));
    lm_answer_parts p;
    const char *a = "intro\n## Solution\n step 1 \n\n## Self Evaluation\nfine\n\\boxed{1}\n";
    CHECK(lm_answer_split(a, &p) == 0);
    CHECK(span_is(p.solution, p.solution_len, "step 1"));
    CHECK(span_is(p.self_eval, p.self_eval_len, "## Self Evaluation\nfine\n\\boxed{1}"));
    CHECK(span_is(p.from_solution, p.from_solution_len, "## Solution\n step 1 \n\n## Self Evaluation\nfine\n\\boxed{1}"));
    CHECK(lm_answer_split("## Solution\nx", &p) == -1);
    CHECK(lm_answer_split("## Self Evaluation\n## Solution\nx", &p) == -1);
}

/* ---- templates ---- */

static int fill_is(const char *tmpl, const char *want_or_err) {
    const char *keys[] = {"a", "b"}, *vals[] = {"{A}", "B"};
    lm_text out = {0};
    lm_error err;
    int rc = lm_template_fill(tmpl, keys, vals, 2, &out, &err);
    int ok = rc == 0 ? !strcmp(out.data, want_or_err) : strstr(err.msg, want_or_err) != NULL && !strchr(err.msg, '\n');
    if (!ok) printf("  fill %s: rc %d, got '%s'\n", tmpl, rc, rc ? err.msg : out.data);
    lm_text_free(&out);
    return ok;
}

TEST(template_fill_like_str_format) {
    CHECK(fill_is("{a}-{b}", "{A}-B"));
    CHECK(fill_is("{{a}} {{{a}}} }}", "{a} {{A}} }"));
    CHECK(fill_is("\\boxed{{...}}", "\\boxed{...}"));
    CHECK(fill_is("", ""));
    CHECK(fill_is("{c}", "unknown placeholder {c}"));
    CHECK(fill_is("x } y", "single '}'"));
    CHECK(fill_is("x { y", "'{' without a matching '}'"));
    CHECK(fill_is("{}", "empty field"));
    CHECK(fill_is("{0}", "positional"));
    CHECK(fill_is("{a!r}", "not supported"));
    CHECK(fill_is("{a:>5}", "not supported"));
    CHECK(fill_is("{x\ny}", "unknown placeholder \"x\\ny\""));   /* messages stay one line */
    CHECK(fill_is("{a\n!r}", "field \"a\\n!r\""));
}

static int load_tpl(const char *json, const char *want_err) {
    lm_prompt_templates t;
    lm_error err;
    int rc = lm_templates_parse(json, strlen(json), "t.json", &t, &err);
    if (!want_err) {
        if (rc) printf("  unexpected error: %s\n", err.msg);
        lm_templates_free(&t);
        return rc == 0;
    }
    if (rc == 0) {
        lm_templates_free(&t);
        printf("  accepted, expected '%s'\n", want_err);
        return 0;
    }
    if (!strstr(err.msg, want_err)) printf("  error '%s', expected '%s'\n", err.msg, want_err);
    return strstr(err.msg, want_err) != NULL;
}

TEST(templates_checked_at_load) {
    const char *good = "{\"proof_generation\":\"{question}\",\"proof_verification\":\"{statement}{proof}\","
                       "\"meta_verification\":\"{statement}{proof}{rating} {{x}}\","
                       "\"proof_refinement\":\"{instruction}{proofs_to_refine}\"}";
    CHECK(load_tpl(good, NULL));
    CHECK(load_tpl("{\"proof_generation\":\"{question}\",\"proof_verification\":\"{statement}\","
                   "\"meta_verification\":\"{statement}{proof}{rating}\",\"proof_refinement\":\"{instruction}{proofs_to_refine}\"}",
                   "t.json: proof_verification: missing placeholder {proof}"));
    CHECK(load_tpl("{\"proof_generation\":\"{question} {answer}\",\"proof_verification\":\"{statement}{proof}\","
                   "\"meta_verification\":\"{statement}{proof}{rating}\",\"proof_refinement\":\"{instruction}{proofs_to_refine}\"}",
                   "t.json: proof_generation: unknown placeholder {answer}"));
    CHECK(load_tpl("{\"proof_generation\":\"{question}\",\"proof_verification\":\"{statement}{proof}\","
                   "\"meta_verification\":\"{statement}{proof}{rating}\"}",
                   "t.json: missing key proof_refinement"));
    CHECK(load_tpl("{\"proof_generation\":\"{question}\",\"proof_verifcation\":\"{statement}{proof}\"}",
                   "unknown key \"proof_verifcation\""));
    CHECK(load_tpl("{\"proof_generation\":\"{question\"}", "t.json: proof_generation: byte 0: '{' without a matching '}'"));
    CHECK(load_tpl("{\"proof_generation\":3}", "expected a string"));
    CHECK(load_tpl("[]", "expected a JSON object"));
    CHECK(load_tpl("{", "t.json: byte"));
    lm_prompt_templates t;
    lm_error err;
    CHECK(lm_templates_builtin(&t, &err) == 0);
    CHECK(t.text[LM_TPL_REFINE] && strstr(t.text[LM_TPL_REFINE], "{proofs_to_refine}"));
    lm_templates_free(&t);
}

/* ---- the bundled DeepSeekMath-V2 templates and outputs, against Python ---- */

static const char *data_dir(char *buf, size_t cap) {
    const char *shared = test_shared_dir();
    if (!shared) return NULL;
    snprintf(buf, cap, "%s/data/deepseek-math-v2", shared);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

/* Runs tests/prove_ref.py; the parsed result, or NULL (after SKIP-worthy reasons). */
static json_doc *python_reference(const char *data, char *why, size_t cap) {
    if (system("python3 -c 'import json' >/dev/null 2>&1")) {
        snprintf(why, cap, "python3 not found");
        return NULL;
    }
    char out[400], cmd[1200];
    snprintf(out, sizeof out, "%s/ref.json", tmpdir);
    snprintf(cmd, sizeof cmd, "python3 tests/prove_ref.py '%s' '%s'", data, out);
    if (system(cmd)) {
        snprintf(why, cap, "tests/prove_ref.py failed");
        return NULL;
    }
    char *text = read_text(out);
    lm_error err;
    json_doc *doc = text ? json_parse(text, strlen(text), &err) : NULL;
    free(text);
    if (!doc) snprintf(why, cap, "cannot read %.150s", out);
    return doc;
}

static json_doc *ref_doc;
static const char *ref_skip;
static char ref_why[200];

static void load_reference(void) {
    char buf[300];
    const char *data = data_dir(buf, sizeof buf);
    if (!data) {
        ref_skip = "../shared/data/deepseek-math-v2 is absent";
        return;
    }
    if (!(ref_doc = python_reference(data, ref_why, sizeof ref_why))) ref_skip = ref_why;
}

TEST(released_templates_fill_as_python) {
    if (ref_skip) SKIP("%s", ref_skip);
    char buf[300], path[400];
    snprintf(path, sizeof path, "%s/templates.json", data_dir(buf, sizeof buf));
    lm_prompt_templates t;
    lm_error err;
    CHECKF(lm_templates_load(path, &t, &err) == 0, "%s", err.msg);
    const json_value *values = json_get(json_root(ref_doc), "values"), *fills = json_get(json_root(ref_doc), "fills");
    const char *keys[6], *vals[6];
    int nk = 0;
    for (const json_value *v = values->child; v; v = v->next, nk++) {
        keys[nk] = v->key;
        vals[nk] = v->str;
    }
    int checked = 0;
    for (int k = 0; k < LM_TPL_COUNT; k++) {
        const json_value *want = json_get(fills, lm_templates_key(k));
        lm_text out = {0};
        CHECK(want && lm_template_fill(t.text[k], keys, vals, nk, &out, &err) == 0);
        CHECKF(want && out.data && !strcmp(out.data, want->str), "%s differs from Python", lm_templates_key(k));
        checked += want != NULL;
        lm_text_free(&out);
    }
    CHECK(checked == 4);
    lm_templates_free(&t);
}

TEST(released_outputs_boxed_and_prompts_as_python) {
    if (ref_skip) SKIP("%s", ref_skip);
    char buf[300], path[600];
    const char *data = data_dir(buf, sizeof buf);
    snprintf(path, sizeof path, "%s/templates.json", data);
    lm_prompt_templates t;
    lm_error err;
    CHECK(lm_templates_load(path, &t, &err) == 0);
    const json_value *outs = json_get(json_root(ref_doc), "outputs");
    int n = 0, boxed = 0, spot = 0;
    for (const json_value *o = outs->child; o; o = o->next, n++) {
        const char *file = json_get(o, "file")->str;
        int64_t line;
        json_as_int(json_get(o, "line"), &line);
        snprintf(path, sizeof path, "%s/outputs/%s", data, file);
        char *text = read_text(path);
        CHECK(text != NULL);
        if (!text) break;
        char *l = text;
        for (int64_t k = 1; k < line && l; k++) l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL;
        char *e = l ? strchr(l, '\n') : NULL;
        json_doc *item = l ? json_parse(l, e ? (size_t)(e - l) : strlen(l), &err) : NULL;
        CHECK(item != NULL);
        if (!item) {
            free(text);
            break;
        }
        const char *q = json_get(json_root(item), "question")->str;
        const char *proof = json_get(json_get(json_root(item), "model_prediction"), "proof")->str;
        const json_value *wb = json_get(o, "boxed"), *ws = json_get(o, "score");
        const char *b;
        size_t bl;
        int rc = lm_answer_last_boxed(proof, strlen(proof), &b, &bl);
        if (wb->type == JSON_NULL) CHECKF(rc == -1, "%s:%lld: a box where Python finds none", file, (long long)line);
        else CHECKF(rc == 0 && span_is(b, bl, wb->str), "%s:%lld: last box differs", file, (long long)line);
        boxed += wb->type != JSON_NULL;
        double sc;
        int src = lm_answer_score(proof, strlen(proof), &sc);
        CHECK(ws->type == JSON_NULL ? src == -1 : (src == 0 && sc == ws->num));
        if (!strcmp(file, "IMO2025.jsonl") && line == 1) spot += check_span(rc, b, bl, "\\{0,\\;1,\\;3\\}");
        if (!strcmp(file, "Putnam2024.jsonl") && line == 1) spot += check_span(rc, b, bl, "\\,n = 1\\,");
        /* the verification prompt of this proof, filled as the released pipeline fills it */
        const char *sb, *pb;
        size_t sn, pn;
        lm_py_strip(q, strlen(q), &sb, &sn);
        lm_py_strip(proof, strlen(proof), &pb, &pn);
        char *st = strndup(sb, sn), *pr = strndup(pb, pn);
        const char *keys[] = {"statement", "proof"}, *vals[] = {st, pr};
        lm_text prompt = {0};
        CHECK(lm_template_fill(t.text[LM_TPL_VERIFY], keys, vals, 2, &prompt, &err) == 0);
        uint8_t d[32];
        char hex[65];
        lm_sha256_buf(prompt.data, prompt.len, d);
        lm_sha256_hex(d, hex);
        CHECKF(!strcmp(hex, json_get(o, "verify_sha256")->str), "%s:%lld: verification prompt differs from Python",
               file, (long long)line);
        lm_text_free(&prompt);
        free(st);
        free(pr);
        json_free(item);
        free(text);
    }
    CHECKF(n >= 80 && boxed >= 20, "%d outputs, %d with a box", n, boxed);
    CHECK(spot == 2);
    lm_templates_free(&t);
}

/* ---- problems files ---- */

static int problems_err(const char *text, const char *want) {
    lm_problem_set ps;
    lm_error err;
    if (lm_problems_parse(text, strlen(text), "p.jsonl", 0, &ps, &err) == 0) {
        lm_problems_free(&ps);
        printf("  accepted, expected '%s'\n", want);
        return 0;
    }
    if (!strstr(err.msg, want)) printf("  error '%s', expected '%s'\n", err.msg, want);
    return strstr(err.msg, want) != NULL;
}

TEST(problems_files) {
    lm_problem_set ps;
    lm_error err;
    const char *arr = " [{\"id\": 7, \"question\": \"Q1\", \"answer\": \"x\"}, {\"question\": \"Q2\"}]";
    CHECK(lm_problems_parse(arr, strlen(arr), "a.json", 0, &ps, &err) == 0);
    CHECK(ps.n == 2 && !strcmp(ps.items[0].id, "7") && !strcmp(ps.items[1].id, "2"));
    CHECK(!strcmp(ps.items[1].question, "Q2") && ps.items[0].proof == NULL);
    lm_problems_free(&ps);
    const char *jl = "{\"id\":\"a\",\"question\":\"Q1\",\"domain\":\"gcd\",\"proof\":\"ref\"}\n\n{\"question\":\"Q2\"}\n";
    CHECK(lm_problems_parse(jl, strlen(jl), "p.jsonl", 0, &ps, &err) == 0);
    CHECK(ps.n == 2 && !strcmp(ps.items[0].id, "a") && !strcmp(ps.items[1].id, "2"));
    lm_problems_free(&ps);
    CHECK(lm_problems_parse(jl, strlen(jl), "p.jsonl", 1, &ps, &err) == -1 && strstr(err.msg, "p.jsonl:3: missing \"proof\""));
    CHECK(problems_err("{\"question\":\"Q\"}\n{\"question\": }\n", "p.jsonl:2: byte"));
    CHECK(problems_err("{\"q\":\"Q\"}\n", "p.jsonl:1: missing \"question\""));
    CHECK(problems_err("{\"question\":\"\"}\n", "p.jsonl:1: \"question\" must be a non-empty string"));
    CHECK(problems_err("{\"question\":\"Q\",\"id\":1.5}\n", "p.jsonl:1: \"id\" must be"));
    CHECK(problems_err("{\"question\":\"Q\",\"id\":\"x\"}\n{\"question\":\"R\",\"id\":\"x\"}\n",
                       "p.jsonl:2: id \"x\" is used twice"));
    CHECK(problems_err("[1]", "p.jsonl: element 1: expected an object"));
    CHECK(problems_err("[{\"question\":\"Q\"},", "p.jsonl: byte"));
    CHECK(problems_err("  \n", "no problems"));
    CHECK(problems_err("\"Q\"\n", "p.jsonl:1: expected an object"));
}

/* ---- pool.jsonl ---- */

static lm_pool_rec mkrec(const char *pid, const char *id, int kind, const char *text) {
    lm_pool_rec r;
    memset(&r, 0, sizeof r);
    r.id = (char *)id;
    r.problem_id = (char *)pid;
    r.kind = kind;
    r.text = (char *)text;
    r.reasoning = "";
    r.finish_reason = "stop";
    r.backend = "test";
    r.prompt_tokens = r.completion_tokens = -1;
    strcpy(r.prompt_hash, "0123456789abcdef");
    return r;
}

TEST(pool_append_reopen_repair) {
    char path[400];
    snprintf(path, sizeof path, "%s/pool.jsonl", tmpdir);
    unlink(path);
    lm_error err;
    lm_text warn = {0};
    lm_proof_pool *p = lm_proof_pool_open(path, &warn, &err);
    CHECK(p && lm_proof_pool_count(p) == 0 && warn.len == 0);
    lm_pool_rec a = mkrec("1", "r0.g0", LM_KIND_PROOF, "bad utf8 \xff, quote \" and \\ and \x01, \xc3\xa9 \xe2\x89\xa1 \xf0\x9f\x99\x82 kept");
    char *par[] = {"r0.g0"};
    lm_pool_rec b = mkrec("1", "r0.g0.v0", LM_KIND_VERIFICATION, "\\boxed{1}");
    b.parents = par;
    b.n_parents = 1;
    b.has_score = 1;
    b.score = 1;
    lm_pool_rec f = mkrec("1", "r0.g1", LM_KIND_PROOF, NULL);
    f.failed = 1;
    f.error = "connection refused";
    CHECK(lm_proof_pool_append(p, &a, &err) && lm_proof_pool_append(p, &b, &err) && lm_proof_pool_append(p, &f, &err));
    lm_proof_pool_close(p);

    p = lm_proof_pool_open(path, &warn, &err);
    CHECK(p && lm_proof_pool_count(p) == 3 && lm_proof_pool_loaded(p) == 3);
    const lm_pool_rec *r = p ? lm_proof_pool_find(p, "1", "r0.g0", "0123456789abcdef") : NULL;
    CHECK(r && !strcmp(r->text, "bad utf8 \xef\xbf\xbd, quote \" and \\ and \x01, \xc3\xa9 \xe2\x89\xa1 \xf0\x9f\x99\x82 kept"));
    r = p ? lm_proof_pool_find(p, "1", "r0.g0.v0", "0123456789abcdef") : NULL;
    CHECK(r && r->n_parents == 1 && !strcmp(r->parents[0], "r0.g0") && r->has_score && r->score == 1);
    CHECK(p && !lm_proof_pool_find(p, "1", "r0.g1", "0123456789abcdef"));      /* failed: asked again */
    CHECK(p && !lm_proof_pool_find(p, "1", "r0.g0", "fedcba9876543210"));      /* another prompt */
    CHECK(p && !lm_proof_pool_find(p, "2", "r0.g0", "0123456789abcdef"));
    lm_proof_pool_close(p);

    /* a crash mid-write: the partial last line is dropped with a warning */
    char *text = read_text(path);
    size_t full = strlen(text);
    FILE *fp = fopen(path, "a");
    fputs("{\"id\":\"r0.g2\",\"problem_id\":\"1\",\"kind\":\"pro", fp);
    fclose(fp);
    p = lm_proof_pool_open(path, &warn, &err);
    CHECK(p && lm_proof_pool_count(p) == 3);
    CHECKF(strstr(warn.data ? warn.data : "", "pool.jsonl:4: dropped an incomplete last line"), "%s", warn.data);
    struct stat st;
    stat(path, &st);
    CHECK((size_t)st.st_size == full);
    if (p) CHECK(lm_proof_pool_append(p, &a, &err) != NULL);   /* appends after the repair parse */
    lm_proof_pool_close(p);
    p = lm_proof_pool_open(path, NULL, &err);
    CHECK(p && lm_proof_pool_count(p) == 4);
    lm_proof_pool_close(p);

    /* a complete last line whose newline was lost is kept */
    text = (free(text), read_text(path));
    text[strlen(text) - 1] = 0;
    write_text(path, text);
    lm_text_free(&warn);
    p = lm_proof_pool_open(path, &warn, &err);
    CHECK(p && lm_proof_pool_count(p) == 4 && warn.len == 0);
    lm_proof_pool_close(p);
    free(text);
    text = read_text(path);
    CHECK(text[strlen(text) - 1] == '\n');

    /* a hand-edited line is an error naming the line; the file is untouched */
    char *second = strchr(text, '\n') + 1;
    memcpy(second, "{\"id\":", 6);
    memcpy(second + 6, "XX", 2);
    write_text(path, text);
    p = lm_proof_pool_open(path, NULL, &err);
    CHECK(p == NULL && strstr(err.msg, "pool.jsonl:2: byte"));
    char *after = read_text(path);
    CHECK(after && !strcmp(after, text));
    free(after);
    free(text);
    write_text(path, "{\"id\":\"x\",\"problem_id\":\"1\",\"kind\":\"lemma\",\"round\":0,\"text\":\"\",\"finish_reason\":\"stop\","
                     "\"prompt_hash\":\"0123456789abcdef\"}\n");
    p = lm_proof_pool_open(path, NULL, &err);
    CHECK(p == NULL && strstr(err.msg, "pool.jsonl:1: field \"kind\": expected proof, verification or meta_verification"));
    write_text(path, "{\"id\":\"x\",\"problem_id\":\"1\",\"kind\":\"proof\",\"round\":0,\"text\":\"\",\"finish_reason\":\"stop\"}\n");
    p = lm_proof_pool_open(path, NULL, &err);
    CHECK(p == NULL && strstr(err.msg, "pool.jsonl:1: field \"prompt_hash\""));
    lm_text_free(&warn);
}

/* ---- a backend for the pipeline tests ----
 * Answers come from a function of (problem id, request id, prompt). The
 * request id is recovered from the seed (lm_prove_seed is a function of the
 * id), so tests can script each request exactly. */

typedef struct tb tb;
typedef const char *(*answer_fn)(tb *t, const char *pid, const char *id, const char *prompt);
struct tb {
    lm_backend b;
    answer_fn answer;
    uint64_t base_seed;
    const char **pids;
    int n_pids;
    char asked[4096][160];   /* "pid/id" of every request, in order */
    char *prompts[4096];
    int n_asked;
    int fail_next;           /* answer() sets it: this request fails in transport */
    int finish_length;       /* answer() sets it: finish_reason "length" */
    int stop_after;          /* > 0: set *stop after this many replies */
};

static int resolve(tb *t, uint64_t seed, const char **pid, char *id, size_t cap) {
    static const char *sfx[] = {"", ".v0", ".v1", ".v2", ".v3", ".v4", ".v5", ".v6", ".v7", ".v8", ".v9",
                                ".v10", ".v11", ".v0.m", ".v1.m", ".v2.m", ".v3.m", ".v4.m", ".v5.m", ".v6.m",
                                ".v7.m", ".v8.m", ".v9.m", ".v10.m", ".v11.m"};
    for (int p = 0; p < t->n_pids; p++)
        for (int r = 0; r <= 6; r++)
            for (int g = 0; g < 32; g++)
                for (size_t s = 0; s < sizeof sfx / sizeof *sfx; s++) {
                    snprintf(id, cap, "r%d.g%d%s", r, g, sfx[s]);
                    if (lm_prove_seed(t->base_seed, t->pids[p], id) == seed) {
                        *pid = t->pids[p];
                        return 0;
                    }
                }
    for (int p = 0; p < t->n_pids; p++)
        for (size_t s = 0; s < sizeof sfx / sizeof *sfx; s++) {
            snprintf(id, cap, "given%s", sfx[s]);
            if (lm_prove_seed(t->base_seed, t->pids[p], id) == seed) {
                *pid = t->pids[p];
                return 0;
            }
        }
    return -1;
}

static int tb_run(lm_backend *b, const lm_chat_request *reqs, int n, lm_reply_fn on_reply, void *user,
                  volatile int *stop, lm_error *err) {
    tb *t = (tb *)b;
    for (int i = 0; i < n; i++) {
        if (stop && *stop) return lm_fail(err, "interrupted");
        const char *pid;
        char id[64];
        if (resolve(t, reqs[i].seed, &pid, id, sizeof id)) return lm_fail(err, "test backend: unknown seed");
        if (t->n_asked < 4096) {
            snprintf(t->asked[t->n_asked], sizeof t->asked[0], "%s/%s", pid, id);
            t->prompts[t->n_asked++] = strdup(reqs[i].prompt);
        }
        t->fail_next = t->finish_length = 0;
        const char *a = t->answer(t, pid, id, reqs[i].prompt);
        lm_chat_reply r = {reqs[i].key, !t->fail_next, a, "", t->finish_length ? "length" : "stop",
                           t->fail_next ? "test failure" : "", 10, 5, 0.0, 1};
        on_reply(user, &r);
        if (t->stop_after > 0 && t->n_asked >= t->stop_after && stop) *stop = 1;
    }
    return 0;
}

static void tb_init(tb *t, answer_fn f, const char **pids, int n_pids, uint64_t seed) {
    memset(t, 0, sizeof *t);
    t->b.name = "test";
    t->b.run = tb_run;
    t->answer = f;
    t->pids = pids;
    t->n_pids = n_pids;
    t->base_seed = seed;
}

static void tb_clear(tb *t) {
    for (int i = 0; i < t->n_asked; i++) free(t->prompts[i]);
    t->n_asked = 0;
}

static int tb_count(const tb *t, const char *prefix) {
    int n = 0;
    for (int i = 0; i < t->n_asked; i++) n += !strncmp(t->asked[i], prefix, strlen(prefix));
    return n;
}

static const char *tb_prompt(const tb *t, const char *key) {
    for (int i = 0; i < t->n_asked; i++)
        if (!strcmp(t->asked[i], key)) return t->prompts[i];
    return NULL;
}

/* Templates whose prompts the answer functions can tell apart. */
static const char *test_templates_json =
    "{\"proof_generation\":\"GEN {question}\",\"proof_verification\":\"VERIFY {statement} || {proof}\","
    "\"meta_verification\":\"META {statement} || {proof} || {rating}\","
    "\"proof_refinement\":\"REFINE {instruction} || {proofs_to_refine}\"}";

static lm_prompt_templates test_templates(void) {
    lm_prompt_templates t;
    lm_error err;
    if (lm_templates_parse(test_templates_json, strlen(test_templates_json), "test", &t, &err)) {
        printf("%s\n", err.msg);
        exit(1);
    }
    return t;
}

static char ans_buf[512];

/* "## Solution\n<body>\n\n## Self Evaluation\n\\boxed{<self>}" */
static const char *proof_answer(const char *body, const char *self) {
    snprintf(ans_buf, sizeof ans_buf, "## Solution\n%s\n\n## Self Evaluation\nok\n\\boxed{%s}", body, self);
    return ans_buf;
}

static const char *verdict(const char *why, const char *score) {
    snprintf(ans_buf, sizeof ans_buf, "%s\n\\boxed{%s}", why, score);
    return ans_buf;
}

typedef struct run_env {
    lm_problem_set ps;
    lm_prompt_templates t;
    lm_proof_pool *pool;
    lm_prove_opts o;
    volatile int stop;
    char path[400];
} run_env;

static void env_open(run_env *e, const char *name, const char *problems_jsonl) {
    lm_error err;
    memset(e, 0, sizeof *e);
    if (lm_problems_parse(problems_jsonl, strlen(problems_jsonl), "test", 0, &e->ps, &err)) {
        printf("%s\n", err.msg);
        exit(1);
    }
    e->t = test_templates();
    snprintf(e->path, sizeof e->path, "%s/%s.jsonl", tmpdir, name);
    unlink(e->path);
    e->pool = lm_proof_pool_open(e->path, NULL, &err);
    lm_prove_opts_default(&e->o);
}

static void env_reopen_pool(run_env *e) {
    lm_error err;
    lm_proof_pool_close(e->pool);
    e->pool = lm_proof_pool_open(e->path, NULL, &err);
    if (!e->pool) printf("  reopen: %s\n", err.msg);
}

static void env_close(run_env *e) {
    lm_proof_pool_close(e->pool);
    lm_templates_free(&e->t);
    lm_problems_free(&e->ps);
}

static int env_run(run_env *e, tb *t, lm_prove_result **res, lm_error *err) {
    t->base_seed = e->o.seed;
    e->stop = 0;
    lm_prove_ctx c = {&e->t, &t->b, e->pool, &e->o, NULL, NULL, &e->stop};
    return lm_prove_run(&e->ps, &c, res, err);
}

/* Selection and pairing: four first proofs, their verifications scripted. */
static const char *const sel_scores[4][4] = {
    {"0", "0.5", "1", "1"},     /* P0: mean .625, self 1 */
    {"1", "1", "0.5", "0.5"},   /* P1: mean .75,  self 0 */
    {"0.5", "1", "1", "0.5"},   /* P2: mean .75,  self 1  -> ranked first */
    {"0", "0", "0", "none"},    /* P3: mean 0 (one unscored) */
};
static const char *const sel_self[4] = {"1", "0", "1", "0.5"};

static const char *sel_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    int g, v;
    char body[32];
    if (!strncmp(prompt, "REFINE", 6)) return proof_answer("refined", "0");
    if (sscanf(id, "r0.g%d.v%d", &g, &v) == 2) {
        snprintf(body, sizeof body, "V%d.%d", g, v);
        return verdict(body, sel_scores[g][v]);
    }
    if (sscanf(id, "r0.g%d", &g) == 1) {
        snprintf(body, sizeof body, "P%d", g);
        return proof_answer(body, sel_self[g]);
    }
    if (strstr(id, ".v")) return verdict("refined check", "0");
    return "?";
}

TEST(pipeline_selection_and_pairing) {
    run_env e;
    env_open(&e, "sel", "{\"id\":\"q\",\"question\":\"Q\"}\n");
    e.o.samples = 4;
    e.o.verifications = 4;
    e.o.rounds = 1;
    e.o.refine_top = 2;
    e.o.refine_samples = 1;
    e.o.refine_verifications = 2;
    e.o.meta = 0;
    const char *pids[] = {"q"};
    tb t;
    tb_init(&t, sel_answer, pids, 1, e.o.seed);
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    /* 4 proofs + 16 verifications, then 2 refined proofs + 4 verifications */
    CHECK(t.n_asked == 4 + 16 + 2 + 4);
    CHECK(tb_count(&t, "q/r1.g") == 2 + 4);
    const char *p0 = tb_prompt(&t, "q/r1.g0"), *p1 = tb_prompt(&t, "q/r1.g1");
    /* r1.g0 refines P2 (mean .75, self 1) with its verifications lowest first */
    const char *want0 = "REFINE GEN Q || --- Solution 0 ---\nP2\n\n=== Evaluation 0 of Solution 0 ===\nV2.0\n\\boxed{0.5}"
                        "\n\n=== Evaluation 1 of Solution 0 ===\nV2.3\n\\boxed{0.5}\n\n=== Evaluation 2 of Solution 0 ===\n"
                        "V2.1\n\\boxed{1}\n\n=== Evaluation 3 of Solution 0 ===\nV2.2\n\\boxed{1}";
    CHECKF(p0 && !strcmp(p0, want0), "got:\n%s", p0 ? p0 : "(none)");
    CHECK(p1 && strstr(p1, "--- Solution 0 ---\nP1\n\n=== Evaluation 0 of Solution 0 ===\nV1.2\n"));
    /* the verifier of a refined proof sees its solution part */
    CHECK(tb_prompt(&t, "q/r1.g0.v0") && !strcmp(tb_prompt(&t, "q/r1.g0.v0"), "VERIFY Q || refined"));
    const lm_problem_state *p = &res->problems[0];
    CHECK(p->n_proofs == 6 && p->rounds_used == 1 && !p->stopped);
    CHECK(!strcmp(p->proofs[4].id, "r1.g0") && !strcmp(p->proofs[4].parent, "r0.g2"));
    CHECK(!strcmp(p->proofs[5].parent, "r0.g1"));
    CHECK(p->best_after[0] == 2 && p->best_after[1] == 2);
    CHECK(p->proofs[3].n_counted == 3 && p->proofs[3].mean == 0);
    CHECK_NEAR(p->proofs[0].mean, 0.625, 0, 0);
    /* the pool records the parents */
    int refined = 0;
    for (int i = 0; i < lm_proof_pool_count(e.pool); i++) {
        const lm_pool_rec *r = lm_proof_pool_at(e.pool, i);
        if (!strcmp(r->id, "r1.g0")) refined += r->parent_is_list && r->n_parents == 1 && !strcmp(r->parents[0], "r0.g2");
        if (!strcmp(r->id, "r0.g3.v3")) refined += !r->has_score && r->dropped != NULL;
    }
    CHECK(refined == 2);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

TEST(ranking_mean_then_self_score) {
    lm_proof_state pr[5];
    memset(pr, 0, sizeof pr);
    for (int i = 0; i < 5; i++) {
        pr[i].usable = 1;
        pr[i].n_counted = 2;
        pr[i].mean = 0.5;
        pr[i].index = i;
    }
    pr[0].tie = 1;           /* self 0: the tie key would favour it */
    pr[1].self_score = 1;
    pr[1].tie = 999;
    pr[2].mean = 0.75;       /* the best mean, but round 1 */
    pr[2].round = 1;
    pr[3].mean = 1;          /* no counted verification: not ranked */
    pr[3].n_counted = 0;
    pr[4].mean = 1;          /* not usable */
    pr[4].usable = 0;
    lm_problem_state p;
    memset(&p, 0, sizeof p);
    p.proofs = pr;
    p.n_proofs = 5;
    CHECK(lm_prove_best(&p, 0) == 1);
    CHECK(lm_prove_best(&p, 1) == 2);
    pr[0].self_score = 1;    /* equal (mean, self): the smaller tie key */
    CHECK(lm_prove_best(&p, 0) == 0);
    p.n_proofs = 0;
    CHECK(lm_prove_best(&p, 0) == -1);
}

TEST(refine_prompt_caps_and_order) {
    lm_prompt_templates t = test_templates();
    lm_proof_state pr;
    memset(&pr, 0, sizeof pr);
    pr.solution = "S";
    pr.solution_len = 1;
    lm_verif_state v[12];
    char texts[12][16];
    memset(v, 0, sizeof v);
    pr.verifs = v;
    pr.n_verifs = 12;
    /* 5 x 0, 5 x 0.5, 2 x 1 (interleaved): 4 zeros and 4 halves, no ones */
    for (int k = 0; k < 12; k++) {
        v[k].valid = 1;
        v[k].score = k < 10 ? (k % 2 ? 0.5 : 0) : 1;
        snprintf(texts[k], sizeof texts[k], "<%d>", k);
        v[k].rating = texts[k];
        v[k].rating_len = strlen(texts[k]);
    }
    lm_text out = {0};
    lm_error err;
    CHECK(lm_prove_refine_prompt(&t, "Q", &pr, &out, &err) == 0);
    CHECKF(strstr(out.data, "=== Evaluation 0 of Solution 0 ===\n<0>\n\n=== Evaluation 1 of Solution 0 ===\n<2>\n\n"
                            "=== Evaluation 2 of Solution 0 ===\n<4>\n\n=== Evaluation 3 of Solution 0 ===\n<6>\n\n"
                            "=== Evaluation 4 of Solution 0 ===\n<1>\n\n") &&
               strstr(out.data, "=== Evaluation 7 of Solution 0 ===\n<7>") && !strstr(out.data, "<8>") &&
               !strstr(out.data, "<10>") && !strstr(out.data, "Evaluation 8"),
           "%s", out.data);
    /* one score value: up to 8 */
    for (int k = 0; k < 12; k++) v[k].score = 1;
    out.len = 0;
    CHECK(lm_prove_refine_prompt(&t, "Q", &pr, &out, &err) == 0);
    CHECK(strstr(out.data, "Evaluation 7 of Solution 0 ===\n<7>") && !strstr(out.data, "<8>"));
    /* rejected and unscored verifications are left out; 2 zeros + 4 ones */
    for (int k = 0; k < 12; k++) v[k].score = k < 2 ? 0 : 1;
    v[2].rejected = 1;
    v[3].valid = 0;
    out.len = 0;
    CHECK(lm_prove_refine_prompt(&t, "Q", &pr, &out, &err) == 0);
    CHECKF(strstr(out.data, "<0>\n\n=== Evaluation 1 of Solution 0 ===\n<1>\n\n=== Evaluation 2 of Solution 0 ===\n<4>") &&
               strstr(out.data, "Evaluation 5 of Solution 0 ===\n<7>") && !strstr(out.data, "<8>") &&
               !strstr(out.data, "<2>") && !strstr(out.data, "<3>"),
           "%s", out.data);
    /* instruction and the whole are stripped as the released code strips them */
    pr.n_verifs = 0;
    out.len = 0;
    CHECK(lm_prove_refine_prompt(&t, "  Q \n", &pr, &out, &err) == 0);
    CHECKF(!strcmp(out.data, "REFINE GEN Q || --- Solution 0 ---\nS"), "%s", out.data);
    lm_text_free(&out);
    lm_templates_free(&t);
}

/* Early stop: problem "a" has a proof every verifier passes; "b" never. */
static const char *stop_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    if (!strncmp(prompt, "VERIFY", 6)) return verdict("v", !strcmp(pid, "a") && strstr(prompt, "GOODPROOF") ? "1" : "0");
    if (!strncmp(prompt, "META", 4)) return verdict("m", "1");
    if (!strcmp(pid, "a") && !strcmp(id, "r0.g1")) return proof_answer("GOODPROOF", "1");
    return proof_answer("weak", "0.5");
}

TEST(pipeline_early_stop) {
    run_env e;
    env_open(&e, "stop", "{\"id\":\"a\",\"question\":\"QA\"}\n{\"id\":\"b\",\"question\":\"QB\"}\n");
    e.o.samples = 2;
    e.o.verifications = 2;
    e.o.rounds = 2;
    e.o.refine_top = 1;
    e.o.refine_samples = 2;
    e.o.refine_verifications = 2;
    const char *pids[] = {"a", "b"};
    tb t;
    tb_init(&t, stop_answer, pids, 2, e.o.seed);
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    CHECK(tb_count(&t, "a/r1") == 0 && tb_count(&t, "a/r2") == 0);
    CHECK(tb_count(&t, "b/r1.g") > 0 && tb_count(&t, "b/r2.g") > 0);
    CHECK(res->problems[0].stopped && res->problems[0].rounds_used == 0);
    CHECK(!res->problems[1].stopped && res->problems[1].rounds_used == 2);
    CHECK(!strcmp(res->problems[0].proofs[res->problems[0].best_after[2]].id, "r0.g1"));
    lm_text md = {0};
    CHECK(lm_prove_report(res, NULL, NULL, &md, NULL, &err) == 0);
    CHECKF(strstr(md.data, "| a | 1.000 | 1 | yes | 0 | 2 |") && strstr(md.data, "| b | 0.000 | 0.5 | no | 2 | 6 |"),
           "%s", md.data);
    lm_text_free(&md);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

/* Meta-verification: scores <= 0.75 are meta-verified; a 0 rejects. */
static const char *meta_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    static const char *scores[] = {"0", "1", "0.5", "0.75"};
    int g, v;
    if (!strncmp(prompt, "META", 4)) return verdict("m", strstr(prompt, "BOGUS") ? "0" : "1");
    if (sscanf(id, "r0.g%d.v%d", &g, &v) == 2) return verdict(v == 0 ? "BOGUS" : "fine", scores[v]);
    return proof_answer("P", "1");
}

TEST(pipeline_meta_verification) {
    for (int meta = 1; meta >= 0; meta--) {
        run_env e;
        env_open(&e, meta ? "meta" : "nometa", "{\"id\":\"m\",\"question\":\"QM\"}\n");
        e.o.samples = 1;
        e.o.verifications = 4;
        e.o.rounds = 0;
        e.o.meta = meta;
        const char *pids[] = {"m"};
        tb t;
        tb_init(&t, meta_answer, pids, 1, e.o.seed);
        lm_prove_result *res = NULL;
        lm_error err;
        CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
        const lm_proof_state *pr = &res->problems[0].proofs[0];
        if (meta) {
            CHECK(tb_count(&t, "m/r0.g0.v0.m") == 1 && tb_count(&t, "m/r0.g0.v1.m") == 0 &&
                  tb_count(&t, "m/r0.g0.v2.m") == 1 && tb_count(&t, "m/r0.g0.v3.m") == 1);
            const char *mp = tb_prompt(&t, "m/r0.g0.v0.m");
            CHECKF(mp && !strcmp(mp, "META QM || P || BOGUS\n\\boxed{0}"), "%s", mp ? mp : "(none)");
            CHECK(pr->verifs[0].rejected && !pr->verifs[2].rejected && !pr->verifs[3].rejected);
            CHECK(pr->n_counted == 3);
            CHECK_NEAR(pr->mean, (1 + 0.5 + 0.75) / 3, 1e-15, 0);
        } else {
            CHECK(tb_count(&t, ".m") == 0 && t.n_asked == 5);
            CHECK(pr->n_counted == 4);
            CHECK_NEAR(pr->mean, (0 + 1 + 0.5 + 0.75) / 4, 1e-15, 0);
        }
        lm_prove_result_free(res);
        tb_clear(&t);
        env_close(&e);
    }
}

/* A rejected verification can make a proof pass: [1, 0 rejected] -> mean 1 -> stop. */
static const char *meta_stop_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    int g, v;
    if (!strncmp(prompt, "META", 4)) return verdict("m", "0");
    if (sscanf(id, "r0.g%d.v%d", &g, &v) == 2) return verdict("v", v == 0 ? "1" : "0");
    return proof_answer("P", "1");
}

TEST(pipeline_meta_rejection_stops) {
    run_env e;
    env_open(&e, "metastop", "{\"id\":\"s\",\"question\":\"Q\"}\n");
    e.o.samples = 1;
    e.o.verifications = 2;
    e.o.rounds = 3;
    const char *pids[] = {"s"};
    tb t;
    tb_init(&t, meta_stop_answer, pids, 1, e.o.seed);
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    CHECK(res->problems[0].stopped && t.n_asked == 1 + 2 + 1);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

/* Unparseable and unfinished answers are recorded and never asked again;
 * transport failures are asked again. */
static const char *junk_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    int g, v;
    if (sscanf(id, "r0.g%d.v%d", &g, &v) == 2) {
        if (g == 1 && t->stop_after == -1) t->fail_next = 1;   /* first run: g1's verifications fail */
        if (v == 1) return "no score at all";
        if (v == 2) {
            t->finish_length = 1;
            return "\\boxed{1";
        }
        return verdict("v", "0.5");
    }
    if (!strcmp(id, "r0.g0")) return "no headings";
    if (!strcmp(id, "r0.g2")) {
        t->finish_length = 1;
        return proof_answer("cut", "1");
    }
    return proof_answer("P", "0.5");
}

TEST(pipeline_records_junk_and_retries_failures) {
    run_env e;
    env_open(&e, "junk", "{\"id\":\"j\",\"question\":\"Q\"}\n");
    e.o.samples = 3;
    e.o.verifications = 3;
    e.o.rounds = 0;
    e.o.meta = 0;
    const char *pids[] = {"j"};
    tb t;
    tb_init(&t, junk_answer, pids, 1, e.o.seed);
    t.stop_after = -1; /* marks the first run for junk_answer */
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    /* g0 has no headings, g2 did not finish: only g1 is verified, and that fails */
    CHECK(t.n_asked == 3 + 3 && res->failed == 3);
    CHECK(!res->problems[0].proofs[0].usable && !res->problems[0].proofs[2].usable);
    CHECK(res->problems[0].best_after[0] == -1);
    lm_text md = {0};
    CHECK(lm_prove_report(res, NULL, NULL, &md, NULL, &err) == 0);
    CHECK(strstr(md.data, "**3 requests failed in transport**"));
    lm_text_free(&md);
    lm_prove_result_free(res);
    tb_clear(&t);

    env_reopen_pool(&e);
    t.stop_after = 0;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    CHECK(t.n_asked == 3 && tb_count(&t, "j/r0.g1.v") == 3 && res->failed == 0 && res->from_pool == 3);
    const lm_proof_state *pr = &res->problems[0].proofs[1];
    CHECK(pr->n_verifs == 3 && pr->verifs[0].valid && !pr->verifs[1].valid && !pr->verifs[2].valid);
    CHECK(pr->n_counted == 1 && pr->mean == 0.5);
    lm_prove_result_free(res);
    tb_clear(&t);

    /* a third run asks nothing: the unparseable and unfinished answers are in the pool */
    env_reopen_pool(&e);
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    CHECK(t.n_asked == 0 && res->from_pool == 6);
    lm_prove_result_free(res);
    env_close(&e);
}

/* Resume: interrupted after k replies and rerun, the report is the same as
 * an uninterrupted run's and no request is asked twice. */
static const char *resume_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    /* a deterministic function of the prompt and id, varied enough to refine */
    uint64_t h = lm_prove_seed(99, pid, id) ^ lm_prove_seed(7, prompt, "");
    static const char *sc[] = {"0", "0.5", "1", "0.5", "0", "0.5"};
    if (!strncmp(prompt, "VERIFY", 6)) return verdict(h % 5 == 0 ? "junk" : "v", h % 5 == 0 ? "x" : sc[h % 6]);
    if (!strncmp(prompt, "META", 4)) return verdict("m", h % 7 ? "1" : "0");
    char body[64];
    snprintf(body, sizeof body, "proof %s %llu", id, (unsigned long long)(h % 1000));
    return proof_answer(body, sc[(h >> 8) % 4]);
}

TEST(pipeline_resume_equals_uninterrupted) {
    const char *problems = "{\"id\":\"x\",\"question\":\"QX\"}\n{\"id\":\"y\",\"question\":\"QY\"}\n";
    const char *pids[] = {"x", "y"};
    lm_error err;
    run_env e;
    env_open(&e, "resume_full", problems);
    e.o.samples = 4;
    e.o.verifications = 3;
    e.o.rounds = 3;
    e.o.refine_top = 2;
    e.o.refine_samples = 2;
    e.o.refine_verifications = 2;
    tb t;
    tb_init(&t, resume_answer, pids, 2, e.o.seed);
    lm_prove_result *res = NULL;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    lm_text want = {0};
    CHECK(lm_prove_report(res, NULL, NULL, NULL, &want, &err) == 0);
    int total = t.n_asked;
    CHECKF(total > 40 && tb_count(&t, "x/r3") + tb_count(&t, "y/r3") > 0, "%d asked, %d in round 3", total,
           tb_count(&t, "x/r3") + tb_count(&t, "y/r3"));
    lm_prove_result_free(res);
    tb_clear(&t);
    lm_prove_opts o = e.o;
    env_close(&e);

    int stops[] = {1, 7, 19, 33, total - 1};
    for (size_t s = 0; s < sizeof stops / sizeof *stops; s++) {
        env_open(&e, "resume_part", problems);
        e.o = o;
        static char seen[4096][160];
        int n_seen = 0, dup = 0, runs = 0;
        for (;;) {
            tb_init(&t, resume_answer, pids, 2, e.o.seed);
            t.stop_after = runs == 0 ? stops[s] : 0;
            int rc = env_run(&e, &t, &res, &err);
            for (int i = 0; i < t.n_asked; i++) {
                for (int k = 0; k < n_seen; k++) dup += !strcmp(seen[k], t.asked[i]);
                if (n_seen < 4096) strcpy(seen[n_seen++], t.asked[i]);
            }
            tb_clear(&t);
            runs++;
            if (rc == 0) break;
            CHECKF(!strcmp(err.msg, "interrupted"), "%s", err.msg);
            env_reopen_pool(&e);
            if (runs > 3) break;
        }
        CHECK(runs == 2 && dup == 0 && n_seen == total);
        lm_text got = {0};
        CHECK(res && lm_prove_report(res, NULL, NULL, NULL, &got, &err) == 0);
        CHECKF(got.data && !strcmp(got.data, want.data), "stop after %d: the report differs", stops[s]);
        lm_text_free(&got);
        lm_prove_result_free(res);
        res = NULL;
        env_close(&e);
    }
    lm_text_free(&want);
}

/* ---- the report against a checker ---- */

static const char *fake_domain(void *ctx, const char *q) { return !strncmp(q, "FAKE", 4) ? "fake" : NULL; }
static int fake_check(void *ctx, const char *q, const char *answer, double *score, int *step) {
    *score = strstr(answer, "CORRECT") ? 1 : strstr(answer, "HALF") ? 0.5 : 0;
    if (step) *step = 0;
    return 0;
}

/* Problem f1: first proofs CORRECT, WRONG; the verifier prefers WRONG, so
 * best-of-2 fails; the refinement of WRONG is CORRECT and wins in round 1.
 * Problem f2: HALF and CORRECT; the verifier prefers CORRECT. */
static const char *report_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    if (!strncmp(prompt, "REFINE", 6)) return proof_answer("CORRECT refined", "1");
    if (!strncmp(prompt, "VERIFY", 6)) {
        if (!strcmp(pid, "imo")) return verdict("v", "0");
        if (strstr(prompt, "refined")) return verdict("v", "1");
        if (!strcmp(pid, "f1")) return verdict("v", strstr(prompt, "WRONG") ? "0.5" : "0");
        if (!strcmp(pid, "f2")) return verdict("v", strstr(prompt, "CORRECT") ? "1" : "0.5");
        return verdict("v", "0");
    }
    if (!strcmp(pid, "f1")) return proof_answer(!strcmp(id, "r0.g0") ? "CORRECT" : "WRONG", "1");
    if (!strcmp(pid, "f2")) return proof_answer(!strcmp(id, "r0.g0") ? "HALF" : "CORRECT", "1");
    return proof_answer("something", "1");
}

TEST(report_against_checker) {
    run_env e;
    env_open(&e, "report", "{\"id\":\"f1\",\"question\":\"FAKE one\"}\n{\"id\":\"f2\",\"question\":\"FAKE two\"}\n"
                           "{\"id\":\"imo\",\"question\":\"Prove it\"}\n");
    e.o.samples = 2;
    e.o.verifications = 2;
    e.o.rounds = 1;
    e.o.refine_top = 1;
    e.o.refine_samples = 1;
    e.o.refine_verifications = 1;
    e.o.meta = 0;
    const char *pids[] = {"f1", "f2", "imo"};
    tb t;
    tb_init(&t, report_answer, pids, 3, e.o.seed);
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    lm_report_checker chk = {fake_domain, fake_check, NULL};
    char dir[400];
    snprintf(dir, sizeof dir, "%s/reportdir", tmpdir);
    mkdir(dir, 0755);
    lm_text md = {0}, js = {0};
    CHECKF(lm_prove_report(res, &chk, dir, &md, &js, &err) == 0, "%s", err.msg);
    /* pass@1 2/4; best-of-2 1/2 (f2); agreement: f1 CORRECT judged 0 (x2, wrong), WRONG 0.5 (x2, wrong);
     * f2 HALF 0.5 (x2, right), CORRECT 1 (x2, right); f1's refined CORRECT 1 (right) -> 5/9, MAE 3/9 */
    CHECKF(strstr(md.data, "| fake | 2 | 50.0% | 50.0% | 55.6% | 0.333 | 100.0% |"), "%s", md.data);
    CHECK(strstr(md.data, "| imo | 0.000 | 1 | no | 1 | 3 |"));
    json_doc *doc = json_parse(js.data, js.len, &err);
    CHECK(doc != NULL);
    if (doc) {
        const json_value *all = json_get(json_get(json_root(doc), "summary"), "all");
        double v;
        CHECK(json_as_double(json_get(all, "pass_at_1"), &v) && v == 0.5);
        CHECK(json_as_double(json_get(all, "best_of_n"), &v) && v == 0.5);
        CHECK(json_as_double(json_at(json_get(all, "pass_after_round"), 1), &v) && v == 1);
        const json_value *p0 = json_at(json_get(json_root(doc), "problems"), 0);
        CHECK(!strcmp(json_get(p0, "best_proof")->str, "## Solution\nCORRECT refined\n\n## Self Evaluation\nok\n\\boxed{1}"));
        CHECK(json_as_double(json_get(p0, "checker_score"), &v) && v == 1);
        CHECK(json_as_double(json_get(p0, "best_score"), &v) && v == 1);
        const json_value *p2 = json_at(json_get(json_root(doc), "problems"), 2);
        CHECK(json_get(p2, "checker_score") == NULL && json_get(p2, "domain")->type == JSON_NULL);
        json_free(doc);
    }
    char path[500];
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *onfile = read_text(path);
    CHECK(onfile && !strcmp(onfile, md.data));
    free(onfile);
    lm_text_free(&md);
    lm_text_free(&js);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

/* ---- lemma eval: the estimators and the table against a checker ---- */

/* Every k-subset of n ranked proofs (rank[i]: lower is better, equal ranks
 * tie; pass[i]; unscored[i]: never picked), enumerated: the mean over
 * subsets of the top proof's pass, ties an even draw. */
static double brute_best_of_k(int n, const int *rankv, const int *pass, const int *unscored, int k, double *oracle) {
    double sum = 0, any = 0, count = 0;
    for (unsigned mask = 0; mask < 1u << n; mask++) {
        if (__builtin_popcount(mask) != k) continue;
        int best = -1, hit = 0, tied = 0, tied_pass = 0;
        for (int i = 0; i < n; i++) {
            if (!(mask >> i & 1)) continue;
            hit |= pass[i];
            if (unscored[i]) continue;
            if (best < 0 || rankv[i] < best) best = rankv[i], tied = 0, tied_pass = 0;
            if (rankv[i] == best) tied++, tied_pass += pass[i];
        }
        sum += tied ? (double)tied_pass / tied : 0;
        any += hit;
        count++;
    }
    *oracle = any / count;
    return sum / count;
}

TEST(eval_estimators_match_enumeration) {
    /* hand values: n=4, c=2: pass@2 = 1 - C(2,2)/C(4,2) = 5/6 */
    CHECK_NEAR(lm_eval_pass_at_k(4, 2, 1), 0.5, 1e-15, 0);
    CHECK_NEAR(lm_eval_pass_at_k(4, 2, 2), 5.0 / 6, 1e-15, 0);
    CHECK(lm_eval_pass_at_k(4, 2, 3) == 1 && lm_eval_pass_at_k(4, 0, 4) == 0 && lm_eval_pass_at_k(4, 4, 1) == 1);
    CHECK(lm_eval_pass_at_k(4, 2, 0) == 0 && lm_eval_pass_at_k(4, 2, 5) == 0 && lm_eval_pass_at_k(0, 0, 1) == 0);
    /* groups {pass, fail} tied first, {pass}, {fail}: best-of-2 = 5/6 * 1/2 + 1/6 * 1 = 7/12 */
    int g[] = {2, 1, 1}, c[] = {1, 1, 0};
    CHECK_NEAR(lm_eval_best_of_k(4, g, c, 3, 1), 0.5, 1e-15, 0);
    CHECK_NEAR(lm_eval_best_of_k(4, g, c, 3, 2), 7.0 / 12, 1e-15, 0);
    CHECK_NEAR(lm_eval_best_of_k(4, g, c, 3, 4), 0.5, 1e-15, 0);
    /* large n: no overflow (C(100000, 32) is far past a double's integers) */
    double v = lm_eval_pass_at_k(100000, 1, 32);
    CHECK_NEAR(v, 32.0 / 100000, 1e-15, 0);
    /* random rankings with ties and unscored proofs against enumerating every subset */
    uint64_t st = 12345;
    for (int trial = 0; trial < 300; trial++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        int n = 1 + (int)(st >> 33) % 10;
        int rankv[10], pass[10], unscored[10];
        for (int i = 0; i < n; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            rankv[i] = (int)(st >> 40) % 4;
            pass[i] = (int)((st >> 20) % 2);
            unscored[i] = (st >> 50) % 5 == 0;
        }
        /* the groups in rank order, unscored left out */
        int groups[10], passes[10], ng = 0, c_all = 0;
        for (int i = 0; i < n; i++) c_all += pass[i];
        for (int r = 0; r < 4; r++) {
            int m = 0, cp = 0;
            for (int i = 0; i < n; i++)
                if (!unscored[i] && rankv[i] == r) m++, cp += pass[i];
            if (m) groups[ng] = m, passes[ng++] = cp;
        }
        for (int k = 1; k <= n; k++) {
            double oracle, want = brute_best_of_k(n, rankv, pass, unscored, k, &oracle);
            CHECKF(fabs(lm_eval_best_of_k(n, groups, passes, ng, k) - want) < 1e-12, "trial %d n %d k %d", trial, n, k);
            CHECKF(fabs(lm_eval_pass_at_k(n, c_all, k) - oracle) < 1e-12, "trial %d n %d k %d", trial, n, k);
        }
    }
}

static const char *no_domain(void *ctx, const char *q) { return NULL; }
static const char *eval_domain(void *ctx, const char *q) {
    return !strncmp(q, "FAKE", 4) ? "fake" : !strncmp(q, "ALT", 3) ? "alt" : NULL;
}

/* Problem a (domain fake), first proofs and their two verifications:
 *   g0 CORRECT self 1 [1, 1]   g1 WRONG self 1 [1, 1]      (tied first: an even draw)
 *   g2 CORRECT self .5 [.5, .5] g3 WRONG self 0 [0, none]
 * a stops after round 0 (a mean of 1). Problem b (domain alt):
 *   g0 WRONG self 1 [.5, .5]    g1 CORRECT self .5 [.5, .5] (same mean: the self-score ranks g0 first)
 *   g2 no headings (dropped)    g3 WRONG self x [0, .75]   (no self-score; .75 is "other")
 * round 1 refines b's g0 into CORRECT self 1 [1] and WRONG self 1 [0].
 * Problem c has no domain. */
static const char *eval_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    static const char *const a_body[4] = {"CORRECT", "WRONG", "CORRECT", "WRONG"}, *const a_self[4] = {"1", "1", "0.5", "0"};
    static const char *const a_v[4][2] = {{"1", "1"}, {"1", "1"}, {"0.5", "0.5"}, {"0", "none"}};
    static const char *const b_body[4] = {"WRONG", "CORRECT", NULL, "WRONG"}, *const b_self[4] = {"1", "0.5", NULL, "x"};
    static const char *const b_v[4][2] = {{"0.5", "0.5"}, {"0.5", "0.5"}, {"0", "0"}, {"0", "0.75"}};
    int r, g, v;
    int n = sscanf(id, "r%d.g%d.v%d", &r, &g, &v);
    if (!strcmp(pid, "c")) return n == 3 ? verdict("v", "1") : proof_answer("something", "1");
    if (n == 3 && r == 1) return verdict("v", g == 0 ? "1" : "0");
    if (n == 2 && r == 1) return proof_answer(g == 0 ? "CORRECT refined" : "WRONG refined", "1");
    if (n < 2 || r != 0 || g > 3 || (n == 3 && v > 1)) return "?";
    int is_a = !strcmp(pid, "a");
    if (n == 3) return verdict("v", (is_a ? a_v : b_v)[g][v]);
    if (!is_a && g == 2) return "no headings";
    return proof_answer((is_a ? a_body : b_body)[g], (is_a ? a_self : b_self)[g]);
}

static double jnum(const json_value *v) {
    double d = NAN;
    return v && json_as_double(v, &d) ? d : NAN;
}

/* The list at key, compared with want[0..n). */
static int jlist_is(const json_value *o, const char *key, const double *want, int n) {
    const json_value *l = json_get(o, key);
    if (!l || l->type != JSON_ARRAY || (int)l->len != n) return 0;
    for (int i = 0; i < n; i++)
        if (!(fabs(jnum(json_at(l, (size_t)i)) - want[i]) < 1e-12)) return 0;
    return 1;
}

static int jconfusion_is(const json_value *o, const int want[3][4]) {
    const json_value *c = json_get(json_get(o, "confusion"), "counts");
    for (int r = 0; r < 3; r++)
        for (int k = 0; k < 4; k++)
            if (jnum(json_at(json_at(c, (size_t)r), (size_t)k)) != want[r][k]) return 0;
    return 1;
}

TEST(eval_against_checker) {
    run_env e;
    env_open(&e, "eval", "{\"id\":\"a\",\"question\":\"FAKE a\"}\n{\"id\":\"b\",\"question\":\"ALT b\"}\n"
                         "{\"id\":\"c\",\"question\":\"Prove it\"}\n");
    e.o.samples = 4;
    e.o.verifications = 2;
    e.o.rounds = 1;
    e.o.refine_top = 1;
    e.o.refine_samples = 2;
    e.o.refine_verifications = 1;
    e.o.meta = 0;
    const char *pids[] = {"a", "b", "c"};
    tb t;
    tb_init(&t, eval_answer, pids, 3, e.o.seed);
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    CHECK(tb_count(&t, "a/r1.") == 0 && tb_count(&t, "b/r1.g") == 4);
    lm_report_checker chk = {eval_domain, fake_check, NULL};
    char dir[400];
    snprintf(dir, sizeof dir, "%s/evaldir", tmpdir);
    mkdir(dir, 0755);
    lm_text md = {0}, js = {0};
    CHECKF(res && lm_eval_report(res, &chk, dir, "# lemma prove\n\nPIPELINE TABLE\n", &md, &js, &err) == 0, "%s", err.msg);
    json_doc *doc = js.data ? json_parse(js.data, js.len, &err) : NULL;
    CHECKF(doc != NULL, "%s", js.data ? js.data : "(none)");
    if (doc) {
        const json_value *all = json_root(doc);
        CHECK(jnum(json_get(all, "problems")) == 2 && jnum(json_get(all, "problems_ungraded")) == 1);
        /* a: n 4, c 2, its tied top an even draw: best-of-4 1/2; b: n 4, c 1, the self-score puts the failing
         * g0 first: best-of-4 0, best-of-2 = P(g1 in, g0 out) = (C(3,2) - C(2,2)) / C(4,2) = 1/3 */
        CHECK_NEAR(jnum(json_get(all, "pass_at_1")), 0.375, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(all, "best_of_n")), 0.25, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(all, "oracle_pass_at_n")), 1, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(all, "verifier_agreement")), 6.0 / 15, 1e-15, 0);
        static const double by_round[] = {0.25, 0.75}, p1_round[] = {0.375, 0.5};
        CHECK(jlist_is(all, "pass_by_round", by_round, 2));       /* b's refined CORRECT wins round 1 */
        CHECK(jlist_is(all, "pass_at_1_by_round", p1_round, 2));  /* a stopped: keeps its round 0 */
        const json_value *curve = json_get(all, "best_of_n_curve");
        /* a: best 1/2, 7/12, 1/2, 1/2; oracle 1/2, 5/6, 1, 1. b: best 1/4, 1/3, 1/4, 0; oracle 1/4, 1/2, 3/4, 1 */
        static const double ns[] = {1, 2, 3, 4}, best[] = {0.375, 11.0 / 24, 0.375, 0.25},
                            p1[] = {0.375, 0.375, 0.375, 0.375}, oracle[] = {0.375, 2.0 / 3, 0.875, 1};
        CHECK(jlist_is(curve, "n", ns, 4) && jlist_is(curve, "best_of_n", best, 4));
        CHECK(jlist_is(curve, "pass_at_1", p1, 4) && jlist_is(curve, "oracle_pass_at_n", oracle, 4));
        static const int verif_all[3][4] = {{3, 2, 2, 1}, {0, 0, 0, 0}, {0, 4, 3, 0}};
        static const int self_all[3][4] = {{1, 0, 3, 0}, {0, 0, 0, 0}, {0, 2, 2, 0}};
        const json_value *vf = json_get(all, "verifier"), *se = json_get(all, "self_evaluation");
        CHECK(jconfusion_is(vf, verif_all) && jnum(json_get(vf, "judged")) == 15);
        CHECK(jnum(json_get(vf, "kept_by_meta_verification")) == 15);
        CHECK(jconfusion_is(se, self_all) && jnum(json_get(se, "without_self_score")) == 1);
        CHECK_NEAR(jnum(json_get(se, "agreement")), 3.0 / 8, 1e-15, 0);
        CHECK(jnum(json_get(all, "first_proofs_dropped")) == 1);
        const json_value *doms = json_get(all, "domains"), *fake = json_at(doms, 0), *alt = json_at(doms, 1);
        CHECK(doms && doms->len == 2 && !strcmp(json_get(fake, "domain")->str, "fake") &&
              !strcmp(json_get(alt, "domain")->str, "alt"));
        CHECK_NEAR(jnum(json_get(fake, "pass_at_1")), 0.5, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(fake, "oracle_pass_at_n")), 1, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(fake, "verifier_agreement")), 3.0 / 7, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(alt, "verifier_agreement")), 3.0 / 8, 1e-15, 0);
        CHECK_NEAR(jnum(json_get(alt, "best_of_n")), 0, 1e-15, 0);
        static const double fake_best[] = {0.5, 7.0 / 12, 0.5, 0.5}, alt_round[] = {0, 1};
        CHECK(jlist_is(json_get(fake, "best_of_n_curve"), "best_of_n", fake_best, 4));
        CHECK(jlist_is(alt, "pass_by_round", alt_round, 2));
        json_free(doc);
    }
    CHECKF(md.data && strstr(md.data, "| fake | 1 | 50.0% | 50.0% | 100.0% | 42.9% | ") &&
               strstr(md.data, "| **all** | 2 | 37.5% | 25.0% | 100.0% | 40.0% | 37.5% | 75.0% |") &&
               strstr(md.data, "| 2 | 45.8% | 37.5% | 66.7% |") && strstr(md.data, "| 1 | 75.0% | 50.0% |") &&
               strstr(md.data, "| 0 | 3 | 2 | 2 | 1 |") && strstr(md.data, "## The pipeline's report (lemma prove)\n\nPIPELINE TABLE"),
           "%s", md.data ? md.data : "(none)");
    /* the files: the same bytes as returned, charts with the three and two series */
    char path[500];
    snprintf(path, sizeof path, "%s/results.json", dir);
    char *onfile = read_text(path);
    CHECK(onfile && js.data && !strcmp(onfile, js.data));
    free(onfile);
    snprintf(path, sizeof path, "%s/best_of_n.svg", dir);
    onfile = read_text(path);
    CHECK(onfile && strstr(onfile, "<svg") && strstr(onfile, "best-of-N by its own verification") &&
          strstr(onfile, "oracle pass@N") && strstr(onfile, "</svg>"));
    free(onfile);
    snprintf(path, sizeof path, "%s/pass_by_round.svg", dir);
    onfile = read_text(path);
    CHECK(onfile && strstr(onfile, "refinement round") && strstr(onfile, "</svg>"));
    free(onfile);
    /* a second grading of the same result: the same bytes */
    lm_text js2 = {0};
    CHECK(lm_eval_report(res, &chk, NULL, NULL, NULL, &js2, &err) == 0 && js2.data && !strcmp(js2.data, js.data));
    lm_text_free(&js2);
    /* nothing to grade: a clear error */
    lm_report_checker none = {no_domain, fake_check, NULL};
    CHECK(lm_eval_report(res, &none, NULL, NULL, NULL, NULL, &err) == -1 &&
          strstr(err.msg, "none of the 3 problems belongs to a synthetic domain"));
    lm_text_free(&md);
    lm_text_free(&js);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

/* ---- lemma eval: the meta-verifier against the checker's faithfulness labels ---- */

/* A proof with "BAD" on its second line fails there (step 2); one without passes. */
static int step_check(void *ctx, const char *q, const char *answer, double *score, int *step) {
    int bad = strstr(answer, "BAD") != NULL;
    *score = bad ? 0 : 1;
    if (step) *step = bad ? 2 : 0;
    return 0;
}

#define VFY(claims, score) \
    "Here is my evaluation of the solution:\n" claims "\n\nBased on my evaluation, the final overall score should be:\n\\boxed{" score "}"

/* Problem m: g0 fails on line 2, g1 passes. Verifications, their labels and what the meta-verifier says:
 *   g0.v0 blames line 2, score 0      faithful         asked, rates 1 (right)
 *   g0.v1 blames line 1, score 0      invented_defect  asked, rates 1 (wrong)
 *   g0.v2 says line 2 checks, 0       denied_defect    asked, rates 0 (right)
 *   g1.v0 no claim, score 1           faithful         not asked (score above the threshold)
 *   g1.v1 blames line 1, score 0      wrong_score      asked, rates 0 (right)
 *   g1.v2 no phrases, score 0.5       bad_format       asked, no score ("other") */
static const char *meta_label_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    int g, v;
    if (sscanf(id, "r0.g%d.v%d", &g, &v) == 2 && strstr(id, ".m")) {
        if (g == 1 && v == 2) return "no rating here";
        return verdict("m", (g == 0 && v < 2) ? "1" : "0");
    }
    if (sscanf(id, "r0.g%d.v%d", &g, &v) == 2) {
        static const char *const vs[2][3] = {
            {VFY("Step 2 (arith): 3 + 4 is 7, not 8.", "0"), VFY("Step 1 (arith): wrong.", "0"),
             VFY("Step 2 checks.", "0")},
            {VFY("Every step checks.", "1"), VFY("Step 1 (arith): wrong.", "0"), "looks half right\n\\boxed{0.5}"}};
        return g < 2 && v < 3 ? vs[g][v] : "?";
    }
    if (sscanf(id, "r0.g%d", &g) == 1) return proof_answer(g == 0 ? "a = 3\nBAD 3 + 4 = 8\nso a + 4 = 8" : "a = 3\nb = 4",
                                                           "1");
    return "?";
}

TEST(eval_meta_verifier_labels) {
    run_env e;
    env_open(&e, "evalmeta", "{\"id\":\"m\",\"question\":\"FAKE m\"}\n");
    e.o.samples = 2;
    e.o.verifications = 3;
    e.o.rounds = 0;
    e.o.meta = 1;
    const char *pids[] = {"m"};
    tb t;
    tb_init(&t, meta_label_answer, pids, 1, e.o.seed);
    lm_prove_result *res = NULL;
    lm_error err;
    CHECKF(env_run(&e, &t, &res, &err) == 0, "%s", err.msg);
    CHECK(tb_count(&t, "m/r0.g0.v0.m") == 1 && tb_count(&t, "m/r0.g1.v0.m") == 0);
    lm_report_checker chk = {fake_domain, step_check, NULL};
    lm_text md = {0}, js = {0};
    CHECKF(res && lm_eval_report(res, &chk, NULL, NULL, &md, &js, &err) == 0, "%s", err.msg);
    json_doc *doc = js.data ? json_parse(js.data, js.len, &err) : NULL;
    CHECKF(doc != NULL, "%s", js.data ? js.data : "(none)");
    if (doc) {
        const json_value *all = json_root(doc), *mv = json_get(all, "meta_verifier");
        CHECK_NEAR(jnum(json_get(all, "verification_faithfulness")), 2.0 / 6, 1e-15, 0);
        CHECK(jnum(json_get(mv, "asked")) == 5);
        CHECK_NEAR(jnum(json_get(mv, "accuracy")), 3.0 / 5, 1e-15, 0);
        /* rows faithful, missed, invented, denied, wrong score, bad format; columns 0, 0.5, 1, other, not asked */
        static const int want[6][5] = {{0, 0, 1, 0, 1}, {0, 0, 0, 0, 0}, {0, 0, 1, 0, 0},
                                       {1, 0, 0, 0, 0}, {1, 0, 0, 0, 0}, {0, 0, 0, 1, 0}};
        const json_value *c = json_get(mv, "counts");
        int same = c && c->len == 6;
        for (int r = 0; r < 6 && same; r++)
            for (int k = 0; k < 5; k++) same = same && jnum(json_at(json_at(c, (size_t)r), (size_t)k)) == want[r][k];
        CHECK(same);
        const json_value *labels = json_get(mv, "labels"), *acc = json_get(mv, "accuracy_by_label");
        CHECK(labels && labels->len == 6 && !strcmp(json_at(labels, 0)->str, "faithful") &&
              !strcmp(json_at(labels, 2)->str, "invented_defect"));
        CHECK(jnum(json_at(acc, 0)) == 1 && json_at(acc, 1)->type == JSON_NULL && jnum(json_at(acc, 2)) == 0 &&
              jnum(json_at(acc, 3)) == 1 && jnum(json_at(acc, 5)) == 0);
        /* the domain's row carries the same table */
        const json_value *fake = json_at(json_get(all, "domains"), 0);
        CHECK_NEAR(jnum(json_get(json_get(fake, "meta_verifier"), "accuracy")), 3.0 / 5, 1e-15, 0);
        json_free(doc);
    }
    CHECKF(md.data && strstr(md.data, "## Meta-verifier vs the checker's faithfulness labels") &&
               strstr(md.data, "asked about 5 of them") && strstr(md.data, "rated 60.0% as the label says") &&
               strstr(md.data, "| faithful (1) | 0 | 0 | 1 | 0 | 1 | 100.0% |") &&
               strstr(md.data, "| invented_defect (0) | 0 | 0 | 1 | 0 | 0 | 0.0% |") &&
               strstr(md.data, "| bad_format (0) | 0 | 0 | 0 | 1 | 0 | 0.0% |"),
           "%s", md.data ? md.data : "(none)");
    lm_text_free(&md);
    lm_text_free(&js);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

static const char *verify_answer(tb *t, const char *pid, const char *id, const char *prompt) {
    if (!strncmp(prompt, "META", 4)) return verdict("m", "1");
    return verdict("v", strstr(prompt, "|| CORRECT") ? "1" : "0");
}

TEST(verify_given_proofs) {
    run_env e;
    memset(&e, 0, sizeof e);
    const char *items = "{\"id\":\"v1\",\"question\":\"FAKE a\",\"proof\":\"## Solution\\nCORRECT\\n## Self Evaluation\\n\\\\boxed{1}\"}\n"
                        "{\"id\":\"v2\",\"question\":\"FAKE b\",\"proof\":\"HALF without headings\"}\n";
    lm_error err;
    CHECK(lm_problems_parse(items, strlen(items), "v", 1, &e.ps, &err) == 0);
    e.t = test_templates();
    snprintf(e.path, sizeof e.path, "%s/verify.jsonl", tmpdir);
    unlink(e.path);
    e.pool = lm_proof_pool_open(e.path, NULL, &err);
    lm_prove_opts_default(&e.o);
    e.o.verifications = 3;
    const char *pids[] = {"v1", "v2"};
    tb t;
    tb_init(&t, verify_answer, pids, 2, e.o.seed);
    lm_prove_ctx c = {&e.t, &t.b, e.pool, &e.o, NULL, NULL, &e.stop};
    lm_prove_result *res = NULL;
    CHECKF(lm_verify_run(&e.ps, &c, &res, &err) == 0, "%s", err.msg);
    CHECK(t.n_asked == 6 + 3); /* v2's verifications score 0: each is meta-verified */
    CHECK(tb_prompt(&t, "v1/given.v0") && !strcmp(tb_prompt(&t, "v1/given.v0"), "VERIFY FAKE a || CORRECT"));
    CHECK(tb_prompt(&t, "v2/given.v0") && !strcmp(tb_prompt(&t, "v2/given.v0"), "VERIFY FAKE b || HALF without headings"));
    lm_report_checker chk = {fake_domain, fake_check, NULL};
    lm_text md = {0};
    CHECK(lm_prove_report(res, &chk, NULL, &md, NULL, &err) == 0);
    CHECKF(strstr(md.data, "| v1 | fake | 1.000 | 3 | 0 | 1 |") && strstr(md.data, "| v2 | fake | 0.000 | 3 | 0 | 0.5 |") &&
               strstr(md.data, "50.0% of 6 verifications"),
           "%s", md.data);
    lm_text_free(&md);
    lm_prove_result_free(res);
    tb_clear(&t);
    env_close(&e);
}

/* ---- the output folder ---- */

TEST(outdir_lock_and_run_args) {
    char dir[400];
    snprintf(dir, sizeof dir, "%s/out/a/b", tmpdir);
    lm_dir_lock l1, l2;
    lm_error err;
    CHECK(lm_outdir_open(dir, &l1, &err) == 0);
    CHECK(lm_outdir_open(dir, &l2, &err) == -1 && strstr(err.msg, "is in use by pid"));
    lm_outdir_unlock(&l1);
    CHECK(lm_outdir_open(dir, &l2, &err) == 0);
    lm_outdir_unlock(&l2);
    const char *ign[] = {"parallel", NULL};
    CHECK(lm_run_args_check(dir, "{\"samples\":8,\"parallel\":4,\"input-sha256\":\"abcdef0123456789\"}", ign, &err) == 0);
    CHECK(lm_run_args_check(dir, "{\"samples\":8,\"parallel\":16,\"input-sha256\":\"abcdef0123456789\"}", ign, &err) == 0);
    CHECK(lm_run_args_check(dir, "{\"samples\":16,\"parallel\":4,\"input-sha256\":\"abcdef0123456789\"}", ign, &err) == -1 &&
          strstr(err.msg, "run.json: this folder holds a run started with --samples 8; this command has --samples 16"));
    CHECK(lm_run_args_check(dir, "{\"samples\":8,\"input-sha256\":\"0000000000000000\"}", ign, &err) == -1 &&
          strstr(err.msg, "whose --input file had other content"));
    CHECK(lm_run_args_check(dir, "{\"samples\":8,\"seed\":\"2\",\"input-sha256\":\"abcdef0123456789\"}", ign, &err) == -1 &&
          strstr(err.msg, "--seed (not given)"));
    CHECK(lm_run_args_check(dir, "{\"samples\":8,\"input-sha256\":\"abcdef0123456789\",\"model-sha256\":\"0123\"}", ign,
                            &err) == -1 &&
          strstr(err.msg, "written by an older lemma that recorded no fingerprint of the --model files"));
    char file[500];
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    write_text(file, "x");
    snprintf(dir, sizeof dir, "%s/plainfile/sub", tmpdir);
    CHECK(lm_outdir_open(dir, &l1, &err) == -1 && strstr(err.msg, "cannot create"));
    CHECK(lm_outdir_open(file, &l1, &err) == -1 && strstr(err.msg, "is not a folder"));
}

/* A safetensors file of one F32 tensor of 2 values: 8-byte header length,
 * the header, the 8 data bytes. */
static void write_tiny_safetensors(const char *path, uint8_t first_byte) {
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    uint8_t bytes[256];
    size_t hl = strlen(hdr), n = 0;
    for (int i = 0; i < 8; i++) bytes[n++] = (uint8_t)(hl >> (8 * i));
    memcpy(bytes + n, hdr, hl);
    n += hl;
    for (int i = 0; i < 8; i++) bytes[n++] = (uint8_t)(i ? i : first_byte);
    lm_error err;
    if (lm_write_file_atomic(path, bytes, n, &err)) printf("  %s\n", err.msg);
}

static void set_mtime(const char *path, long sec) {
    struct timespec ts[2] = {{sec, 0}, {sec, 0}};
    if (utimensat(AT_FDCWD, path, ts, 0)) perror(path);
}

/* Both kinds of fingerprint: content (every byte counts) and, above the
 * bound, headers + sizes + mtimes (a data byte changed with the mtime kept
 * goes unseen: the documented trade-off; a touch is seen). */
TEST(model_fingerprint_content_and_headers) {
    char dir[400], st[500], cfg[500], shard[500];
    snprintf(dir, sizeof dir, "%s/fpmodel", tmpdir);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(shard, sizeof shard, "%s/extra.safetensors", dir);
    lm_error err;
    char full[65], quick[65], h[65];
    int by_headers = -1;
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == -1 && strstr(err.msg, "fpmodel"));
    CHECK(mkdir(dir, 0755) == 0);
    write_text(cfg, "{\"vocab_size\": 8}");
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == -1 && strstr(err.msg, "no *.safetensors files"));
    write_tiny_safetensors(st, 0);
    set_mtime(st, 1000000000);
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, full, &by_headers, &err) == 0 && by_headers == 0);
    CHECK(strlen(full) == 64);
    CHECK(lm_model_fingerprint(dir, 0, quick, &by_headers, &err) == 0 && by_headers == 1);
    CHECK(strcmp(full, quick));
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == 0 && !strcmp(h, full));

    write_tiny_safetensors(st, 0x40); /* one data byte, mtime restored */
    set_mtime(st, 1000000000);
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == 0 && strcmp(h, full));
    CHECK(lm_model_fingerprint(dir, 0, h, NULL, &err) == 0 && !strcmp(h, quick));
    set_mtime(st, 1000000001);
    CHECK(lm_model_fingerprint(dir, 0, h, NULL, &err) == 0 && strcmp(h, quick));
    write_tiny_safetensors(st, 0);
    set_mtime(st, 1000000000);
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == 0 && !strcmp(h, full));

    write_text(cfg, "{\"vocab_size\": 9}"); /* small files always by content */
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == 0 && strcmp(h, full));
    CHECK(lm_model_fingerprint(dir, 0, h, NULL, &err) == 0 && strcmp(h, quick));
    write_text(cfg, "{\"vocab_size\": 8}");
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == 0 && !strcmp(h, full));

    write_tiny_safetensors(shard, 0); /* another weight file counts */
    CHECK(lm_model_fingerprint(dir, UINT64_MAX, h, NULL, &err) == 0 && strcmp(h, full));
    write_text(shard, "\xff\xff\xff\xff\xff\xff\xff\x7f{}"); /* a header longer than the file */
    CHECK(lm_model_fingerprint(dir, 0, h, NULL, &err) == -1 && strstr(err.msg, "extra.safetensors: safetensors header length"));
    CHECK(unlink(shard) == 0);
    CHECK(lm_model_fingerprint(dir, 0, h, NULL, &err) == 0 && !strcmp(h, quick));
}

int main(void) {
    make_tmpdir();
    load_reference();
    RUN(boxed_last_non_empty);
    RUN(score_like_python_float);
    RUN(strip_think_split);
    RUN(template_fill_like_str_format);
    RUN(templates_checked_at_load);
    RUN(released_templates_fill_as_python);
    RUN(released_outputs_boxed_and_prompts_as_python);
    RUN(problems_files);
    RUN(pool_append_reopen_repair);
    RUN(pipeline_selection_and_pairing);
    RUN(ranking_mean_then_self_score);
    RUN(refine_prompt_caps_and_order);
    RUN(pipeline_early_stop);
    RUN(pipeline_meta_verification);
    RUN(pipeline_meta_rejection_stops);
    RUN(pipeline_records_junk_and_retries_failures);
    RUN(pipeline_resume_equals_uninterrupted);
    RUN(report_against_checker);
    RUN(eval_estimators_match_enumeration);
    RUN(eval_against_checker);
    RUN(eval_meta_verifier_labels);
    RUN(verify_given_proofs);
    RUN(outdir_lock_and_run_args);
    RUN(model_fingerprint_content_and_headers);
    json_free(ref_doc);
    remove_tmpdir();
    return test_report("test_prove");
}
