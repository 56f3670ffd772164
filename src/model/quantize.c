/* quantize.c — Q8 checkpoints (quantize.h). */
#include "model/quantize.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/fileio.h"
#include "core/kernels.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "model/arch.h"
#include "model/config.h"

typedef struct name_list {
    char (*names)[LM_ARCH_NAME_MAX];
    int64_t n, cap;
} name_list;

static int add_matrix(void *ctx, const lm_arch_item *it) {
    name_list *l = ctx;
    if (it->ndim != 2 || (it->t->flags & LM_ARCH_CHECK_FINITE)) return 0; /* the router stays exact */
    /* V3.2's DSA indexer picks keys through its own FP8 emulation: its
     * selection is left exactly as stored */
    if (strstr(it->name, ".indexer.")) return 0;
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 256;
        void *p = realloc(l->names, (size_t)cap * sizeof *l->names);
        if (!p) return -1;
        l->names = p;
        l->cap = cap;
    }
    memcpy(l->names[l->n++], it->name, LM_ARCH_NAME_MAX);
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static int is_listed(const name_list *l, const char *name) {
    char key[LM_ARCH_NAME_MAX];
    if (strlen(name) >= sizeof key) return 0;
    snprintf(key, sizeof key, "%s", name);
    return bsearch(key, l->names, (size_t)l->n, sizeof *l->names, cmp_name) != NULL;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The quantizer behind the streamed write (lm_tensor_out.write): each I8
 * tensor is quantized row by row as the file reaches it, its q rows written
 * at once; only its scales are kept, for the `_q8_scale` tensor that follows
 * it in the file. Memory: one row of floats and one matrix's scales
 * (1/16 byte per weight), never the model. */
typedef struct q8_stream {
    const lm_tensor_set *set;
    const lm_tensor *scales_of;  /* the matrix whose scales d holds, or NULL */
    uint16_t *d;
    size_t d_cap;                /* in scales */
} q8_stream;

/* One quantized matrix: its source and the name of its scale tensor. */
typedef struct q8_out {
    q8_stream *qs;
    const lm_tensor *src;
    char scale_name[LM_ARCH_NAME_MAX + 16];
} q8_out;

/* Rows of t (F32, BF16, F16, or FP8 with its scale tensor) to Q8: q rows to
 * w (when w is not NULL), every scale into qs->d. */
static int quantize_tensor(q8_stream *qs, const lm_tensor *t, lm_atomic_writer *w, lm_error *err) {
    const lm_tensor_set *set = qs->set;
    const char *name = t->name;
    int64_t rows = t->shape[0], cols = t->shape[1], ks = (cols + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK;
    lm_mat m = {.dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data};
    float *scale_copy = NULL;
    qs->scales_of = NULL;
    if (t->dtype == LM_DTYPE_F8_E4M3) {
        char sname[LM_ARCH_NAME_MAX + 16];
        snprintf(sname, sizeof sname, "%s_scale_inv", name);
        const lm_tensor *s = lm_st_find(set, sname);
        int64_t br = (rows + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK, bc = (cols + LM_FP8_BLOCK - 1) / LM_FP8_BLOCK;
        if (!s || s->dtype != LM_DTYPE_F32 || s->ndim != 2 || s->shape[0] != br || s->shape[1] != bc)
            return lm_fail(err, "%s: FP8 tensor '%s' needs an F32 '%s' of shape [%lld, %lld]",
                           lm_st_file_path(set, t->file), name, sname, (long long)br, (long long)bc);
        if (!(scale_copy = malloc((size_t)(br * bc) * sizeof(float)))) return lm_fail(err, "out of memory");
        memcpy(scale_copy, s->data, (size_t)(br * bc) * sizeof(float)); /* may be unaligned in the file */
        m.scale_inv = scale_copy;
    } else if (t->dtype != LM_DTYPE_F32 && t->dtype != LM_DTYPE_BF16 && t->dtype != LM_DTYPE_F16) {
        return lm_fail(err, "%s: tensor '%s' has dtype %s, expected F32, BF16, F16 or F8_E4M3 to quantize",
                       lm_st_file_path(set, t->file), name, lm_dtype_name(t->dtype));
    }
    if ((size_t)(rows * ks) > qs->d_cap) {
        free(qs->d);
        qs->d_cap = (size_t)(rows * ks);
        qs->d = malloc(qs->d_cap * sizeof *qs->d);
        if (!qs->d) qs->d_cap = 0;
    }
    float *row = malloc((size_t)cols * sizeof(float));
    int8_t *q = malloc((size_t)cols);
    int rc = 0;
    if (!qs->d || !row || !q) rc = lm_fail(err, "out of memory quantizing '%s' (%lld x %lld)", name, (long long)rows,
                                           (long long)cols);
    for (int64_t r = 0; !rc && r < rows; r++) {
        lm_mat_row(&m, r, row);
        if (lm_q8_quantize_row(row, cols, q, qs->d + r * ks)) {
            int64_t c = 0;
            while (c < cols && isfinite(row[c]) && row[c] < 8e6f && row[c] > -8e6f) c++;
            rc = lm_fail(err, "%s: tensor '%s' row %lld column %lld is %g, expected a finite weight of magnitude "
                              "below 8e6 (Q8 scales are F16)",
                         lm_st_file_path(set, t->file), name, (long long)r, (long long)c, c < cols ? row[c] : 0.0);
        } else if (w) {
            lm_atomic_put(w, q, (size_t)cols);
        }
    }
    free(q);
    free(row);
    free(scale_copy);
    if (!rc) qs->scales_of = t;
    return rc ? -1 : 0;
}

static int write_q8_weights(void *ctx, const lm_tensor_out *o, lm_atomic_writer *w, lm_error *err) {
    const q8_out *q = ctx;
    (void)o;
    return quantize_tensor(q->qs, q->src, w, err);
}

static int write_q8_scales(void *ctx, const lm_tensor_out *o, lm_atomic_writer *w, lm_error *err) {
    const q8_out *q = ctx;
    /* the file holds the weights first (sorted names: "X" < "X_q8_scale"); should
     * another tensor come between, the scales are computed again */
    if (q->qs->scales_of != q->src && quantize_tensor(q->qs, q->src, NULL, err)) return -1;
    lm_atomic_put(w, q->qs->d, (size_t)(o->shape[0] * o->shape[1]) * sizeof *q->qs->d);
    return 0;
}

/* The end (one past) of the JSON value that starts at off in valid JSON text. */
static size_t json_value_end(const char *text, size_t len, size_t off) {
    int depth = 0;
    for (size_t i = off; i < len; i++) {
        char c = text[i];
        if (c == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\') i++;
            if (!depth) return i + 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0) return depth < 0 ? i : i + 1;
        } else if (!depth && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            return i;
        }
    }
    return len;
}

/* config.json without an FP8 quantization_config (the Q8 model holds no FP8
 * weights: a reader would take it for FP8), the rest byte for byte. *out is
 * malloc'd; text itself is returned (*out NULL) when there is nothing to drop. */
static int config_without_fp8(const char *path, const char *text, size_t len, char **out, size_t *out_len,
                              lm_error *err) {
    *out = NULL;
    json_doc *doc = json_parse(text, len, err);
    if (!doc) return lm_fail_prefix(err, "%s", path), -1;
    const json_value *root = json_root(doc), *prev = NULL, *qc = NULL;
    for (const json_value *m = root->type == JSON_OBJECT ? root->child : NULL; m && !qc; m = m->next) {
        if (m->key_len == 19 && !memcmp(m->key, "quantization_config", 19)) qc = m;
        else prev = m;
    }
    const json_value *qm = qc ? json_get(qc, "quant_method") : NULL;
    if (qm && qm->type == JSON_STRING && !strcmp(qm->str, "fp8")) {
        /* drop from the end of the previous member (or just after '{') to the end
         * of this one, and for the first member the comma that follows it */
        size_t from = prev ? json_value_end(text, len, prev->offset) : root->offset + 1;
        size_t to = json_value_end(text, len, qc->offset);
        if (!prev) {
            size_t k = to;
            while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r')) k++;
            if (k < len && text[k] == ',') to = k + 1;
        }
        if (!(*out = malloc(len - (to - from) + 1))) {
            json_free(doc);
            return lm_fail(err, "out of memory");
        }
        memcpy(*out, text, from);
        memcpy(*out + from, text + to, len - to);
        *out_len = len - (to - from);
    }
    json_free(doc);
    return 0;
}

/* Copies the non-weight files (config, tokenizer, ...) of in_dir. */
static int copy_side_files(const char *in_dir, const char *out_dir, lm_error *err) {
    DIR *d = opendir(in_dir);
    if (!d) return lm_fail(err, "%s: cannot list the directory", in_dir);
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.' || ends_with(e->d_name, ".safetensors") ||
            ends_with(e->d_name, ".safetensors.index.json"))
            continue;
        char src[PATH_MAX], dst[PATH_MAX];
        struct stat st;
        snprintf(src, sizeof src, "%s/%s", in_dir, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", out_dir, e->d_name);
        if (stat(src, &st) || !S_ISREG(st.st_mode)) continue;
        char *text = NULL;
        size_t len = 0;
        char *edited = NULL;
        size_t edited_len = 0;
        rc = lm_read_file(src, (size_t)1 << 30, &text, &len, err) ||
                     (!strcmp(e->d_name, "config.json") && config_without_fp8(src, text, len, &edited, &edited_len, err)) ||
                     lm_write_file_atomic(dst, edited ? edited : text, edited ? edited_len : len, err)
                 ? -1
                 : 0;
        free(edited);
        free(text);
    }
    closedir(d);
    return rc;
}

/* The first of in_dir's side files that out_dir already holds (a file
 * lemma did not make: it is neither overwritten nor, after a failure,
 * removed), as a path in buf; NULL when none. */
static const char *side_file_clash(const char *in_dir, const char *out_dir, char *buf, size_t size) {
    DIR *d = opendir(in_dir);
    if (!d) return NULL;
    const char *clash = NULL;
    struct dirent *e;
    while (!clash && (e = readdir(d))) {
        if (e->d_name[0] == '.' || ends_with(e->d_name, ".safetensors") ||
            ends_with(e->d_name, ".safetensors.index.json"))
            continue;
        char src[PATH_MAX];
        struct stat st;
        snprintf(src, sizeof src, "%s/%s", in_dir, e->d_name);
        if (stat(src, &st) || !S_ISREG(st.st_mode)) continue;
        snprintf(buf, size, "%s/%s", out_dir, e->d_name);
        if (!lstat(buf, &st)) clash = buf;
    }
    closedir(d);
    return clash;
}

/* Undoes copy_side_files after a failed write (out_dir existed before and
 * held none of these files: side_file_clash). */
static void remove_side_files(const char *in_dir, const char *out_dir) {
    DIR *d = opendir(in_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || ends_with(e->d_name, ".safetensors") ||
            ends_with(e->d_name, ".safetensors.index.json"))
            continue;
        char dst[PATH_MAX];
        snprintf(dst, sizeof dst, "%s/%s", out_dir, e->d_name);
        unlink(dst);
    }
    closedir(d);
}

int lm_quantize_q8(const char *in_dir, const char *out_dir, lm_quantize_stats *st, lm_error *err) {
    memset(st, 0, sizeof *st);
    char probe[PATH_MAX];
    struct stat sb;
    snprintf(probe, sizeof probe, "%s/model.safetensors", out_dir);
    int holds = !stat(probe, &sb);
    snprintf(probe, sizeof probe, "%s/model.safetensors.index.json", out_dir);
    holds |= !stat(probe, &sb);
    if (holds) return lm_fail(err, "%s already holds a checkpoint; choose another OUT_DIR or remove it first", out_dir);
    const char *clash = side_file_clash(in_dir, out_dir, probe, sizeof probe);
    if (clash) return lm_fail(err, "%s already exists; lemma quantize writes the model's files into a new folder or one without them", clash);
    lm_config cfg;
    lm_tensor_set *set = NULL;
    if (lm_config_load(in_dir, &cfg, err) || lm_st_open_dir(in_dir, &set, err)) return -1;
    name_list quant = {0};
    int64_t n = lm_st_count(set);
    lm_tensor_out *outs = calloc((size_t)(2 * n + 1), sizeof *outs);
    q8_out *q8 = calloc((size_t)(n + 1), sizeof *q8);
    q8_stream qs = {.set = set};
    int rc = 0, made_dir = stat(out_dir, &sb) != 0;
    if (!outs || !q8 || lm_arch_each(&cfg, LM_ARCH_MAIN, add_matrix, &quant)) {
        rc = lm_fail(err, "out of memory");
        goto done;
    }
    /* a tied config that stores a head anyway: the loader binds that one too */
    if (cfg.tie_word_embeddings && lm_st_find(set, "lm_head.weight")) {
        lm_arch_tensor head = {0};
        lm_arch_item it = {.t = &head, .ndim = 2, .name = "lm_head.weight"};
        if (add_matrix(&quant, &it)) {
            rc = lm_fail(err, "out of memory");
            goto done;
        }
    }
    qsort(quant.names, (size_t)quant.n, sizeof *quant.names, cmp_name);
    int64_t no = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        const lm_tensor *t = lm_st_tensor(set, i);
        st->bytes_in += (double)t->nbytes;
        if (ends_with(t->name, "_scale_inv")) { /* dropped when its FP8 weight is quantized */
            char wname[LM_ARCH_NAME_MAX + 16];
            size_t len = strlen(t->name) - strlen("_scale_inv");
            if (len < sizeof wname) {
                memcpy(wname, t->name, len);
                wname[len] = 0;
                const lm_tensor *w = lm_st_find(set, wname);
                if (w && w->dtype == LM_DTYPE_F8_E4M3 && w->ndim == 2 && is_listed(&quant, wname)) continue;
            }
        }
        lm_tensor_out *o = &outs[no++];
        o->name = t->name;
        o->dtype = t->dtype;
        o->ndim = t->ndim;
        memcpy(o->shape, t->shape, sizeof o->shape);
        o->data = t->data;
        if (t->ndim != 2 || t->dtype == LM_DTYPE_I8 || !is_listed(&quant, t->name)) continue;
        /* quantized while the file is written (q8_stream) */
        q8[i].qs = &qs;
        q8[i].src = t;
        snprintf(q8[i].scale_name, sizeof q8[i].scale_name, "%s_q8_scale", t->name);
        o->dtype = LM_DTYPE_I8;
        o->data = NULL;
        o->write = write_q8_weights;
        o->ctx = &q8[i];
        lm_tensor_out *s = &outs[no++];
        s->name = q8[i].scale_name;
        s->dtype = LM_DTYPE_F16;
        s->ndim = 2;
        s->shape[0] = t->shape[0];
        s->shape[1] = (t->shape[1] + LM_Q8_BLOCK - 1) / LM_Q8_BLOCK;
        s->write = write_q8_scales;
        s->ctx = &q8[i];
        st->matrices++;
        st->params += t->numel;
    }
    for (int64_t i = 0; i < no; i++) {
        int64_t numel = 1;
        for (int dd = 0; dd < outs[i].ndim; dd++) numel *= outs[i].shape[dd];
        st->bytes_out += (double)numel * (double)lm_dtype_size(outs[i].dtype);
    }
    if (!rc) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
        rc = lm_mkdir_p(out_dir, err) || copy_side_files(in_dir, out_dir, err) ||
                     lm_st_write(path, outs, no, "{\"format\":\"pt\",\"lemma_quantization\":\"q8\"}", err)
                 ? -1
                 : 0;
        /* a weight that cannot be quantized shows only while writing: no half output stays */
        if (rc && made_dir) {
            lm_error ignored;
            lm_remove_tree(out_dir, &ignored);
        } else if (rc) {
            remove_side_files(in_dir, out_dir);
        }
    }
done:
    free(qs.d);
    free(q8);
    free(outs);
    free(quant.names);
    lm_st_close(set);
    return rc;
}
