/* cmd_train.c — `lemma train`: a training run, or the continuation of one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/memcheck.h"
#include "cli/options.h"
#include "core/stop.h"
#include "train/dp.h"
#include "train/run.h"

typedef struct train_cli {
    lm_run_opts o;
    const char *resume;
    int restart;
    int no_memory_check;
} train_cli;

#define INT_OPT(name, field, lo, hi, var, text)                                                                \
    {name, NULL, CLI_INT, CLI_AT(train_cli, o.field), .min = lo, .max = hi, .flags = CLI_SHOW_FIELD, .metavar = var, \
     .help = text}
#define NUM_OPT(name, field, lo_, hi_, text)                                                                   \
    {name, NULL, CLI_REAL, CLI_AT(train_cli, o.field), .lo = lo_, .hi = hi_, .flags = CLI_SHOW_FIELD, .metavar = "X", \
     .help = text}

/* Every default shown is the field's value from lm_run_opts_default, which
 * the recipe's pretrain stage uses too, or says how the run works it out. */
static const cli_opt train_opts[] = {
    {"--config", NULL, CLI_PATH, CLI_AT(train_cli, o.config_path), .metavar = "CONFIG.json",
     .help = "a new model with random weights of this Hugging Face config"},
    {"--init", NULL, CLI_PATH, CLI_AT(train_cli, o.init_dir), .metavar = "MODEL_DIR",
     .help = "start from the weights of this model directory"},
    CLI_OPT_NO_MEMORY_CHECK(train_cli, no_memory_check),
    {"--data", NULL, CLI_PATH, CLI_AT(train_cli, o.data_dir), .metavar = "DATA_DIR", .help = "token shards (lemma data)"},
    {"--out", "-o", CLI_PATH, CLI_AT(train_cli, o.out_dir), .metavar = "RUN_DIR", .help = "the run's folder (new or empty)"},
    {"--resume", NULL, CLI_PATH, CLI_AT(train_cli, resume), .metavar = "RUN_DIR",
     .help = "continue this run to its planned step count"},
    INT_OPT("--steps", steps, 1, 1ll << 40, "N", "optimiser steps"),
    INT_OPT("--batch", batch, 1, 1 << 20, "B", "sequences per step"),
    {"--micro-batch", NULL, CLI_INT, CLI_AT(train_cli, o.micro_batch), .min = 1, .max = 1 << 20, .note = "B",
     .metavar = "M", .help = "sequences per forward/backward (divides B)"},
    INT_OPT("--seq", seq, 2, 1 << 24, "T", "positions per sequence"),
    NUM_OPT("--lr", sched.lr_max, 1e-12, 10, "peak learning rate"),
    {"--min-lr", NULL, CLI_REAL, CLI_AT(train_cli, o.sched.lr_min), .lo = 0, .hi = 10, .note = "lr/10", .metavar = "X",
     .help = "final learning rate"},
    {"--warmup", NULL, CLI_INT, CLI_AT(train_cli, o.sched.warmup), .min = 0, .max = 1ll << 40, .note = "1% of steps",
     .metavar = "N", .help = "warmup steps"},
    {"--schedule", NULL, CLI_ENUM, CLI_AT(train_cli, o.sched.kind), .choices = "constant|cosine|wsd",
     .flags = CLI_SHOW_FIELD, .metavar = "S", .help = "cosine | wsd | constant"},
    {"--decay-steps", NULL, CLI_INT, CLI_AT(train_cli, o.sched.decay_steps), .min = 0, .max = 1ll << 40,
     .note = "20% of steps", .metavar = "N", .help = "wsd: length of the final decay"},
    {"--decay-shape", NULL, CLI_ENUM, CLI_AT(train_cli, o.sched.decay), .choices = "linear|cosine|sqrt",
     .flags = CLI_SHOW_FIELD, .metavar = "S", .help = "wsd: linear | cosine | sqrt"},
    NUM_OPT("--weight-decay", adamw.weight_decay, 0, 10, "AdamW decoupled decay on matrices"),
    NUM_OPT("--beta1", adamw.beta1, 0, 0.999999, "AdamW beta1"),
    NUM_OPT("--beta2", adamw.beta2, 0, 0.9999999, "AdamW beta2"),
    NUM_OPT("--eps", adamw.eps, 0, 1, "AdamW epsilon"),
    NUM_OPT("--clip", clip, 0, 1e9, "global gradient-norm clip (0 = off)"),
    NUM_OPT("--bias-gamma", bias_gamma, 0, 10, "MoE correction-bias step (0 = off)"),
    NUM_OPT("--balance-alpha", balance_alpha, 0, 100, "sequence-wise balance loss weight"),
    NUM_OPT("--mtp-weight", mtp_weight, 0, 100,
            "MTP loss weight lambda (0 = off; > 0 adds an MTP layer to a config without one)"),
    {"--precision", NULL, CLI_ENUM, CLI_AT(train_cli, o.precision), .choices = "f32|bf16", .flags = CLI_SHOW_FIELD,
     .metavar = "P", .help = "products in f32, or bf16 with f32 master weights and accumulation"},
    INT_OPT("--seed", seed, 0, INT64_MAX, "S", "init and data order"),
    NUM_OPT("--std", init_std, 0, 10, "init std"),
    {"--tokenizer", NULL, CLI_PATH, CLI_AT(train_cli, o.tokenizer_dir), .note = "the data's", .metavar = "DIR",
     .help = "tokenizer to ship with checkpoints"},
    {"--save-every", NULL, CLI_INT, CLI_AT(train_cli, o.save_every), .min = 0, .max = 1ll << 40, .note = "at the end",
     .metavar = "K", .help = "checkpoint every K steps"},
    {"--eval-every", NULL, CLI_INT, CLI_AT(train_cli, o.eval_every), .min = 0, .max = 1ll << 40, .note = "at the end",
     .metavar = "K", .help = "validation loss every K steps"},
    INT_OPT("--eval-batches", eval_batches, 1, 1 << 20, "N", "micro-batches per validation"),
    INT_OPT("--log-every", log_every, 1, 1ll << 40, "K", "metrics line every K steps"),
    INT_OPT("--keep", keep, 1, 1000, "N", "checkpoints kept"),
    {"--threads", "-t", CLI_INT, CLI_AT(train_cli, o.threads), .min = 1, .max = 1024, .note = "all cores",
     .metavar = "N", .help = "worker threads"},
    {"--restart", NULL, CLI_FLAG, CLI_AT(train_cli, restart), .needs = "--resume",
     .help = "with --resume: start the run over from step 0 with its recorded\n"
             "settings, removing its checkpoints and metrics"},
    {"--quiet", "-q", CLI_FLAG, CLI_AT(train_cli, o.quiet), .help = "no progress on stderr"},
};
#undef INT_OPT
#undef NUM_OPT

static int train_run(const void *dest);
static void train_defaults(void *dest) {
    train_cli *c = dest;
    lm_run_opts_default(&c->o);
    c->o.threads = 0; /* not given: all cores, or for --resume the run's own count */
}
const cli_spec cli_train_spec = {
    .cmd = "train", .usage = "(--config CONFIG.json | --init MODEL_DIR) --data DATA_DIR --out RUN_DIR [options]\n"
             "--resume RUN_DIR [--restart] [--threads N]",
    .about = "Trains a DeepSeek-V2/V3-architecture model on token shards (lemma data). RUN_DIR/latest\n"
             "is always a complete HF model directory; metrics go to RUN_DIR/metrics.jsonl. Ctrl-C or\n"
             "SIGTERM checkpoints and stops (a second one stops at once); --resume continues from the\n"
             "newest RUN_DIR/ckpt-N to the planned step count with bit-identical results. Results do\n"
             "not depend on --threads. One process at a time trains in a RUN_DIR; a new run needs a\n"
             "new or empty RUN_DIR. Under `mpirun -np K` (lemma built with OpenMPI) the ranks share\n"
             "each step's micro-batches (at least one each) and end bit-identical to one process.",
    CLI_OPTS(train_opts), .size = sizeof(train_cli),
    .run = train_run, .init = train_defaults,
};

/* Under mpirun a failure on one rank must end the others too, unless they
 * were told (then they stop by themselves, silently). */
static int train_fail(const lm_error *err, int rc) {
    int world = lm_dp_size();
    if (rc > 0) { /* a rank other than 0 stopped with rank 0, whose message and status mpirun passes on */
        lm_dp_stop();
        return 0;
    }
    if (world > 1 && lm_dp_rank() > 0) fprintf(stderr, "lemma train: rank %d of %d: %s\n", lm_dp_rank(), world, err->msg);
    else fprintf(stderr, "lemma train: %s\n", err->msg);
    int code = strstr(err->msg, "interrupted") ? 130 : 1;
    if (world > 1 && !lm_dp_stop_was_told()) lm_dp_abort(code);
    lm_dp_stop();
    return code;
}

static int train_run(const void *dest) {
    train_cli c = *(const train_cli *)dest;
    lm_run_opts o = c.o;
    const char *resume = c.resume;
    int threads_given = o.threads != 0, restart = c.restart;
    lm_error err;
    if (lm_dp_start(&err)) {
        fprintf(stderr, "lemma train: %s\n", err.msg);
        return 1;
    }
    if (!threads_given) {
        /* ranks on one machine share its cores */
        o.threads = args_default_threads();
        const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
        int n = local ? atoi(local) : 1;
        if (lm_dp_size() > 1 && n > 1) o.threads = o.threads / n > 0 ? o.threads / n : 1;
    }
    lm_stop_on_signals();
    int rc;
    if (resume) {
        lm_resume_opts ro = {.threads = threads_given || lm_dp_size() > 1 ? o.threads : 0, .quiet = o.quiet,
                             .restart = restart};
        rc = lm_train_resume(resume, &ro, &err);
    } else {
        /* the checkpoint mapped, and its parameters as F32 weights, gradients and AdamW moments */
        if (o.init_dir && cli_memory_check("train", o.init_dir, &(lm_memplan_req){.training = 1}, c.no_memory_check)) {
            lm_dp_stop();
            return 1;
        }
        rc = lm_train_run(&o, &err);
    }
    if (rc) return train_fail(&err, rc);
    lm_dp_stop();
    return 0;
}
