/* plot.c — metrics.jsonl reader and SVG charts; see plot.h. */
#include "train/plot.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "formats/json.h"

/* ---- reading ---------------------------------------------------------------- */

void lm_metrics_free(lm_metrics *m) {
    free(m->step);
    free(m->loss);
    free(m->lr);
    free(m->tokens_per_s);
    free(m->val_loss);
    free(m->grad_norm);
    free(m->load_step);
    free(m->load);
    memset(m, 0, sizeof *m);
}

static int grow(lm_metrics *m) {
    if (m->n < m->cap) return 0;
    int64_t nc = m->cap ? m->cap * 2 : 256;
    void *p[6] = {realloc(m->step, (size_t)nc * sizeof(int64_t)), NULL, NULL, NULL, NULL, NULL};
    if (!p[0]) return -1;
    m->step = p[0];
    double **arr[5] = {&m->loss, &m->lr, &m->tokens_per_s, &m->val_loss, &m->grad_norm};
    for (int i = 0; i < 5; i++) {
        double *q = realloc(*arr[i], (size_t)nc * sizeof(double));
        if (!q) return -1;
        *arr[i] = q;
    }
    m->cap = nc;
    return 0;
}

/* A number, or NaN for null / absent; -1 for another type. */
static int num_field(const json_value *obj, const char *key, double *out) {
    const json_value *v = json_get(obj, key);
    *out = NAN;
    if (!v || v->type == JSON_NULL) return 0;
    if (!json_as_double(v, out)) return -1;
    return 0;
}

static int add_load(lm_metrics *m, int64_t step, const json_value *v, const char *name, size_t line, lm_error *err) {
    if (v->type != JSON_ARRAY || !v->len)
        return lm_fail(err, "%s:%zu: \"expert_load\": expected an array of numbers or of arrays of numbers", name, line);
    int layers = 1, width;
    if (v->child->type == JSON_ARRAY) {
        layers = (int)v->len;
        width = 0;
        for (const json_value *l = v->child; l; l = l->next) {
            if (l->type != JSON_ARRAY || !l->len || l->len != v->child->len || l->len > 65536)
                return lm_fail(err, "%s:%zu: \"expert_load\": every layer needs an array of the same number of experts",
                               name, line);
            width += (int)l->len;
            if (width > 65536) break;
        }
    } else {
        width = (int)v->len;
    }
    if (width > 65536) return lm_fail(err, "%s:%zu: \"expert_load\": too many values (%d)", name, line, width);
    if (m->load_width && (width != m->load_width || layers != m->load_layers))
        return lm_fail(err, "%s:%zu: \"expert_load\": %d layers x %d values, earlier lines had %d x %d", name, line, layers,
                       width / layers, m->load_layers, m->load_width / m->load_layers);
    m->load_width = width;
    m->load_layers = layers;
    /* a resumed run: drop loads from this step on */
    while (m->n_load && m->load_step[m->n_load - 1] >= step) m->n_load--;
    if (m->n_load == m->load_cap) {
        int64_t nc = m->load_cap ? m->load_cap * 2 : 64;
        int64_t *ns = realloc(m->load_step, (size_t)nc * sizeof *ns);
        if (!ns) return lm_fail(err, "out of memory");
        m->load_step = ns;
        double *nl = realloc(m->load, (size_t)nc * (size_t)width * sizeof *nl);
        if (!nl) return lm_fail(err, "out of memory");
        m->load = nl;
        m->load_cap = nc;
    }
    double *row = m->load + m->n_load * width;
    int k = 0;
    const json_value *first = layers > 1 ? v->child : v;
    for (const json_value *l = first; l; l = layers > 1 ? l->next : NULL)
        for (const json_value *e = l->child; e; e = e->next) {
            double d;
            if (!json_as_double(e, &d) || !(d >= 0))
                return lm_fail(err, "%s:%zu: byte %zu: \"expert_load\": expected non-negative numbers", name, line, e->offset);
            row[k++] = d;
        }
    m->load_step[m->n_load++] = step;
    return 0;
}

static int add_record(lm_metrics *m, const json_value *r, const char *name, size_t line, lm_error *err) {
    if (r->type != JSON_OBJECT) return lm_fail(err, "%s:%zu: expected a JSON object", name, line);
    int64_t step;
    const json_value *sv = json_get(r, "step");
    if (!sv || !json_as_int(sv, &step) || step < 0)
        return lm_fail(err, "%s:%zu: \"step\": expected a non-negative integer", name, line);
    static const char *const keys[5] = {"loss", "lr", "tokens_per_s", "val_loss", "grad_norm"};
    double vals[5];
    for (int i = 0; i < 5; i++)
        if (num_field(r, keys[i], &vals[i]))
            return lm_fail(err, "%s:%zu: \"%s\": expected a number or null", name, line, keys[i]);
    int64_t i;
    if (m->n && m->step[m->n - 1] == step) {
        i = m->n - 1; /* merge */
    } else {
        while (m->n && m->step[m->n - 1] >= step) m->n--; /* resumed: replace */
        if (grow(m)) return lm_fail(err, "out of memory");
        i = m->n++;
        m->step[i] = step;
        m->loss[i] = m->lr[i] = m->tokens_per_s[i] = m->val_loss[i] = m->grad_norm[i] = NAN;
    }
    double *dst[5] = {&m->loss[i], &m->lr[i], &m->tokens_per_s[i], &m->val_loss[i], &m->grad_norm[i]};
    for (int k = 0; k < 5; k++)
        if (!isnan(vals[k])) *dst[k] = vals[k];
    const json_value *el = json_get(r, "expert_load");
    if (el && el->type != JSON_NULL && add_load(m, step, el, name, line, err)) return -1;
    return 0;
}

int lm_metrics_parse(const char *text, size_t len, const char *name, lm_metrics *m, lm_error *err) {
    memset(m, 0, sizeof *m);
    size_t line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        size_t n = (size_t)(le - p);
        int blank = 1;
        for (size_t i = 0; i < n && blank; i++) blank = p[i] == ' ' || p[i] == '\t' || p[i] == '\r';
        if (!blank) {
            json_doc *doc = json_parse(p, n, err);
            if (!doc) {
                if (!nl) { /* an incomplete last line: a run killed mid-write */
                    m->truncated_last = 1;
                    break;
                }
                lm_fail_prefix(err, "%s:%zu", name, line);
                lm_metrics_free(m);
                return -1;
            }
            int rc = add_record(m, json_root(doc), name, line, err);
            json_free(doc);
            if (rc) {
                lm_metrics_free(m);
                return -1;
            }
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int lm_metrics_read(const char *path, lm_metrics *m, lm_error *err) {
    char *text;
    size_t len;
    memset(m, 0, sizeof *m);
    if (lm_read_file(path, (size_t)1 << 30, &text, &len, err)) return -1;
    int rc = lm_metrics_parse(text, len, path, m, err);
    free(text);
    return rc;
}

/* ---- SVG helpers --------------------------------------------------------------- */

typedef struct svg {
    lm_text *t;
    int bad;
} svg;

static void out(svg *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(svg *s, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    if (lm_text_append(s->t, buf, (size_t)n)) s->bad = 1;
}

static void out_escaped(svg *s, const char *str) {
    for (; *str; str++) {
        switch (*str) {
        case '&': out(s, "&amp;"); break;
        case '<': out(s, "&lt;"); break;
        case '>': out(s, "&gt;"); break;
        case '"': out(s, "&quot;"); break;
        default:
            if ((unsigned char)*str >= 0x20 || *str == '\t') {
                if (lm_text_append(s->t, str, 1)) s->bad = 1;
            }
        }
    }
}

/* A tick step of 1, 2 or 5 x 10^k giving about `want` ticks over span. */
static double nice_step(double span, int want) {
    if (!(span > 0)) return 1;
    double raw = span / want, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

/* A tick label: few digits, k/M for large values, "3e-4" for small ones. */
static void fmt_tick(char *buf, size_t cap, double v, double step) {
    double a = fabs(v);
    if (fabs(v) < step * 1e-6) {
        snprintf(buf, cap, "0");
    } else if (a >= 1e6 && step >= 1e5) {
        snprintf(buf, cap, "%gM", v / 1e6);
    } else if (a >= 1e4 && step >= 1e3) {
        snprintf(buf, cap, "%gk", v / 1e3);
    } else if (step < 1e-3) {
        int e = (int)floor(log10(a));
        double mant = v / pow(10, e);
        int dec = (int)ceil(-log10(step / pow(10, e)) - 1e-9);
        if (dec < 0) dec = 0;
        if (dec > 3) dec = 3;
        char m[32];
        snprintf(m, sizeof m, "%.*f", dec, mant);
        if (strchr(m, '.')) { /* 1.0e-4 -> 1e-4, 2.50e-4 -> 2.5e-4 */
            size_t l = strlen(m);
            while (m[l - 1] == '0') m[--l] = 0;
            if (m[l - 1] == '.') m[--l] = 0;
        }
        snprintf(buf, cap, "%se%d", m, e);
    } else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, cap, "%.*f", dec, v);
    }
}

typedef struct axis {
    double lo, hi;          /* data range */
    double px0, px1;        /* pixel range */
} axis;

static double ax_map(const axis *a, double v) {
    if (a->hi == a->lo) return (a->px0 + a->px1) / 2;
    return a->px0 + (v - a->lo) / (a->hi - a->lo) * (a->px1 - a->px0);
}

/* Range of the non-NaN values of up to two series, padded; 0 when none. */
static int range_of(const double *a, const double *b, int64_t n, double *lo, double *hi) {
    double mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (a && isfinite(a[i])) mn = fmin(mn, a[i]), mx = fmax(mx, a[i]);
        if (b && isfinite(b[i])) mn = fmin(mn, b[i]), mx = fmax(mx, b[i]);
    }
    if (!(mn <= mx)) return 0;
    double pad = (mx - mn) * 0.06;
    if (pad == 0) pad = fabs(mx) * 0.1 + (mx == 0);
    *lo = mn - pad;
    *hi = mx + pad;
    if (mn >= 0 && *lo < 0) *lo = 0;
    return 1;
}

enum { W = 960, ML = 78, MR = 28, MAX_POINTS = 1200, MAX_COLS = 240 };

typedef struct panel {
    double top, h;          /* plot area */
    axis x, y;
} panel;

/* Frame, grid, ticks, labels and the panel title (with an optional legend). */
static void draw_frame(svg *s, const panel *p, const char *title, int x_labels) {
    double x0 = p->x.px0, x1 = p->x.px1, y0 = p->top, y1 = p->top + p->h;
    out(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fcfcfd\" stroke=\"#c8cdd4\"/>\n", x0, y0,
        x1 - x0, y1 - y0);
    out(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"ptitle\">", x0, y0 - 8);
    out_escaped(s, title);
    out(s, "</text>\n");
    char lab[64];
    double ys = nice_step(p->y.hi - p->y.lo, 5);
    for (double v = ceil(p->y.lo / ys) * ys; v <= p->y.hi + ys * 1e-9; v += ys) {
        double y = ax_map(&p->y, v);
        if (y < y0 - 0.5 || y > y1 + 0.5) continue;
        out(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", x0, y, x1, y);
        fmt_tick(lab, sizeof lab, v, ys);
        out(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"ytick\">%s</text>\n", x0 - 6, y + 4, lab);
    }
    double xs = nice_step(p->x.hi - p->x.lo, 8);
    if (xs < 1) xs = 1;
    for (double v = ceil(p->x.lo / xs) * xs; v <= p->x.hi + xs * 1e-9; v += xs) {
        double x = ax_map(&p->x, v);
        out(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n", x, y0, x, y1);
        out(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#8a939e\"/>\n", x, y1, x, y1 + 4);
        if (x_labels) {
            fmt_tick(lab, sizeof lab, v, xs);
            out(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%s</text>\n", x, y1 + 16, lab);
        }
    }
}

static void legend(svg *s, const panel *p, int slot, const char *color, int dot, const char *label) {
    double x = p->x.px1 - 150.0 * (slot + 1) + 20, y = p->top - 12;
    if (dot) out(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", x + 9, y - 4, color);
    else out(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", x, y - 4,
             x + 18, y - 4, color);
    out(s, "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">", x + 24, y);
    out_escaped(s, label);
    out(s, "</text>\n");
}

/* A curve: bucket means when there are more points than MAX_POINTS, gaps at NaN. */
static void curve(svg *s, const panel *p, const int64_t *step, const double *v, int64_t n, const char *color,
                  double width, double opacity) {
    int64_t buckets = n > MAX_POINTS ? MAX_POINTS : n;
    int open = 0;
    for (int64_t b = 0; b < buckets; b++) {
        int64_t i0 = b * n / buckets, i1 = (b + 1) * n / buckets;
        double sx = 0, sy = 0;
        int64_t c = 0;
        for (int64_t i = i0; i < i1; i++)
            if (isfinite(v[i])) sx += (double)step[i], sy += v[i], c++;
        if (!c) {
            if (open) out(s, "\"/>\n");
            open = 0;
            continue;
        }
        double x = ax_map(&p->x, sx / c), y = ax_map(&p->y, sy / c);
        if (y < p->top) y = p->top;
        if (y > p->top + p->h) y = p->top + p->h;
        if (!open) {
            out(s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-opacity=\"%.2f\" "
                   "stroke-linejoin=\"round\" points=\"",
                color, width, opacity);
            open = 1;
        }
        out(s, "%.1f,%.1f ", x, y);
    }
    if (open) out(s, "\"/>\n");
}

static void dots(svg *s, const panel *p, const int64_t *step, const double *v, int64_t n, const char *color) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) cnt += isfinite(v[i]);
    double r = cnt > 200 ? 1.8 : 3.2;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            out(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\"/>\n", ax_map(&p->x, (double)step[i]),
                ax_map(&p->y, v[i]), r, color);
}

static int any_finite(const double *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (isfinite(v[i])) return 1;
    return 0;
}

static double last_finite(const double *v, int64_t n, int64_t *at) {
    for (int64_t i = n - 1; i >= 0; i--)
        if (isfinite(v[i])) {
            if (at) *at = i;
            return v[i];
        }
    return NAN;
}

/* Load -> colour: log2(load / mean) clipped to [-2, 2]; blue, white, red. */
static void heat_color(double ratio, char out_col[8]) {
    double t = ratio > 0 ? log2(ratio) / 2 : -1;
    if (t > 1) t = 1;
    if (t < -1) t = -1;
    int r, g, b;
    if (t >= 0) { /* white -> #b2182b */
        r = (int)lround(255 + (178 - 255) * t);
        g = (int)lround(255 + (24 - 255) * t);
        b = (int)lround(255 + (43 - 255) * t);
    } else { /* white -> #2166ac */
        r = (int)lround(255 + (33 - 255) * -t);
        g = (int)lround(255 + (102 - 255) * -t);
        b = (int)lround(255 + (172 - 255) * -t);
    }
    snprintf(out_col, 8, "#%02x%02x%02x", r, g, b);
}

/* The document up to its title: XML header, size, styles, white ground. */
static void doc_begin(svg *s, double H, const char *title) {
    out(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\" "
           "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n",
        W, H, W, H);
    out(s, "<style>\n"
           "  .title { font-size: 19px; font-weight: bold; fill: #1d232b; }\n"
           "  .sub { font-size: 12.5px; fill: #4b5561; }\n"
           "  .ptitle { font-size: 13.5px; font-weight: bold; fill: #2b333d; }\n"
           "  .legend { font-size: 12px; fill: #3a434d; }\n"
           "  .ytick { font-size: 11px; fill: #4b5561; text-anchor: end; }\n"
           "  .xtick { font-size: 11px; fill: #4b5561; text-anchor: middle; }\n"
           "  .axis { font-size: 12px; fill: #2b333d; text-anchor: middle; }\n"
           "  .grid { stroke: #e6e9ed; stroke-width: 1; }\n"
           "</style>\n");
    out(s, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    out(s, "<text x=\"%d\" y=\"32\" class=\"title\">", ML);
    out_escaped(s, title);
    out(s, "</text>\n");
}

/* ---- the document ------------------------------------------------------------------- */

int lm_plot_svg(const lm_metrics *m, const char *title, lm_text *text, lm_error *err) {
    if (!m->n || !any_finite(m->loss, m->n)) return lm_fail(err, "no record with a \"loss\" to plot");
    svg s = {text, 0};
    int64_t n = m->n;
    int has_lr = any_finite(m->lr, n), has_tps = any_finite(m->tokens_per_s, n), has_gn = any_finite(m->grad_norm, n);
    int has_val = any_finite(m->val_loss, n), has_load = m->n_load > 0 && m->load_width > 0;
    int rows = has_load ? m->load_width : 0;
    double cell_h = rows ? fmin(12, fmax(2, 180.0 / rows)) : 0;
    double heat_h = rows * cell_h;
    double x_lo = (double)m->step[0], x_hi = (double)m->step[n - 1];
    if (has_load) {
        x_lo = fmin(x_lo, (double)m->load_step[0]);
        x_hi = fmax(x_hi, (double)m->load_step[m->n_load - 1]);
    }
    if (x_hi == x_lo) x_hi = x_lo + 1;

    /* panel geometry */
    double y = 92;
    panel pl = {y, 250, {x_lo, x_hi, ML, W - MR}, {0, 1, 0, 0}};
    y += 250 + 64;
    panel plr = {y, 120, pl.x, {0, 1, 0, 0}};
    if (has_lr) y += 120 + 64;
    panel ptp = {y, 120, pl.x, {0, 1, 0, 0}};
    if (has_tps) y += 120 + 64;
    panel pgn = {y, 120, pl.x, {0, 1, 0, 0}};
    if (has_gn) y += 120 + 64;
    panel pht = {y, heat_h, pl.x, {0, 1, 0, 0}};
    if (has_load) y += heat_h + 64 + 20;
    double H = y - 20;

    /* The smoothed loss: a centred moving average over about n/40 records
     * (see below for the ends), so that it does not lag a falling curve. */
    double *ema = malloc((size_t)n * sizeof *ema), *pre = malloc((size_t)(n + 1) * sizeof *pre);
    int64_t *cnt = malloc((size_t)(n + 1) * sizeof *cnt);
    if (!ema || !pre || !cnt) {
        free(ema);
        free(pre);
        free(cnt);
        return lm_fail(err, "out of memory");
    }
    pre[0] = 0;
    cnt[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        int f = isfinite(m->loss[i]);
        pre[i + 1] = pre[i] + (f ? m->loss[i] : 0);
        cnt[i + 1] = cnt[i] + f;
    }
    int64_t half = n / 80;
    for (int64_t i = 0; i < n; i++) {
        /* symmetric (shrunk) at the start, where the loss falls fast; one-sided
         * at the end, where the curve is flat and the last value is read */
        int64_t hl = i < half ? i : half, hr = i < half ? i : half;
        if (i + hr >= n) hr = n - 1 - i;
        int64_t lo = i - hl, hi = i + hr;
        int64_t c = cnt[hi + 1] - cnt[lo];
        ema[i] = c ? (pre[hi + 1] - pre[lo]) / c : NAN;
    }
    free(pre);
    free(cnt);

    doc_begin(&s, H, title && *title ? title : "training run");

    /* summary line */
    char sub[512];
    int64_t at = 0;
    double last_loss = last_finite(m->loss, n, &at);
    size_t k = (size_t)snprintf(sub, sizeof sub, "steps %lld-%lld, %lld records; last loss %.4g",
                                (long long)m->step[0], (long long)m->step[n - 1], (long long)n, last_loss);
    if (half > 0) k += (size_t)snprintf(sub + k, sizeof sub - k, " (smoothed %.4g)", ema[at]);
    if (has_val) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++)
            if (isfinite(m->val_loss[i]) && (best < 0 || m->val_loss[i] < m->val_loss[best])) best = i;
        double lv = last_finite(m->val_loss, n, NULL);
        k += (size_t)snprintf(sub + k, sizeof sub - k, "; val loss %.4g (best %.4g at step %lld)", lv, m->val_loss[best],
                              (long long)m->step[best]);
    }
    if (has_tps && k < sizeof sub) {
        double sum = 0;
        int64_t c = 0;
        for (int64_t i = n / 2; i < n; i++)
            if (isfinite(m->tokens_per_s[i])) sum += m->tokens_per_s[i], c++;
        if (c) snprintf(sub + k, sizeof sub - k, "; %.0f tokens/s", sum / c);
    }
    out(&s, "<text x=\"%d\" y=\"54\" class=\"sub\">", ML);
    out_escaped(&s, sub);
    out(&s, "</text>\n");

    /* loss */
    range_of(m->loss, has_val ? m->val_loss : NULL, n, &pl.y.lo, &pl.y.hi);
    pl.y.px0 = pl.top + pl.h;
    pl.y.px1 = pl.top;
    draw_frame(&s, &pl, "loss", 1);
    if (half > 0) { /* enough records to smooth */
        curve(&s, &pl, m->step, m->loss, n, "#9ecae1", 1.2, 0.9);
        curve(&s, &pl, m->step, ema, n, "#1f63a8", 2.2, 1);
        legend(&s, &pl, has_val ? 2 : 1, "#9ecae1", 0, "train (raw)");
        legend(&s, &pl, has_val ? 1 : 0, "#1f63a8", 0, "train (smoothed)");
    } else {
        curve(&s, &pl, m->step, m->loss, n, "#1f63a8", 2.2, 1);
        dots(&s, &pl, m->step, m->loss, n, "#1f63a8");
        legend(&s, &pl, has_val ? 1 : 0, "#1f63a8", 0, "train");
    }
    if (has_val) dots(&s, &pl, m->step, m->val_loss, n, "#d62728");
    if (has_val) legend(&s, &pl, 0, "#d62728", 1, "validation");
    free(ema);

    struct {
        int on;
        panel *p;
        const double *v;
        const char *name, *color;
    } simple[3] = {{has_lr, &plr, m->lr, "learning rate", "#2e9e4f"},
                   {has_tps, &ptp, m->tokens_per_s, "tokens/s", "#7b52ab"},
                   {has_gn, &pgn, m->grad_norm, "gradient norm (before clipping)", "#e07b00"}};
    for (int i = 0; i < 3; i++) {
        if (!simple[i].on) continue;
        panel *p = simple[i].p;
        range_of(simple[i].v, NULL, n, &p->y.lo, &p->y.hi);
        if (i < 2 && p->y.lo > 0 && p->y.lo < p->y.hi * 0.6) p->y.lo = 0; /* lr and throughput from zero */
        p->y.px0 = p->top + p->h;
        p->y.px1 = p->top;
        draw_frame(&s, p, simple[i].name, 1);
        curve(&s, p, m->step, simple[i].v, n, simple[i].color, 1.8, 1);
    }

    if (has_load) {
        panel *p = &pht;
        int layers = m->load_layers, per = m->load_width / layers;
        out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"ptitle\">expert load (load / layer mean)</text>\n", p->x.px0,
            p->top - 8);
        int64_t nl = m->n_load, cols = nl > MAX_COLS ? MAX_COLS : nl;
        char col[8];
        for (int64_t c = 0; c < cols; c++) {
            int64_t i0 = c * nl / cols, i1 = (c + 1) * nl / cols;
            /* records own the steps half-way to their neighbours */
            const int64_t *ls = m->load_step;
            double gap = nl > 1 ? (double)(ls[nl - 1] - ls[0]) / (double)(nl - 1) : 1;
            double sa = i0 > 0 ? (ls[i0 - 1] + ls[i0]) / 2.0 : ls[0] - gap / 2;
            double sb = i1 < nl ? (ls[i1 - 1] + ls[i1]) / 2.0 : ls[nl - 1] + gap / 2;
            double xa = fmax(p->x.px0, ax_map(&p->x, sa)), xb = fmin(p->x.px1, ax_map(&p->x, sb));
            if (xb - xa < 0.5) xb = xa + 0.5;
            for (int r = 0; r < m->load_width; r++) {
                int l = r / per;
                double ratio = 0;
                for (int64_t i = i0; i < i1; i++) {
                    const double *row = m->load + i * m->load_width + l * per;
                    double mean = 0;
                    for (int e = 0; e < per; e++) mean += row[e];
                    mean /= per;
                    ratio += mean > 0 ? row[r - l * per] / mean : 1;
                }
                heat_color(ratio / (double)(i1 - i0), col);
                out(&s, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"/>\n", xa,
                    p->top + r * cell_h, xb - xa + 0.3, cell_h + 0.3, col);
            }
        }
        out(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#c8cdd4\"/>\n",
            p->x.px0, p->top, p->x.px1 - p->x.px0, heat_h);
        for (int l = 0; l < layers; l++) {
            double yl = p->top + (l + 0.5) * per * cell_h;
            if (layers > 1) {
                out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"ytick\">layer %d</text>\n", p->x.px0 - 6, yl + 4, l + 1);
                if (l)
                    out(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#5b6470\"/>\n", p->x.px0,
                        p->top + l * per * cell_h, p->x.px1, p->top + l * per * cell_h);
            } else {
                out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"ytick\">%d experts</text>\n", p->x.px0 - 6, yl + 4, per);
            }
        }
        /* x ticks under the strip */
        double xs = nice_step(p->x.hi - p->x.lo, 8);
        if (xs < 1) xs = 1;
        char lab[64];
        for (double v = ceil(p->x.lo / xs) * xs; v <= p->x.hi + xs * 1e-9; v += xs) {
            double x = ax_map(&p->x, v);
            fmt_tick(lab, sizeof lab, v, xs);
            out(&s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#8a939e\"/>\n", x, p->top + heat_h, x,
                p->top + heat_h + 4);
            out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%s</text>\n", x, p->top + heat_h + 16, lab);
        }
        /* colour key */
        double kx = p->x.px1 - 200, ky = p->top - 22;
        for (int i = 0; i < 40; i++) {
            heat_color(pow(2, -2 + 4.0 * i / 39), col);
            out(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"3.6\" height=\"10\" fill=\"%s\"/>\n", kx + i * 3.5, ky, col);
        }
        out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\" text-anchor=\"end\">&#188;&#215;</text>\n", kx - 4, ky + 9);
        out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">4&#215;</text>\n", kx + 144, ky + 9);
    }
    out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\">step</text>\n", (ML + W - MR) / 2.0, H - 8);
    out(&s, "</svg>\n");
    if (s.bad) return lm_fail(err, "out of memory");
    return 0;
}

/* ---- line charts ------------------------------------------------------------------ */

int lm_plot_lines_svg(const lm_plot_lines *c, lm_text *text, lm_error *err) {
    static const char *const colors[LM_PLOT_MAX_SERIES] = {"#1f63a8", "#d62728", "#2e9e4f", "#7b52ab"};
    if (c->n_series < 1 || c->n_series > LM_PLOT_MAX_SERIES)
        return lm_fail(err, "a line chart takes 1..%d series, got %d", LM_PLOT_MAX_SERIES, c->n_series);
    int any = 0;
    for (int i = 0; i < c->n_series; i++) any |= c->n > 0 && any_finite(c->series[i].y, c->n);
    if (!any) return lm_fail(err, "nothing to plot: no finite point");
    svg s = {text, 0};
    double x_lo = (double)c->x[0], x_hi = (double)c->x[c->n - 1];
    if (x_hi == x_lo) x_lo -= 0.5, x_hi += 0.5;
    double H = 110 + 300 + 64;
    /* a fixed range padded a little, so that points on its edges show whole */
    double pad = (c->y_hi - c->y_lo) * 0.03;
    panel p = {110, 300, {x_lo, x_hi, ML, W - MR}, {c->y_lo - pad, c->y_hi + pad, 110 + 300, 110}};
    if (!(c->y_lo < c->y_hi)) {
        p.y.lo = INFINITY;
        p.y.hi = -INFINITY;
        for (int i = 0; i < c->n_series; i++) {
            double lo, hi;
            if (range_of(c->series[i].y, NULL, c->n, &lo, &hi)) p.y.lo = fmin(p.y.lo, lo), p.y.hi = fmax(p.y.hi, hi);
        }
    }
    doc_begin(&s, H, c->title);
    if (c->subtitle) {
        out(&s, "<text x=\"%d\" y=\"54\" class=\"sub\">", ML);
        out_escaped(&s, c->subtitle);
        out(&s, "</text>\n");
    }
    draw_frame(&s, &p, c->panel ? c->panel : "", 1);
    /* the legend on a line of its own above the panel: names here are long */
    double lx = ML;
    for (int i = 0; i < c->n_series; i++) {
        const char *col = colors[i];
        curve(&s, &p, c->x, c->series[i].y, c->n, col, 2.2, 1);
        dots(&s, &p, c->x, c->series[i].y, c->n, col);
        out(&s, "<line x1=\"%.1f\" y1=\"70\" x2=\"%.1f\" y2=\"70\" stroke=\"%s\" stroke-width=\"2.5\"/>\n", lx, lx + 18,
            col);
        out(&s, "<text x=\"%.1f\" y=\"74\" class=\"legend\">", lx + 24);
        out_escaped(&s, c->series[i].name);
        out(&s, "</text>\n");
        lx += 48 + 6.8 * (double)strlen(c->series[i].name);
    }
    out(&s, "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\">", (ML + W - MR) / 2.0, H - 8);
    out_escaped(&s, c->x_label ? c->x_label : "");
    out(&s, "</text>\n</svg>\n");
    if (s.bad) return lm_fail(err, "out of memory");
    return 0;
}
