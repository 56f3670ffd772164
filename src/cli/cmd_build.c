/* cmd_build.c — lemma build: run a recipe's stages, write lemma.lock; --check
 * rebuilds into a scratch directory and compares every hash (src/recipe/build.h,
 * docs/recipe.md).
 *
 *   lemma build RECIPE.json [--out DIR] [--until STAGE] [--force] [--threads N]
 *   lemma build RECIPE.json --check [--out DIR] [--scratch DIR] [--keep]
 *   mpirun -np K lemma build RECIPE.json ...   (data-parallel training stages)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/clock.h"
#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/stop.h"
#include "recipe/build.h"
#include "train/dp.h"

typedef struct ui {
    int tty, quiet;
    int live;              /* a transient line is on screen */
    double last;
} ui;

/* Permanent lines always; transient ones as a live line on a terminal, or
 * at most every 10 s otherwise. */
static int show(void *ctx, int transient, const char *msg) {
    ui *u = ctx;
    if (u->quiet && transient) return lm_stop_requested();
    if (u->tty) {
        if (transient) {
            double t = lm_now_s();
            if (t - u->last < 0.1) return lm_stop_requested();
            u->last = t;
            fprintf(stderr, "\r\033[K%.*s", 150, msg);
            u->live = 1;
        } else {
            fprintf(stderr, "%s%s\n", u->live ? "\r\033[K" : "", msg);
            u->live = 0;
        }
    } else if (!transient || lm_now_s() - u->last >= 10) {
        if (transient) u->last = lm_now_s();
        fprintf(stderr, "%s\n", msg);
    }
    return lm_stop_requested();
}

static void end_live(ui *u) {
    if (u->tty && u->live) fputs("\r\033[K", stderr);
    u->live = 0;
}

static void on_diff(void *ctx, const char *what, const char *path, const char *a, const char *b) {
    (void)ctx;
    if (!strcmp(what, "recipe"))
        printf("recipe   %s changed since lemma.lock was written (lock %.12s, now %.12s)\n", path, a, b);
    else if (!strcmp(what, "differs"))
        printf("differs  %s  lock %.16s  rebuilt %.16s\n", path, a, b);
    else if (!strcmp(what, "missing"))
        printf("missing  %s  (in lemma.lock, not made by the rebuild)\n", path);
    else
        printf("extra    %s  (made by the rebuild, not in lemma.lock)\n", path);
}

typedef struct build_cli {
    const char *recipe, *out, *until, *scratch;
    int force, threads, check, keep, quiet;
} build_cli;

static const cli_arg build_args[] = {{"RECIPE.json", CLI_ARG_AT(build_cli, recipe), CLI_REQUIRED}};
static const cli_opt build_opts[] = {
    {"--out", "-o", CLI_PATH, CLI_AT(build_cli, out), .note = "out/<recipe name>", .metavar = "DIR",
     .help = "build directory"},
    {"--until", NULL, CLI_STRING, CLI_AT(build_cli, until), .metavar = "STAGE", .help = "stop after this stage"},
    {"--force", NULL, CLI_FLAG, CLI_AT(build_cli, force), .help = "run every stage even when up to date"},
    CLI_OPT_THREADS(build_cli, threads, "worker threads for the stages (never changes the bytes)"),
    {"--check", NULL, CLI_FLAG, CLI_AT(build_cli, check),
     .help = "rebuild everything into a scratch directory and report every\n"
             "artifact whose hash differs from DIR/lemma.lock (exit 1 if any)"},
    {"--scratch", NULL, CLI_PATH, CLI_AT(build_cli, scratch), .note = "DIR.check-XXXXXX", .metavar = "DIR",
     .help = "the scratch directory for --check"},
    {"--keep", NULL, CLI_FLAG, CLI_AT(build_cli, keep), .help = "keep the scratch directory even when everything matches"},
    {"--quiet", "-q", CLI_FLAG, CLI_AT(build_cli, quiet), .help = "only the stage lines, no live progress"},
};
static int build_run(const void *dest);
const cli_spec cli_build_spec = {
    .cmd = "build", .usage = "RECIPE.json [--out DIR] [options]\nRECIPE.json --check [--out DIR] [--scratch DIR] [--keep]",
    .about = "Runs the recipe's stages (tokenizer, data, pretrain, sft, verifier_rl, grpo, distill)\n"
             "whose outputs are missing or whose inputs or parameters changed, and writes DIR/lemma.lock with the\n"
             "SHA-256 of every artifact. The recipe format is in docs/recipe.md. Under `mpirun -np K`\n"
             "(lemma built with OpenMPI) the pretrain and sft stages train data-parallel, and lemma.lock\n"
             "is the one-process build's (docs/scaling.md).",
    CLI_ARGS(build_args), CLI_OPTS(build_opts), .size = sizeof(build_cli),
    .run = build_run,
};

/* Ranks > 0 under mpirun: they train alongside rank 0, which says
 * everything; one that fails itself ends the job, naming itself. */
static int follow_rank(int threads) {
    lm_build_opts fo = {.threads = threads};
    lm_error err;
    int rc = lm_build_follow(&fo, &err);
    if (rc < 0) {
        fprintf(stderr, "lemma build: rank %d of %d: %s\n", lm_dp_rank(), lm_dp_size(), err.msg);
        if (!lm_dp_stop_was_told()) lm_dp_abort(1);
    }
    lm_dp_stop();
    return rc < 0 ? 1 : 0; /* rank 0's status is the job's */
}

static int build_here(const build_cli *c);

static int build_run(const void *dest) {
    build_cli c = *(const build_cli *)dest;
    lm_error err;
    if (lm_dp_start(&err)) {
        if (lm_dp_env_rank() == 0) fprintf(stderr, "lemma build: %s\n", err.msg); /* once, not once per rank */
        return 1;
    }
    if (lm_dp_size() > 1) {
        /* ranks on one machine share its cores (unless --threads says otherwise) */
        const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int n = local ? atoi(local) : 1;
        if (n > 1 && c.threads == args_default_threads()) c.threads = c.threads / n > 0 ? c.threads / n : 1;
    }
    lm_stop_on_signals();
    if (lm_dp_size() > 1 && lm_dp_rank() > 0) return follow_rank(c.threads);
    int rc = build_here(&c);
    /* the other ranks still waiting hear that the build ended; ones that may
     * be stuck in a failed training stage are ended with the job */
    if (lm_build_release_ranks()) lm_dp_abort(rc ? rc : 1);
    lm_dp_stop();
    return rc;
}

static int build_here(const build_cli *cp) {
    build_cli c = *cp;
    const char *recipe_path = c.recipe, *out = c.out, *scratch = c.scratch;
    lm_build_opts o = {0};
    o.until = c.until;
    o.force = c.force;
    int check = c.check, keep = c.keep, quiet = c.quiet;
    int64_t threads = c.threads;
    lm_error err;
    lm_recipe *r = lm_recipe_load(recipe_path, &err);
    if (!r) {
        fprintf(stderr, "lemma build: %s\n", err.msg);
        return 1;
    }
    char def_out[512];
    if (!out) {
        snprintf(def_out, sizeof def_out, "out/%s", r->name);
        out = def_out;
    }
    o.out_dir = out;
    o.threads = (int)threads;
    ui u = {isatty(2), quiet, 0, 0};
    o.note = show;
    o.note_ctx = &u;
    /* The first Ctrl-C or SIGTERM asks the running stage to stop (a pretrain
     * stage saves what lets it resume); a second one kills at once. (Set in
     * build_run, for every rank.) */

    int rc = 0;
    if (!check) {
        lm_build_result res;
        if (lm_build(r, &o, &res, &err)) {
            end_live(&u);
            fprintf(stderr, "lemma build: %s\n", err.msg);
            rc = lm_stop_requested() ? 130 : 1;
        } else {
            end_live(&u);
            fprintf(stderr, "lemma build: %s: %d stage%s built, %d up to date; %s/lemma.lock\n", out, res.built,
                    res.built == 1 ? "" : "s", res.reused, out);
        }
    } else {
        char scratch_buf[600];
        if (!scratch) {
            snprintf(scratch_buf, sizeof scratch_buf, "%s.check-XXXXXX", out);
            if (!mkdtemp(scratch_buf)) {
                fprintf(stderr, "lemma build: %s: %s\n", scratch_buf, strerror(errno));
                lm_recipe_free(r);
                return 1;
            }
            if (lm_dir_mark_made(scratch_buf, &err)) {
                fprintf(stderr, "lemma build: %s\n", err.msg);
                lm_recipe_free(r);
                return 1;
            }
            scratch = scratch_buf;
        }
        fprintf(stderr, "lemma build: checking %s/lemma.lock by rebuilding into %s\n", out, scratch);
        int n = lm_build_check(r, &o, scratch, on_diff, NULL, &err);
        end_live(&u);
        if (n < 0) {
            fprintf(stderr, "lemma build: %s\n", err.msg);
            rc = 1;
        } else if (n > 0) {
            printf("check: %d difference%s; the rebuild is in %s\n", n, n == 1 ? "" : "s", scratch);
            rc = 1;
        } else {
            printf("check: every artifact matches %s/lemma.lock\n", out);
        }
        if (rc == 0 && !keep && lm_dir_made_by_lemma(scratch)) {
            fprintf(stderr, "lemma build: removing the scratch directory %s\n", scratch);
            if (lm_remove_tree(scratch, &err)) fprintf(stderr, "lemma build: %s\n", err.msg);
        } else if (n < 0) {
            fprintf(stderr, "lemma build: the scratch directory %s is kept\n", scratch);
        }
    }
    lm_recipe_free(r);
    return rc;
}
