/* outdir.c — creating, locking and identifying an output folder; see
 * outdir.h. */
#include "prove/outdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "formats/json.h"
#include "formats/jsonw.h"

int lm_outdir_open(const char *dir, lm_dir_lock *lock, lm_error *err) {
    lock->fd = -1;
    if (lm_mkdir_p(dir, err)) return -1;
    if (lm_dir_lock_acquire(dir, lock, err))
        return strstr(err->msg, "in use by pid") ? lm_fail_suffix(err, "(another run writes there; wait for it or choose another --out)") : -1;
    return 0;
}

void lm_outdir_unlock(lm_dir_lock *lock) { lm_dir_lock_release(lock); }

/* A value as canonical text, for comparing and for messages. */
static void value_text(const json_value *v, lm_text *t) {
    if (!v) {
        jw_raw(t, "(not given)");
        return;
    }
    switch (v->type) {
    case JSON_STRING: jw_strn(t, v->str, v->len); break;
    case JSON_NUMBER: jw_num(t, v->num); break;
    case JSON_TRUE: jw_raw(t, "true"); break;
    case JSON_FALSE: jw_raw(t, "false"); break;
    case JSON_NULL: jw_raw(t, "(not given)"); break;
    default: jw_raw(t, "(a structure)"); break;
    }
}

static int ignored(const char *key, const char *const *ignore) {
    for (; ignore && *ignore; ignore++)
        if (!strcmp(*ignore, key)) return 1;
    return 0;
}

/* Compares key k of old and now; -1 with err when they differ. Keys ending
 * in "-sha256" hold the content hash of a file named by another key. */
static int compare_key(const char *path, const char *k, const json_value *old, const json_value *now, lm_error *err) {
    lm_text a = {0}, b = {0};
    value_text(old, &a);
    value_text(now, &b);
    int rc = 0;
    if (!a.data || !b.data) {
        rc = lm_fail(err, "out of memory");
    } else if (strcmp(a.data, b.data)) {
        size_t kl = strlen(k);
        int is_hash = kl > 7 && !strcmp(k + kl - 7, "-sha256");
        if (is_hash && !old && now)
            /* Without the hash nothing says the old answers came from the
             * same content, so the folder is not continued. */
            rc = lm_fail(err,
                         "%s: this folder was written by an older lemma that recorded no fingerprint of the --%.*s "
                         "%s (no \"%s\" in it), so its pool may hold answers to other content; choose another --out "
                         "(or delete the folder to start it over)",
                         path, (int)(kl - 7), k, !strcmp(k, "model-sha256") ? "files" : "file", k);
        else if (is_hash && !strcmp(k, "model-sha256"))
            rc = lm_fail(err,
                         "%s: this folder holds a run whose --model files had other content (sha256 %.12s..., now "
                         "%.12s...); rerun with the same model to continue it, or choose another --out",
                         path, a.data + (a.data[0] == '"'), b.data + (b.data[0] == '"'));
        else if (is_hash)
            rc = lm_fail(err,
                         "%s: this folder holds a run whose --%.*s file had other content (sha256 %.12s..., now "
                         "%.12s...); rerun with the same file to continue it, or choose another --out",
                         path, (int)(kl - 7), k, a.data + (a.data[0] == '"'), b.data + (b.data[0] == '"'));
        else
            rc = lm_fail(err,
                         "%s: this folder holds a run started with --%s %.200s; this command has --%s %.200s (rerun "
                         "with the same arguments to continue it, or choose another --out)",
                         path, k, a.data, k, b.data);
    }
    lm_text_free(&a);
    lm_text_free(&b);
    return rc;
}

int lm_run_args_check(const char *dir, const char *args_json, const char *const *ignore, lm_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/run.json", dir);
    if (access(path, F_OK)) {
        if (errno != ENOENT) return lm_fail(err, "%s: %s", path, strerror(errno));
        lm_text t = {0};
        if (lm_text_append(&t, args_json, strlen(args_json)) || lm_text_append(&t, "\n", 1)) return lm_fail(err, "out of memory");
        int rc = lm_write_file_atomic(path, t.data, t.len, err);
        lm_text_free(&t);
        return rc;
    }
    char *text;
    size_t len;
    if (lm_read_file(path, 1u << 20, &text, &len, err)) return -1;
    json_doc *old = json_parse(text, len, err), *now = NULL;
    free(text);
    if (!old) return lm_fail_prefix(err, "%s", path);
    int rc = 0;
    if (json_root(old)->type != JSON_OBJECT) {
        rc = lm_fail(err, "%s: expected a JSON object (the arguments of the run in this folder)", path);
        goto done;
    }
    if (!(now = json_parse(args_json, strlen(args_json), err))) {
        rc = -1;
        goto done;
    }
    for (const json_value *m = json_root(now)->child; m && !rc; m = m->next)
        if (!ignored(m->key, ignore)) rc = compare_key(path, m->key, json_get(json_root(old), m->key), m, err);
    for (const json_value *m = json_root(old)->child; m && !rc; m = m->next)
        if (!ignored(m->key, ignore) && !json_get(json_root(now), m->key))
            rc = compare_key(path, m->key, m, NULL, err);
done:
    json_free(old);
    json_free(now);
    return rc;
}
