/* test_plot.c — metrics.jsonl reading (merging lines of one step, resumed
 * runs, an incomplete last line, expert-load shapes) and its errors (missing,
 * empty, corrupt files name the file and line), and the SVG: well-formed
 * (balanced tags, quoted attributes, no NaN/inf coordinates), one panel per
 * logged series, the heat strip, long runs reduced. `lemma plot` itself is
 * driven by tests/sh/test_plot.sh. */
#include <math.h>
#include <stdint.h>

#include "test.h"
#include "train/plot.h"

static int parse(const char *s, lm_metrics *m, lm_error *err) { return lm_metrics_parse(s, strlen(s), "m.jsonl", m, err); }

static int count(const char *hay, const char *needle) {
    int c = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) c++;
    return c;
}

/* A small well-formedness check: every '<' opens a tag, comments and the
 * XML declaration aside; tags nest and close in order; attribute values are
 * quoted; text has no bare '<' or '&' outside entities. */
static int xml_ok(const char *s, char *why, size_t cap) {
    const char *stack[64];
    size_t lens[64];
    int depth = 0;
    const char *p = s;
    if (strncmp(p, "<?xml", 5)) return snprintf(why, cap, "no XML declaration"), 0;
    p = strstr(p, "?>") + 2;
    while (*p) {
        if (*p == '&') {
            const char *semi = strchr(p, ';');
            if (!semi || semi - p > 8) return snprintf(why, cap, "bare & at %ld", (long)(p - s)), 0;
            p = semi + 1;
            continue;
        }
        if (*p != '<') { p++; continue; }
        const char *end = strchr(p, '>');
        if (!end) return snprintf(why, cap, "unclosed tag"), 0;
        if (p[1] == '/') {
            size_t n = (size_t)(end - p - 2);
            if (!depth || lens[depth - 1] != n || strncmp(stack[depth - 1], p + 2, n))
                return snprintf(why, cap, "mismatched close at %ld", (long)(p - s)), 0;
            depth--;
        } else {
            const char *name = p + 1;
            size_t n = strcspn(name, " />");
            /* attributes: name="value" pairs */
            int quotes = 0;
            for (const char *q = p; q < end; q++) quotes += *q == '"';
            if (quotes % 2) return snprintf(why, cap, "odd quotes at %ld", (long)(p - s)), 0;
            if (end[-1] != '/') {
                if (depth == 64) return snprintf(why, cap, "too deep"), 0;
                stack[depth] = name;
                lens[depth++] = n;
            }
        }
        p = end + 1;
    }
    if (depth) return snprintf(why, cap, "%d unclosed elements", depth), 0;
    return 1;
}

TEST(read_merge_resume) {
    const char *s =
        "{\"step\": 0, \"loss\": 5.0, \"lr\": 0.001, \"tokens_per_s\": 100, \"other\": [1, 2]}\n"
        "\n"
        "{\"step\": 1, \"loss\": 4.0, \"lr\": 0.002, \"tokens_per_s\": 110}\n"
        "{\"step\": 1, \"val_loss\": 4.5}\n"
        "{\"step\": 2, \"loss\": 3.5, \"lr\": null, \"tokens_per_s\": 120, \"grad_norm\": 1.5}\n"
        "{\"step\": 3, \"loss\": 3.0}\n"
        "{\"step\": 2, \"loss\": 3.4, \"lr\": 0.003, \"tokens_per_s\": 130}\n" /* resumed at 2 */
        "{\"step\": 3, \"loss\": 2.9, \"lr\": 0.003, \"tokens_per_s\": 131}\n"
        "{\"step\": 4, \"loss\": 2.";                                        /* killed mid-line */
    lm_metrics m;
    lm_error err;
    int rc = parse(s, &m, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(m.n == 4 && m.truncated_last == 1);
    CHECK(m.step[0] == 0 && m.step[1] == 1 && m.step[2] == 2 && m.step[3] == 3);
    CHECK(m.loss[1] == 4.0 && m.val_loss[1] == 4.5 && m.lr[1] == 0.002);
    CHECK(m.loss[2] == 3.4 && m.tokens_per_s[2] == 130 && isnan(m.grad_norm[2]));
    CHECK(m.loss[3] == 2.9 && isnan(m.val_loss[0]));
    lm_metrics_free(&m);
    /* a complete file that ends without a newline is fine */
    CHECK(parse("{\"step\": 0, \"loss\": 1}", &m, &err) == 0 && m.n == 1 && !m.truncated_last);
    lm_metrics_free(&m);
}

TEST(read_expert_load) {
    lm_metrics m;
    lm_error err;
    const char *nested = "{\"step\": 0, \"loss\": 1, \"expert_load\": [[1, 2, 3], [4, 5, 6]]}\n"
                         "{\"step\": 5, \"loss\": 1, \"expert_load\": [[1, 1, 1], [2, 2, 2]]}\n"
                         "{\"step\": 5, \"loss\": 1, \"expert_load\": [[3, 3, 3], [2, 2, 2]]}\n"; /* same step again */
    int rc = parse(nested, &m, &err);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK(m.n_load == 2 && m.load_width == 6 && m.load_layers == 2);
    CHECK(m.load[0] == 1 && m.load[5] == 6 && m.load[6] == 3 && m.load_step[1] == 5);
    lm_metrics_free(&m);
    CHECK(parse("{\"step\": 0, \"loss\": 1, \"expert_load\": [0.5, 0.25, 0.25]}\n", &m, &err) == 0 && m.load_width == 3 &&
          m.load_layers == 1);
    lm_metrics_free(&m);
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"step\": 0, \"expert_load\": [[1, 2], [3]]}\n", "same number of experts"},
        {"{\"step\": 0, \"expert_load\": [1, 2]}\n{\"step\": 1, \"expert_load\": [1, 2, 3]}\n", "m.jsonl:2"},
        {"{\"step\": 0, \"expert_load\": [1, -2]}\n", "non-negative"},
        {"{\"step\": 0, \"expert_load\": []}\n", "expert_load"},
        {"{\"step\": 0, \"expert_load\": [[]]}\n", "expert_load"},
        {"{\"step\": 0, \"expert_load\": \"x\"}\n", "expert_load"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = parse(bad[i].text, &m, &err);
        CHECKF(rc == -1 && strstr(err.msg, bad[i].want) && strstr(err.msg, "m.jsonl:"), "case %zu: %s", i,
               rc ? err.msg : "(accepted)");
        if (!rc) lm_metrics_free(&m);
    }
}

TEST(read_errors) {
    lm_metrics m;
    lm_error err;
    CHECK(lm_metrics_read("/nonexistent/run/metrics.jsonl", &m, &err) == -1 && strstr(err.msg, "/nonexistent/run"));
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"step\": 0, \"loss\": 1}\nnot json\n{\"step\": 2}\n", "m.jsonl:2: byte"},
        {"[1, 2]\n", "m.jsonl:1: expected a JSON object"},
        {"{\"loss\": 1}\n", "\"step\""},
        {"{\"step\": -1, \"loss\": 1}\n", "\"step\""},
        {"{\"step\": 1.5, \"loss\": 1}\n", "\"step\""},
        {"{\"step\": 0, \"loss\": \"high\"}\n", "\"loss\": expected a number"},
        {"{\"step\": 0, \"lr\": true}\n", "\"lr\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i].text, &m, &err);
        CHECKF(rc == -1 && strstr(err.msg, bad[i].want), "case %zu: %s", i, rc ? err.msg : "(accepted)");
        if (!rc) lm_metrics_free(&m);
    }
    /* empty and loss-less files parse but cannot be plotted */
    lm_text svg = {0};
    CHECK(parse("", &m, &err) == 0 && m.n == 0);
    CHECK(lm_plot_svg(&m, "t", &svg, &err) == -1 && strstr(err.msg, "no record with a \"loss\""));
    lm_metrics_free(&m);
    CHECK(parse("{\"step\": 0, \"lr\": 0.1}\n", &m, &err) == 0);
    CHECK(lm_plot_svg(&m, "t", &svg, &err) == -1);
    lm_metrics_free(&m);
    lm_text_free(&svg);
}

static char *sample(int64_t steps, int val, int gn, int load) {
    size_t cap = (size_t)steps * 256 + 64, pos = 0;
    char *s = malloc(cap);
    for (int64_t i = 0; i < steps; i++) {
        double loss = 2 + 6 * exp(-i / (steps / 5.0)) + 0.05 * sin(i * 1.7);
        pos += (size_t)snprintf(s + pos, cap - pos, "{\"step\": %lld, \"loss\": %.5f, \"lr\": %.6g, \"tokens_per_s\": %.1f",
                                (long long)i, loss, 1e-3 * (i + 1) / steps, 5000 + 100 * cos(i * 0.3));
        if (gn) pos += (size_t)snprintf(s + pos, cap - pos, ", \"grad_norm\": %.3f", 1 + exp(-i / 50.0));
        if (val && i % 50 == 0) pos += (size_t)snprintf(s + pos, cap - pos, ", \"val_loss\": %.4f", loss + 0.1);
        if (load && i % 10 == 0)
            pos += (size_t)snprintf(s + pos, cap - pos, ", \"expert_load\": [[%lld, 10, 10, 5], [1, 2, 3, 4]]",
                                    (long long)(i % 40));
        pos += (size_t)snprintf(s + pos, cap - pos, "}\n");
    }
    return s;
}

TEST(svg_document) {
    char *text = sample(400, 1, 1, 1);
    lm_metrics m;
    lm_error err;
    CHECK(parse(text, &m, &err) == 0);
    lm_text svg = {0};
    int rc = lm_plot_svg(&m, "run <a&b>", &svg, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) { free(text); lm_metrics_free(&m); return; }
    char why[128] = "";
    CHECKF(xml_ok(svg.data, why, sizeof why), "%s", why);
    CHECK(strstr(svg.data, "<svg xmlns=\"http://www.w3.org/2000/svg\"") && strstr(svg.data, "</svg>\n"));
    CHECK(strstr(svg.data, "run &lt;a&amp;b&gt;"));
    CHECK(!strstr(svg.data, "nan") && !strstr(svg.data, "inf"));
    CHECK(strstr(svg.data, ">loss<") && strstr(svg.data, ">learning rate<") && strstr(svg.data, ">tokens/s<"));
    CHECK(strstr(svg.data, ">gradient norm") && strstr(svg.data, ">expert load"));
    CHECK(strstr(svg.data, ">validation<") && strstr(svg.data, "layer 2"));
    CHECK(count(svg.data, "<polyline") == 5); /* raw, smoothed, lr, tokens/s, grad norm */
    CHECK(count(svg.data, "<rect") > 40 * 8);  /* heat strip cells */
    CHECK(strstr(svg.data, "steps 0-399"));
    lm_text_free(&svg);
    lm_metrics_free(&m);
    free(text);

    /* only the required fields: two panels, no heat strip */
    text = sample(30, 0, 0, 0);
    CHECK(parse(text, &m, &err) == 0);
    CHECK(lm_plot_svg(&m, "", &svg, &err) == 0);
    CHECK(xml_ok(svg.data, why, sizeof why));
    CHECK(!strstr(svg.data, ">gradient norm") && !strstr(svg.data, ">expert load") && !strstr(svg.data, ">validation<"));
    CHECK(strstr(svg.data, ">training run<"));
    lm_text_free(&svg);
    lm_metrics_free(&m);
    free(text);

    /* a single record */
    CHECK(parse("{\"step\": 7, \"loss\": 3.25}\n", &m, &err) == 0);
    CHECK(lm_plot_svg(&m, "one", &svg, &err) == 0 && xml_ok(svg.data, why, sizeof why));
    CHECK(!strstr(svg.data, "nan") && !strstr(svg.data, "inf"));
    lm_text_free(&svg);
    lm_metrics_free(&m);
}

TEST(svg_long_run_is_reduced) {
    char *text = sample(20000, 1, 0, 1);
    lm_metrics m;
    lm_error err;
    CHECK(parse(text, &m, &err) == 0 && m.n == 20000 && m.n_load == 2000);
    lm_text svg = {0};
    CHECK(lm_plot_svg(&m, "long", &svg, &err) == 0);
    char why[128] = "";
    CHECKF(xml_ok(svg.data, why, sizeof why), "%s", why);
    CHECKF(svg.len < 1500000, "%zu bytes", svg.len);  /* bounded whatever the run length */
    lm_text_free(&svg);
    lm_metrics_free(&m);
    free(text);
}

TEST(svg_line_chart) {
    int64_t x[4] = {1, 2, 3, 4};
    double a[4] = {0.25, 0.5, NAN, 1}, b[4] = {0.3, 0.3, 0.3, 0.3}, none[4] = {NAN, NAN, NAN, NAN};
    lm_plot_lines c = {.title = "eval <a&b>", .subtitle = "sub", .panel = "pass rate", .x_label = "N", .x = x, .n = 4,
                       .series = {{"best-of-N", a}, {"pass@1", b}}, .n_series = 2, .y_lo = 0, .y_hi = 1};
    lm_text svg = {0};
    lm_error err;
    CHECKF(lm_plot_lines_svg(&c, &svg, &err) == 0, "%s", err.msg);
    char why[128] = "";
    CHECKF(svg.data && xml_ok(svg.data, why, sizeof why), "%s", why);
    CHECK(svg.data && strstr(svg.data, "eval &lt;a&amp;b&gt;") && strstr(svg.data, ">best-of-N<") &&
          strstr(svg.data, ">pass@1<") && strstr(svg.data, ">pass rate<") && strstr(svg.data, ">N<"));
    CHECK(svg.data && count(svg.data, "<polyline") == 3);  /* the NaN splits the first series in two */
    CHECK(svg.data && count(svg.data, "<circle") == 7 && !strstr(svg.data, "nan"));
    CHECK(svg.data && strstr(svg.data, ">1.0<") && strstr(svg.data, ">0<")); /* the fixed range's ends are ticks */
    lm_text_free(&svg);
    /* one x value, range from the data */
    c.n = 1;
    c.y_lo = c.y_hi = 0;
    CHECK(lm_plot_lines_svg(&c, &svg, &err) == 0 && xml_ok(svg.data, why, sizeof why) && !strstr(svg.data, "nan"));
    lm_text_free(&svg);
    c.n = 4;
    c.series[0].y = c.series[1].y = none;
    CHECK(lm_plot_lines_svg(&c, &svg, &err) == -1 && strstr(err.msg, "no finite point"));
    c.n_series = 0;
    CHECK(lm_plot_lines_svg(&c, &svg, &err) == -1 && strstr(err.msg, "1..4 series"));
    c.n_series = 5;
    CHECK(lm_plot_lines_svg(&c, &svg, &err) == -1 && strstr(err.msg, "got 5"));
    lm_text_free(&svg);
}

int main(void) {
    RUN(read_merge_resume);
    RUN(read_expert_load);
    RUN(read_errors);
    RUN(svg_document);
    RUN(svg_long_run_is_reduced);
    RUN(svg_line_chart);
    return test_report("test_plot");
}
