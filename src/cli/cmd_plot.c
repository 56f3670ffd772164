/* cmd_plot.c — lemma plot: RUN_DIR/metrics.jsonl -> SVG charts (src/train/plot.h).
 *
 *   lemma plot RUN_DIR [--out FILE.svg] [--title TEXT]
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/fileio.h"
#include "train/plot.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: lemma plot RUN_DIR [--out FILE.svg] [--title TEXT]\n"
            "  Draws RUN_DIR/metrics.jsonl (one JSON object per logged step: step, loss, lr,\n"
            "  tokens_per_s; optional val_loss, grad_norm, expert_load) as SVG: loss with\n"
            "  validation loss, learning rate, tokens/s, gradient norm, expert-load heat strip.\n"
            "  RUN_DIR may also be the metrics file itself.\n"
            "  --out FILE     output file, '-' for stdout (default: RUN_DIR/plot.svg)\n"
            "  --title TEXT   chart title (default: RUN_DIR)\n");
}

int cmd_plot(int argc, char **argv) {
    args a = {argc, argv, 1, "plot", 0};
    const char *run = NULL, *outp = NULL, *title = NULL, *v;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            usage(stdout);
            return 0;
        } else if (args_opt(&a, "--out", "-o", &v)) {
            outp = v;
        } else if (args_opt(&a, "--title", NULL, &v)) {
            title = v;
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            fprintf(stderr, "lemma plot: unknown option '%s'\n", argv[a.i]);
            a.bad = 1;
        } else if (!run) {
            run = argv[a.i];
        } else {
            fprintf(stderr, "lemma plot: one run at a time ('%s' is extra)\n", argv[a.i]);
            a.bad = 1;
        }
    }
    if (a.bad) return 2;
    if (!run) {
        usage(stderr);
        return 2;
    }
    char metrics[4096], def_out[4096];
    struct stat st;
    if (stat(run, &st)) {
        fprintf(stderr, "lemma plot: %s: no such run directory or metrics file\n", run);
        return 1;
    }
    int is_dir = S_ISDIR(st.st_mode);
    if (is_dir) {
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run);
        snprintf(def_out, sizeof def_out, "%s/plot.svg", run);
    } else {
        snprintf(metrics, sizeof metrics, "%s", run);
        const char *slash = strrchr(run, '/');
        snprintf(def_out, sizeof def_out, "%.*splot.svg", slash ? (int)(slash - run + 1) : 0, run);
    }
    if (!outp) outp = def_out;
    lm_error err;
    lm_metrics m;
    if (lm_metrics_read(metrics, &m, &err)) {
        fprintf(stderr, "lemma plot: %s\n", err.msg);
        return 1;
    }
    if (m.truncated_last) fprintf(stderr, "lemma plot: %s: skipped an incomplete last line\n", metrics);
    lm_text svg = {0};
    int rc = 0;
    if (lm_plot_svg(&m, title ? title : run, &svg, &err)) {
        fprintf(stderr, "lemma plot: %s: %s\n", metrics, err.msg);
        rc = 1;
    } else if (!strcmp(outp, "-")) {
        fwrite(svg.data, 1, svg.len, stdout);
    } else if (lm_write_file_atomic(outp, svg.data, svg.len, &err)) {
        fprintf(stderr, "lemma plot: %s\n", err.msg);
        rc = 1;
    } else {
        fprintf(stderr, "lemma plot: wrote %s (%lld steps%s)\n", outp, (long long)m.n,
                m.n_load ? ", expert load" : "");
    }
    lm_text_free(&svg);
    lm_metrics_free(&m);
    return rc;
}
