/* cmd_train.c — `lemma train`: a training run, or the continuation of one. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/stop.h"
#include "train/run.h"

/* Every default shown comes from lm_run_opts_default, which the recipe's
 * pretrain stage uses too. */
static void usage(FILE *f) {
    lm_run_opts d;
    lm_run_opts_default(&d);
    fprintf(f,
            "usage: lemma train (--config CONFIG.json | --init MODEL_DIR) --data DATA_DIR --out RUN_DIR [options]\n"
            "       lemma train --resume RUN_DIR [--restart] [--threads N]\n"
            "  Trains a DeepSeek-V2/V3-architecture model on token shards (lemma data). RUN_DIR/latest\n"
            "  is always a complete HF model directory; metrics go to RUN_DIR/metrics.jsonl. Ctrl-C or\n"
            "  SIGTERM checkpoints and stops (a second one stops at once); --resume continues from the\n"
            "  newest RUN_DIR/ckpt-N to the planned step count with bit-identical results. Results do\n"
            "  not depend on --threads. One process at a time trains in a RUN_DIR; a new run needs a\n"
            "  new or empty RUN_DIR.\n"
            "  --steps N          optimiser steps (default %lld)\n"
            "  --batch B          sequences per step (default %lld)\n"
            "  --micro-batch M    sequences per forward/backward (default B; divides B)\n"
            "  --seq T            positions per sequence (default %lld)\n"
            "  --lr X             peak learning rate (default %g)\n"
            "  --min-lr X         final learning rate (default lr/10)\n"
            "  --warmup N         warmup steps (default 1%% of steps)\n"
            "  --schedule S       cosine | wsd | constant (default cosine)\n"
            "  --decay-steps N    wsd: length of the final decay (default 20%% of steps)\n"
            "  --decay-shape S    wsd: linear | cosine | sqrt (default linear)\n"
            "  --weight-decay X   AdamW decoupled decay on matrices (default %g)\n"
            "  --beta1 X --beta2 X --eps X   AdamW (default %g, %g, %g)\n"
            "  --clip X           global gradient-norm clip (default %g; 0 = off)\n"
            "  --bias-gamma X     MoE correction-bias step (default %g; 0 = off)\n"
            "  --balance-alpha X  sequence-wise balance loss weight (default %g)\n"
            "  --seed S           init and data order (default %llu)\n"
            "  --std X            init std (default %g)\n"
            "  --tokenizer DIR    tokenizer to ship with checkpoints (default: the data's)\n"
            "  --save-every K     checkpoint every K steps (default: at the end)\n"
            "  --eval-every K     validation loss every K steps (default: at the end)\n"
            "  --eval-batches N   micro-batches per validation (default %lld)\n"
            "  --log-every K      metrics line every K steps (default %lld)\n"
            "  --keep N           checkpoints kept (default %lld)\n"
            "  --threads N        worker threads (default: all cores)\n"
            "  --restart          with --resume: start the run over from step 0 with its recorded\n"
            "                     settings, removing its checkpoints and metrics\n"
            "  --quiet            no progress on stderr\n",
            (long long)d.steps, (long long)d.batch, (long long)d.seq, d.sched.lr_max, d.adamw.weight_decay,
            d.adamw.beta1, d.adamw.beta2, d.adamw.eps, d.clip, d.bias_gamma, d.balance_alpha,
            (unsigned long long)d.seed, d.init_std, (long long)d.eval_batches, (long long)d.log_every,
            (long long)d.keep);
}

int cmd_train(int argc, char **argv) {
    args a = {argc, argv, 1, "train", 0};
    lm_run_opts o;
    lm_run_opts_default(&o);
    o.threads = args_default_threads();
    const char *v, *resume = NULL;
    int64_t x;
    double d;
    int threads_given = 0, restart = 0;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            usage(stdout);
            return 0;
        }
#define INT_OPT(name, field, lo, hi)                                         \
        else if (args_opt(&a, name, NULL, &v)) {                             \
            if (!args_int(&a, name, v, lo, hi, &x)) o.field = x;             \
        }
#define NUM_OPT(name, field, lo, hi)                                         \
        else if (args_opt(&a, name, NULL, &v)) {                             \
            if (!args_double(&a, name, v, lo, hi, &d)) o.field = d;          \
        }
        INT_OPT("--steps", steps, 1, 1ll << 40)
        INT_OPT("--batch", batch, 1, 1 << 20)
        INT_OPT("--micro-batch", micro_batch, 1, 1 << 20)
        INT_OPT("--seq", seq, 2, 1 << 24)
        INT_OPT("--warmup", sched.warmup, 0, 1ll << 40)
        INT_OPT("--decay-steps", sched.decay_steps, 0, 1ll << 40)
        INT_OPT("--save-every", save_every, 0, 1ll << 40)
        INT_OPT("--eval-every", eval_every, 0, 1ll << 40)
        INT_OPT("--eval-batches", eval_batches, 1, 1 << 20)
        INT_OPT("--log-every", log_every, 1, 1ll << 40)
        INT_OPT("--keep", keep, 1, 1000)
        NUM_OPT("--lr", sched.lr_max, 1e-12, 10)
        NUM_OPT("--min-lr", sched.lr_min, 0, 10)
        NUM_OPT("--weight-decay", adamw.weight_decay, 0, 10)
        NUM_OPT("--beta1", adamw.beta1, 0, 0.999999)
        NUM_OPT("--beta2", adamw.beta2, 0, 0.9999999)
        NUM_OPT("--eps", adamw.eps, 0, 1)
        NUM_OPT("--clip", clip, 0, 1e9)
        NUM_OPT("--bias-gamma", bias_gamma, 0, 10)
        NUM_OPT("--balance-alpha", balance_alpha, 0, 100)
        NUM_OPT("--std", init_std, 0, 10)
#undef INT_OPT
#undef NUM_OPT
        else if (args_opt(&a, "--seed", NULL, &v)) {
            if (!args_int(&a, "--seed", v, 0, INT64_MAX, &x)) o.seed = (uint64_t)x;
        } else if (args_opt(&a, "--threads", "-t", &v)) {
            if (!args_int(&a, "--threads", v, 1, 1024, &x)) o.threads = (int)x;
            threads_given = 1;
        } else if (args_opt(&a, "--schedule", NULL, &v)) {
            if (!v || lm_schedule_parse_kind(v, &o.sched.kind)) {
                fprintf(stderr, "lemma train: --schedule '%s': expected cosine, wsd or constant\n", v ? v : "");
                a.bad = 1;
            }
        } else if (args_opt(&a, "--decay-shape", NULL, &v)) {
            if (!v || lm_schedule_parse_decay(v, &o.sched.decay)) {
                fprintf(stderr, "lemma train: --decay-shape '%s': expected linear, cosine or sqrt\n", v ? v : "");
                a.bad = 1;
            }
        } else if (args_opt(&a, "--config", NULL, &v)) {
            o.config_path = v;
        } else if (args_opt(&a, "--init", NULL, &v)) {
            o.init_dir = v;
        } else if (args_opt(&a, "--data", NULL, &v)) {
            o.data_dir = v;
        } else if (args_opt(&a, "--out", "-o", &v)) {
            o.out_dir = v;
        } else if (args_opt(&a, "--tokenizer", NULL, &v)) {
            o.tokenizer_dir = v;
        } else if (args_opt(&a, "--resume", NULL, &v)) {
            resume = v;
        } else if (args_opt(&a, "--restart", NULL, NULL)) {
            restart = 1;
        } else if (args_opt(&a, "--quiet", "-q", NULL)) {
            o.quiet = 1;
        } else {
            fprintf(stderr, "lemma train: unexpected argument '%s' (see --help)\n", argv[a.i]);
            a.bad = 1;
        }
    }
    if (a.bad) return 2;
    if (restart && !resume) {
        fprintf(stderr, "lemma train: --restart goes with --resume RUN_DIR\n");
        return 2;
    }
    lm_error err;
    lm_stop_on_signals();
    if (resume) {
        lm_resume_opts ro = {.threads = threads_given ? o.threads : 0, .quiet = o.quiet, .restart = restart};
        if (lm_train_resume(resume, &ro, &err)) {
            fprintf(stderr, "lemma train: %s\n", err.msg);
            return strstr(err.msg, "interrupted") ? 130 : 1;
        }
        return 0;
    }
    if (lm_train_run(&o, &err)) {
        fprintf(stderr, "lemma train: %s\n", err.msg);
        return strstr(err.msg, "interrupted") ? 130 : 1;
    }
    return 0;
}
