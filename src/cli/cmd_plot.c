/* cmd_plot.c — lemma plot: RUN_DIR/metrics.jsonl -> SVG charts (src/train/plot.h).
 *
 *   lemma plot RUN_DIR [--out FILE.svg] [--title TEXT]
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "formats/safetensors.h"
#include "core/fileio.h"
#include "train/plot.h"

typedef struct plot_cli {
    const char *run, *out, *title;
} plot_cli;

static const cli_arg plot_args[] = {{"RUN_DIR", CLI_ARG_AT(plot_cli, run), CLI_REQUIRED}};
static const cli_opt plot_opts[] = {
    {"--out", "-o", CLI_PATH, CLI_AT(plot_cli, out), .note = "RUN_DIR/plot.svg", .metavar = "FILE",
     .help = "output file, '-' for stdout"},
    {"--title", NULL, CLI_STRING, CLI_AT(plot_cli, title), .note = "RUN_DIR", .metavar = "TEXT", .help = "chart title"},
};
static int plot_run(const void *dest);
const cli_spec cli_plot_spec = {
    .cmd = "plot", .usage = "RUN_DIR [--out FILE.svg] [--title TEXT]",
    .about = "Draws RUN_DIR/metrics.jsonl (one JSON object per logged step: step, loss, lr,\n"
             "tokens_per_s; optional val_loss, grad_norm, expert_load) as SVG: loss with\n"
             "validation loss, learning rate, tokens/s, gradient norm, expert-load heat strip.\n"
             "RUN_DIR may also be the metrics file itself.",
    CLI_ARGS(plot_args), CLI_OPTS(plot_opts), .size = sizeof(plot_cli),
    .run = plot_run,
};

static int plot_run(const void *dest) {
    plot_cli c = *(const plot_cli *)dest;
    const char *run = c.run, *outp = c.out, *title = c.title;
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
