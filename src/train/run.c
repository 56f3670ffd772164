/* run.c — the training loop around lm_train_step; see run.h. */
#include "train/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/threadpool.h"
#include "data/shards.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/config.h"
#include "model/model.h"
#include "train/params.h"
#include "train/step.h"

static volatile sig_atomic_t stop_requested;
void lm_train_request_stop(void) { stop_requested = 1; }

void lm_run_opts_default(lm_run_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch = 8;
    o->seq = 256;
    o->sched.kind = LM_SCHED_COSINE;
    o->sched.lr_max = 3e-4;
    o->sched.lr_min = 3e-5;
    o->sched.warmup = -1; /* 1% of the steps */
    o->sched.decay = LM_DECAY_LINEAR;
    o->adamw = lm_adamw_opts_default();
    o->clip = 1.0;
    o->bias_gamma = 1e-3;
    o->eval_batches = 8;
    o->log_every = 10;
    o->keep = 2;
    o->threads = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
    pos += (size_t)snprintf(
        buf + pos, sizeof buf - pos,
        ",\n  \"steps\": %lld,\n  \"batch\": %lld,\n  \"micro_batch\": %lld,\n  \"seq\": %lld,\n"
        "  \"schedule\": \"%s\",\n  \"lr\": %.17g,\n  \"min_lr\": %.17g,\n  \"warmup\": %lld,\n"
        "  \"decay_steps\": %lld,\n  \"decay_shape\": \"%s\",\n  \"beta1\": %.17g,\n  \"beta2\": %.17g,\n"
        "  \"eps\": %.17g,\n  \"weight_decay\": %.17g,\n  \"clip\": %.17g,\n  \"bias_gamma\": %.17g,\n"
        "  \"balance_alpha\": %.17g,\n  \"seed\": %llu,\n  \"init_std\": %.17g,\n"
        "  \"save_every\": %lld,\n  \"eval_every\": %lld,\n  \"eval_batches\": %lld,\n  \"log_every\": %lld,\n"
        "  \"keep\": %lld\n}\n",
        (long long)o->steps, (long long)o->batch, (long long)o->micro_batch, (long long)o->seq,
        sched_name(o->sched.kind), o->sched.lr_max, o->sched.lr_min, (long long)o->sched.warmup,
        (long long)o->sched.decay_steps, decay_name(o->sched.decay), o->adamw.beta1, o->adamw.beta2, o->adamw.eps,
        o->adamw.weight_decay, o->clip, o->bias_gamma, o->balance_alpha, (unsigned long long)o->seed, o->init_std,
        (long long)o->save_every, (long long)o->eval_every, (long long)o->eval_batches,
        (long long)o->log_every, (long long)o->keep);
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

static int64_t latest_step(const char *dir) {
    char link[PATH_MAX], target[PATH_MAX];
    pjoin(link, sizeof link, dir, "latest");
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return -1;
    target[n] = 0;
    long long step;
    if (sscanf(target, "ckpt-%lld", &step) != 1) return -1;
    return step;
}

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

typedef struct run_ctx {
    lm_run_opts o;
    char config_text_path[PATH_MAX];
    lm_params *p;
    lm_trainer *tr;
    lm_pool *pool;
    lm_data *data;
    char tok_json[PATH_MAX], tok_config[PATH_MAX]; /* "" when none */
    int64_t tokens_seen;
} run_ctx;

static int save_checkpoint(run_ctx *c, int64_t step, double loss, lm_error *err) {
    const char *dir = c->o.out_dir;
    char tmp[PATH_MAX], fin[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/ckpt-%08lld.tmp", dir, (long long)step);
    snprintf(fin, sizeof fin, "%s/ckpt-%08lld", dir, (long long)step);
    remove_tree(tmp);
    if (mkdir(tmp, 0755) && errno != EEXIST) return lm_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
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
    fsync_path(tmp);
    remove_tree(fin);
    if (rename(tmp, fin)) return lm_fail(err, "%s: rename failed: %s", fin, strerror(errno));
    /* latest -> ckpt-N, replaced atomically */
    char link_tmp[PATH_MAX], link[PATH_MAX], target[64];
    snprintf(target, sizeof target, "ckpt-%08lld", (long long)step);
    pjoin(link_tmp, sizeof link_tmp, dir, "latest.tmp");
    pjoin(link, sizeof link, dir, "latest");
    unlink(link_tmp);
    if (symlink(target, link_tmp) || rename(link_tmp, link))
        return lm_fail(err, "%s: cannot point at %s: %s", link, target, strerror(errno));
    fsync_path(dir);
    /* Keep the newest `keep` checkpoints. */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        long long steps[4096];
        int ns = 0;
        while ((e = readdir(d)) && ns < 4096) {
            long long s;
            char tail[8];
            if (sscanf(e->d_name, "ckpt-%lld%7s", &s, tail) == 1) steps[ns++] = s;
        }
        closedir(d);
        for (int i = 0; i < ns; i++) {
            int newer = 0;
            for (int j = 0; j < ns; j++) newer += steps[j] > steps[i];
            if (newer >= c->o.keep && steps[i] != step) {
                snprintf(path, sizeof path, "%s/ckpt-%08lld", dir, steps[i]);
                remove_tree(path);
            }
        }
    }
    return 0;
}

/* Keeps metrics lines with step <= last (a resumed run rewrites the rest). */
static void truncate_metrics(const char *dir, int64_t last) {
    char path[PATH_MAX];
    pjoin(path, sizeof path, dir, "metrics.jsonl");
    char *text;
    size_t len;
    lm_error err;
    if (lm_read_file(path, (size_t)1 << 30, &text, &len, &err)) return;
    size_t keep = 0, at = 0;
    while (at < len) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break; /* a torn last line is dropped */
        long long step;
        if (sscanf(text + at, "{\"step\": %lld", &step) == 1 && step > last) break;
        at = (size_t)(nl - text) + 1;
        keep = at;
    }
    lm_write_file_atomic(path, text, keep, &err);
    free(text);
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

static int loop(run_ctx *c, int64_t start, lm_error *err) {
    const lm_run_opts *o = &c->o;
    int64_t B = o->batch, T = o->seq, micro = o->micro_batch;
    int32_t *ids = malloc((size_t)(B * T) * sizeof *ids), *targets = malloc((size_t)(B * T) * sizeof *targets);
    int32_t *mids = malloc((size_t)(micro * T) * sizeof *ids), *mtg = malloc((size_t)(micro * T) * sizeof *ids);
    char mpath[PATH_MAX];
    pjoin(mpath, sizeof mpath, o->out_dir, "metrics.jsonl");
    FILE *metrics = fopen(mpath, "a");
    int rc = -1, tty = !o->quiet && isatty(2);
    if (!ids || !targets || !mids || !mtg) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (!metrics) {
        lm_fail(err, "%s: cannot append: %s", mpath, strerror(errno));
        goto done;
    }
    double t_start = now_s(), loss = NAN;
    int64_t step = start;
    for (; step < o->steps; step++) {
        double t0 = now_s();
        for (int64_t m = 0; m < B / micro; m++)
            if (lm_data_window(c->data, LM_SPLIT_TRAIN, o->seed, step, m, micro, T, ids + m * micro * T,
                               targets + m * micro * T, err))
                goto done;
        double lr = lm_schedule_lr(&o->sched, step);
        lm_train_stats st;
        if (lm_train_step(c->tr, c->pool, ids, targets, lr, &st, err)) goto done;
        loss = st.loss;
        c->tokens_seen += st.tokens;
        double dt = now_s() - t0, tok_s = (double)(B * T) / dt;
        int64_t done_steps = step + 1;
        int last = done_steps == o->steps;
        int do_eval = (o->eval_every > 0 && done_steps % o->eval_every == 0) || last;
        double val = NAN;
        if (do_eval) {
            int e = evaluate(c, mids, mtg, &val, err);
            if (e < 0) goto done;
        }
        if (!isfinite(loss)) {
            lm_fail(err, "loss became %g at step %lld (lr %.3g): stopping; the last checkpoint is intact", loss,
                    (long long)done_steps, lr);
            goto done;
        }
        if (done_steps % o->log_every == 0 || last || do_eval || done_steps == 1) {
            fprintf(metrics, "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens_per_s\": %.1f",
                    (long long)done_steps, loss, lr, st.grad_norm, tok_s);
            if (isfinite(val)) fprintf(metrics, ", \"val_loss\": %.6f", val);
            if (st.balance_loss != 0) fprintf(metrics, ", \"balance_loss\": %.6g", st.balance_loss);
            if (st.n_moe_layers) {
                fprintf(metrics, ", \"expert_load\": [");
                for (int64_t l = 0; l < st.n_moe_layers; l++) {
                    fprintf(metrics, l ? ", [" : "[");
                    for (int64_t e = 0; e < st.n_experts; e++)
                        fprintf(metrics, e ? ", %lld" : "%lld", (long long)st.expert_load[l * st.n_experts + e]);
                    fprintf(metrics, "]");
                }
                fprintf(metrics, "]");
            }
            fprintf(metrics, "}\n");
            fflush(metrics);
        }
        /* what the user sees */
        double elapsed = now_s() - t_start, rate = (double)(done_steps - start) / elapsed;
        char eta[32], line[256];
        fmt_eta((double)(o->steps - done_steps) / rate, eta, sizeof eta);
        int w = snprintf(line, sizeof line, "step %lld/%lld  loss %.4f%s", (long long)done_steps, (long long)o->steps,
                         loss, "");
        if (isfinite(val)) w += snprintf(line + w, sizeof line - (size_t)w, "  val %.4f", val);
        snprintf(line + w, sizeof line - (size_t)w, "  lr %.2e  %.0f tok/s  ETA %s", lr, tok_s, eta);
        if (o->progress && o->progress(o->progress_ctx, line)) stop_requested = 1;
        if (!o->progress && !o->quiet) {
            if (tty) {
                int bar = 24, fill = (int)(bar * done_steps / o->steps);
                fprintf(stderr, "\r[%.*s%*s] %s\033[K", fill, "########################", bar - fill, "", line);
                if (last) fputc('\n', stderr);
            } else if (done_steps % o->log_every == 0 || last || done_steps == 1) {
                fprintf(stderr, "%s\n", line);
            }
        }
        int save = (o->save_every > 0 && done_steps % o->save_every == 0) || last || stop_requested;
        if (save && save_checkpoint(c, done_steps, loss, err)) goto done;
        if (stop_requested && !last) {
            if (tty) fputc('\n', stderr);
            lm_fail(err, "interrupted at step %lld; checkpoint saved (lemma train --resume %s continues)",
                    (long long)done_steps, o->out_dir);
            goto done;
        }
    }
    if (start >= o->steps && !o->quiet) fprintf(stderr, "run already complete at step %lld\n", (long long)start);
    rc = 0;
done:
    if (metrics) fclose(metrics);
    free(ids);
    free(targets);
    free(mids);
    free(mtg);
    return rc;
}

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static int setup(run_ctx *c, const lm_config *cfg, lm_error *err) {
    lm_run_opts *o = &c->o;
    if (o->micro_batch <= 0) o->micro_batch = o->batch;
    if (o->batch < 1 || o->seq < 2 || o->steps < 1 || o->batch % o->micro_batch)
        return lm_fail(err, "need steps >= 1, seq >= 2, batch >= 1 and micro-batch dividing batch (got %lld, %lld, %lld, %lld)",
                       (long long)o->steps, (long long)o->seq, (long long)o->batch, (long long)o->micro_batch);
    if (o->keep < 1) o->keep = 1;
    if (o->log_every < 1) o->log_every = 1;
    o->sched.total = o->steps;
    if (o->sched.warmup < 0) o->sched.warmup = o->steps / 100;
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
    c->pool = lm_pool_create(o->threads);
    if (!c->pool) return lm_fail(err, "cannot start %d threads", o->threads);
    c->tr = lm_trainer_create(c->p, &to, o->threads, err);
    return c->tr ? 0 : -1;
}

static void teardown(run_ctx *c) {
    lm_trainer_free(c->tr);
    lm_params_free(c->p);
    lm_pool_free(c->pool);
    lm_data_close(c->data);
}

static void install_signals(struct sigaction *old_int, struct sigaction *old_term) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    stop_requested = 0;
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

int lm_train_run(const lm_run_opts *opts, lm_error *err) {
    run_ctx c;
    memset(&c, 0, sizeof c);
    c.o = *opts;
    lm_run_opts *o = &c.o;
    if (!o->out_dir || !o->data_dir) return lm_fail(err, "a run needs --out and --data");
    if (!!o->config_path + !!o->config_json + !!o->init_dir != 1)
        return lm_fail(err, "a run needs exactly one of --config (fresh weights) or --init MODEL_DIR");
    char path[PATH_MAX];
    pjoin(path, sizeof path, o->out_dir, "run.json");
    if (file_exists(path))
        return lm_fail(err, "%s already holds a run (lemma train --resume %s continues it)", o->out_dir, o->out_dir);
    if (mkdir(o->out_dir, 0755) && errno != EEXIST)
        return lm_fail(err, "%s: cannot create: %s", o->out_dir, strerror(errno));
    /* the model config, copied into the run */
    snprintf(c.config_text_path, sizeof c.config_text_path, "%s/config.json", o->out_dir);
    if (o->config_json) {
        if (lm_write_file_atomic(c.config_text_path, o->config_json, strlen(o->config_json), err)) return -1;
    } else {
        char src[PATH_MAX];
        if (o->init_dir) pjoin(src, sizeof src, o->init_dir, "config.json");
        else snprintf(src, sizeof src, "%s", o->config_path);
        if (copy_file(src, c.config_text_path, err)) return -1;
    }
    lm_config cfg;
    char *text;
    size_t len;
    if (lm_read_file(c.config_text_path, 16u << 20, &text, &len, err)) return -1;
    int prc = lm_config_parse(text, len, o->config_path ? o->config_path : c.config_text_path, &cfg, err);
    free(text);
    if (prc || lm_params_create(&cfg, &c.p, err)) return -1;
    if (o->init_dir) {
        lm_model *m;
        if (lm_model_load(o->init_dir, &m, err)) {
            teardown(&c);
            return -1;
        }
        int lrc = lm_params_load_model(c.p, m, err);
        lm_model_free(m);
        if (lrc) {
            teardown(&c);
            return -1;
        }
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
    if (setup(&c, &cfg, err) || write_run_json(o->out_dir, o, o->data_dir, o->tokenizer_dir, err)) {
        teardown(&c);
        return -1;
    }
    struct sigaction oi, ot;
    install_signals(&oi, &ot);
    int rc = loop(&c, 0, err);
    sigaction(SIGINT, &oi, NULL);
    sigaction(SIGTERM, &ot, NULL);
    teardown(&c);
    return rc;
}

int lm_train_resume(const char *run_dir, int threads, int quiet, int (*progress)(void *, const char *),
                    void *progress_ctx, lm_error *err) {
    run_ctx c;
    memset(&c, 0, sizeof c);
    run_strings rs;
    if (read_run_json(run_dir, &c.o, &rs, err)) return -1;
    lm_run_opts *o = &c.o;
    if (threads > 0) o->threads = threads;
    o->quiet = quiet;
    o->progress = progress;
    o->progress_ctx = progress_ctx;
    snprintf(c.config_text_path, sizeof c.config_text_path, "%s/config.json", run_dir);
    lm_config cfg;
    if (lm_config_load(run_dir, &cfg, err) || lm_params_create(&cfg, &c.p, err)) return -1;
    int64_t step = latest_step(run_dir);
    char ck[PATH_MAX], path[PATH_MAX];
    if (step < 0) {
        /* killed before the first checkpoint: start over from the init */
        if (!quiet) fprintf(stderr, "no checkpoint in %s yet: starting from step 0\n", run_dir);
        if (o->init_dir) {
            lm_model *m;
            if (lm_model_load(o->init_dir, &m, err)) goto fail;
            int lrc = lm_params_load_model(c.p, m, err);
            lm_model_free(m);
            if (lrc) goto fail;
        } else {
            lm_params_init_random(c.p, o->seed, o->init_std > 0 ? o->init_std : 0.02);
        }
        step = 0;
    } else {
        snprintf(ck, sizeof ck, "%s/ckpt-%08lld", run_dir, (long long)step);
        pjoin(path, sizeof path, ck, "model.safetensors");
        if (lm_params_read(c.p, c.p->w, path, err)) goto fail;
        pjoin(path, sizeof path, ck, "optim_m.safetensors");
        if (lm_params_read(c.p, c.p->m, path, err)) goto fail;
        pjoin(path, sizeof path, ck, "optim_v.safetensors");
        if (lm_params_read(c.p, c.p->v, path, err)) goto fail;
    }
    if (setup(&c, &cfg, err)) goto fail;
    if (step > 0) {
        /* the AdamW step and tokens seen from trainer_state.json */
        char *text;
        size_t len;
        pjoin(path, sizeof path, ck, "trainer_state.json");
        if (lm_read_file(path, 1 << 20, &text, &len, err)) goto fail;
        json_doc *doc = json_parse(text, len, err);
        free(text);
        int64_t astep = -1, tokens = 0;
        if (!doc || !json_as_int(json_get(json_root(doc), "adamw_step"), &astep) || astep < 0) {
            json_free(doc);
            lm_fail(err, "%s: missing adamw_step", path);
            goto fail;
        }
        json_as_int(json_get(json_root(doc), "tokens_seen"), &tokens);
        json_free(doc);
        lm_trainer_adamw(c.tr)->step = astep;
        c.tokens_seen = tokens;
    }
    truncate_metrics(run_dir, step);
    if (!quiet && step < o->steps) fprintf(stderr, "resuming %s at step %lld of %lld\n", run_dir, (long long)step, (long long)o->steps);
    struct sigaction oi, ot;
    install_signals(&oi, &ot);
    int rc = loop(&c, step, err);
    sigaction(SIGINT, &oi, NULL);
    sigaction(SIGTERM, &ot, NULL);
    teardown(&c);
    return rc;
fail:
    teardown(&c);
    return -1;
}
