/* stage_common.c — what the training stages of `lemma build` share
 * (stage_common.h): checkpoints with resume, the stage folder, metrics
 * lines and the final export. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/stop.h"
#include "formats/json.h"
#include "recipe/stage_common.h"
#include "train/plot.h"

double lm_stage_now_s(void) { return lm_now_s(); }

static int file_exists(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

static int copy_file(const char *from, const char *to, lm_error *err) {
    char *data;
    size_t len;
    if (lm_read_file(from, (size_t)1 << 40, &data, &len, err)) return -1;
    int rc = lm_write_file_atomic(to, data, len, err);
    free(data);
    return rc;
}

static int fsync_dir(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int rc = fsync(fileno(f));
    fclose(f);
    return rc;
}

/* "ckpt-" and digits only. */
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

static int64_t newest_checkpoint(const char *dir) {
    int64_t best = -1, s;
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (ckpt_step(e->d_name, &s) && s > best) best = s;
    closedir(d);
    return best;
}

/* Everything in the stage folder except lemma's marker and lock. */
int lm_stage_clear_folder(const lm_stage *st, const char *why, lm_error *err) {
    DIR *d = opendir(st->out_dir);
    if (!d) return lm_fail(err, "%s: %s", st->out_dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, LM_DIR_MARKER_NAME) ||
            !strcmp(e->d_name, LM_DIR_LOCK_NAME))
            continue;
        char p[PATH_MAX], msg[PATH_MAX + 80];
        snprintf(p, sizeof p, "%s/%s", st->out_dir, e->d_name);
        snprintf(msg, sizeof msg, "removing %s (%s)", p, why);
        if (st->notice) st->notice(st->notice_ctx, msg);
        rc = lm_remove_tree(p, err);
    }
    closedir(d);
    return rc;
}

int lm_stage_truncate_metrics(const char *path, int64_t last, lm_error *err) {
    struct stat sb;
    if (lstat(path, &sb)) return 0;
    char *text;
    size_t len;
    if (lm_read_file(path, (size_t)1 << 30, &text, &len, err)) return -1;
    size_t keep = 0, at = 0;
    while (at < len) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break;
        long long s;
        if (sscanf(text + at, "{\"step\": %lld", &s) == 1 && s > last) break;
        at = (size_t)(nl - text) + 1;
        keep = at;
    }
    int rc = keep < len ? lm_write_file_atomic(path, text, keep, err) : 0;
    free(text);
    return rc;
}

void lm_stage_put_num(lm_text *t, const char *key, double v) {
    char b[96];
    if (isfinite(v)) snprintf(b, sizeof b, ", \"%s\": %.9g", key, v);
    else snprintf(b, sizeof b, ", \"%s\": null", key);
    lm_text_append(t, b, strlen(b));
}

void lm_stage_fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%.0fs", s);
}

int lm_stage_write_checkpoint(lm_stage_ckpt *c, int64_t step, lm_error *err) {
    const char *dir = c->st->out_dir;
    char tmp[PATH_MAX], fin[PATH_MAX], path[PATH_MAX + 64], from[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/ckpt-%08lld.tmp", dir, (long long)step);
    snprintf(fin, sizeof fin, "%s/ckpt-%08lld", dir, (long long)step);
    struct stat sb;
    if (!lstat(tmp, &sb) && lm_remove_tree(tmp, err)) return -1;
    if (mkdir(tmp, 0755)) return lm_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    char meta[128];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"lemma_step\":\"%lld\"}", (long long)step);
    int rc = 0;
    if (c->config) {
        snprintf(path, sizeof path, "%s/config.json", tmp);
        rc = lm_write_file_atomic(path, c->config->data, c->config->len, err);
    }
    /* config.json must be there to copy; the tokenizer files are copied where present */
    static const char *const copied[] = {"config.json", "tokenizer.json", "tokenizer_config.json"};
    for (int i = c->config ? 1 : 0; i < 3 && !rc && c->model_dir && c->model_dir[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", c->model_dir, copied[i]);
        snprintf(path, sizeof path, "%s/%s", tmp, copied[i]);
        if (i == 0 || file_exists(from)) rc = copy_file(from, path, err);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    rc = rc || lm_params_save(c->p, c->p->w, path, meta, err);
    snprintf(path, sizeof path, "%s/optim_m.safetensors", tmp);
    rc = rc || lm_params_save(c->p, c->p->m, path, meta, err);
    snprintf(path, sizeof path, "%s/optim_v.safetensors", tmp);
    rc = rc || lm_params_save(c->p, c->p->v, path, meta, err);
    if (!rc) {
        char state[512];
        int n = snprintf(state, sizeof state,
                         "{\"step\": %lld, \"adamw_step\": %lld, \"planned_steps\": %lld, \"seed\": %llu%s%s%s}\n",
                         (long long)step, (long long)lm_trainer_adamw(c->tr)->step, (long long)c->planned_steps,
                         (unsigned long long)c->seed, c->sampling ? ", \"sampling\": \"" : "",
                         c->sampling ? c->sampling : "", c->sampling ? "\"" : "");
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        rc = lm_write_file_atomic(path, state, (size_t)n, err);
    }
    if (!rc && fsync_dir(tmp)) rc = lm_fail(err, "%s: fsync failed: %s", tmp, strerror(errno));
    if (rc) {
        lm_remove_tree(tmp, NULL);
        return lm_fail_prefix(err, "checkpoint at step %lld not saved", (long long)step);
    }
    if (!lstat(fin, &sb) && lm_remove_tree(fin, err)) return -1;
    if (rename(tmp, fin)) {
        int e = errno;
        lm_remove_tree(tmp, NULL);
        return lm_fail(err, "%s: rename failed: %s", fin, strerror(e));
    }
    char link_tmp[PATH_MAX], link[PATH_MAX], target[64];
    snprintf(target, sizeof target, "ckpt-%08lld", (long long)step);
    snprintf(link_tmp, sizeof link_tmp, "%s/latest.tmp", dir);
    snprintf(link, sizeof link, "%s/latest", dir);
    unlink(link_tmp);
    if (symlink(target, link_tmp) || rename(link_tmp, link)) {
        int e = errno;
        unlink(link_tmp);
        return lm_fail(err, "%s: cannot point at %s: %s", link, target, strerror(e));
    }
    fsync_dir(dir);
    /* a build keeps the newest checkpoint only: it is the stage's model */
    if (c->last >= 0 && c->last != step) {
        snprintf(path, sizeof path, "%s/ckpt-%08lld", dir, (long long)c->last);
        if (lm_remove_tree(path, err)) return -1;
    }
    c->last = step;
    return 0;
}

static int load_checkpoint(lm_stage_ckpt *c, int64_t step, lm_error *err) {
    char ck[PATH_MAX], path[PATH_MAX + 64];
    snprintf(ck, sizeof ck, "%s/ckpt-%08lld", c->st->out_dir, (long long)step);
    snprintf(path, sizeof path, "%s/model.safetensors", ck);
    if (lm_params_read(c->p, c->p->w, path, err)) return -1;
    snprintf(path, sizeof path, "%s/optim_m.safetensors", ck);
    if (lm_params_read(c->p, c->p->m, path, err)) return -1;
    snprintf(path, sizeof path, "%s/optim_v.safetensors", ck);
    if (lm_params_read(c->p, c->p->v, path, err)) return -1;
    snprintf(path, sizeof path, "%s/trainer_state.json", ck);
    char *text;
    size_t len;
    if (lm_read_file(path, 1 << 20, &text, &len, err)) return -1;
    json_doc *doc = json_parse(text, len, err);
    free(text);
    int64_t astep = -1, saved = -1;
    if (!doc || !json_as_int(json_get(json_root(doc), "adamw_step"), &astep) || astep < 0 ||
        !json_as_int(json_get(json_root(doc), "step"), &saved) || saved != step) {
        json_free(doc);
        return lm_fail(err, "%s: expected \"step\": %lld and a non-negative \"adamw_step\"", path, (long long)step);
    }
    json_free(doc);
    lm_trainer_adamw(c->tr)->step = astep;
    c->last = step;
    return 0;
}

int lm_stage_export_final(const lm_stage *st, lm_error *err) {
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "%s/latest/%s", st->out_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", st->out_dir, files[i]);
        if (i >= 2 && !file_exists(src)) continue;
        if (copy_file(src, dst, err)) return lm_fail_prefix(err, "export");
    }
    return 0;
}

int lm_stage_resume(lm_stage_ckpt *c, int64_t *start, lm_error *err) {
    const lm_stage *st = c->st;
    *start = 0;
    if (!st->resume) return 0;
    int64_t last = newest_checkpoint(st->out_dir);
    if (last < 0) return lm_stage_clear_folder(st, "from a run that wrote no checkpoint", err);
    if (load_checkpoint(c, last, err)) return -1;
    *start = last;
    char msg[PATH_MAX + 64];
    snprintf(msg, sizeof msg, "resuming %s at step %lld of %lld", st->name, (long long)last,
             (long long)c->planned_steps);
    if (st->notice) st->notice(st->notice_ctx, msg);
    return 0;
}

/* The tests' crash point (stage_common.h): LEMMA_TEST_CRASH_AFTER_CHECKPOINT
 * = "STAGE:STEP" kills the process with SIGKILL right after that stage's
 * checkpoint of that step is complete, so a resume test needs no race with
 * a poller. */
static void crash_if_asked(const char *stage, int64_t step) {
    const char *want = getenv("LEMMA_TEST_CRASH_AFTER_CHECKPOINT");
    if (!want || !stage) return;
    const char *colon = strrchr(want, ':');
    if (!colon || (size_t)(colon - want) != strlen(stage) || strncmp(want, stage, strlen(stage))) return;
    char *end;
    long long at = strtoll(colon + 1, &end, 10);
    if (*end || at != step) return;
    raise(SIGKILL);
}

int lm_stage_step_end(lm_stage_ckpt *c, int64_t done_steps, int64_t save_every, const char *progress,
                      lm_error *err) {
    const lm_stage *st = c->st;
    int stop = lm_stop_requested(), last = done_steps == c->planned_steps;
    if (st->progress && st->progress(st->progress_ctx, progress)) stop = 1;
    if (((save_every > 0 && done_steps % save_every == 0) || last || stop)) {
        if (lm_stage_write_checkpoint(c, done_steps, err))
            return lm_fail_prefix(err, "stopping at step %lld", (long long)done_steps);
        crash_if_asked(st->name, done_steps);
    }
    if (stop && !last)
        return lm_fail(err, "interrupted at step %lld; checkpoint saved (building again resumes it)",
                       (long long)done_steps);
    return 0;
}

void lm_stage_write_step_plots(const lm_stage *st, const char *metrics_path, const char *title, const char *svg_name,
                               const char *const *names, const char *const *labels, int n) {
    enum { MAX_SERIES = 4 };
    if (n < 1 || n > MAX_SERIES) return;
    char *text;
    size_t len;
    lm_error err;
    if (lm_read_file(metrics_path, (size_t)1 << 30, &text, &len, &err)) return;
    int64_t cap = 64, nr = 0, *x = malloc((size_t)cap * sizeof *x);
    double *ys[MAX_SERIES] = {0};
    int ok = x != NULL;
    for (int k = 0; k < n; k++) ok &= (ys[k] = malloc((size_t)cap * sizeof(double))) != NULL;
    for (size_t at = 0; at < len && ok;) {
        char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len;
        json_doc *d = json_parse(text + at, end - at, &err);
        int64_t s;
        if (d && json_as_int(json_get(json_root(d), "step"), &s)) {
            while (nr && x[nr - 1] >= s) nr--; /* a resumed stage rewrote these */
            if (nr == cap) {
                cap *= 2;
                int64_t *nx = realloc(x, (size_t)cap * sizeof *nx);
                if (nx) x = nx;
                else ok = 0;
                for (int k = 0; k < n; k++) {
                    double *ny = realloc(ys[k], (size_t)cap * sizeof(double));
                    if (ny) ys[k] = ny;
                    else ok = 0;
                }
            }
            if (ok) {
                x[nr] = s;
                for (int k = 0; k < n; k++) {
                    double v;
                    ys[k][nr] = json_as_double(json_get(json_root(d), names[k]), &v) ? v : NAN;
                }
                nr++;
            }
        }
        json_free(d);
        at = end + 1;
    }
    free(text);
    if (nr && ok) {
        lm_plot_lines pl = {.title = title, .subtitle = st->name, .panel = "per step", .x_label = "step", .x = x,
                            .n = nr, .n_series = n, .y_lo = 0, .y_hi = 1};
        for (int k = 0; k < n; k++) pl.series[k] = (lm_plot_series){labels[k], ys[k]};
        lm_text svg = {0};
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", st->out_dir, svg_name);
        if (!lm_plot_lines_svg(&pl, &svg, &err)) lm_write_file_atomic(path, svg.data, svg.len, &err);
        lm_text_free(&svg);
    }
    lm_metrics m;
    if (!lm_metrics_read(metrics_path, &m, &err)) {
        lm_text svg = {0};
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/training.svg", st->out_dir);
        if (!lm_plot_svg(&m, st->name, &svg, &err)) lm_write_file_atomic(path, svg.data, svg.len, &err);
        lm_text_free(&svg);
        lm_metrics_free(&m);
    }
    free(x);
    for (int k = 0; k < n; k++) free(ys[k]);
}

int lm_stage_is_model_kind(const char *kind, int with_distill) {
    return !strcmp(kind, "pretrain") || !strcmp(kind, "sft") || !strcmp(kind, "verifier_rl") || !strcmp(kind, "grpo") ||
           !strcmp(kind, "rft") || (with_distill && !strcmp(kind, "distill"));
}
