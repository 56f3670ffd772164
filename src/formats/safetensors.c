/* safetensors.c — validated, memory-mapped safetensors reading and atomic
 * writing; see safetensors.h. */
#include "formats/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "formats/json.h"

/* A header larger than this is not a checkpoint we can trust: real V3 shards
 * have headers of a few hundred KB, and the reference safetensors library
 * refuses more than 100,000,000 bytes too. Reading a header takes at most
 * about 4 bytes of memory per header byte (see parse_file), so this also
 * caps what a hostile header can make us allocate at ~400 MB. */
#define ST_MAX_HEADER LM_ST_MAX_HEADER

typedef struct st_file {
    char *path;
    void *map;
    size_t size;
    int mapped;             /* map is ours to munmap (else the caller's bytes) */
    char *names;            /* the NUL-terminated names of this file's tensors, one block */
} st_file;

struct lm_tensor_set {
    st_file *files;
    int nfiles;
    lm_tensor *tensors;
    int64_t ntensors;
    int64_t ntensors_reserved;   /* while a file's header is read: room in tensors */
    size_t name_bytes_reserved;  /* ... and in that file's names block */
    int64_t *slots;         /* hash table of tensor indices, -1 = empty */
    int64_t nslots;
};

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; }
    return h;
}

static int set_build_index(lm_tensor_set *set, lm_error *err) {
    int64_t n = 16;
    while (n < set->ntensors * 2) n *= 2;
    free(set->slots);
    set->slots = malloc((size_t)n * sizeof *set->slots);
    if (!set->slots) return lm_fail(err, "out of memory");
    for (int64_t i = 0; i < n; i++) set->slots[i] = -1;
    set->nslots = n;
    for (int64_t i = 0; i < set->ntensors; i++) {
        const char *name = set->tensors[i].name;
        uint64_t h = hash_name(name) & (uint64_t)(n - 1);
        while (set->slots[h] >= 0) {
            if (!strcmp(set->tensors[set->slots[h]].name, name)) {
                int f1 = set->tensors[set->slots[h]].file, f2 = set->tensors[i].file;
                if (f1 == f2)
                    return lm_fail(err, "%s: tensor '%s' appears twice in the header", set->files[f1].path, name);
                return lm_fail(err, "%s: tensor '%s' appears twice (also in %s)", set->files[f2].path, name,
                               set->files[f1].path);
            }
            h = (h + 1) & (uint64_t)(n - 1);
        }
        set->slots[h] = i;
    }
    return 0;
}

const lm_tensor *lm_st_find(const lm_tensor_set *set, const char *name) {
    if (!set || !set->nslots) return NULL;
    uint64_t mask = (uint64_t)(set->nslots - 1), h = hash_name(name) & mask;
    while (set->slots[h] >= 0) {
        const lm_tensor *t = &set->tensors[set->slots[h]];
        if (!strcmp(t->name, name)) return t;
        h = (h + 1) & mask;
    }
    return NULL;
}

int64_t lm_st_count(const lm_tensor_set *set) { return set->ntensors; }
const lm_tensor *lm_st_tensor(const lm_tensor_set *set, int64_t i) {
    return i >= 0 && i < set->ntensors ? &set->tensors[i] : NULL;
}
const char *lm_st_file_path(const lm_tensor_set *set, int file) {
    return file >= 0 && file < set->nfiles ? set->files[file].path : "?";
}
size_t lm_st_total_bytes(const lm_tensor_set *set) {
    size_t s = 0;
    for (int64_t i = 0; i < set->ntensors; i++) s += set->tensors[i].nbytes;
    return s;
}

void lm_st_close(lm_tensor_set *set) {
    if (!set) return;
    for (int i = 0; i < set->nfiles; i++) {
        if (set->files[i].mapped) munmap(set->files[i].map, set->files[i].size);
        free(set->files[i].path);
        free(set->files[i].names);
    }
    free(set->files);
    free(set->tensors);
    free(set->slots);
    free(set);
}

/* Bytes of s written as a JSON string literal (json_write_string). */
static size_t quoted_len(const char *s) {
    size_t n = 2;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        n += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 2 : c < 0x20 ? 6 : 1;
    }
    return n;
}

/* No control characters (nor NUL): names go into one-line error messages. */
static int printable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20) return 0;
    return 1;
}

typedef struct span { uint64_t begin, end; int64_t tensor; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_file(lm_tensor_set *set, int fi, lm_error *err);

/* Appends a file entry for bytes[0..size) to set; returns its index or -1.
 * mapped: the bytes are an mmap the set now owns. */
static int add_file(lm_tensor_set *set, const char *path, void *bytes, size_t size, int mapped, lm_error *err) {
    st_file *nf = realloc(set->files, (size_t)(set->nfiles + 1) * sizeof *nf);
    if (!nf) {
        if (mapped) munmap(bytes, size);
        return lm_fail(err, "out of memory");
    }
    set->files = nf;
    int fi = set->nfiles++;
    set->files[fi].map = bytes;
    set->files[fi].size = size;
    set->files[fi].mapped = mapped;
    set->files[fi].names = NULL;
    set->files[fi].path = strdup(path);
    if (!set->files[fi].path) return lm_fail(err, "out of memory");
    return fi;
}

/* Maps path and appends its tensors to set. O_NONBLOCK: a FIFO in place of
 * a checkpoint is refused below instead of blocking the open. */
static int load_file(lm_tensor_set *set, const char *path, lm_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        close(fd);
        return lm_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(stt.st_mode)) {
        close(fd);
        return lm_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)stt.st_size;
    if (size < 8) {
        close(fd);
        return lm_fail(err, "%s: file is %zu bytes, expected at least 8 (header length)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return lm_fail(err, "%s: mmap failed: %s", path, strerror(errno));
    int fi = add_file(set, path, map, size, 1, err);
    return fi < 0 ? -1 : parse_file(set, fi, err);
}

/* The header is read in two streaming passes (json_parse_each_member): the
 * first counts the tensors and their name bytes, the second validates each
 * entry into an lm_tensor of an array allocated once at its final size. Peak
 * memory is then per tensor 112 bytes (lm_tensor) + its name + 32 (the name
 * index) + 24 (the overlap check), plus the JSON key index, against at least
 * 48 header bytes per entry ("n":{"dtype":"F32","shape":[],"data_offsets":[0,0]},):
 * under 4 bytes per header byte, whatever the header holds. */
typedef struct header_pass {
    lm_tensor_set *set;
    int fi;
    const unsigned char *data;
    uint64_t data_size;
    int64_t count;               /* pass 1: tensors; pass 2: tensors filled */
    size_t name_bytes;           /* pass 1: sum of name lengths + NULs; pass 2: used */
    lm_error *err;
} header_pass;

static int is_metadata(const json_value *m) { return m->key_len == 12 && !memcmp(m->key, "__metadata__", 12); }

static int count_entry(void *ctx, const json_value *m) {
    header_pass *h = ctx;
    if (is_metadata(m)) return 0;
    h->count++;
    h->name_bytes += m->key_len + 1;
    return 0;
}

static int read_entry(void *ctx, const json_value *m) {
    header_pass *h = ctx;
    lm_error *err = h->err;
    st_file *f = &h->set->files[h->fi];
    const char *path = f->path;
    if (is_metadata(m)) {
        if (m->type != JSON_OBJECT)
            return lm_fail(err, "%s: __metadata__ is a JSON %s, expected an object", path, json_type_name(m->type));
        return 0;
    }
    if (strlen(m->key) != m->key_len || m->key_len == 0)
        return lm_fail(err, "%s: header byte %zu: tensor name is empty or contains NUL", path, m->offset);
    if (!printable(m->key, m->key_len))
        return lm_fail(err, "%s: header byte %zu: tensor name contains a control character (expected printable UTF-8)",
                       path, m->offset);
    if (m->type != JSON_OBJECT)
        return lm_fail(err, "%s: tensor '%s': entry is a JSON %s, expected an object", path, m->key,
                       json_type_name(m->type));
    /* The two passes see the same bytes: a count that differs is a bug. */
    if (h->count >= h->set->ntensors_reserved || h->name_bytes + m->key_len + 1 > h->set->name_bytes_reserved)
        return lm_fail(err, "%s: header changed while it was read", path);
    lm_tensor t;
    memset(&t, 0, sizeof t);
    t.file = h->fi;
    const json_value *dt = json_get(m, "dtype");
    if (!dt || dt->type != JSON_STRING) return lm_fail(err, "%s: tensor '%s': missing string field 'dtype'", path, m->key);
    if (lm_dtype_parse(dt->str, dt->len, &t.dtype) != 0) {
        char q[64];
        return lm_fail(err, "%s: tensor '%s': unknown dtype %s (expected F32, F16, BF16, F8_E4M3, F64, I64, I32, I8, U8 or BOOL)",
                       path, m->key, json_quote(q, sizeof q, dt->str, dt->len));
    }
    const json_value *sh = json_get(m, "shape");
    if (!sh || sh->type != JSON_ARRAY) return lm_fail(err, "%s: tensor '%s': missing array field 'shape'", path, m->key);
    if (sh->len > LM_MAX_DIMS)
        return lm_fail(err, "%s: tensor '%s': %zu dimensions, at most %d supported", path, m->key, sh->len, LM_MAX_DIMS);
    t.ndim = (int)sh->len;
    uint64_t numel = 1;
    int d = 0;
    for (const json_value *e = sh->child; e; e = e->next, d++) {
        int64_t v;
        if (!json_as_int(e, &v) || v < 0)
            return lm_fail(err, "%s: tensor '%s': shape[%d] is not a non-negative integer", path, m->key, d);
        t.shape[d] = v;
        if (v != 0 && numel > UINT64_MAX / (uint64_t)v)
            return lm_fail(err, "%s: tensor '%s': shape overflows 64 bits", path, m->key);
        numel *= (uint64_t)v;
    }
    uint64_t esz = lm_dtype_size(t.dtype);
    if (numel > (uint64_t)INT64_MAX / esz) return lm_fail(err, "%s: tensor '%s': byte size overflows", path, m->key);
    const json_value *off = json_get(m, "data_offsets");
    int64_t b, e;
    if (!off || off->type != JSON_ARRAY || off->len != 2 || !json_as_int(json_at(off, 0), &b) ||
        !json_as_int(json_at(off, 1), &e) || b < 0 || e < 0)
        return lm_fail(err, "%s: tensor '%s': 'data_offsets' must be [begin, end] non-negative integers", path, m->key);
    if (b > e)
        return lm_fail(err, "%s: tensor '%s': data_offsets [%lld, %lld] has begin > end", path, m->key, (long long)b,
                       (long long)e);
    if ((uint64_t)e > h->data_size)
        return lm_fail(err, "%s: tensor '%s': data_offsets end %lld is past the data section (%llu bytes; file truncated?)",
                       path, m->key, (long long)e, (unsigned long long)h->data_size);
    if ((uint64_t)(e - b) != numel * esz)
        return lm_fail(err, "%s: tensor '%s': %lld bytes in data_offsets, but shape x %s needs %llu", path, m->key,
                       (long long)(e - b), lm_dtype_name(t.dtype), (unsigned long long)(numel * esz));
    t.numel = (int64_t)numel;
    t.nbytes = (size_t)(numel * esz);
    t.data = h->data + b;
    char *name = f->names + h->name_bytes;
    memcpy(name, m->key, m->key_len + 1);
    h->name_bytes += m->key_len + 1;
    t.name = name;
    h->set->tensors[h->set->ntensors++] = t;
    h->count++;
    return 0;
}

/* "byte N: ..." from the JSON parser -> "PATH: header byte N: ..." (header
 * bytes start at file byte 8). */
static int header_error(lm_error *err, const char *path) {
    if (!err) return -1;
    char jmsg[sizeof err->msg];
    memcpy(jmsg, err->msg, sizeof jmsg);
    return lm_fail(err, "%s: header %s", path, jmsg);
}

/* Validates file fi's header and appends its tensors to set. */
static int parse_file(lm_tensor_set *set, int fi, lm_error *err) {
    const char *path = set->files[fi].path;
    size_t size = set->files[fi].size;
    const unsigned char *bytes = set->files[fi].map;
    if (size < 8)
        return lm_fail(err, "%s: file is %zu bytes, expected at least 8 (header length)", path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    if (hlen > size - 8)
        return lm_fail(err, "%s: header length %llu at offset 0 runs past the end of the file (%zu bytes)",
                       path, (unsigned long long)hlen, size);
    if (hlen > ST_MAX_HEADER)
        return lm_fail(err, "%s: header length %llu exceeds the %u-byte limit", path,
                       (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen < 2) return lm_fail(err, "%s: header length %llu, expected a JSON object", path,
                                 (unsigned long long)hlen);
    const char *hdr = (const char *)bytes + 8;
    header_pass h = {set, fi, bytes + 8 + hlen, size - 8 - hlen, 0, 0, err};
    if (json_parse_each_member(hdr, hlen, count_entry, &h, err)) return header_error(err, path);
    lm_tensor *nt = realloc(set->tensors, (size_t)(set->ntensors + h.count + 1) * sizeof *nt);
    if (!nt) return lm_fail(err, "out of memory for %lld tensors", (long long)(set->ntensors + h.count));
    set->tensors = nt;
    set->files[fi].names = malloc(h.name_bytes + 1);
    if (!set->files[fi].names) return lm_fail(err, "out of memory");
    set->ntensors_reserved = set->ntensors + h.count;
    set->name_bytes_reserved = h.name_bytes;
    int64_t first = set->ntensors;
    h.count = first;
    h.name_bytes = 0;
    if (json_parse_each_member(hdr, hlen, read_entry, &h, err)) {
        /* read_entry's own messages name the file; the parser's are "byte N: ..." */
        return err && !strncmp(err->msg, "byte ", 5) ? header_error(err, path) : -1;
    }
    /* Overlap check over this file's tensors. */
    int64_t cnt = set->ntensors - first;
    int rc = 0;
    if (cnt > 1) {
        span *sp = malloc((size_t)cnt * sizeof *sp);
        if (!sp) return lm_fail(err, "out of memory");
        const unsigned char *data = h.data;
        for (int64_t i = 0; i < cnt; i++) {
            const lm_tensor *t = &set->tensors[first + i];
            sp[i].begin = (uint64_t)((const unsigned char *)t->data - data);
            sp[i].end = sp[i].begin + t->nbytes;
            sp[i].tensor = first + i;
        }
        qsort(sp, (size_t)cnt, sizeof *sp, cmp_span);
        /* Sweep in begin order, keeping the non-empty span that reaches
         * furthest; empty tensors occupy no bytes and cannot overlap. */
        int64_t far = -1;
        for (int64_t i = 0; i < cnt; i++) {
            if (sp[i].end == sp[i].begin) continue;
            if (far >= 0 && sp[i].begin < sp[far].end) {
                rc = lm_fail(err, "%s: tensors '%s' and '%s' overlap (bytes %llu..%llu and %llu..%llu)", path,
                             set->tensors[sp[far].tensor].name, set->tensors[sp[i].tensor].name,
                             (unsigned long long)sp[far].begin, (unsigned long long)sp[far].end,
                             (unsigned long long)sp[i].begin, (unsigned long long)sp[i].end);
                break;
            }
            if (far < 0 || sp[i].end > sp[far].end) far = i;
        }
        free(sp);
    }
    return rc;
}

int lm_st_open_file(const char *path, lm_tensor_set **out, lm_error *err) {
    lm_tensor_set *set = calloc(1, sizeof *set);
    if (!set) return lm_fail(err, "out of memory");
    if (load_file(set, path, err) || set_build_index(set, err)) {
        lm_st_close(set);
        return -1;
    }
    *out = set;
    return 0;
}

int lm_st_open_mem(const void *bytes, size_t len, const char *name, lm_tensor_set **out, lm_error *err) {
    lm_tensor_set *set = calloc(1, sizeof *set);
    if (!set) return lm_fail(err, "out of memory");
    int fi = add_file(set, name, (void *)bytes, len, 0, err);
    if (fi < 0 || parse_file(set, fi, err) || set_build_index(set, err)) {
        lm_st_close(set);
        return -1;
    }
    *out = set;
    return 0;
}

/* 1 when p exists, 0 when it does not (ENOENT), -1 when it cannot be told
 * (a symlink loop, a permission error: errno says which). */
static int file_exists(const char *p) {
    struct stat s;
    if (stat(p, &s) == 0) return 1;
    return errno == ENOENT ? 0 : -1;
}

int lm_st_open_dir(const char *dir, lm_tensor_set **out, lm_error *err) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int have = file_exists(path);
    if (have < 0) return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (!have) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        have = file_exists(path);
        if (have < 0) return lm_fail(err, "%s: cannot open: %s", path, strerror(errno));
        if (!have) return lm_fail(err, "%s: no model.safetensors or model.safetensors.index.json", dir);
        return lm_st_open_file(path, out, err);
    }
    char *text;
    size_t len;
    if (lm_read_file(path, 64u << 20, &text, &len, err)) return -1;
    json_doc *doc = json_parse(text, len, err);
    free(text);
    if (!doc) return lm_fail_prefix(err, "%s", path);
    const json_value *wm = json_get(json_root(doc), "weight_map");
    lm_tensor_set *set = NULL;
    int rc = 0;
    if (!wm || wm->type != JSON_OBJECT) {
        rc = lm_fail(err, "%s: missing object field 'weight_map'", path);
        goto done;
    }
    set = calloc(1, sizeof *set);
    if (!set) { rc = lm_fail(err, "out of memory"); goto done; }
    /* Load each distinct shard once, in order of first mention. */
    for (const json_value *m = wm->child; m; m = m->next) {
        if (m->type != JSON_STRING || !m->len || strlen(m->str) != m->len || strchr(m->str, '/') ||
            strstr(m->str, "..")) {
            char q[256];
            rc = lm_fail(err, "%s: byte %zu: weight_map[%s] must be a plain file name", path, m->offset,
                         json_quote(q, sizeof q, m->key, m->key_len));
            goto done;
        }
        if (!printable(m->key, m->key_len) || !printable(m->str, m->len)) {
            rc = lm_fail(err, "%s: byte %zu: weight_map entry contains a control character (expected printable UTF-8)",
                         path, m->offset);
            goto done;
        }
        int seen = 0;
        for (int i = 0; i < set->nfiles && !seen; i++) {
            const char *base = strrchr(set->files[i].path, '/');
            seen = !strcmp(base ? base + 1 : set->files[i].path, m->str);
        }
        if (seen) continue;
        char shard[PATH_MAX];
        snprintf(shard, sizeof shard, "%s/%s", dir, m->str);
        if (load_file(set, shard, err)) { rc = -1; goto done; }
    }
    if (set_build_index(set, err)) { rc = -1; goto done; }
    /* Every mapped name must be in the shard the index names. */
    for (const json_value *m = wm->child; m; m = m->next) {
        const lm_tensor *t = lm_st_find(set, m->key);
        if (!t) {
            rc = lm_fail(err, "%s: tensor '%s' is listed in weight_map but missing from %s", path, m->key, m->str);
            goto done;
        }
        const char *p = set->files[t->file].path, *base = strrchr(p, '/');
        if (strcmp(base ? base + 1 : p, m->str)) {
            rc = lm_fail(err, "%s: tensor '%s' is mapped to %s but found in %s", path, m->key, m->str, p);
            goto done;
        }
    }
done:
    json_free(doc);
    if (rc) {
        lm_st_close(set);
        return -1;
    }
    *out = set;
    return 0;
}

/* ---- checking values ---- */

typedef struct scan_job {
    const unsigned char *data;   /* the batch's first element */
    lm_dtype dtype;
    int64_t n;                   /* elements in the batch */
    int64_t first[1024];         /* per thread: first bad index in its share, or -1 */
} scan_job;

static void scan_worker(void *ctx, int ith, int nth) {
    scan_job *j = ctx;
    int64_t b, e;
    lm_split(j->n, ith, nth, 4096, &b, &e);
    int64_t i = e > b ? lm_first_nonfinite(j->data + (size_t)b * lm_dtype_size(j->dtype), j->dtype, e - b) : -1;
    j->first[ith] = i < 0 ? -1 : b + i;
}

static int is_float_dtype(lm_dtype t) {
    return t == LM_DTYPE_F32 || t == LM_DTYPE_F64 || t == LM_DTYPE_F16 || t == LM_DTYPE_BF16 || t == LM_DTYPE_F8_E4M3;
}

int lm_st_check_finite(const lm_tensor_set *set, lm_pool *pool, lm_st_progress_fn progress, void *ctx, int64_t *nbad,
                       lm_error *err) {
    enum { BATCH_BYTES = 256 << 20 };
    uint64_t total = 0, done = 0;
    int64_t nfloat = 0, bad = 0, first_bad = -1, first_at = -1;
    for (int64_t i = 0; i < set->ntensors; i++)
        if (is_float_dtype(set->tensors[i].dtype)) total += set->tensors[i].nbytes, nfloat++;
    scan_job *job = malloc(sizeof *job);
    if (!job) return lm_fail(err, "out of memory");
    int nth = pool ? lm_pool_size(pool) : 1;
    if (nth > 1024) nth = 1024;
    int rc = 0;
    for (int64_t i = 0; i < set->ntensors && !rc; i++) {
        const lm_tensor *t = &set->tensors[i];
        if (!is_float_dtype(t->dtype)) continue;
        int64_t esz = (int64_t)lm_dtype_size(t->dtype), per = BATCH_BYTES / esz, found = -1;
        for (int64_t at = 0; at < t->numel; at += per) {
            job->data = (const unsigned char *)t->data + (size_t)(at * esz);
            job->dtype = t->dtype;
            job->n = t->numel - at < per ? t->numel - at : per;
            for (int k = 0; k < nth; k++) job->first[k] = -1;
            if (pool && job->n >= 65536) lm_pool_run(pool, scan_worker, job);
            else scan_worker(job, 0, 1);
            for (int k = 0; k < nth && found < 0; k++)
                if (job->first[k] >= 0) found = at + job->first[k];
            done += (uint64_t)(job->n * esz);
            if (found >= 0) { /* the rest of this tensor need not be read */
                done += (uint64_t)((t->numel - at - job->n) * esz);
                break;
            }
            if (progress && progress(ctx, done, total)) {
                rc = lm_fail(err, "interrupted");
                break;
            }
        }
        if (found >= 0 && bad++ == 0) {
            first_bad = i;
            first_at = found;
        }
    }
    if (!rc && progress) progress(ctx, total, total);
    free(job);
    if (nbad) *nbad = bad;
    if (rc || !bad) return rc;
    const lm_tensor *t = &set->tensors[first_bad];
    return lm_fail(err, "%s: tensor '%s' has %s at element %lld, expected finite values (%lld of %lld floating-point "
                   "tensors have non-finite values)",
                   set->files[t->file].path, t->name, lm_nonfinite_name(t->data, t->dtype, first_at),
                   (long long)first_at, (long long)bad, (long long)nfloat);
}

/* ---- writing ---- */

/* lm_st_write's read-back check: __metadata__ must be an object. */
static int check_metadata(void *ctx, const json_value *m) {
    if (is_metadata(m)) *(int *)ctx = m->type == JSON_OBJECT;
    return 0;
}

static int cmp_out_name(const void *a, const void *b) {
    const lm_tensor_out *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

int lm_st_write(const char *path, const lm_tensor_out *tensors, int64_t n, const char *metadata_json,
                lm_error *err) {
    const lm_tensor_out **order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return lm_fail(err, "out of memory");
    for (int64_t i = 0; i < n; i++) order[i] = &tensors[i];
    /* Refuse what the reader would refuse, before creating anything. */
    for (int64_t i = 0; i < n; i++) {
        const lm_tensor_out *t = &tensors[i];
        const char *why = NULL;
        uint64_t numel = 1;
        if (!t->name || !t->name[0] || !printable(t->name, strlen(t->name)) || !strcmp(t->name, "__metadata__"))
            why = "name is empty, reserved or has control characters";
        else if ((unsigned)t->dtype >= LM_DTYPE_COUNT)
            why = "unknown dtype";
        else if (t->ndim < 0 || t->ndim > LM_MAX_DIMS)
            why = "ndim out of range";
        for (int d = 0; !why && d < t->ndim; d++) {
            if (t->shape[d] < 0) why = "negative dimension";
            else if (t->shape[d] && numel > (uint64_t)INT64_MAX / 8 / (uint64_t)t->shape[d]) why = "size overflows";
            else numel *= (uint64_t)t->shape[d];
        }
        if (!why && numel && !t->data && !t->write) why = "no data";
        if (why) {
            free(order);
            return lm_fail(err, "%s: tensor %lld ('%s'): %s", path, (long long)i,
                           t->name && printable(t->name, strlen(t->name)) ? t->name : "?", why);
        }
    }
    qsort(order, (size_t)n, sizeof *order, cmp_out_name);
    for (int64_t i = 1; i < n; i++)
        if (!strcmp(order[i - 1]->name, order[i]->name)) {
            lm_fail(err, "%s: tensor '%s' given twice", path, order[i]->name);
            free(order);
            return -1;
        }
    /* Header size, exactly (plus a little): the names as escaped, the
     * digits of every dimension and offset. A header readers would refuse
     * is refused here, before anything is allocated or created. */
    size_t cap = 64 + (metadata_json ? strlen(metadata_json) : 16);
    uint64_t off_est = 0;
    for (int64_t i = 0; i < n; i++) {
        const lm_tensor_out *t = order[i];
        uint64_t numel = 1;
        cap += quoted_len(t->name) + 48 + strlen(lm_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) {
            cap += (size_t)snprintf(NULL, 0, "%lld", (long long)t->shape[d]) + 1;
            numel *= (uint64_t)t->shape[d];
        }
        off_est = ((off_est + 7) & ~(uint64_t)7) + numel * lm_dtype_size(t->dtype);
        cap += 2 * (size_t)snprintf(NULL, 0, "%llu", (unsigned long long)off_est);
    }
    if (cap > LM_ST_MAX_HEADER + 64) {
        free(order);
        return lm_fail(err, "%s: the header of %lld tensors would be about %zu bytes, over the %u-byte limit that "
                       "safetensors readers accept", path, (long long)n, cap, LM_ST_MAX_HEADER);
    }
    char *hdr = malloc(cap + 8);
    if (!hdr) {
        free(order);
        return lm_fail(err, "out of memory");
    }
    size_t pos = 0;
    pos += (size_t)snprintf(hdr + pos, cap - pos, "{\"__metadata__\":%s", metadata_json ? metadata_json : "{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const lm_tensor_out *t = order[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        uint64_t nb = numel * lm_dtype_size(t->dtype);
        hdr[pos++] = ',';
        json_write_string(hdr, cap, &pos, t->name, strlen(t->name)); /* fits: cap is an upper bound */
        pos += (size_t)snprintf(hdr + pos, cap - pos, ":{\"dtype\":\"%s\",\"shape\":[", lm_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            pos += (size_t)snprintf(hdr + pos, cap - pos, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        /* Keep each tensor 8-byte aligned in the file by padding between. */
        uint64_t begin = (off + 7) & ~(uint64_t)7;
        pos += (size_t)snprintf(hdr + pos, cap - pos, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)begin, (unsigned long long)(begin + nb));
        off = begin + nb;
    }
    hdr[pos++] = '}';
    while (pos % 8) hdr[pos++] = ' ';
    /* The header must read back: catches names that are not valid UTF-8 and
     * a metadata_json that is not a JSON object. */
    lm_error perr;
    int metadata_ok = 0; /* streamed, as the reader does: no tree of the whole header */
    int bad_json = json_parse_each_member(hdr, pos, check_metadata, &metadata_ok, &perr);
    if (bad_json || !metadata_ok) {
        free(hdr);
        free(order);
        return lm_fail(err, "%s: the header would not read back (%s); tensor names must be valid UTF-8 and "
                       "metadata a JSON object", path, bad_json ? perr.msg : "__metadata__ is not an object");
    }
    lm_atomic_writer *w = lm_atomic_begin(path, err);
    int rc = w ? 0 : -1;
    if (w) {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)pos >> (8 * i));
        lm_atomic_put(w, len8, 8);
        lm_atomic_put(w, hdr, pos);
        uint64_t at = 0;
        static const unsigned char zeros[8];
        for (int64_t i = 0; i < n; i++) {
            const lm_tensor_out *t = order[i];
            uint64_t numel = 1;
            for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
            uint64_t nb = numel * lm_dtype_size(t->dtype);
            uint64_t begin = (at + 7) & ~(uint64_t)7;
            if (begin > at) lm_atomic_put(w, zeros, begin - at);
            if (t->data || !t->write) {
                lm_atomic_put(w, t->data, nb);
            } else if (t->write(t->ctx, t, w, err)) {
                lm_atomic_abort(w);
                w = NULL;
                rc = -1;
                break;
            }
            at = begin + nb;
        }
        if (w) rc = lm_atomic_finish(w, err);
    }
    free(hdr);
    free(order);
    return rc;
}
