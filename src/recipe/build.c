/* build.c — runs a recipe; see build.h. */
#include "core/bf16gemm.h"
#include "core/clock.h"
#include "recipe/build.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/sha256.h"
#include "core/mathfn.h"
#include "core/stop.h"
#include "recipe/stages.h"
#include "recipe/taskset.h"
#include "train/dp.h"
#include "train/run.h"

/* ---- small helpers ----------------------------------------------------------- */

static int note(const lm_build_opts *o, int transient, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int note(const lm_build_opts *o, int transient, const char *fmt, ...) {
    if (!o->note) return 0;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return o->note(o->note_ctx, transient, msg);
}

static int file_exists(const char *p) {
    struct stat st;
    return !stat(p, &st);
}

/* lstat: also a dangling symbolic link. */
static int path_exists(const char *p) {
    struct stat st;
    return !lstat(p, &st);
}

/* Creates dir (not its parents) with lemma's ownership marker. */
static int mkdir_marked(const char *dir, lm_error *err) {
    if (mkdir(dir, 0777)) return lm_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    return lm_dir_mark_made(dir, err);
}

/* ---- inputs ---------------------------------------------------------------------- */

/* Runs `bible -f Gen1:1-Rev22:21` and collects its output. */
static int run_bible(lm_text *out, lm_error *err) {
    int fd[2];
    if (pipe(fd)) return lm_fail(err, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return lm_fail(err, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 2);
        }
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char *argv[] = {"bible", "-f", "Gen1:1-Rev22:21", NULL};
        execvp("bible", argv);
        _exit(127);
    }
    close(fd[1]);
    char buf[1 << 16];
    ssize_t n;
    int oom = 0;
    int stopped = 0;
    while ((n = read(fd[0], buf, sizeof buf)) != 0) {
        if (lm_stop_requested()) {
            stopped = 1;
            kill(pid, SIGTERM);
            break;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (!oom && lm_text_append(out, buf, (size_t)n)) oom = 1;
    }
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (stopped) return lm_fail(err, "interrupted");
    if (oom) return lm_fail(err, "out of memory");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return lm_fail(err, "the 'bible' program is not installed (Debian package bible-kjv; scripts/install-deps.sh "
                            "installs it)");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out->len == 0)
        return lm_fail(err, "'bible -f Gen1:1-Rev22:21' failed (exit status %d, %zu bytes of output)",
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1, out->len);
    return 0;
}

static int hash_mismatch(const lm_recipe_input *in, const char *got, lm_error *err) {
    if (!in->sha256[0])
        return lm_fail(err, "input %s: the recipe gives no \"sha256\"; this %s hashes to %s (add \"sha256\": \"%s\" if "
                            "that is the input you mean)",
                       in->name, in->builtin ? "built-in input" : "file", got, got);
    return lm_fail(err, "input %s (%s%s): sha256 is %s, the recipe expects %s", in->name,
                   in->builtin ? "built-in " : "", in->builtin ? lm_builtin_name(in->builtin) : in->resolved, got,
                   in->sha256);
}

/* A tasks input (recipe/taskset.h): exclude_path is the prepared file of the
 * input it excludes, or NULL. */
static int make_taskset(const lm_recipe_input *in, const char *exclude_path, lm_text *out, lm_error *err) {
    lm_taskset_opts o;
    const char *ex, *tp;
    if (lm_taskset_opts_from_json(in->def, "recipe", in->name, &o, &ex, &tp, err)) return -1;
    char *ex_text = NULL, *tp_text = NULL;
    size_t ex_len = 0, tp_len = 0;
    int rc = 0;
    if (exclude_path && lm_read_file(exclude_path, (size_t)1 << 30, &ex_text, &ex_len, err)) rc = -1;
    if (!rc && in->resolved && lm_read_file(in->resolved, (size_t)1 << 24, &tp_text, &tp_len, err)) rc = -1;
    if (!rc) {
        o.exclude = ex_text;
        o.exclude_len = ex_len;
        o.templates_json = tp_text;
        rc = lm_taskset_build(&o, out, err);
    }
    free(ex_text);
    free(tp_text);
    return rc;
}

/* Makes or checks one input; fills its path (in the build dir or in place) and hash. */
static int prepare_input(const lm_recipe_input *in, const char *exclude_path, const lm_build_opts *o, lm_lock *lk,
                         char *path, size_t cap, char hex[65], lm_error *err) {
    const char *out_dir = o->out_dir;
    if (!in->builtin) {
        snprintf(path, cap, "%s", in->resolved);
        if (lm_sha256_file(in->resolved, hex, err)) return lm_fail_prefix(err, "input %s", in->name);
        if (!in->sha256[0] || strcmp(hex, in->sha256)) return hash_mismatch(in, hex, err);
        return lm_lock_set_input(lk, in->name, in->path, hex) ? lm_fail(err, "out of memory") : 0;
    }
    char rel[256];
    snprintf(rel, sizeof rel, "inputs/%s.%s", in->name, in->builtin == LM_BUILTIN_TASKS ? "jsonl" : "txt");
    snprintf(path, cap, "%s/%s", out_dir, rel);
    lm_error e2;
    int exists = path_exists(path), have = exists && !lm_sha256_file(path, hex, &e2);
    if (!(in->sha256[0] && have && !strcmp(hex, in->sha256))) {
        if (exists) {
            /* Replace only a file lemma wrote: in a folder lemma made, or
             * recorded in lemma.lock with exactly these bytes. */
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/inputs", out_dir);
            const lm_lock_file *rec = lm_lock_find_file(lk, rel);
            if (!lm_dir_made_by_lemma(dir) && !(have && rec && !strcmp(rec->sha256, hex)))
                return lm_fail(err, "input %s: %s exists and lemma did not write it (no %s in %s, and lemma.lock does "
                                    "not record these bytes); move it away or build into another --out",
                               in->name, path, LM_DIR_MARKER_NAME, dir);
        }
        lm_text t = {0};
        int rc = in->builtin == LM_BUILTIN_BIBLE_KJV ? run_bible(&t, err)
                 : in->builtin == LM_BUILTIN_TASKS    ? make_taskset(in, exclude_path, &t, err)
                 : lm_synth_text(in->seed, in->lines, &t) ? lm_fail(err, "out of memory") : 0;
        if (rc) {
            lm_text_free(&t);
            return lm_fail_prefix(err, "input %s (built-in %s)", in->name, lm_builtin_name(in->builtin));
        }
        uint8_t d[32];
        lm_sha256_buf(t.data, t.len, d);
        lm_sha256_hex(d, hex);
        if (!in->sha256[0] || strcmp(hex, in->sha256)) {
            lm_text_free(&t);
            return hash_mismatch(in, hex, err);
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/inputs", out_dir);
        rc = !path_exists(dir) && mkdir_marked(dir, err);
        if (!rc && exists) note(o, 0, "input %s: replacing %s (its bytes differ from the recipe's)", in->name, path);
        if (!rc) rc = lm_write_file_atomic(path, t.data, t.len, err);
        lm_text_free(&t);
        if (rc) return -1;
    }
    lm_lock_file f = {rel, {0}};
    memcpy(f.sha256, hex, 65);
    if (lm_lock_set_input(lk, in->name, rel, hex) || lm_lock_replace_files(lk, rel, &f, 1))
        return lm_fail(err, "out of memory");
    return 0;
}

/* ---- ranks (mpirun -np K lemma build) -----------------------------------------
 *
 * Rank 0 builds as one process does: every file-system effect, every
 * message, the stages not written for ranks (alone: lm_dp_solo). The other
 * ranks wait for its word, which is either "train alongside me in this
 * partial folder" (a pretrain or sft stage: they join the run there as
 * train/run.h's data-parallel ranks; rank 0 sends the word with the run's
 * first transfer, after it wrote run.json), or "done", or "failed" (they
 * stop without a word: rank 0 says why). The lock is the one-process
 * build's, byte for byte: the training is bit-identical by construction and
 * the stage's run.json does not record the rank count. */

enum { WORD_DONE = 1, WORD_FAILED, WORD_TRAIN };

typedef struct rank_word {
    int32_t what;
    char run_dir[4096];
} rank_word;

/* Rank 0's view of the others. */
enum { RANKS_WAITING, RANKS_TRAINING, RANKS_GONE };
static int g_ranks = RANKS_WAITING;

static int many_ranks(void) { return lm_dp_size() > 1; }

static void make_word(rank_word *w, int what, const char *run_dir) {
    memset(w, 0, sizeof *w);
    w->what = what;
    if (run_dir) snprintf(w->run_dir, sizeof w->run_dir, "%s", run_dir);
}

static int tell_ranks(int what, lm_error *err) {
    rank_word w;
    make_word(&w, what, NULL);
    g_ranks = RANKS_GONE;
    return lm_dp_bcast_idle(&w, sizeof w, 0, err);
}

int lm_build_release_ranks(void) {
    if (!many_ranks() || lm_dp_rank() > 0) return 0;
    if (g_ranks == RANKS_WAITING) {
        lm_error e;
        if (tell_ranks(WORD_FAILED, &e)) return -1;
        lm_dp_mark_stop_told();
        return 0;
    }
    /* a training stage that failed: the run told them to stop, or they may
     * be waiting inside it */
    return g_ranks == RANKS_TRAINING && !lm_dp_stop_was_told() ? -1 : 0;
}

int lm_build_follow(const lm_build_opts *o, lm_error *err) {
    for (;;) {
        rank_word w;
        if (lm_dp_bcast_idle(&w, sizeof w, 0, err)) return -1;
        if (w.what == WORD_DONE) return 0;
        if (w.what != WORD_TRAIN) {
            lm_dp_mark_stop_told();
            return 1;
        }
        w.run_dir[sizeof w.run_dir - 1] = 0;
        /* rank 0 made the run (or resumes it): this rank follows it */
        lm_resume_opts ro = {.threads = o->threads > 0 ? o->threads : 1, .quiet = 1};
        int rc = lm_train_resume(w.run_dir, &ro, err);
        if (rc) return rc;
    }
}

/* ---- stages ------------------------------------------------------------------------- */

/* Stages whose partial folder an interrupted build continues. */
static int resumable(int kind_id) {
    return kind_id == LM_STAGE_PRETRAIN || kind_id == LM_STAGE_SFT || kind_id == LM_STAGE_VERIFIER_RL ||
           kind_id == LM_STAGE_DISTILL || kind_id == LM_STAGE_GRPO || kind_id == LM_STAGE_RFT;
}

typedef int (*stage_fn)(const lm_stage *, const char *, lm_error *);

static stage_fn stage_function(int kind_id) {
    switch (kind_id) {
    case LM_STAGE_TOKENIZER: return lm_stage_tokenizer;
    case LM_STAGE_DATA: return lm_stage_data;
    case LM_STAGE_PRETRAIN:
    case LM_STAGE_SFT: return lm_stage_pretrain;
    case LM_STAGE_VERIFIER_RL: return lm_stage_verifier_rl;
    case LM_STAGE_DISTILL: return lm_stage_distill;
    case LM_STAGE_GRPO: return lm_stage_grpo;
    case LM_STAGE_RFT: return lm_stage_rft;
    }
    return NULL;
}

static int stage_key(const lm_recipe_stage *rs, const lm_stage_input *ins, int n, char hex[65], lm_error *err) {
    lm_text t = {0};
    /* the arithmetic version: the same recipe computes other bits when it changes */
    char head[96];
    int hn = snprintf(head, sizeof head, "lemma-stage 1\narith %d\n", LM_ARITH_VERSION);
    /* a bf16 stage: also the bf16 arithmetic's version (f32 keys unchanged) */
    const json_value *prec = json_get(rs->def, "precision");
    if (prec && prec->type == JSON_STRING && !strcmp(prec->str, "bf16"))
        hn += snprintf(head + hn, sizeof head - (size_t)hn, "bf16 arith %d\n", LM_BF16_ARITH_VERSION);
    int bad = lm_text_append(&t, head, (size_t)hn) || lm_text_append(&t, rs->kind, strlen(rs->kind)) ||
              lm_text_append(&t, "\n", 1) || lm_json_canonical(rs->def, &t) || lm_text_append(&t, "\n", 1);
    for (int i = 0; i < n && !bad; i++)
        bad = lm_text_append(&t, ins[i].name, strlen(ins[i].name)) || lm_text_append(&t, " ", 1) ||
              lm_text_append(&t, ins[i].kind, strlen(ins[i].kind)) || lm_text_append(&t, " ", 1) ||
              lm_text_append(&t, ins[i].sha256, 64) || lm_text_append(&t, "\n", 1);
    if (bad) {
        lm_text_free(&t);
        return lm_fail(err, "out of memory");
    }
    uint8_t d[32];
    lm_sha256_buf(t.data, t.len, d);
    lm_sha256_hex(d, hex);
    lm_text_free(&t);
    return 0;
}

typedef struct stage_note_ctx {
    const lm_build_opts *o;
    const char *prefix;
} stage_note_ctx;

static int stage_progress(void *ctx, const char *msg) {
    stage_note_ctx *c = ctx;
    return note(c->o, 1, "%s: %s", c->prefix, msg) || lm_stop_requested();
}

static void stage_notice(void *ctx, const char *msg) {
    stage_note_ctx *c = ctx;
    note(c->o, 0, "%s: %s", c->prefix, msg);
}

/* Removes the .<name>.partial-* folders other than keep, each with a note;
 * one without lemma's marker is an error naming it. */
static int remove_partials(const lm_build_opts *o, const char *name, const char *keep, const char *prefix,
                           lm_error *err) {
    char pattern[300];
    snprintf(pattern, sizeof pattern, ".%s.partial-", name);
    DIR *dp = opendir(o->out_dir);
    if (!dp) return lm_fail(err, "%s: %s", o->out_dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(dp))) {
        if (strncmp(e->d_name, pattern, strlen(pattern)) || (keep && !strcmp(e->d_name, keep))) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", o->out_dir, e->d_name);
        if (!lm_dir_made_by_lemma(p)) {
            rc = lm_fail(err, "%s: has the name of an unfinished stage but lemma did not make it (no %s); move it "
                              "away",
                         p, LM_DIR_MARKER_NAME);
            break;
        }
        note(o, 0, "%s: removing %s (an unfinished earlier build of this stage)", prefix, p);
        rc = lm_remove_tree(p, err);
    }
    closedir(dp);
    return rc;
}

/* Files recorded in the lock under "<name>/", and their digest. */
static void recorded_digest(const lm_lock *lk, const char *name, char hex[65]) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/", name);
    size_t pl = strlen(prefix);
    int first = -1, n = 0;
    for (int i = 0; i < lk->n_files; i++)
        if (!strncmp(lk->files[i].path, prefix, pl)) {
            if (first < 0) first = i;
            n++;
        }
    lm_lock_digest(first < 0 ? lk->files : lk->files + first, n, hex);
}

/* 1 when lemma may remove the stage folder out_dir/name: it holds lemma's
 * marker, or lemma.lock records exactly its (hashed) files under the stage's
 * record, which only a build writes. 0 with err naming the folder otherwise;
 * -1 on an error. */
static int stage_dir_owned(const char *out_dir, const char *name, const lm_lock *lk, lm_error *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", out_dir, name);
    if (lm_dir_made_by_lemma(dir)) return 1;
    struct stat st;
    const lm_lock_stage *ls = lm_lock_find_stage(lk, name);
    if (ls && !lstat(dir, &st) && S_ISDIR(st.st_mode)) {
        lm_lock_file *files;
        int nf;
        char digest[65], rec[65];
        if (lm_lock_hash_tree(out_dir, name, &files, &nf, err)) return -1;
        lm_lock_digest(files, nf, digest);
        lm_lock_files_free(files, nf);
        recorded_digest(lk, name, rec);
        if (!strcmp(digest, rec) && !strcmp(digest, ls->outputs_sha256)) return 1;
    }
    lm_fail(err, "%s exists and lemma did not make it (no %s, and lemma.lock does not record exactly its files); "
                 "move it away or build into another --out",
            dir, LM_DIR_MARKER_NAME);
    return 0;
}

static int run_stages(const lm_recipe *r, const lm_build_opts *o, lm_lock *lk, const char *lock_path,
                      lm_build_result *res, int *last, lm_error *err) {
    int n_stages = r->n_stages;
    if (o->until) {
        int u = lm_recipe_stage_index(r, o->until);
        if (u < 0) return lm_fail(err, "--until %s: the recipe has no stage of that name", o->until);
        n_stages = u + 1;
    }
    *last = n_stages;
    /* Inputs. */
    char (*in_path)[4096] = calloc((size_t)r->n_inputs + 1, sizeof *in_path);
    char (*in_hash)[65] = calloc((size_t)r->n_inputs + 1, sizeof *in_hash);
    char (*st_hash)[65] = calloc((size_t)r->n_stages + 1, sizeof *st_hash);
    lm_stage_input *ins = NULL;
    char (*stage_dirs)[4096] = NULL;
    int rc = -1;
    if (!in_path || !in_hash || !st_hash) {
        lm_fail(err, "out of memory");
        goto done;
    }
    for (int i = 0; i < r->n_inputs; i++) {
        if (note(o, 1, "input %s: checking", r->inputs[i].name)) {
            lm_fail(err, "interrupted");
            goto done;
        }
        const lm_recipe_input *in = &r->inputs[i];
        if (prepare_input(in, in->builtin == LM_BUILTIN_TASKS && in->exclude >= 0 ? in_path[in->exclude] : NULL, o,
                          lk, in_path[i], sizeof in_path[i], in_hash[i], err))
            goto done;
    }
    if (lm_lock_write(lock_path, lk, err)) goto done;

    for (int si = 0; si < n_stages; si++) {
        const lm_recipe_stage *rs = &r->stages[si];
        free(ins);
        free(stage_dirs);
        ins = calloc((size_t)rs->n_inputs, sizeof *ins);
        stage_dirs = calloc((size_t)rs->n_inputs, sizeof *stage_dirs);
        if (!ins || !stage_dirs) {
            lm_fail(err, "out of memory");
            goto done;
        }
        for (int k = 0; k < rs->n_inputs; k++) {
            int ref = rs->input_ref[k];
            ins[k].name = rs->inputs[k];
            if (ref >= 0) {
                ins[k].kind = "input";
                ins[k].path = in_path[ref];
                memcpy(ins[k].sha256, in_hash[ref], 65);
            } else {
                const lm_recipe_stage *dep = &r->stages[-ref - 1];
                ins[k].kind = dep->kind;
                snprintf(stage_dirs[k], sizeof stage_dirs[k], "%s/%s", o->out_dir, dep->name);
                ins[k].path = stage_dirs[k];
                memcpy(ins[k].sha256, st_hash[-ref - 1], 65);
            }
        }
        char key[65];
        if (stage_key(rs, ins, rs->n_inputs, key, err)) goto done;
        char final_dir[4096], prefix[300];
        snprintf(final_dir, sizeof final_dir, "%s/%s", o->out_dir, rs->name);
        snprintf(prefix, sizeof prefix, "[%d/%d] %s (%s)", si + 1, n_stages, rs->name, rs->kind);
        const lm_lock_stage *ls = lm_lock_find_stage(lk, rs->name);
        if (!o->force && ls && !strcmp(ls->key, key) && !strcmp(ls->kind, rs->kind) && file_exists(final_dir)) {
            if (note(o, 1, "%s: checking outputs", prefix)) {
                lm_fail(err, "interrupted");
                goto done;
            }
            lm_lock_file *files;
            int nf;
            char digest[65], rec[65];
            if (lm_lock_hash_tree(o->out_dir, rs->name, &files, &nf, err)) goto done;
            lm_lock_digest(files, nf, digest);
            lm_lock_files_free(files, nf);
            recorded_digest(lk, rs->name, rec);
            if (!strcmp(digest, rec) && !strcmp(digest, ls->outputs_sha256)) {
                memcpy(st_hash[si], digest, 65);
                note(o, 0, "%s: up to date", prefix);
                res->reused++;
                continue;
            }
            note(o, 0, "%s: outputs changed since the last build; rebuilding", prefix);
        }
        /* Refuse before any work when the old outputs are not lemma's to remove. */
        int replace = path_exists(final_dir);
        if (replace && stage_dir_owned(o->out_dir, rs->name, lk, err) != 1) goto done;
        /* Run into the partial directory. */
        char pname[128], pdir[4096];
        snprintf(pname, sizeof pname, ".%s.partial-%.16s", rs->name, key);
        snprintf(pdir, sizeof pdir, "%s/%s", o->out_dir, pname);
        if (remove_partials(o, rs->name, resumable(rs->kind_id) ? pname : NULL,
                            prefix, err))
            goto done;
        int resume = 0;
        if (path_exists(pdir)) {
            /* Its name carries this stage's key: an interrupted run of it. */
            resume = 1;
            if (!lm_dir_made_by_lemma(pdir) && lm_dir_mark_made(pdir, err)) goto done;
        } else if (mkdir_marked(pdir, err)) {
            goto done;
        }
        if (note(o, 0, "%s: %s", prefix, resume ? "resuming an interrupted run" : "running")) {
            if (!resumable(rs->kind_id)) lm_remove_tree(pdir, NULL);
            lm_fail(err, "interrupted");
            goto done;
        }
        stage_note_ctx nc = {o, prefix};
        lm_stage st = {
            .name = rs->name,
            .kind = rs->kind,
            .def = rs->def,
            .recipe_path = r->path,
            .recipe_dir = r->dir,
            .out_dir = pdir,
            .resume = resume,
            .inputs = ins,
            .n_inputs = rs->n_inputs,
            .threads = o->threads > 0 ? o->threads : 1,
            .progress = stage_progress,
            .progress_ctx = &nc,
            .notice = stage_notice,
            .notice_ctx = &nc,
        };
        double t0 = lm_now_s();
        stage_fn fn = stage_function(rs->kind_id);
        /* under mpirun: the training stages on every rank, the others here alone */
        int with_ranks = many_ranks() && (rs->kind_id == LM_STAGE_PRETRAIN || rs->kind_id == LM_STAGE_SFT);
        /* The word "train with me" goes out with the run's first transfer:
         * a stage that fails before its run starts leaves the ranks waiting
         * for the next word (FAILED), not inside a run. */
        rank_word train_word;
        make_word(&train_word, WORD_TRAIN, pdir);
        if (with_ranks) lm_dp_defer_bcast(&train_word, sizeof train_word);
        int was_solo = with_ranks ? 0 : lm_dp_solo(1);
        int frc = fn ? fn(&st, o->out_dir, err) : -1;
        if (!with_ranks) lm_dp_solo(was_solo);
        /* a finished run leaves them waiting for the next word again */
        if (with_ranks && lm_dp_defer_end() && frc) g_ranks = RANKS_TRAINING;
        if (frc) {
            if (!fn) lm_fail(err, "unknown stage kind %s", rs->kind);
            if (!resumable(rs->kind_id)) lm_remove_tree(pdir, NULL);
            lm_fail_prefix(err, "stage %s", rs->name);
            goto done;
        }
        if (replace) {
            note(o, 0, "%s: removing the previous %s", prefix, final_dir);
            if (lm_remove_tree(final_dir, err)) goto done;
        }
        if (rename(pdir, final_dir)) {
            lm_fail(err, "rename %s -> %s: %s", pdir, final_dir, strerror(errno));
            goto done;
        }
        lm_lock_file *files;
        int nf;
        if (lm_lock_hash_tree(o->out_dir, rs->name, &files, &nf, err)) goto done;
        lm_lock_digest(files, nf, st_hash[si]);
        int bad = lm_lock_replace_files(lk, rs->name, files, nf);
        lm_lock_files_free(files, nf);
        if (bad || lm_lock_set_stage(lk, rs->name, rs->kind, key, st_hash[si])) {
            lm_fail(err, "out of memory");
            goto done;
        }
        if (lm_lock_write(lock_path, lk, err)) goto done;
        note(o, 0, "%s: built in %.1f s (%d files)", prefix, lm_now_s() - t0, nf);
        res->built++;
    }
    rc = 0;
done:
    free(ins);
    free(stage_dirs);
    free(in_path);
    free(in_hash);
    free(st_hash);
    return rc;
}

/* Drops lock records of stages and inputs the recipe no longer has. */
static void prune_lock(const lm_recipe *r, lm_lock *lk) {
    int k = 0;
    for (int i = 0; i < lk->n_stages; i++) {
        if (lm_recipe_stage_index(r, lk->stages[i].name) >= 0) {
            lk->stages[k++] = lk->stages[i];
            continue;
        }
        lm_lock_replace_files(lk, lk->stages[i].name, NULL, 0);
        free(lk->stages[i].name);
        free(lk->stages[i].kind);
    }
    lk->n_stages = k;
    k = 0;
    for (int i = 0; i < lk->n_inputs; i++) {
        int keep = 0;
        for (int j = 0; j < r->n_inputs && !keep; j++) keep = !strcmp(r->inputs[j].name, lk->inputs[i].name);
        if (keep) {
            lk->inputs[k++] = lk->inputs[i];
            continue;
        }
        char rel[300];
        snprintf(rel, sizeof rel, "inputs/%s.txt", lk->inputs[i].name);
        lm_lock_replace_files(lk, rel, NULL, 0);
        free(lk->inputs[i].name);
        free(lk->inputs[i].path);
    }
    lk->n_inputs = k;
}

static int build_here(const lm_recipe *r, const lm_build_opts *o, lm_build_result *res, lm_error *err);

int lm_build(const lm_recipe *r, const lm_build_opts *o, lm_build_result *res, lm_error *err) {
    memset(res, 0, sizeof *res);
    if (many_ranks() && lm_dp_rank() > 0) return lm_build_follow(o, err);
    g_ranks = RANKS_WAITING;
    int rc = build_here(r, o, res, err);
    if (rc || !many_ranks() || g_ranks != RANKS_WAITING) return rc;
    if (tell_ranks(WORD_DONE, err)) return -1;
    return 0;
}

static int build_here(const lm_recipe *r, const lm_build_opts *o, lm_build_result *res, lm_error *err) {
    int fresh = !path_exists(o->out_dir);
    if (lm_mkdir_p(o->out_dir, err) || (fresh && lm_dir_mark_made(o->out_dir, err))) return -1;
    char lock_path[4096];
    snprintf(lock_path, sizeof lock_path, "%s/lemma.lock", o->out_dir);
    lm_dir_lock dl;
    if (lm_dir_lock_acquire(o->out_dir, &dl, err)) return -1;
    lm_lock lk;
    int lr = lm_lock_read(lock_path, &lk, err);
    if (lr < 0) {
        lm_dir_lock_release(&dl);
        return lm_fail_suffix(err, "(delete it to rebuild from scratch)");
    }
    int rc = -1, last = 0;
    if (lr == 0 && lk.n_stages > 0 && lk.arith_version != LM_ARITH_VERSION)
        note(o, 0, "lemma.lock was built with arithmetic version %d, this lemma computes version %d: stages will be rebuilt",
             lk.arith_version, LM_ARITH_VERSION);
    if (lm_lock_set_recipe(&lk, r->name, r->sha256)) {
        lm_fail(err, "out of memory");
        goto done;
    }
    if (run_stages(r, o, &lk, lock_path, res, &last, err)) goto done;
    if (last == r->n_stages) {
        prune_lock(r, &lk);
        if (lm_lock_write(lock_path, &lk, err)) goto done;
    }
    rc = 0;
done:
    lm_lock_free(&lk);
    lm_dir_lock_release(&dl);
    return rc;
}

typedef struct check_ctx {
    void (*diff)(void *, const char *, const char *, const char *, const char *);
    void *ctx;
} check_ctx;

static void check_cb(void *vc, const char *what, const char *path, const char *a, const char *b) {
    check_ctx *c = vc;
    c->diff(c->ctx, what, path, a, b);
}

int lm_build_check(const lm_recipe *r, const lm_build_opts *o, const char *scratch_dir,
                   void (*diff)(void *ctx, const char *what, const char *path, const char *sha_lock,
                                const char *sha_rebuilt),
                   void *ctx, lm_error *err) {
    if (many_ranks() && lm_dp_rank() > 0) return lm_build_follow(o, err) < 0 ? -1 : 0;
    char lock_path[4096];
    snprintf(lock_path, sizeof lock_path, "%s/lemma.lock", o->out_dir);
    lm_lock old, fresh;
    int lr = lm_lock_read(lock_path, &old, err);
    if (lr < 0) return -1;
    if (lr == 1) return lm_fail(err, "%s: no lemma.lock to check against (run lemma build first)", o->out_dir);
    struct stat st;
    if (!stat(scratch_dir, &st)) {
        DIR *dp = opendir(scratch_dir);
        int empty = 1;
        struct dirent *e;
        while (dp && (e = readdir(dp)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, LM_DIR_MARKER_NAME)) empty = 0;
        if (dp) closedir(dp);
        if (!dp || !empty) {
            lm_lock_free(&old);
            return lm_fail(err, "%s: the scratch directory must be empty", scratch_dir);
        }
        /* empty: everything it will hold is the rebuild's */
        if (lm_dir_mark_made(scratch_dir, err)) {
            lm_lock_free(&old);
            return -1;
        }
    }
    lm_build_opts o2 = *o;
    o2.out_dir = scratch_dir;
    o2.force = 1;
    lm_build_result res;
    if (lm_build(r, &o2, &res, err)) {
        lm_lock_free(&old);
        return lm_fail_prefix(err, "rebuilding into %s", scratch_dir);
    }
    char fresh_path[4096];
    snprintf(fresh_path, sizeof fresh_path, "%s/lemma.lock", scratch_dir);
    if (lm_lock_read(fresh_path, &fresh, err)) {
        lm_lock_free(&old);
        return -1;
    }
    int diffs = 0;
    if (strcmp(old.recipe_sha256, fresh.recipe_sha256)) {
        diff(ctx, "recipe", r->path, old.recipe_sha256, fresh.recipe_sha256);
        diffs++;
    }
    /* Compare only what the rebuild covers: inputs/ and its stages. */
    lm_lock a = old;
    lm_lock_file *keep = malloc((size_t)(old.n_files + 1) * sizeof *keep);
    if (!keep) {
        lm_lock_free(&old);
        lm_lock_free(&fresh);
        return lm_fail(err, "out of memory");
    }
    int nk = 0;
    for (int i = 0; i < old.n_files; i++) {
        const char *p = old.files[i].path;
        int cover = !strncmp(p, "inputs/", 7);
        for (int s = 0; s < fresh.n_stages && !cover; s++) {
            size_t n = strlen(fresh.stages[s].name);
            cover = !strncmp(p, fresh.stages[s].name, n) && p[n] == '/';
        }
        if (cover) keep[nk++] = old.files[i];
    }
    a.files = keep;
    a.n_files = nk;
    check_ctx cc = {diff, ctx};
    diffs += lm_lock_compare(&a, &fresh, check_cb, &cc);
    free(keep);
    lm_lock_free(&old);
    lm_lock_free(&fresh);
    return diffs;
}
