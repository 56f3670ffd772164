/* run.c — the training loop around lm_train_step; see run.h. */
#include "train/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/bf16gemm.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/stop.h"
#include "core/threadpool.h"
#include "data/shards.h"
#include "formats/json.h"
#include "model/config.h"
#include "model/model.h"
#include "train/dp.h"
#include "train/params.h"
#include "train/step.h"

void lm_run_opts_default(lm_run_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 8;
    o->seq = 256;
    o->sched.kind = LM_SCHED_COSINE;
    o->steps = 1000;
    o->sched.lr_max = 3e-4;
    o->sched.lr_min = -1; /* lr/10 */
    o->sched.warmup = -1; /* 1% of the steps */
    o->sched.decay = LM_DECAY_LINEAR;
    o->sched.decay_steps = 0; /* wsd: 20% of the steps */
    /* Not lm_adamw_opts_default (PyTorch's): the usual LLM pretraining setting. */
    o->adamw = (lm_adamw_opts){.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1};
    o->init_std = 0.02;
    o->clip = 1.0;
    o->bias_gamma = 1e-3;
    o->eval_batches = 8;
    o->log_every = 10;
    o->keep = 2;
    o->threads = 1;
}

/* dir/name into out (cap bytes); a path that does not fit is cut, and then
 * fails to open with a clear message. */
static const char *pjoin(char *out, size_t cap, const char *dir, const char *name) {
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap) out[cap - 1] = 0;
    return out;
}

/* The path of `to` as seen from directory `from` ("../data"), so that a run
 * moved or rebuilt elsewhere together with its data names the same files;
 * the absolute path when either cannot be resolved. */
static void relpath(const char *from, const char *to, char *out, size_t cap) {
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(from, a) || !realpath(to, b)) {
        snprintf(out, cap, "%s", to);
        return;
    }
    size_t common = 0, i = 0;
    while (a[i] && a[i] == b[i]) {
        if (a[i] == '/') common = i;
        i++;
    }
    if (!a[i] && (b[i] == '/' || !b[i])) common = i; /* to is inside from */
    size_t pos = 0;
    for (const char *q = a + common; *q; q++)
        if (*q == '/') pos += (size_t)snprintf(out + pos, pos < cap ? cap - pos : 0, "../");
    const char *rest = b + common + (b[common] == '/');
    if ((size_t)snprintf(out + pos, pos < cap ? cap - pos : 0, "%s", *rest ? rest : ".") >= cap - (pos < cap ? pos : 0))
        snprintf(out, cap, "%s", to);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int copy_file(const char *from, const char *to, lm_error *err) {
    char *buf;
    size_t len;
    if (lm_read_file(from, (size_t)1 << 30, &buf, &len, err)) return -1;
    int rc = lm_write_file_atomic(to, buf, len, err);
    free(buf);
    return rc;
}

static int fsync_path(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- run.json ---- */

static const char *sched_name(lm_sched_kind k) {
    return k == LM_SCHED_COSINE ? "cosine" : k == LM_SCHED_WSD ? "wsd" : "constant";
}
static const char *decay_name(lm_decay_shape d) {
    return d == LM_DECAY_COSINE ? "cosine" : d == LM_DECAY_SQRT ? "sqrt" : "linear";
}

static int write_run_json(const char *dir, const lm_run_opts *o, const char *data_dir, const char *tok_dir,
                          lm_error *err) {
    char buf[8192], path[PATH_MAX], rel[PATH_MAX];
    size_t pos = 0;
    relpath(dir, data_dir, rel, sizeof rel);
    data_dir = rel;
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "{\n  \"format\": \"lemma-run\",\n  \"version\": 1,\n  \"data\": ");
    if (json_write_string(buf, sizeof buf, &pos, data_dir, strlen(data_dir))) return lm_fail(err, "path too long");
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, ",\n  \"init\": ");
    if (o->init_dir) {
        char irel[PATH_MAX];
        relpath(dir, o->init_dir, irel, sizeof irel);
        if (json_write_string(buf, sizeof buf, &pos, irel, strlen(irel))) return lm_fail(err, "path too long");
    } else {
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "null");
    }
    pos += (size_t)snprintf(buf + pos, sizeof buf - pos, ",\n  \"tokenizer\": ");
    if (tok_dir) {
        char trel[PATH_MAX];
        relpath(dir, tok_dir, trel, sizeof trel);
        if (json_write_string(buf, sizeof buf, &pos, trel, strlen(trel))) return lm_fail(err, "path too long");
    } else {
        pos += (size_t)snprintf(buf + pos, sizeof buf - pos, "null");
    }
    char world[96] = "", prec[64];
    size_t wn = 0;
    /* bf16: which bf16 arithmetic computed the run (core/bf16gemm.h) */
    snprintf(prec, sizeof prec, ",\n  \"precision\": \"bf16\",\n  \"bf16_arith\": %d", LM_BF16_ARITH_VERSION);
    /* written only when on: the run.json of a run without it keeps its bytes */
    if (o->mtp_weight > 0) wn += (size_t)snprintf(world, sizeof world, ",\n  \"mtp_weight\": %.17g", o->mtp_weight);
    if (!o->omit_world_size) snprintf(world + wn, sizeof world - wn, ",\n  \"world_size\": %d", lm_dp_size());
    pos += (size_t)snprintf(
        buf + pos, sizeof buf - pos,
        ",\n  \"steps\": %lld,\n  \"batch\": %lld,\n  \"micro_batch\": %lld,\n  \"seq\": %lld,\n"
        "  \"schedule\": \"%s\",\n  \"lr\": %.17g,\n  \"min_lr\": %.17g,\n  \"warmup\": %lld,\n"
        "  \"decay_steps\": %lld,\n  \"decay_shape\": \"%s\",\n  \"beta1\": %.17g,\n  \"beta2\": %.17g,\n"
        "  \"eps\": %.17g,\n  \"weight_decay\": %.17g,\n  \"clip\": %.17g,\n  \"bias_gamma\": %.17g,\n"
        "  \"balance_alpha\": %.17g,\n  \"seed\": %llu,\n  \"init_std\": %.17g,\n"
        "  \"save_every\": %lld,\n  \"eval_every\": %lld,\n  \"eval_batches\": %lld,\n  \"log_every\": %lld,\n"
        "  \"keep\": %lld%s%s\n}\n",
        (long long)o->steps, (long long)o->batch, (long long)o->micro_batch, (long long)o->seq,
        sched_name(o->sched.kind), o->sched.lr_max, o->sched.lr_min, (long long)o->sched.warmup,
        (long long)o->sched.decay_steps, decay_name(o->sched.decay), o->adamw.beta1, o->adamw.beta2, o->adamw.eps,
        o->adamw.weight_decay, o->clip, o->bias_gamma, o->balance_alpha, (unsigned long long)o->seed, o->init_std,
        (long long)o->save_every, (long long)o->eval_every, (long long)o->eval_batches,
        (long long)o->log_every, (long long)o->keep, world,
        /* absent for f32, so the run.json of every earlier run stays the same bytes */
        o->precision == LM_PRECISION_BF16 ? prec : "");
    if (pos >= sizeof buf - 1) return lm_fail(err, "run.json too long");
    pjoin(path, sizeof path, dir, "run.json");
    return lm_write_file_atomic(path, buf, pos, err);
}

/* Strings read back from run.json live here. */
typedef struct run_strings {
    char data[PATH_MAX], tok[PATH_MAX], out[PATH_MAX], config[PATH_MAX], init[PATH_MAX];
} run_strings;

static int read_run_json(const char *dir, lm_run_opts *o, run_strings *s, lm_error *err) {
    char path[PATH_MAX];
    pjoin(path, sizeof path, dir, "run.json");
    char *text;
    size_t len;
    if (lm_read_file(path, 1 << 20, &text, &len, err)) return lm_fail_prefix(err, "not a run directory");
    json_doc *doc = json_parse(text, len, err);
    free(text);
    if (!doc) return lm_fail_prefix(err, "%s", path);
    const json_value *r = json_root(doc);
    lm_run_opts_default(o);
    int rc = -1;
    const json_value *v;
#define GET_INT(key, dst)                                                                    \
    do {                                                                                     \
        int64_t x_;                                                                          \
        if (!json_as_int(json_get(r, key), &x_)) {                                           \
            lm_fail(err, "%s: field '%s' missing or not an integer", path, key);             \
            goto done;                                                                       \
        }                                                                                    \
        dst = x_;                                                                            \
    } while (0)
#define GET_NUM(key, dst)                                                                    \
    do {                                                                                     \
        if (!json_as_double(json_get(r, key), &dst)) {                                       \
            lm_fail(err, "%s: field '%s' missing or not a number", path, key);               \
            goto done;                                                                       \
        }                                                                                    \
    } while (0)
    v = json_get(r, "data");
    if (!v || v->type != JSON_STRING) {
        lm_fail(err, "%s: field 'data' missing", path);
        goto done;
    }
    if (v->str[0] == '/') snprintf(s->data, sizeof s->data, "%s", v->str);
    else pjoin(s->data, sizeof s->data, dir, v->str);
    o->data_dir = s->data;
    v = json_get(r, "init");
    if (v && v->type == JSON_STRING) {
        if (v->str[0] == '/') snprintf(s->init, sizeof s->init, "%s", v->str);
        else pjoin(s->init, sizeof s->init, dir, v->str);
        o->init_dir = s->init;
    }
    v = json_get(r, "tokenizer");
    if (v && v->type == JSON_STRING) {
        if (v->str[0] == '/') snprintf(s->tok, sizeof s->tok, "%s", v->str);
        else pjoin(s->tok, sizeof s->tok, dir, v->str);
        o->tokenizer_dir = s->tok;
    }
    int64_t seed;
    GET_INT("steps", o->steps);
    GET_INT("batch", o->batch);
    GET_INT("micro_batch", o->micro_batch);
    GET_INT("seq", o->seq);
    GET_INT("warmup", o->sched.warmup);
    GET_INT("decay_steps", o->sched.decay_steps);
    GET_INT("seed", seed);
    GET_INT("save_every", o->save_every);
    GET_INT("eval_every", o->eval_every);
    GET_INT("eval_batches", o->eval_batches);
    GET_INT("log_every", o->log_every);
    GET_INT("keep", o->keep);
    GET_NUM("lr", o->sched.lr_max);
    GET_NUM("min_lr", o->sched.lr_min);
    GET_NUM("beta1", o->adamw.beta1);
    GET_NUM("beta2", o->adamw.beta2);
    GET_NUM("eps", o->adamw.eps);
    GET_NUM("weight_decay", o->adamw.weight_decay);
    GET_NUM("clip", o->clip);
    GET_NUM("bias_gamma", o->bias_gamma);
    GET_NUM("balance_alpha", o->balance_alpha);
    GET_NUM("init_std", o->init_std);
    if (json_get(r, "mtp_weight")) GET_NUM("mtp_weight", o->mtp_weight);
    v = json_get(r, "precision");
    o->precision = LM_PRECISION_F32;
    if (v && (v->type != JSON_STRING || lm_precision_parse(v->str, &o->precision))) {
        lm_fail(err, "%s: field 'precision' must be \"f32\" or \"bf16\"", path);
        goto done;
    }
    if (o->precision == LM_PRECISION_BF16) {
        /* absent: a run from before the field, bf16 arithmetic version 1 */
        int64_t ver = 1;
        v = json_get(r, "bf16_arith");
        if (v && (!json_as_int(v, &ver) || ver < 1)) {
            lm_fail(err, "%s: field 'bf16_arith' must be a positive integer", path);
            goto done;
        }
        if (ver != LM_BF16_ARITH_VERSION) {
            lm_fail(err,
                    "%s: this bf16 run was trained with bf16 arithmetic version %lld, this lemma computes version %d "
                    "(docs/arithmetic.md): resuming would not reproduce it; start a new run with --init from its "
                    "checkpoint",
                    path, (long long)ver, LM_BF16_ARITH_VERSION);
            goto done;
        }
    }
#undef GET_INT
#undef GET_NUM
    o->seed = (uint64_t)seed;
    o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o->threads < 1) o->threads = 1;
    v = json_get(r, "schedule");
    if (!v || v->type != JSON_STRING || lm_schedule_parse_kind(v->str, &o->sched.kind)) {
        lm_fail(err, "%s: field 'schedule' must be constant, cosine or wsd", path);
        goto done;
    }
    v = json_get(r, "decay_shape");
    if (!v || v->type != JSON_STRING || lm_schedule_parse_decay(v->str, &o->sched.decay)) {
        lm_fail(err, "%s: field 'decay_shape' must be linear, cosine or sqrt", path);
        goto done;
    }
    snprintf(s->out, sizeof s->out, "%s", dir);
    o->out_dir = s->out;
    snprintf(s->config, sizeof s->config, "%s/config.json", dir);
    o->config_path = s->config;
    rc = 0;
done:
    json_free(doc);
    return rc;
}

/* ---- checkpoints ---- */

typedef struct run_ctx {
    lm_run_opts o;
    char config_text_path[PATH_MAX];
    lm_params *p;
    lm_trainer *tr;
    lm_pool *pool;
    lm_data *data;
    char tok_json[PATH_MAX], tok_config[PATH_MAX]; /* "" when none */
    int64_t tokens_seen;
    int64_t last_ckpt;           /* step of the newest checkpoint on disk; -1: none */
    int live;                    /* a progress bar without its newline is on stderr */
    lm_dir_lock lock;
    /* data parallel (world > 1): this rank's micro-batches of each step and
     * what folding them in global order needs (see dp_step) */
    int rank, world;
    int64_t first_micro, n_micro;
    float *stash;                /* [n_micro - 1][n_floats] pass gradients (ranks > 0) */
    float *chunk;                /* [DP_CHUNK] the running sum passing through */
    double *pass_loss, *pass_bal;/* [n_micro] */
    int64_t *counts;             /* [2][1 + n_loads]: positions with a target and expert
                                    loads, this rank's and the running total */
    int64_t n_loads;
    double comm_s;               /* this step: end of own passes to the summed gradient */
} run_ctx;

/* A permanent line for the user (what is removed): the notice sink, else
 * stderr even when quiet. */
static void say(run_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run_ctx *c, const char *fmt, ...) {
    char msg[PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->o.notice) {
        c->o.notice(c->o.notice_ctx, msg);
        return;
    }
    fprintf(stderr, "%s%s\n", c->live ? "\r\033[K" : "", msg);
    c->live = 0;
}

/* A checkpoint folder name: "ckpt-" and digits only (not ckpt-N.tmp). */
static int ckpt_step(const char *name, int64_t *step) {
    if (strncmp(name, "ckpt-", 5) || !name[5]) return 0;
    int64_t v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10) return 0;
        v = v * 10 + (*p - '0');
    }
    *step = v;
    return 1;
}

/* The newest ckpt-N in dir (-1 when none) and how many there are. */
static int64_t newest_checkpoint(const char *dir, int *count) {
    int64_t best = -1;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (ckpt_step(e->d_name, &s)) {
            (*count)++;
            if (s > best) best = s;
        }
    }
    closedir(d);
    return best;
}

static const char *const ckpt_files[] = {"config.json", "model.safetensors", "optim_m.safetensors",
                                         "optim_v.safetensors", "trainer_state.json", NULL};

/* NULL when the checkpoint folder holds every file a resume reads, else the
 * first one missing. */
static const char *ckpt_missing(const char *ck) {
    struct stat st;
    if (lstat(ck, &st) || !S_ISDIR(st.st_mode)) return "the folder itself";
    for (int i = 0; ckpt_files[i]; i++) {
        char path[PATH_MAX];
        pjoin(path, sizeof path, ck, ckpt_files[i]);
        if (stat(path, &st) || !S_ISREG(st.st_mode)) return ckpt_files[i];
    }
    return NULL;
}

/* Removes a checkpoint folder (files one level deep, as lemma writes them). */
static int remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path);
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    return rmdir(path);
}

/* Writes every file of ckpt-N into tmp; -1 with err on the first failure. */
static int write_checkpoint_files(run_ctx *c, const char *tmp, int64_t step, double loss, lm_error *err) {
    char path[PATH_MAX];
    pjoin(path, sizeof path, tmp, "config.json");
    if (copy_file(c->config_text_path, path, err)) return -1;
    char meta[256];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"lemma_step\":\"%lld\"}", (long long)step);
    pjoin(path, sizeof path, tmp, "model.safetensors");
    if (lm_params_save(c->p, c->p->w, path, meta, err)) return -1;
    pjoin(path, sizeof path, tmp, "optim_m.safetensors");
    if (lm_params_save(c->p, c->p->m, path, meta, err)) return -1;
    pjoin(path, sizeof path, tmp, "optim_v.safetensors");
    if (lm_params_save(c->p, c->p->v, path, meta, err)) return -1;
    if (c->tok_json[0]) {
        pjoin(path, sizeof path, tmp, "tokenizer.json");
        if (copy_file(c->tok_json, path, err)) return -1;
    }
    if (c->tok_config[0]) {
        pjoin(path, sizeof path, tmp, "tokenizer_config.json");
        if (copy_file(c->tok_config, path, err)) return -1;
    }
    /* No times or machine facts here: the file is part of the build's hashes. */
    char state[512];
    int n = snprintf(state, sizeof state,
                     "{\"step\": %lld, \"adamw_step\": %lld, \"planned_steps\": %lld, \"seed\": %llu, "
                     "\"tokens_seen\": %lld, \"loss\": %.9g, \"data\": \"windows are a function of (seed, step)\"}\n",
                     (long long)step, (long long)lm_trainer_adamw(c->tr)->step, (long long)c->o.steps,
                     (unsigned long long)c->o.seed, (long long)c->tokens_seen, loss);
    pjoin(path, sizeof path, tmp, "trainer_state.json");
    if (lm_write_file_atomic(path, state, (size_t)n, err)) return -1;
    if (fsync_path(tmp)) return lm_fail(err, "%s: fsync failed: %s", tmp, strerror(errno));
    return 0;
}

static int save_checkpoint(run_ctx *c, int64_t step, double loss, lm_error *err) {
    const char *dir = c->o.out_dir;
    char tmp[PATH_MAX], fin[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/ckpt-%08lld.tmp", dir, (long long)step);
    snprintf(fin, sizeof fin, "%s/ckpt-%08lld", dir, (long long)step);
    struct stat st;
    if (!lstat(tmp, &st)) {
        say(c, "removing %s (an unfinished checkpoint of an earlier process)", tmp);
        remove_tree(tmp);
    }
    if (mkdir(tmp, 0755)) return lm_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    if (write_checkpoint_files(c, tmp, step, loss, err)) {
        remove_tree(tmp); /* nothing half-written stays behind */
        return lm_fail_prefix(err, "checkpoint at step %lld not saved", (long long)step);
    }
    if (!lstat(fin, &st)) {
        say(c, "replacing %s", fin);
        remove_tree(fin);
    }
    if (rename(tmp, fin)) {
        int e = errno;
        remove_tree(tmp);
        return lm_fail(err, "%s: rename failed: %s", fin, strerror(e));
    }
    c->last_ckpt = step;
    /* latest -> ckpt-N, replaced atomically */
    char link_tmp[PATH_MAX], link[PATH_MAX], target[64];
    snprintf(target, sizeof target, "ckpt-%08lld", (long long)step);
    pjoin(link_tmp, sizeof link_tmp, dir, "latest.tmp");
    pjoin(link, sizeof link, dir, "latest");
    unlink(link_tmp);
    if (symlink(target, link_tmp) || rename(link_tmp, link)) {
        int e = errno;
        unlink(link_tmp);
        return lm_fail(err, "%s: cannot point at %s: %s", link, target, strerror(e));
    }
    fsync_path(dir);
    /* Keep the newest `keep` checkpoints. */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        int64_t steps[4096];
        int ns = 0;
        while ((e = readdir(d)) && ns < 4096) {
            int64_t s;
            if (ckpt_step(e->d_name, &s)) steps[ns++] = s;
        }
        closedir(d);
        for (int i = 0; i < ns; i++) {
            int newer = 0;
            for (int j = 0; j < ns; j++) newer += steps[j] > steps[i];
            if (newer >= c->o.keep && steps[i] != step) {
                snprintf(path, sizeof path, "%s/ckpt-%08lld", dir, (long long)steps[i]);
                /* routine rotation: announced unless quiet (other removals always are) */
                if (c->o.notice || !c->o.quiet) say(c, "removing %s (keep %lld)", path, (long long)c->o.keep);
                remove_tree(path);
            }
        }
    }
    return 0;
}

/* Keeps metrics lines with step <= last (a resumed run rewrites the rest);
 * says how many lines it drops. */
static int truncate_metrics(run_ctx *c, const char *dir, int64_t last, lm_error *err) {
    char path[PATH_MAX];
    pjoin(path, sizeof path, dir, "metrics.jsonl");
    struct stat st;
    if (lstat(path, &st) && errno == ENOENT) return 0;
    char *text;
    size_t len;
    if (lm_read_file(path, (size_t)1 << 30, &text, &len, err)) return -1;
    size_t keep = 0, at = 0;
    int64_t dropped = 0;
    while (at < len) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break; /* a torn last line is dropped */
        long long step;
        if (sscanf(text + at, "{\"step\": %lld", &step) == 1 && step > last) break;
        at = (size_t)(nl - text) + 1;
        keep = at;
    }
    for (size_t i = keep; i < len; i++) dropped += text[i] == '\n' || i + 1 == len;
    int rc = 0;
    if (keep < len) {
        say(c, "dropping %lld line%s of %s past step %lld", (long long)dropped, dropped == 1 ? "" : "s", path,
            (long long)last);
        rc = lm_write_file_atomic(path, text, keep, err);
    }
    free(text);
    return rc;
}

/* The end of a message about a run that stops on an error. */
static const char *ckpt_state(const run_ctx *c, char *buf, size_t cap) {
    if (c->last_ckpt < 0) snprintf(buf, cap, "no checkpoint has been written yet");
    else snprintf(buf, cap, "the last checkpoint, step %lld, is intact", (long long)c->last_ckpt);
    return buf;
}

/* ---- the loop ---- */

static void fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%.0fs", s);
}

static int evaluate(run_ctx *c, int32_t *ids, int32_t *targets, double *val, lm_error *err) {
    int64_t B = c->o.micro_batch, T = c->o.seq;
    int64_t count = lm_data_eval_count(c->data, LM_SPLIT_VAL, T);
    if (count < B) return 1; /* not enough validation data */
    int64_t nb = count / B < c->o.eval_batches ? count / B : c->o.eval_batches;
    double sum = 0;
    int64_t n = 0;
    for (int64_t b = 0; b < nb; b++) {
        double s = 0; /* lm_train_eval adds to these */
        int64_t k = 0;
        if (lm_data_eval_window(c->data, LM_SPLIT_VAL, b * B, B, T, ids, targets, err) ||
            lm_train_eval(c->tr, c->pool, ids, targets, B, &s, &k, err))
            return -1;
        sum += s;
        n += k;
    }
    *val = n ? sum / (double)n : NAN;
    return 0;
}

/* Appends `, "key": value` with value in fmt, or null when not finite (JSON
 * has no inf or nan). */
static int put_num(lm_text *t, const char *key, const char *fmt, double v) {
    char buf[96];
    int n = snprintf(buf, sizeof buf, ", \"%s\": ", key);
    if (isfinite(v)) n += snprintf(buf + n, sizeof buf - (size_t)n, fmt, v);
    else n += snprintf(buf + n, sizeof buf - (size_t)n, "null");
    return lm_text_append(t, buf, (size_t)n);
}

/* One metrics.jsonl line: every number finite or null. */
static int metrics_line(lm_text *t, int64_t step, double loss, double lr, const lm_train_stats *st, double tok_s,
                        int has_val, double val, double comm_s) {
    char buf[64];
    t->len = 0;
    int n = snprintf(buf, sizeof buf, "{\"step\": %lld", (long long)step);
    int bad = lm_text_append(t, buf, (size_t)n) || put_num(t, "loss", "%.6f", loss) || put_num(t, "lr", "%.6g", lr) ||
              put_num(t, "grad_norm", "%.6g", st->grad_norm) || put_num(t, "tokens_per_s", "%.1f", tok_s);
    if (has_val) bad = bad || put_num(t, "val_loss", "%.6f", val);
    if (comm_s >= 0) bad = bad || put_num(t, "allreduce_s", "%.6f", comm_s);
    if (st->balance_loss != 0) bad = bad || put_num(t, "balance_loss", "%.6g", st->balance_loss);
    if (st->mtp_loss != 0) bad = bad || put_num(t, "mtp_loss", "%.6f", st->mtp_loss);
    if (st->n_moe_layers) {
        bad = bad || lm_text_append(t, ", \"expert_load\": [", strlen(", \"expert_load\": ["));
        for (int64_t l = 0; l < st->n_moe_layers && !bad; l++) {
            bad = lm_text_append(t, l ? ", [" : "[", l ? 3 : 1);
            for (int64_t e = 0; e < st->n_experts && !bad; e++) {
                n = snprintf(buf, sizeof buf, e ? ", %lld" : "%lld", (long long)st->expert_load[l * st->n_experts + e]);
                bad = lm_text_append(t, buf, (size_t)n);
            }
            bad = bad || lm_text_append(t, "]", 1);
        }
        bad = bad || lm_text_append(t, "]", 1);
    }
    return bad || lm_text_append(t, "}\n", 2);
}

/* Appends a line and flushes; on failure cuts the file back to where it was
 * (no torn line) and fails naming it. */
static int metrics_append(FILE *f, const char *path, const lm_text *line, lm_error *err) {
    struct stat st;
    off_t before = fstat(fileno(f), &st) ? -1 : st.st_size;
    if (fwrite(line->data, 1, line->len, f) == line->len && fflush(f) == 0) return 0;
    int e = errno;
    clearerr(f);
    if (before >= 0 && ftruncate(fileno(f), before)) {} /* best effort */
    return lm_fail(err, "%s: cannot append: %s", path, strerror(e ? e : EIO));
}

/* ---- data parallel ----
 *
 * One process runs the micro-batches of a step in order and folds their
 * gradients left to right: g = ((g_1 + g_2) + ...) + g_M (step.h). Under
 * mpirun, rank r owns a contiguous run of those micro-batches (the first
 * M % K ranks one more), and the fold keeps the global order: rank 0 sums
 * its own passes as one process would, then the running sum travels down a
 * chain, rank r adding its passes to it in order, in chunks so that the
 * ranks work on different chunks at once; the last rank broadcasts the
 * total. Loss and balance sums fold the same way, integer counts exactly.
 * The weights after every step are therefore the same bits for any number
 * of ranks, one included. A rank other than 0 keeps each of its passes but
 * the last (lm_train_begin zeroes g between them): n_micro - 1 copies of
 * the gradient. */

#define DP_CHUNK ((int64_t)1 << 20)

static int dp_alloc(run_ctx *c, lm_error *err) {
    int64_t nm = c->o.batch / c->o.micro_batch, K = c->world;
    if (nm < K)
        return lm_fail(err, "batch %lld with micro-batch %lld is %lld micro-batch%s, fewer than the %lld ranks: each "
                            "rank runs whole micro-batches (the micro-batch fixes the arithmetic), so use a smaller "
                            "--micro-batch or fewer ranks",
                       (long long)c->o.batch, (long long)c->o.micro_batch, (long long)nm, nm == 1 ? "" : "es",
                       (long long)K);
    c->n_micro = nm / K + (c->rank < nm % K);
    c->first_micro = c->rank * (nm / K) + (c->rank < nm % K ? c->rank : nm % K);
    int64_t nf = c->p->n_floats;
    lm_train_expert_loads(c->tr, &c->n_loads);
    c->chunk = malloc((size_t)DP_CHUNK * sizeof *c->chunk);
    c->pass_loss = calloc((size_t)c->n_micro, sizeof *c->pass_loss);
    c->pass_bal = calloc((size_t)c->n_micro, sizeof *c->pass_bal);
    c->counts = calloc((size_t)(2 + 2 * c->n_loads), sizeof *c->counts);
    if (c->rank > 0 && c->n_micro > 1) c->stash = malloc((size_t)((c->n_micro - 1) * nf) * sizeof *c->stash);
    if (!c->chunk || !c->pass_loss || !c->pass_bal || !c->counts || (c->rank > 0 && c->n_micro > 1 && !c->stash))
        return lm_fail(err, "out of memory for data-parallel buffers (%lld gradient copies of %lld floats)",
                       (long long)(c->n_micro - 1), (long long)nf);
    return 0;
}

static void dp_free(run_ctx *c) {
    free(c->stash);
    free(c->chunk);
    free(c->pass_loss);
    free(c->pass_bal);
    free(c->counts);
}

/* One optimiser step over the whole batch (ids, targets: [batch, seq], the
 * same on every rank), this rank running its micro-batches. */
static int dp_step(run_ctx *c, const int32_t *ids, const int32_t *targets, double lr, lm_train_stats *st,
                   lm_error *err) {
    int64_t B = c->o.batch, T = c->o.seq, M = c->o.micro_batch, nf = c->p->n_floats;
    int r = c->rank, K = c->world;
    int64_t denom = 0;
    for (int64_t i = 0; i < B * T; i++) denom += targets[i] >= 0;
    int64_t nl;
    int64_t *loads = lm_train_expert_loads(c->tr, &nl);
    memset(c->counts, 0, (size_t)(1 + nl) * sizeof *c->counts);
    double loss = 0, bal = 0;
    int64_t tok = 0;
    lm_train_begin(c->tr);
    for (int64_t j = 0; j < c->n_micro; j++) {
        int64_t off = (c->first_micro + j) * M * T;
        if (r > 0 && j > 0) lm_train_begin(c->tr);
        if (lm_train_accumulate(c->tr, c->pool, ids + off, targets + off, M, denom, B, err)) return -1;
        if (r == 0) continue; /* rank 0 folds its own passes in place, as one process does */
        lm_train_get_sums(c->tr, &c->pass_loss[j], &c->pass_bal[j], &tok);
        c->counts[0] += tok;
        for (int64_t e = 0; e < nl; e++) c->counts[1 + e] += loads[e];
        if (j + 1 < c->n_micro) memcpy(c->stash + j * nf, c->p->g, (size_t)nf * sizeof(float));
    }
    double t0 = lm_now_s();
    float *g = c->p->g;
    if (r == 0) {
        lm_train_get_sums(c->tr, &loss, &bal, &tok);
        c->counts[0] = tok;
        for (int64_t e = 0; e < nl; e++) c->counts[1 + e] = loads[e];
        for (int64_t a = 0; a < nf; a += DP_CHUNK) {
            int64_t n = nf - a < DP_CHUNK ? nf - a : DP_CHUNK;
            if (lm_dp_send(g + a, (size_t)n * sizeof(float), 1, err)) return -1;
        }
    } else {
        for (int64_t a = 0; a < nf; a += DP_CHUNK) {
            int64_t n = nf - a < DP_CHUNK ? nf - a : DP_CHUNK;
            float *s = c->chunk;
            if (lm_dp_recv(s, (size_t)n * sizeof(float), r - 1, err)) return -1;
            for (int64_t j = 0; j + 1 < c->n_micro; j++) {
                const float *pj = c->stash + j * nf + a;
                for (int64_t i = 0; i < n; i++) s[i] += pj[i];
            }
            for (int64_t i = 0; i < n; i++) g[a + i] = s[i] + g[a + i];
            if (r + 1 < K && lm_dp_send(g + a, (size_t)n * sizeof(float), r + 1, err)) return -1;
        }
    }
    /* the scalars and counts after the gradient, down the same chain */
    double sums[2] = {loss, bal};
    int64_t *total = c->counts + 1 + nl; /* counts: this rank's, then the running total */
    if (r > 0) {
        if (lm_dp_recv(sums, sizeof sums, r - 1, err) || lm_dp_recv(total, (size_t)(1 + nl) * sizeof *total, r - 1, err))
            return -1;
        for (int64_t j = 0; j < c->n_micro; j++) {
            sums[0] += c->pass_loss[j];
            sums[1] += c->pass_bal[j];
        }
        for (int64_t e = 0; e < 1 + nl; e++) total[e] += c->counts[e];
    } else {
        memcpy(total, c->counts, (size_t)(1 + nl) * sizeof *total);
    }
    if (r + 1 < K && (lm_dp_send(sums, sizeof sums, r + 1, err) ||
                      lm_dp_send(total, (size_t)(1 + nl) * sizeof *total, r + 1, err)))
        return -1;
    if (lm_dp_bcast(g, (size_t)nf * sizeof(float), K - 1, err) || lm_dp_bcast(sums, sizeof sums, K - 1, err) ||
        lm_dp_bcast(total, (size_t)(1 + nl) * sizeof *total, K - 1, err))
        return -1;
    c->comm_s = lm_now_s() - t0;
    memcpy(loads, total + 1, (size_t)nl * sizeof *loads);
    lm_train_set_sums(c->tr, sums[0], sums[1], total[0]);
    lm_train_apply(c->tr, c->pool, lr, st);
    return 0;
}

static int loop(run_ctx *c, int64_t start, lm_error *err) {
    const lm_run_opts *o = &c->o;
    int64_t B = o->batch, T = o->seq, micro = o->micro_batch;
    int rc = -1, tty = !o->quiet && isatty(2) && c->rank == 0;
    int ctl_owed = 0; /* rank 0 has stepped and the other ranks wait for its word */
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids), *targets = malloc((size_t)(B * T) * sizeof *targets);
    int32_t *mids = malloc((size_t)(micro * T) * sizeof *ids), *mtg = malloc((size_t)(micro * T) * sizeof *ids);
    char mpath[PATH_MAX];
    pjoin(mpath, sizeof mpath, o->out_dir, "metrics.jsonl");
    FILE *metrics = c->rank == 0 ? fopen(mpath, "a") : NULL;
    lm_text line_buf = {0};
    char why[128];
    if (!ids || !targets || !mids || !mtg) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (!metrics && c->rank == 0) {
        lm_fail(err, "%s: cannot append: %s", mpath, strerror(errno));
        goto done;
    }
    double t_start = lm_now_s(), loss = NAN;
    int64_t step = start;
    for (; step < o->steps; step++) {
        double t0 = lm_now_s();
        for (int64_t m = 0; m < B / micro; m++)
            if (lm_data_window(c->data, LM_SPLIT_TRAIN, o->seed, step, m, micro, T, ids + m * micro * T,
                               targets + m * micro * T, err))
                goto done;
        double lr = lm_schedule_lr(&o->sched, step);
        lm_train_stats st;
        if (c->world > 1 ? dp_step(c, ids, targets, lr, &st, err) : lm_train_step(c->tr, c->pool, ids, targets, lr, &st, err))
            goto done;
        loss = st.loss;
        c->tokens_seen += st.tokens;
        if (c->rank > 0) {
            /* rank 0 logs, evaluates and saves; its word says whether to go on */
            int32_t go = 0;
            if (lm_dp_bcast(&go, sizeof go, 0, err)) goto done;
            if (!go) {
                rc = 1;
                goto done;
            }
            continue;
        }
        ctl_owed = c->world > 1;
        double dt = lm_now_s() - t0, tok_s = (double)(B * T) / dt;
        int64_t done_steps = step + 1;
        int last = done_steps == o->steps;
        int do_eval = (o->eval_every > 0 && done_steps % o->eval_every == 0) || last;
        double val = NAN;
        int has_val = 0;
        if (do_eval) {
            int e = evaluate(c, mids, mtg, &val, err);
            if (e < 0) goto done;
            has_val = e == 0;
        }
        if (done_steps % o->log_every == 0 || last || do_eval || done_steps == 1 || !isfinite(loss)) {
            if (metrics_line(&line_buf, done_steps, loss, lr, &st, tok_s, has_val, val, c->world > 1 ? c->comm_s : -1)) {
                lm_fail(err, "out of memory");
                goto done;
            }
            if (metrics_append(metrics, mpath, &line_buf, err)) {
                if (c->live) fputc('\n', stderr);
                lm_fail_prefix(err, "stopping at step %lld (%s)", (long long)done_steps,
                               ckpt_state(c, why, sizeof why));
                goto done;
            }
        }
        if (!isfinite(loss)) {
            if (c->live) fputc('\n', stderr);
            lm_fail(err, "loss became %s at step %lld (lr %.3g): stopping; %s",
                    isnan(loss) ? "NaN" : loss > 0 ? "inf" : "-inf", (long long)done_steps, lr,
                    ckpt_state(c, why, sizeof why));
            goto done;
        }
        /* what the user sees */
        double elapsed = lm_now_s() - t_start, rate = (double)(done_steps - start) / elapsed;
        char eta[32], line[256];
        fmt_eta((double)(o->steps - done_steps) / rate, eta, sizeof eta);
        int w = snprintf(line, sizeof line, "step %lld/%lld  loss %.4f%s", (long long)done_steps, (long long)o->steps,
                         loss, "");
        if (isfinite(val)) w += snprintf(line + w, sizeof line - (size_t)w, "  val %.4f", val);
        snprintf(line + w, sizeof line - (size_t)w, "  lr %.2e  %.0f tok/s  ETA %s", lr, tok_s, eta);
        int stop = lm_stop_requested();
        if (o->progress && o->progress(o->progress_ctx, line)) stop = 1;
        if (!o->progress && !o->quiet) {
            if (tty) {
                int bar = 24, fill = (int)(bar * done_steps / o->steps);
                fprintf(stderr, "\r[%.*s%*s] %s\033[K", fill, "########################", bar - fill, "", line);
                c->live = !last;
                if (last) fputc('\n', stderr);
            } else if (done_steps % o->log_every == 0 || last || done_steps == 1) {
                fprintf(stderr, "%s\n", line);
            }
        }
        int save = (o->save_every > 0 && done_steps % o->save_every == 0) || last || stop;
        if (save && save_checkpoint(c, done_steps, loss, err)) {
            if (c->live) fputc('\n', stderr);
            lm_fail_prefix(err, "stopping (%s)", ckpt_state(c, why, sizeof why));
            goto done;
        }
        if (stop && !last) {
            if (c->live) fputc('\n', stderr);
            lm_fail(err, "interrupted at step %lld; checkpoint saved (lemma train --resume %s continues)",
                    (long long)done_steps, o->out_dir);
            goto done;
        }
        if (ctl_owed) {
            int32_t go = 1;
            if (lm_dp_bcast(&go, sizeof go, 0, err)) goto done;
            ctl_owed = 0;
        }
    }
    if (start >= o->steps && !o->quiet) fprintf(stderr, "run already complete at step %lld\n", (long long)start);
    rc = 0;
done:
    if (ctl_owed) {
        /* rank 0 stops after a step: the others stop too, without a word */
        int32_t go = 0;
        lm_error e2;
        if (!lm_dp_bcast(&go, sizeof go, 0, &e2)) lm_dp_mark_stop_told();
    }
    c->live = 0;
    lm_text_free(&line_buf);
    if (metrics) fclose(metrics);
    free(ids);
    free(targets);
    free(mids);
    free(mtg);
    return rc;
}

static int setup(run_ctx *c, const lm_config *cfg, lm_error *err) {
    lm_run_opts *o = &c->o;
    c->rank = lm_dp_rank();
    c->world = lm_dp_size();
    if (o->micro_batch <= 0) o->micro_batch = o->batch;
    if (o->batch < 1 || o->seq < 2 || o->steps < 1 || o->batch % o->micro_batch)
        return lm_fail(err, "need steps >= 1, seq >= 2, batch >= 1 and micro-batch dividing batch (got %lld, %lld, %lld, %lld)",
                       (long long)o->steps, (long long)o->seq, (long long)o->batch, (long long)o->micro_batch);
    if (o->keep < 1) o->keep = 1;
    if (o->log_every < 1) o->log_every = 1;
    /* the defaults that depend on other settings (run.h) */
    o->sched.total = o->steps;
    if (o->sched.warmup < 0) o->sched.warmup = o->steps / 100;
    if (o->sched.lr_min < 0) o->sched.lr_min = o->sched.lr_max / 10;
    if (o->sched.kind == LM_SCHED_WSD && !o->sched.decay_steps) o->sched.decay_steps = o->steps / 5;
    if (lm_schedule_check(&o->sched, err)) return -1;
    c->data = lm_data_open(o->data_dir, err);
    if (!c->data) return -1;
    if (lm_data_vocab_size(c->data) > cfg->vocab_size)
        return lm_fail(err, "%s: the data's tokenizer has %d ids but the model's vocab_size is %lld", o->data_dir,
                       lm_data_vocab_size(c->data), (long long)cfg->vocab_size);
    if (lm_data_starts(c->data, LM_SPLIT_TRAIN, o->seq) < 1)
        return lm_fail(err, "%s: no training shard is longer than seq = %lld tokens", o->data_dir, (long long)o->seq);
    /* tokenizer files to ship with each checkpoint */
    const char *td = o->tokenizer_dir;
    c->tok_json[0] = c->tok_config[0] = 0;
    if (td) {
        snprintf(c->tok_json, sizeof c->tok_json, "%s/tokenizer.json", td);
        if (!file_exists(c->tok_json)) return lm_fail(err, "%s: no tokenizer.json", td);
        snprintf(c->tok_config, sizeof c->tok_config, "%s/tokenizer_config.json", td);
        if (!file_exists(c->tok_config)) c->tok_config[0] = 0;
    }
    lm_train_opts to = lm_train_opts_default();
    to.batch = o->batch;
    to.seq = o->seq;
    to.micro_batch = o->micro_batch;
    to.adamw = o->adamw;
    to.clip = o->clip;
    to.bias_gamma = o->bias_gamma;
    to.balance_alpha = o->balance_alpha;
    to.mtp_weight = o->mtp_weight;
    to.precision = o->precision;
    c->pool = lm_pool_create(o->threads);
    if (!c->pool) return lm_fail(err, "cannot start %d threads", o->threads);
    c->tr = lm_trainer_create(c->p, &to, o->threads, err);
    if (!c->tr) return -1;
    return c->world > 1 ? dp_alloc(c, err) : 0;
}

static void teardown(run_ctx *c) {
    dp_free(c);
    lm_trainer_free(c->tr);
    lm_params_free(c->p);
    lm_pool_free(c->pool);
    lm_data_close(c->data);
    lm_dir_lock_release(&c->lock);
}

/* Everything in dir but lemma's lock and marker; "" when none. */
static void first_entry(const char *dir, char *name, size_t cap) {
    name[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, LM_DIR_LOCK_NAME) ||
            !strcmp(e->d_name, LM_DIR_MARKER_NAME))
            continue;
        snprintf(name, cap, "%s", e->d_name);
        break;
    }
    closedir(d);
}

/* ---- the start of a data-parallel run ----
 *
 * Rank 0 does everything a single process does with the folder (lock,
 * run.json, checkpoints, metrics); the other ranks read run.json and
 * config.json once rank 0 says the run is ready, and take the weights and
 * optimiser state from rank 0 (which read them from its newest checkpoint,
 * or made them), so every rank starts from the same bits. */

enum { HS_OK, HS_STEP, HS_ADAMW_STEP, HS_TOKENS, HS_N };

/* Rank 0: the run is ready; the state follows. */
static int announce_start(run_ctx *c, int64_t step, int *announced, lm_error *err) {
    if (c->world <= 1) return 0;
    int64_t hs[HS_N] = {[HS_OK] = 1, [HS_STEP] = step, [HS_ADAMW_STEP] = lm_trainer_adamw(c->tr)->step,
                        [HS_TOKENS] = c->tokens_seen};
    *announced = 1;
    size_t bytes = (size_t)c->p->n_floats * sizeof(float);
    return lm_dp_bcast(hs, sizeof hs, 0, err) || lm_dp_bcast(c->p->w, bytes, 0, err) ||
                   lm_dp_bcast(c->p->m, bytes, 0, err) || lm_dp_bcast(c->p->v, bytes, 0, err)
               ? -1
               : 0;
}

/* Rank 0 failed before the start: the others stop without a word. */
static void announce_failure(void) {
    if (lm_dp_size() <= 1) return;
    int64_t hs[HS_N] = {0};
    lm_error e;
    if (!lm_dp_bcast(hs, sizeof hs, 0, &e)) lm_dp_mark_stop_told();
}

/* Ranks > 0: wait for rank 0, then train alongside it. */
static int follow(const char *run_dir, int threads, lm_error *err) {
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.last_ckpt = -1;
    c.lock.fd = -1;
    int64_t hs[HS_N];
    if (lm_dp_bcast(hs, sizeof hs, 0, err)) return -1;
    if (!hs[HS_OK]) {
        lm_dp_mark_stop_told();
        return 1;
    }
    run_strings rs;
    lm_config cfg;
    int rc = -1;
    if (read_run_json(run_dir, &c.o, &rs, err)) goto done;
    if (threads > 0) c.o.threads = threads;
    c.o.quiet = 1;
    snprintf(c.config_text_path, sizeof c.config_text_path, "%s/config.json", run_dir);
    if (lm_config_load(run_dir, &cfg, err) || lm_params_create(&cfg, &c.p, err) || setup(&c, &cfg, err)) goto done;
    size_t bytes = (size_t)c.p->n_floats * sizeof(float);
    if (lm_dp_bcast(c.p->w, bytes, 0, err) || lm_dp_bcast(c.p->m, bytes, 0, err) || lm_dp_bcast(c.p->v, bytes, 0, err))
        goto done;
    lm_trainer_adamw(c.tr)->step = hs[HS_ADAMW_STEP];
    c.tokens_seen = hs[HS_TOKENS];
    rc = loop(&c, hs[HS_STEP], err);
done:
    teardown(&c);
    return rc;
}

/* Refused before the folder is touched: a rank without a micro-batch. */
static int check_world(const lm_run_opts *o, lm_error *err) {
    int64_t K = lm_dp_size(), micro = o->micro_batch > 0 ? o->micro_batch : o->batch;
    if (K > 1 && micro > 0 && o->batch % micro == 0 && o->batch / micro < K)
        return lm_fail(err, "batch %lld with micro-batch %lld is %lld micro-batch%s, fewer than the %lld ranks: each "
                            "rank runs whole micro-batches (the micro-batch fixes the arithmetic), so use a smaller "
                            "--micro-batch or fewer ranks",
                       (long long)o->batch, (long long)micro, (long long)(o->batch / micro),
                       o->batch / micro == 1 ? "" : "es", (long long)K);
    return 0;
}

static int lead_run(const lm_run_opts *opts, int *announced, lm_error *err);
static int lead_resume(const char *run_dir, const lm_resume_opts *ro, int *announced, lm_error *err);

int lm_train_run(const lm_run_opts *opts, lm_error *err) {
    if (lm_dp_size() > 1 && lm_dp_rank() > 0) return follow(opts->out_dir, opts->threads, err);
    int announced = 0, rc = lead_run(opts, &announced, err);
    if (rc && !announced) announce_failure();
    return rc;
}

int lm_train_resume(const char *run_dir, const lm_resume_opts *ro, lm_error *err) {
    if (lm_dp_size() > 1 && lm_dp_rank() > 0) return follow(run_dir, ro ? ro->threads : 0, err);
    int announced = 0, rc = lead_resume(run_dir, ro, &announced, err);
    if (rc && !announced) announce_failure();
    return rc;
}

/* Rewrites the run's config.json (text[len], a JSON object) with
 * "num_nextn_predict_layers": 1: the value replaced where the key is,
 * else the key added first. */
static int config_add_mtp(const char *path, const char *text, size_t len, lm_error *err) {
    static const char key[] = "\"num_nextn_predict_layers\"";
    lm_text out = {0};
    const char *k = memmem(text, len, key, sizeof key - 1);
    int bad;
    if (k) {
        const char *v = k + sizeof key - 1, *end = text + len;
        while (v < end && (*v == ' ' || *v == ':' || *v == '\t' || *v == '\n' || *v == '\r')) v++;
        const char *e = v;
        while (e < end && ((*e >= '0' && *e <= '9') || *e == '-' || *e == '+' || *e == '.' || *e == 'e' || *e == 'E' ||
                           *e == 'n' || *e == 'u' || *e == 'l'))
            e++;
        bad = lm_text_append(&out, text, (size_t)(v - text)) || lm_text_append(&out, "1", 1) ||
              lm_text_append(&out, e, (size_t)(end - e));
    } else {
        const char *brace = memchr(text, '{', len);
        if (!brace) return lm_fail(err, "%s: not a JSON object", path);
        static const char add[] = "\"num_nextn_predict_layers\": 1,";
        bad = lm_text_append(&out, text, (size_t)(brace + 1 - text)) || lm_text_append(&out, add, sizeof add - 1) ||
              lm_text_append(&out, brace + 1, len - (size_t)(brace + 1 - text));
    }
    int rc = bad ? lm_fail(err, "out of memory") : lm_write_file_atomic(path, out.data, out.len, err);
    lm_text_free(&out);
    return rc;
}

static int lead_run(const lm_run_opts *opts, int *announced, lm_error *err) {
    if (check_world(opts, err)) return -1;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.o = *opts;
    c.last_ckpt = -1;
    c.lock.fd = -1;
    lm_run_opts *o = &c.o;
    if (!o->out_dir || !o->data_dir) return lm_fail(err, "a run needs --out and --data");
    if (!!o->config_path + !!o->config_json + !!o->init_dir != 1)
        return lm_fail(err, "a run needs exactly one of --config (fresh weights) or --init MODEL_DIR");
    char path[PATH_MAX];
    struct stat st;
    if (lstat(o->out_dir, &st)) {
        if (mkdir(o->out_dir, 0755)) return lm_fail(err, "%s: cannot create: %s", o->out_dir, strerror(errno));
        if (lm_dir_mark_made(o->out_dir, err)) return -1;
    } else if (!S_ISDIR(st.st_mode)) {
        return lm_fail(err, "%s: exists and is not a directory", o->out_dir);
    }
    if (lm_dir_lock_acquire(o->out_dir, &c.lock, err)) return -1;
    pjoin(path, sizeof path, o->out_dir, "run.json");
    char entry[256];
    first_entry(o->out_dir, entry, sizeof entry);
    if (file_exists(path)) {
        lm_fail(err, "%s already holds a run (lemma train --resume %s continues it)", o->out_dir, o->out_dir);
        goto fail;
    }
    if (entry[0]) {
        /* a new run writes ckpt-*, latest, metrics.jsonl...: never over what is there */
        lm_fail(err, "%s is not empty (it holds %s): a new run needs a new or empty folder", o->out_dir, entry);
        goto fail;
    }
    /* the model config, copied into the run */
    snprintf(c.config_text_path, sizeof c.config_text_path, "%s/config.json", o->out_dir);
    if (o->config_json) {
        if (lm_write_file_atomic(c.config_text_path, o->config_json, strlen(o->config_json), err)) goto fail;
    } else {
        char src[PATH_MAX];
        if (o->init_dir) pjoin(src, sizeof src, o->init_dir, "config.json");
        else snprintf(src, sizeof src, "%s", o->config_path);
        if (copy_file(src, c.config_text_path, err)) goto fail;
    }
    lm_config cfg;
    char *text;
    size_t len;
    if (lm_read_file(c.config_text_path, 16u << 20, &text, &len, err)) goto fail;
    int prc = lm_config_parse(text, len, o->config_path ? o->config_path : c.config_text_path, &cfg, err);
    if (!prc && o->mtp_weight > 0 && cfg.num_nextn_predict_layers == 0) {
        prc = config_add_mtp(c.config_text_path, text, len, err);
        cfg.num_nextn_predict_layers = 1;
    }
    free(text);
    if (prc || lm_params_create(&cfg, &c.p, err)) goto fail;
    if (o->init_dir) {
        lm_model *m;
        if (lm_model_load_flags(o->init_dir, LM_LOAD_ROWS, &m, err)) goto fail; /* only its tensors are read */
        /* a checkpoint without the MTP layer: the layer starts from random weights */
        if (c.p->mtp_layers && !m->cfg.num_nextn_predict_layers)
            lm_params_init_random(c.p, o->seed, o->init_std > 0 ? o->init_std : 0.02);
        int lrc = lm_params_load_model(c.p, m, err);
        lm_model_free(m);
        if (lrc) goto fail;
    } else {
        double std = o->init_std;
        if (std <= 0) std = 0.02;
        lm_params_init_random(c.p, o->seed, std);
    }
    /* the data's tokenizer, when the run was not given one */
    char tokdir[PATH_MAX];
    if (!o->tokenizer_dir) {
        pjoin(path, sizeof path, o->data_dir, "tokenizer.json");
        if (file_exists(path)) {
            snprintf(tokdir, sizeof tokdir, "%s", o->data_dir);
            o->tokenizer_dir = tokdir;
        }
    }
    if (setup(&c, &cfg, err) || write_run_json(o->out_dir, o, o->data_dir, o->tokenizer_dir, err) ||
        announce_start(&c, 0, announced, err))
        goto fail;
    int rc = loop(&c, 0, err);
    teardown(&c);
    return rc;
fail:
    teardown(&c);
    return -1;
}

/* Removes what a restart replaces: checkpoints (finished or not), latest. */
static int clear_for_restart(run_ctx *c, const char *dir, lm_error *err) {
    DIR *d = opendir(dir);
    if (!d) return lm_fail(err, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        int64_t s;
        size_t n = strlen(e->d_name);
        int tmp = n > 4 && !strcmp(e->d_name + n - 4, ".tmp") && !strncmp(e->d_name, "ckpt-", 5);
        if (!ckpt_step(e->d_name, &s) && !tmp) continue;
        char p[PATH_MAX];
        pjoin(p, sizeof p, dir, e->d_name);
        say(c, "--restart: removing %s", p);
        if (remove_tree(p) && errno != ENOENT) rc = lm_fail(err, "%s: cannot remove: %s", p, strerror(errno));
    }
    closedir(d);
    char link[PATH_MAX];
    struct stat st;
    pjoin(link, sizeof link, dir, "latest");
    if (!rc && !lstat(link, &st) && S_ISLNK(st.st_mode)) unlink(link);
    return rc;
}

static int lead_resume(const char *run_dir, const lm_resume_opts *ro, int *announced, lm_error *err) {
    lm_resume_opts defaults = {0};
    if (!ro) ro = &defaults;
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.last_ckpt = -1;
    c.lock.fd = -1;
    run_strings rs;
    if (read_run_json(run_dir, &c.o, &rs, err) || check_world(&c.o, err)) return -1;
    lm_run_opts *o = &c.o;
    if (ro->threads > 0) o->threads = ro->threads;
    o->quiet = ro->quiet;
    o->progress = ro->progress;
    o->progress_ctx = ro->progress_ctx;
    o->notice = ro->notice;
    o->notice_ctx = ro->notice_ctx;
    if (lm_dir_lock_acquire(run_dir, &c.lock, err)) return -1;
    char ck[PATH_MAX], path[PATH_MAX];
    struct stat st;
    /* `latest` is lemma's link to re-point; anything else there is not lemma's to replace */
    pjoin(path, sizeof path, run_dir, "latest");
    if (!lstat(path, &st) && !S_ISLNK(st.st_mode)) {
        lm_fail(err, "%s is not a symbolic link (lemma points it at the newest checkpoint): move it away to resume",
                path);
        goto fail;
    }
    if (ro->restart && clear_for_restart(&c, run_dir, err)) goto fail;
    int nck = 0;
    int64_t step = newest_checkpoint(run_dir, &nck);
    if (step >= 0) {
        snprintf(ck, sizeof ck, "%s/ckpt-%08lld", run_dir, (long long)step);
        if (!file_exists(ck)) snprintf(ck, sizeof ck, "%s/ckpt-%lld", run_dir, (long long)step);
        const char *missing = ckpt_missing(ck);
        if (missing && !strcmp(missing, "the folder itself")) {
            lm_fail(err, "%s is not a checkpoint folder: move it away to resume, or start over with --restart", ck);
            goto fail;
        }
        if (missing) {
            lm_fail(err, "%s is incomplete (no %s): remove it to resume from the checkpoint before it, or start over "
                         "with --restart",
                    ck, missing);
            goto fail;
        }
    }
    snprintf(c.config_text_path, sizeof c.config_text_path, "%s/config.json", run_dir);
    lm_config cfg;
    if (lm_config_load(run_dir, &cfg, err) || lm_params_create(&cfg, &c.p, err)) goto fail;
    if (step < 0) {
        /* no checkpoint: killed before the first one (or --restart) */
        if (!ro->quiet)
            fprintf(stderr, "%s: starting from step 0\n", ro->restart ? "restarting the run" : "no checkpoint yet");
        if (o->init_dir) {
            lm_model *m;
            if (lm_model_load_flags(o->init_dir, LM_LOAD_ROWS, &m, err)) goto fail; /* only its tensors are read */
            if (c.p->mtp_layers && !m->cfg.num_nextn_predict_layers)
                lm_params_init_random(c.p, o->seed, o->init_std > 0 ? o->init_std : 0.02);
            int lrc = lm_params_load_model(c.p, m, err);
            lm_model_free(m);
            if (lrc) goto fail;
        } else {
            lm_params_init_random(c.p, o->seed, o->init_std > 0 ? o->init_std : 0.02);
        }
        step = 0;
    } else {
        pjoin(path, sizeof path, ck, "model.safetensors");
        if (lm_params_read(c.p, c.p->w, path, err)) goto fail;
        pjoin(path, sizeof path, ck, "optim_m.safetensors");
        if (lm_params_read(c.p, c.p->m, path, err)) goto fail;
        pjoin(path, sizeof path, ck, "optim_v.safetensors");
        if (lm_params_read(c.p, c.p->v, path, err)) goto fail;
        c.last_ckpt = step;
    }
    if (setup(&c, &cfg, err)) goto fail;
    if (c.last_ckpt >= 0) {
        /* the AdamW step and tokens seen from trainer_state.json */
        char *text;
        size_t len;
        pjoin(path, sizeof path, ck, "trainer_state.json");
        if (lm_read_file(path, 1 << 20, &text, &len, err)) goto fail;
        json_doc *doc = json_parse(text, len, err);
        free(text);
        int64_t astep = -1, tokens = 0, saved_step = -1;
        if (!doc || !json_as_int(json_get(json_root(doc), "adamw_step"), &astep) || astep < 0 ||
            !json_as_int(json_get(json_root(doc), "step"), &saved_step) || saved_step != step) {
            json_free(doc);
            lm_fail(err, "%s: expected \"step\": %lld and a non-negative \"adamw_step\"", path, (long long)step);
            goto fail;
        }
        json_as_int(json_get(json_root(doc), "tokens_seen"), &tokens);
        json_free(doc);
        lm_trainer_adamw(c.tr)->step = astep;
        c.tokens_seen = tokens;
    }
    if (truncate_metrics(&c, run_dir, step, err)) goto fail;
    if (!ro->quiet && step < o->steps)
        fprintf(stderr, "resuming %s at step %lld of %lld\n", run_dir, (long long)step, (long long)o->steps);
    if (announce_start(&c, step, announced, err)) goto fail;
    int rc = loop(&c, step, err);
    teardown(&c);
    return rc;
fail:
    teardown(&c);
    return -1;
}
