/* lock.c — lemma.lock reading, writing, directory hashing; see lock.h. */
#include "recipe/lock.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/dirlock.h"
#include "core/fileio.h"
#include "core/sha256.h"
#include "core/mathfn.h"
#include "formats/json.h"
#include "formats/jsonw.h"

void lm_lock_files_free(lm_lock_file *files, int n) {
    for (int i = 0; i < n; i++) free(files[i].path);
    free(files);
}

void lm_lock_free(lm_lock *lk) {
    free(lk->recipe);
    for (int i = 0; i < lk->n_inputs; i++) {
        free(lk->inputs[i].name);
        free(lk->inputs[i].path);
    }
    free(lk->inputs);
    for (int i = 0; i < lk->n_stages; i++) {
        free(lk->stages[i].name);
        free(lk->stages[i].kind);
    }
    free(lk->stages);
    lm_lock_files_free(lk->files, lk->n_files);
    memset(lk, 0, sizeof *lk);
}

/* ---- editing ---------------------------------------------------------------- */

int lm_lock_set_recipe(lm_lock *lk, const char *name, const char *sha256) {
    char *n = strdup(name);
    if (!n) return -1;
    free(lk->recipe);
    lk->recipe = n;
    snprintf(lk->recipe_sha256, sizeof lk->recipe_sha256, "%s", sha256);
    return 0;
}

const lm_lock_input *lm_lock_find_input(const lm_lock *lk, const char *name) {
    for (int i = 0; i < lk->n_inputs; i++)
        if (!strcmp(lk->inputs[i].name, name)) return &lk->inputs[i];
    return NULL;
}

int lm_lock_set_input(lm_lock *lk, const char *name, const char *path, const char *sha256) {
    lm_lock_input *in = (lm_lock_input *)lm_lock_find_input(lk, name);
    char *p = strdup(path);
    if (!p) return -1;
    if (!in) {
        lm_lock_input *ni = realloc(lk->inputs, (size_t)(lk->n_inputs + 1) * sizeof *ni);
        char *n = strdup(name);
        if (!ni || !n) {
            if (ni) lk->inputs = ni;
            free(n);
            free(p);
            return -1;
        }
        lk->inputs = ni;
        in = &lk->inputs[lk->n_inputs++];
        memset(in, 0, sizeof *in);
        in->name = n;
    }
    free(in->path);
    in->path = p;
    snprintf(in->sha256, sizeof in->sha256, "%s", sha256);
    return 0;
}

const lm_lock_stage *lm_lock_find_stage(const lm_lock *lk, const char *name) {
    for (int i = 0; i < lk->n_stages; i++)
        if (!strcmp(lk->stages[i].name, name)) return &lk->stages[i];
    return NULL;
}

int lm_lock_set_stage(lm_lock *lk, const char *name, const char *kind, const char *key, const char *outputs_sha256) {
    lm_lock_stage *st = (lm_lock_stage *)lm_lock_find_stage(lk, name);
    char *k = strdup(kind);
    if (!k) return -1;
    if (!st) {
        lm_lock_stage *ns = realloc(lk->stages, (size_t)(lk->n_stages + 1) * sizeof *ns);
        char *n = strdup(name);
        if (!ns || !n) {
            if (ns) lk->stages = ns;
            free(n);
            free(k);
            return -1;
        }
        lk->stages = ns;
        st = &lk->stages[lk->n_stages++];
        memset(st, 0, sizeof *st);
        st->name = n;
    }
    free(st->kind);
    st->kind = k;
    snprintf(st->key, sizeof st->key, "%s", key);
    snprintf(st->outputs_sha256, sizeof st->outputs_sha256, "%s", outputs_sha256);
    return 0;
}

static int cmp_file(const void *a, const void *b) {
    return strcmp(((const lm_lock_file *)a)->path, ((const lm_lock_file *)b)->path);
}

static int under(const char *path, const char *prefix) {
    size_t n = strlen(prefix);
    if (n && prefix[n - 1] == '/') return !strncmp(path, prefix, n);
    return !strcmp(path, prefix) || (!strncmp(path, prefix, n) && path[n] == '/');
}

int lm_lock_replace_files(lm_lock *lk, const char *prefix, const lm_lock_file *files, int n) {
    int keep = 0;
    for (int i = 0; i < lk->n_files; i++) keep += !under(lk->files[i].path, prefix);
    lm_lock_file *nf = malloc((size_t)(keep + n + 1) * sizeof *nf);
    if (!nf) return -1;
    int k = 0;
    for (int i = 0; i < n; i++) {
        nf[k].path = strdup(files[i].path);
        if (!nf[k].path) {
            lm_lock_files_free(nf, k);
            return -1;
        }
        memcpy(nf[k].sha256, files[i].sha256, 65);
        k++;
    }
    for (int i = 0; i < lk->n_files; i++) {
        if (under(lk->files[i].path, prefix)) free(lk->files[i].path);
        else nf[k++] = lk->files[i];
    }
    free(lk->files);
    lk->files = nf;
    lk->n_files = k;
    qsort(lk->files, (size_t)k, sizeof *nf, cmp_file);
    return 0;
}

const lm_lock_file *lm_lock_find_file(const lm_lock *lk, const char *path) {
    lm_lock_file key = {(char *)path, {0}};
    return lk->n_files ? bsearch(&key, lk->files, (size_t)lk->n_files, sizeof key, cmp_file) : NULL;
}

/* ---- reading and writing ----------------------------------------------------------- */

static int hex_field(const json_value *v, char out[65]) {
    uint8_t d[32];
    if (!v || v->type != JSON_STRING || lm_sha256_parse(v->str, d)) return -1;
    lm_sha256_hex(d, out);
    return 0;
}

static int plain_string(const json_value *v) { return v && v->type == JSON_STRING && strlen(v->str) == v->len; }

int lm_lock_parse(const char *text, size_t len, const char *name, lm_lock *lk, lm_error *err) {
    memset(lk, 0, sizeof *lk);
    json_doc *doc = json_parse(text, len, err);
    if (!doc) return lm_fail_prefix(err, "%s", name);
    const json_value *root = json_root(doc), *v;
    int64_t ver;
    v = json_get(root, "lemma_lock");
    if (!v) {
        lm_fail(err, "%s: no \"lemma_lock\" version field (expected %d): not a lock file", name, LM_LOCK_VERSION);
        goto fail;
    }
    if (!json_as_int(v, &ver) || ver != LM_LOCK_VERSION) {
        char found[64];
        if (json_as_int(v, &ver)) snprintf(found, sizeof found, "%lld", (long long)ver);
        else snprintf(found, sizeof found, "a JSON %s", json_type_name(v->type));
        lm_fail(err, "%s: byte %zu: \"lemma_lock\" is %s, expected %d (a lock file of another lemma version)", name,
                v->offset, found, LM_LOCK_VERSION);
        goto fail;
    }
    /* "arith": the arithmetic version (core/mathfn.h); locks written before
     * it existed were built with version 1 */
    lk->arith_version = 1;
    v = json_get(root, "arith");
    if (v) {
        int64_t a;
        if (!json_as_int(v, &a) || a < 1 || a > 1000000) {
            lm_fail(err, "%s: byte %zu: \"arith\" must be a positive integer (the arithmetic version)", name, v->offset);
            goto fail;
        }
        lk->arith_version = (int)a;
    }
    v = json_get(root, "recipe");
    if (!plain_string(v) || hex_field(json_get(root, "recipe_sha256"), lk->recipe_sha256)) {
        lm_fail(err, "%s: expected \"recipe\" (a string) and \"recipe_sha256\" (64 hex digits)", name);
        goto fail;
    }
    if (!(lk->recipe = strdup(v->str))) goto oom;
    const json_value *ins = json_get(root, "inputs"), *sts = json_get(root, "stages"), *arts = json_get(root, "artifacts");
    if (!ins || ins->type != JSON_OBJECT || !sts || sts->type != JSON_OBJECT || !arts || arts->type != JSON_OBJECT) {
        lm_fail(err, "%s: expected objects \"inputs\", \"stages\" and \"artifacts\"", name);
        goto fail;
    }
    for (const json_value *e = ins->child; e; e = e->next) {
        char h[65];
        const json_value *p = json_get(e, "path");
        if (!plain_string(p) || hex_field(json_get(e, "sha256"), h) || strlen(e->key) != e->key_len) {
            lm_fail(err, "%s: byte %zu: inputs.%s: expected {\"path\": string, \"sha256\": 64 hex digits}", name,
                    e->offset, e->key);
            goto fail;
        }
        if (lm_lock_set_input(lk, e->key, p->str, h)) goto oom;
    }
    for (const json_value *e = sts->child; e; e = e->next) {
        char k[65], o[65];
        const json_value *kind = json_get(e, "kind");
        if (!plain_string(kind) || hex_field(json_get(e, "key"), k) || hex_field(json_get(e, "outputs_sha256"), o) ||
            strlen(e->key) != e->key_len) {
            lm_fail(err, "%s: byte %zu: stages.%s: expected {\"kind\", \"key\", \"outputs_sha256\"}", name, e->offset, e->key);
            goto fail;
        }
        if (lm_lock_set_stage(lk, e->key, kind->str, k, o)) goto oom;
    }
    lk->files = calloc(arts->len + 1, sizeof *lk->files);
    if (!lk->files) goto oom;
    for (const json_value *e = arts->child; e; e = e->next) {
        lm_lock_file *f = &lk->files[lk->n_files];
        if (hex_field(e, f->sha256) || strlen(e->key) != e->key_len || !e->key_len) {
            lm_fail(err, "%s: byte %zu: artifacts: expected \"path\": \"<64 hex digits>\"", name, e->offset);
            goto fail;
        }
        if (!(f->path = strdup(e->key))) goto oom;
        lk->n_files++;
    }
    qsort(lk->files, (size_t)lk->n_files, sizeof *lk->files, cmp_file);
    for (int i = 1; i < lk->n_files; i++)
        if (!strcmp(lk->files[i].path, lk->files[i - 1].path)) {
            lm_fail(err, "%s: artifacts: \"%s\" is listed twice", name, lk->files[i].path);
            goto fail;
        }
    json_free(doc);
    return 0;
oom:
    lm_fail(err, "out of memory");
fail:
    json_free(doc);
    lm_lock_free(lk);
    return -1;
}

int lm_lock_read(const char *path, lm_lock *lk, lm_error *err) {
    memset(lk, 0, sizeof *lk);
    if (access(path, F_OK) && errno == ENOENT) return 1;
    char *text;
    size_t len;
    if (lm_read_file(path, (size_t)256 << 20, &text, &len, err)) return -1;
    int rc = lm_lock_parse(text, len, path, lk, err);
    free(text);
    return rc;
}

#define PUT(s) bad |= lm_text_append(&t, s, strlen(s))

int lm_lock_write(const char *path, const lm_lock *lk, lm_error *err) {
    lm_text t = {0};
    int bad = 0;
    char line[256];
    snprintf(line, sizeof line, "{\n  \"lemma_lock\": 1,\n  \"arith\": %d,\n  \"recipe\": ", LM_ARITH_VERSION);
    PUT(line);
    bad |= jw_str(&t, lk->recipe ? lk->recipe : "");
    snprintf(line, sizeof line, ",\n  \"recipe_sha256\": \"%s\",\n  \"inputs\": {", lk->recipe_sha256);
    PUT(line);
    for (int i = 0; i < lk->n_inputs; i++) {
        PUT(i ? ",\n    " : "\n    ");
        bad |= jw_str(&t, lk->inputs[i].name);
        PUT(": {\"path\": ");
        bad |= jw_str(&t, lk->inputs[i].path);
        snprintf(line, sizeof line, ", \"sha256\": \"%s\"}", lk->inputs[i].sha256);
        PUT(line);
    }
    PUT(lk->n_inputs ? "\n  },\n  \"stages\": {" : "},\n  \"stages\": {");
    for (int i = 0; i < lk->n_stages; i++) {
        PUT(i ? ",\n    " : "\n    ");
        bad |= jw_str(&t, lk->stages[i].name);
        PUT(": {\"kind\": ");
        bad |= jw_str(&t, lk->stages[i].kind);
        snprintf(line, sizeof line, ", \"key\": \"%s\", \"outputs_sha256\": \"%s\"}", lk->stages[i].key,
                 lk->stages[i].outputs_sha256);
        PUT(line);
    }
    PUT(lk->n_stages ? "\n  },\n  \"artifacts\": {" : "},\n  \"artifacts\": {");
    for (int i = 0; i < lk->n_files; i++) {
        PUT(i ? ",\n    " : "\n    ");
        bad |= jw_str(&t, lk->files[i].path);
        snprintf(line, sizeof line, ": \"%s\"", lk->files[i].sha256);
        PUT(line);
    }
    PUT(lk->n_files ? "\n  }\n}\n" : "}\n}\n");
    if (bad) {
        lm_text_free(&t);
        return lm_fail(err, "out of memory");
    }
    int rc = lm_write_file_atomic(path, t.data, t.len, err);
    lm_text_free(&t);
    return rc;
}

#undef PUT

/* ---- hashing a directory ------------------------------------------------------------ */

int lm_lock_volatile(const char *relpath) {
    const char *p = relpath;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (slash && n == 4 && !memcmp(p, "logs", 4)) return 1;
        if (!slash) {
            if (!strcmp(p, "metrics.jsonl") || !strcmp(p, LM_DIR_LOCK_NAME) || !strcmp(p, LM_DIR_MARKER_NAME)) return 1;
            if (n >= 4 && (!strcmp(p + n - 4, ".log") || !strcmp(p + n - 4, ".svg"))) return 1;
            return 0;
        }
        p = slash + 1;
    }
}

typedef struct file_list {
    lm_lock_file *v;
    int n, cap;
} file_list;

static int walk(const char *root, const char *rel, file_list *out, int depth, lm_error *err) {
    if (depth > 32) return lm_fail(err, "%s/%s: directories nested too deep", root, rel);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, rel);
    DIR *dp = opendir(dir);
    if (!dp) return lm_fail(err, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char r2[4096], full[8192];
        snprintf(r2, sizeof r2, "%s/%s", rel, e->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r2);
        struct stat st;
        if (lstat(full, &st)) {
            rc = lm_fail(err, "%s: %s", full, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk(root, r2, out, depth + 1, err);
            continue;
        }
        if (lm_lock_volatile(r2)) continue;
        if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) continue;
        if (out->n == out->cap) {
            int nc = out->cap ? out->cap * 2 : 16;
            lm_lock_file *nv = realloc(out->v, (size_t)nc * sizeof *nv);
            if (!nv) {
                rc = lm_fail(err, "out of memory");
                break;
            }
            out->v = nv;
            out->cap = nc;
        }
        lm_lock_file *f = &out->v[out->n];
        if (!(f->path = strdup(r2))) {
            rc = lm_fail(err, "out of memory");
            break;
        }
        out->n++;
        if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t n = readlink(full, target, sizeof target);
            if (n < 0) {
                rc = lm_fail(err, "%s: %s", full, strerror(errno));
                break;
            }
            lm_sha256 h;
            uint8_t d[32];
            lm_sha256_init(&h);
            lm_sha256_update(&h, "symlink\0", 8);
            lm_sha256_update(&h, target, (size_t)n);
            lm_sha256_final(&h, d);
            lm_sha256_hex(d, f->sha256);
        } else {
            rc = lm_sha256_file(full, f->sha256, err);
        }
    }
    closedir(dp);
    return rc;
}

int lm_lock_hash_tree(const char *root, const char *rel, lm_lock_file **files, int *n, lm_error *err) {
    file_list l = {0};
    *files = NULL;
    *n = 0;
    if (walk(root, rel, &l, 0, err)) {
        lm_lock_files_free(l.v, l.n);
        return -1;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_file);
    *files = l.v;
    *n = l.n;
    return 0;
}

void lm_lock_digest(const lm_lock_file *files, int n, char hex[65]) {
    lm_sha256 h;
    uint8_t d[32];
    lm_sha256_init(&h);
    for (int i = 0; i < n; i++) {
        lm_sha256_update(&h, files[i].path, strlen(files[i].path));
        lm_sha256_update(&h, " ", 1);
        lm_sha256_update(&h, files[i].sha256, 64);
        lm_sha256_update(&h, "\n", 1);
    }
    lm_sha256_final(&h, d);
    lm_sha256_hex(d, hex);
}

int lm_lock_compare(const lm_lock *a, const lm_lock *b,
                    void (*fn)(void *ctx, const char *what, const char *path, const char *sha_a, const char *sha_b),
                    void *ctx) {
    int i = 0, j = 0, diffs = 0;
    while (i < a->n_files || j < b->n_files) {
        int c = i >= a->n_files ? 1 : j >= b->n_files ? -1 : strcmp(a->files[i].path, b->files[j].path);
        if (c < 0) {
            fn(ctx, "missing", a->files[i].path, a->files[i].sha256, NULL);
            i++;
            diffs++;
        } else if (c > 0) {
            fn(ctx, "extra", b->files[j].path, NULL, b->files[j].sha256);
            j++;
            diffs++;
        } else {
            if (strcmp(a->files[i].sha256, b->files[j].sha256)) {
                fn(ctx, "differs", a->files[i].path, a->files[i].sha256, b->files[j].sha256);
                diffs++;
            }
            i++;
            j++;
        }
    }
    return diffs;
}
