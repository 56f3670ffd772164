/* plot.h — training curves from RUN_DIR/metrics.jsonl to one SVG file, with
 * no external tool (`lemma plot`).
 *
 *   lm_metrics m;
 *   if (lm_metrics_read("run/metrics.jsonl", &m, &err)) ...
 *   lm_text svg = {0};
 *   lm_plot_svg(&m, "run", &svg, &err);          // svg.data, svg.len
 *   lm_metrics_free(&m); lm_text_free(&svg);
 *
 * metrics.jsonl: one JSON object per line. "step" (integer) is required;
 * "loss", "lr", "tokens_per_s", "val_loss", "grad_norm" are numbers when
 * present (null or absent: no point); "expert_load" is an array of numbers
 * (one per expert) or an array of such arrays (one per MoE layer), counts or
 * fractions. Other keys are ignored. Lines with the same step as the line
 * before are merged (a trainer may log validation on a line of its own); a
 * step lower than the one before means the run was resumed from a checkpoint,
 * and the records from that step on are replaced by the new ones. Blank
 * lines are skipped; an incomplete last line (no newline: a run killed while
 * writing) is skipped and counted in truncated_last; any other malformed line
 * is an error naming the file, line and what was expected.
 *
 * The SVG stacks panels that share the step axis: loss (raw, faint, and a
 * centred moving average) with validation loss as points; learning rate;
 * tokens/s; gradient norm when logged; and an expert-load heat strip when
 * logged (one row per expert, grouped by layer; colour = load / the layer's
 * mean load at that step on a log scale, blue under-loaded, white balanced,
 * red over-loaded). Long runs are reduced to at most 1,200 points per curve
 * (bucket means) and 240 heat-strip columns. */
#ifndef LEMMA_TRAIN_PLOT_H
#define LEMMA_TRAIN_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct lm_metrics {
    int64_t n;              /* records, steps strictly increasing */
    int64_t *step;          /* [n] */
    double *loss, *lr, *tokens_per_s, *val_loss, *grad_norm;  /* [n], NaN when absent */
    int64_t cap;
    /* Expert load: n_load records of load_width values (layers x experts). */
    int64_t n_load, load_cap;
    int64_t *load_step;     /* [n_load] */
    double *load;           /* [n_load, load_width] */
    int load_width;         /* values per record */
    int load_layers;        /* rows are load_layers groups of load_width / load_layers experts */
    int truncated_last;     /* an incomplete last line was skipped */
} lm_metrics;

int lm_metrics_read(const char *path, lm_metrics *m, lm_error *err);
/* The same from bytes (tests); name is used in messages. */
int lm_metrics_parse(const char *text, size_t len, const char *name, lm_metrics *m, lm_error *err);
void lm_metrics_free(lm_metrics *m);

/* Appends the SVG document to svg. Errors: no record with a loss. */
int lm_plot_svg(const lm_metrics *m, const char *title, lm_text *svg, lm_error *err);

/* One panel of line series over shared integer x values (`lemma eval`'s
 * best-of-N and refinement-round charts), in the same style: each series a
 * line with its points marked, NaN a gap, a legend entry per series. */
#define LM_PLOT_MAX_SERIES 4
typedef struct lm_plot_series {
    const char *name;        /* legend text */
    const double *y;         /* [n], NaN: no point */
} lm_plot_series;
typedef struct lm_plot_lines {
    const char *title, *subtitle, *panel, *x_label;  /* subtitle and panel may be NULL */
    const int64_t *x;        /* [n], increasing */
    int64_t n;
    lm_plot_series series[LM_PLOT_MAX_SERIES];
    int n_series;
    double y_lo, y_hi;       /* the y range when y_lo < y_hi, else from the data */
} lm_plot_lines;
/* Appends the SVG document to svg. Errors: no point, more than
 * LM_PLOT_MAX_SERIES series. */
int lm_plot_lines_svg(const lm_plot_lines *c, lm_text *svg, lm_error *err);

#endif
