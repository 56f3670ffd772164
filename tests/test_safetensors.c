/* test_safetensors.c — src/formats/safetensors.c: writer -> reader round trip
 * over every dtype (zero-sized and 0-d tensors included), a hand-written
 * unaligned file, the atomic writer (no temp file left, old file replaced,
 * failures leave nothing), lookup by name, sharded directories, and the
 * reader's and writer's refusals, in-process (the CLI-level corpus is
 * tests/bad, run by tests/sh/test_bad_input.sh). */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/fileio.h"
#include "formats/json.h"
#include "formats/safetensors.h"
#include "test.h"

static char tmpdir[256];

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* Number of directory entries of dir (excluding . and ..) whose name contains sub. */
static int count_files(const char *dir, const char *sub) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strstr(e->d_name, sub)) n++;
    closedir(d);
    return n;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)((i * 131u + seed * 7u + (i >> 3)) & 0xff);
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* ---- round trip ---- */

TEST(round_trip_all_dtypes) {
    enum { NT = 13 };
    static unsigned char bufs[NT][4096];
    lm_tensor_out t[NT];
    memset(t, 0, sizeof t);
    const lm_dtype dts[] = {LM_DTYPE_F32, LM_DTYPE_BF16, LM_DTYPE_F16, LM_DTYPE_F8_E4M3, LM_DTYPE_F64,
                            LM_DTYPE_I64, LM_DTYPE_I32, LM_DTYPE_I8, LM_DTYPE_U8, LM_DTYPE_BOOL};
    char names[NT][32];
    for (int i = 0; i < 10; i++) {
        /* shapes of odd sizes so that padding is needed between tensors */
        snprintf(names[i], sizeof names[i], "t.%s", lm_dtype_name(dts[i]));
        t[i].name = names[i];
        t[i].dtype = dts[i];
        t[i].ndim = 2;
        t[i].shape[0] = 3;
        t[i].shape[1] = 5 + i;
        fill(bufs[i], sizeof bufs[i], (unsigned)i);
        t[i].data = bufs[i];
    }
    t[10] = (lm_tensor_out){.name = "zero.sized", .dtype = LM_DTYPE_F32, .ndim = 2, .shape = {0, 7}, .data = NULL};
    t[11] = (lm_tensor_out){.name = "scalar", .dtype = LM_DTYPE_F64, .ndim = 0, .data = bufs[11]};
    t[12] = (lm_tensor_out){.name = "a.first\"quoted\\/é", .dtype = LM_DTYPE_U8, .ndim = 8,
                            .shape = {1, 2, 1, 3, 1, 1, 2, 1}, .data = bufs[12]};
    fill(bufs[11], 8, 11);
    fill(bufs[12], 12, 12);
    lm_error err;
    const char *path = tpath("rt.safetensors");
    CHECKF(lm_st_write(path, t, NT, NULL, &err) == 0, "%s", err.msg);
    CHECK(count_files(tmpdir, ".tmp") == 0);
    lm_tensor_set *set = NULL;
    CHECKF(lm_st_open_file(path, &set, &err) == 0, "%s", err.msg);
    if (!set) return;
    CHECK(lm_st_count(set) == NT);
    size_t total = 0;
    for (int i = 0; i < NT; i++) {
        const lm_tensor *r = lm_st_find(set, t[i].name);
        CHECKF(r != NULL, "%s not found", t[i].name);
        if (!r) continue;
        int64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
        CHECK(!strcmp(r->name, t[i].name));
        CHECK(r->dtype == t[i].dtype && r->ndim == t[i].ndim && r->numel == numel);
        for (int d = 0; d < t[i].ndim; d++) CHECK(r->shape[d] == t[i].shape[d]);
        CHECK(r->nbytes == (size_t)numel * lm_dtype_size(t[i].dtype));
        if (r->nbytes) {
            CHECKF(!memcmp(r->data, t[i].data, r->nbytes), "%s data", t[i].name);
            CHECKF(((uintptr_t)r->data & 7) == 0, "%s not 8-byte aligned in the file", t[i].name);
        }
        total += r->nbytes;
        CHECK(r->file == 0 && strstr(lm_st_file_path(set, r->file), "rt.safetensors"));
    }
    CHECK(lm_st_total_bytes(set) == total);
    CHECK(lm_st_find(set, "t.f32") == NULL);       /* names are case-sensitive */
    CHECK(lm_st_find(set, "") == NULL && lm_st_find(set, "__metadata__") == NULL);
    CHECK(lm_st_tensor(set, -1) == NULL && lm_st_tensor(set, NT) == NULL && lm_st_tensor(set, 0) != NULL);
    CHECK(!strcmp(lm_st_file_path(set, 5), "?"));
    /* Header keys are sorted; __metadata__ first. */
    const char *prev = "";
    for (int64_t i = 0; i < lm_st_count(set); i++) {
        const lm_tensor *r = lm_st_tensor(set, i);
        CHECK(strcmp(prev, r->name) < 0);
        prev = r->name;
    }
    lm_st_close(set);
    /* The file itself: header length, padding, metadata. */
    char *text;
    size_t len;
    CHECK(lm_read_file(path, 1 << 20, &text, &len, &err) == 0);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)text[i];
    CHECK(hlen % 8 == 0 && hlen + 8 <= len);
    CHECK(!strncmp(text + 8, "{\"__metadata__\":{\"format\":\"pt\"}", 31));
    free(text);
}

TEST(metadata_and_empty_file) {
    lm_error err;
    const char *path = tpath("empty.safetensors");
    CHECKF(lm_st_write(path, NULL, 0, "{\"format\":\"pt\",\"note\":\"x\"}", &err) == 0, "%s", err.msg);
    lm_tensor_set *set = NULL;
    CHECKF(lm_st_open_file(path, &set, &err) == 0, "%s", err.msg);
    CHECK(set && lm_st_count(set) == 0 && lm_st_total_bytes(set) == 0 && lm_st_find(set, "x") == NULL);
    lm_st_close(set);
    lm_st_close(NULL);
}

TEST(many_tensors_lookup) {
    enum { N = 3000 };
    lm_tensor_out *t = calloc(N, sizeof *t);
    char (*names)[32] = calloc(N, 32);
    float *vals = calloc(N, sizeof *vals);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 32, "model.layers.%d.w", (i * 7919) % N);
        vals[i] = (float)i;
        t[i] = (lm_tensor_out){.name = names[i], .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = &vals[i]};
    }
    lm_error err;
    const char *path = tpath("many.safetensors");
    CHECKF(lm_st_write(path, t, N, NULL, &err) == 0, "%s", err.msg);
    lm_tensor_set *set = NULL;
    CHECKF(lm_st_open_file(path, &set, &err) == 0, "%s", err.msg);
    int bad = 0;
    for (int i = 0; set && i < N; i++) {
        const lm_tensor *r = lm_st_find(set, names[i]);
        float v;
        if (!r) { bad++; continue; }
        memcpy(&v, r->data, 4);
        if (v != (float)i) bad++;
    }
    CHECK(set && bad == 0);
    CHECK(set && lm_st_find(set, "model.layers.3000.w") == NULL);
    lm_st_close(set);
    free(t);
    free(names);
    free(vals);
}

/* A file laid out by hand: header not padded to 8, tensors at odd offsets,
 * out of name order, with a gap; must read back exactly. */
TEST(unaligned_by_hand) {
    const char *hdr = "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[1,13]},"
                      "\"a\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[16,20]},"
                      "\"c\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[21,29]}}";
    size_t hl = strlen(hdr);
    unsigned char file[512];
    memcpy(file + 8, hdr, hl);
    while ((8 + hl) % 4 != 1) file[8 + hl++] = ' '; /* the data start is 1 mod 4, b at 2 mod 4 */
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    unsigned char *data = file + 8 + hl;
    memset(data, 0xee, 29);
    float fv[3] = {1.5f, -2.25f, 1e-3f};
    memcpy(data + 1, fv, 12);
    uint16_t bv[2] = {0x3f80, 0xc000};
    memcpy(data + 16, bv, 4);
    int64_t iv = -1234567890123ll;
    memcpy(data + 21, &iv, 8);
    size_t n = 8 + hl + 29;
    const char *path = tpath("unaligned.safetensors");
    CHECK(write_bytes(path, file, n) == 0);
    lm_error err;
    lm_tensor_set *set = NULL;
    CHECKF(lm_st_open_file(path, &set, &err) == 0, "%s", err.msg);
    if (!set) return;
    const lm_tensor *b = lm_st_find(set, "b"), *a = lm_st_find(set, "a"), *c = lm_st_find(set, "c");
    CHECK(a && b && c);
    if (a && b && c) {
        float out[3];
        lm_convert_to_f32(out, b->data, b->dtype, 3);
        CHECK(out[0] == 1.5f && out[1] == -2.25f && out[2] == 1e-3f);
        CHECK(((uintptr_t)b->data & 3) != 0);
        lm_convert_to_f32(out, a->data, a->dtype, 2);
        CHECK(out[0] == 1.0f && out[1] == -2.0f);
        int64_t got;
        memcpy(&got, c->data, 8);
        CHECK(got == iv && c->nbytes == 8);
    }
    lm_st_close(set);
    /* The same bytes from memory (exact-size heap copy: ASan sees any overread). */
    unsigned char *heap = malloc(n);
    memcpy(heap, file, n);
    CHECKF(lm_st_open_mem(heap, n, "mem", &set, &err) == 0, "%s", err.msg);
    CHECK(set && lm_st_count(set) == 3 && lm_st_find(set, "c")->data == heap + 8 + hl + 21);
    lm_st_close(set);
    free(heap);
}

/* ---- the atomic writer ---- */

TEST(atomic_writer) {
    lm_error err;
    const char *path = tpath("atomic.bin");
    CHECK(lm_write_file_atomic(path, "first version", 13, &err) == 0);
    CHECK(lm_write_file_atomic(path, "second", 6, &err) == 0);
    char *text;
    size_t len;
    CHECK(lm_read_file(path, 100, &text, &len, &err) == 0);
    CHECK(len == 6 && !strcmp(text, "second"));
    free(text);
    CHECK(count_files(tmpdir, ".tmp") == 0);
    CHECK(lm_write_file_atomic(path, NULL, 0, &err) == 0);
    CHECK(lm_read_file(path, 100, &text, &len, &err) == 0 && len == 0 && text[0] == 0);
    free(text);
    /* Failure: nothing created, a message naming the path. */
    CHECK(lm_write_file_atomic(tpath("no/such/dir/x"), "x", 1, &err) == -1);
    CHECK(strstr(err.msg, "no/such/dir/x") && strstr(err.msg, "cannot create"));
    lm_tensor_out t = {.name = "w", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = "abcd"};
    CHECK(lm_st_write(tpath("no/such/dir/m.safetensors"), &t, 1, NULL, &err) == -1);
    CHECK(strstr(err.msg, "cannot create") != NULL);
    /* A write over an existing checkpoint replaces it whole. */
    const char *sp = tpath("replace.safetensors");
    CHECK(lm_st_write(sp, &t, 1, NULL, &err) == 0);
    lm_tensor_out t2[2] = {{.name = "x", .dtype = LM_DTYPE_I8, .ndim = 1, .shape = {2}, .data = "zz"},
                           {.name = "y", .dtype = LM_DTYPE_I8, .ndim = 1, .shape = {1}, .data = "q"}};
    CHECK(lm_st_write(sp, t2, 2, NULL, &err) == 0);
    lm_tensor_set *set = NULL;
    CHECK(lm_st_open_file(sp, &set, &err) == 0 && lm_st_count(set) == 2 && !lm_st_find(set, "w"));
    lm_st_close(set);
    CHECK(count_files(tmpdir, ".tmp") == 0);
    /* lm_read_file refuses files over its limit. */
    CHECK(lm_read_file(sp, 10, &text, &len, &err) == -1 && strstr(err.msg, "limit"));
    CHECK(lm_read_file(tmpdir, 1 << 20, &text, &len, &err) == -1 && strstr(err.msg, "not a regular file"));
}

TEST(writer_refuses) {
    lm_error err;
    const char *path = tpath("refused.safetensors");
    float f[4] = {0};
    struct { lm_tensor_out t; const char *want; } cases[] = {
        {{.name = "", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f}, "name is empty"},
        {{.name = NULL, .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f}, "name is empty"},
        {{.name = "a\nb", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f}, "control characters"},
        {{.name = "__metadata__", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f}, "reserved"},
        {{.name = "bad\xff", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f}, "invalid UTF-8"},
        {{.name = "w", .dtype = (lm_dtype)77, .ndim = 1, .shape = {1}, .data = f}, "unknown dtype"},
        {{.name = "w", .dtype = LM_DTYPE_F32, .ndim = 9, .shape = {1}, .data = f}, "ndim out of range"},
        {{.name = "w", .dtype = LM_DTYPE_F32, .ndim = -1, .shape = {1}, .data = f}, "ndim out of range"},
        {{.name = "w", .dtype = LM_DTYPE_F32, .ndim = 2, .shape = {2, -2}, .data = f}, "negative dimension"},
        {{.name = "w", .dtype = LM_DTYPE_F32, .ndim = 3, .shape = {1ll << 31, 1ll << 31, 1ll << 31}, .data = f},
         "size overflows"},
        {{.name = "w", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {4}, .data = NULL}, "no data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err.msg[0] = 0;
        int rc = lm_st_write(path, &cases[i].t, 1, NULL, &err);
        CHECKF(rc == -1 && strstr(err.msg, cases[i].want) && !strchr(err.msg, '\n'), "case %zu: %s", i, err.msg);
    }
    lm_tensor_out dup[2] = {{.name = "same", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f},
                            {.name = "same", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {2}, .data = f}};
    CHECK(lm_st_write(path, dup, 2, NULL, &err) == -1 && strstr(err.msg, "'same' given twice"));
    lm_tensor_out ok = {.name = "w", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {1}, .data = f};
    CHECK(lm_st_write(path, &ok, 1, "[1]", &err) == -1 && strstr(err.msg, "metadata"));
    CHECK(access(path, F_OK) != 0);                /* nothing was created */
    CHECK(count_files(tmpdir, ".tmp") == 0);
}

/* ---- sharded directories ---- */

TEST(sharded_dir) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir);
    mkdir(dir, 0755);
    float a[2] = {1, 2}, b[3] = {3, 4, 5};
    lm_tensor_out s1 = {.name = "a", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {2}, .data = a};
    lm_tensor_out s2 = {.name = "b", .dtype = LM_DTYPE_F32, .ndim = 1, .shape = {3}, .data = b};
    lm_error err;
    char p[600];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
    CHECK(lm_st_write(p, &s1, 1, NULL, &err) == 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(lm_st_write(p, &s2, 1, NULL, &err) == 0);
    const char *idx = "{\"metadata\":{\"total_size\":20},\"weight_map\":{\"b\":\"model-00002-of-00002.safetensors\","
                      "\"a\":\"model-00001-of-00002.safetensors\"}}";
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    CHECK(lm_write_file_atomic(p, idx, strlen(idx), &err) == 0);
    lm_tensor_set *set = NULL;
    CHECKF(lm_st_open_dir(dir, &set, &err) == 0, "%s", err.msg);
    if (!set) return;
    const lm_tensor *ta = lm_st_find(set, "a"), *tb = lm_st_find(set, "b");
    CHECK(ta && tb && ta->file != tb->file);
    CHECK(ta && strstr(lm_st_file_path(set, ta->file), "model-00001-of-00002.safetensors"));
    CHECK(tb && strstr(lm_st_file_path(set, tb->file), "model-00002-of-00002.safetensors"));
    CHECK(tb && !memcmp(tb->data, b, 12));
    CHECK(lm_st_total_bytes(set) == 20 && lm_st_count(set) == 2);
    lm_st_close(set);
    /* The index wins over a stray model.safetensors. */
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(lm_st_write(p, &s1, 1, NULL, &err) == 0);
    CHECK(lm_st_open_dir(dir, &set, &err) == 0 && lm_st_count(set) == 2);
    lm_st_close(set);
    /* Errors. */
    struct { const char *index; const char *want; } bad[] = {
        {"{\"weight_map\":{\"a\":\"../sharded/model-00001-of-00002.safetensors\"}}", "must be a plain file name"},
        {"{\"weight_map\":{\"a\":\"model-00009-of-00009.safetensors\"}}", "model-00009-of-00009.safetensors: cannot open"},
        {"{\"weight_map\":{\"zz\":\"model-00001-of-00002.safetensors\"}}", "'zz' is listed in weight_map but missing"},
        {"{\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}",
         "'a' is listed in weight_map but missing"},
        {"{\"weight_map\":{\"b\":\"model-00001-of-00002.safetensors\",\"a\":\"model-00002-of-00002.safetensors\"}}",
         "'b' is mapped to model-00001-of-00002.safetensors but found in"},
        {"{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"a\":\"model.safetensors\"}}",
         "model.safetensors.index.json: byte 54: duplicate key \"a\""},
        {"{\"weight_map\":{\"a\\n\":\"x\"}}", "control character"},
        {"{\"weight_map\":{\"a\":\"x\\u0000y\"}}", "must be a plain file name"},
        {"{\"weight_map\":[]}", "missing object field 'weight_map'"},
        {"{\"weight_map\":{}", "byte 16 (end of input): expected ',' or '}'"},
    };
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(lm_write_file_atomic(p, bad[i].index, strlen(bad[i].index), &err) == 0);
        set = NULL;
        err.msg[0] = 0;
        int rc = lm_st_open_dir(dir, &set, &err);
        CHECKF(rc == -1 && set == NULL && strstr(err.msg, bad[i].want) && !strchr(err.msg, '\n'), "index %zu: %s", i,
               err.msg);
        if (!rc) lm_st_close(set);
    }
    CHECK(lm_st_open_dir(tpath("nowhere"), &set, &err) == -1 && strstr(err.msg, "no model.safetensors"));
}

/* ---- the reader's refusals, from memory ---- */

static int mem_fails(const void *bytes, size_t n, const char *want) {
    unsigned char *heap = malloc(n ? n : 1); /* exact size: ASan sees overreads */
    if (n) memcpy(heap, bytes, n);
    lm_error err = {{0}};
    lm_tensor_set *set = NULL;
    int rc = lm_st_open_mem(heap, n, "m.st", &set, &err);
    int ok = rc == -1 && set == NULL && strstr(err.msg, want) && !strchr(err.msg, '\n') &&
             strstr(err.msg, "m.st"); /* names the file */
    if (!ok) printf("  want '%s', got rc %d: %s\n", want, rc, err.msg);
    if (!rc) lm_st_close(set);
    free(heap);
    return ok;
}

/* 8-byte length + header + data bytes (zeros). */
static size_t mk(unsigned char *out, const char *hdr, size_t data_len) {
    size_t hl = strlen(hdr);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, hdr, hl);
    memset(out + 8 + hl, 0, data_len);
    return 8 + hl + data_len;
}

#define T1(d, s, o) "{\"w\":{\"dtype\":\"" d "\",\"shape\":" s ",\"data_offsets\":" o "}}"

TEST(reader_refuses) {
    unsigned char b[4096];
    CHECK(mem_fails("", 0, "file is 0 bytes, expected at least 8"));
    CHECK(mem_fails("\x02\0\0\0\0\0\0", 7, "file is 7 bytes, expected at least 8"));
    size_t n = mk(b, "{}", 0);
    b[0] = 3;
    CHECK(mem_fails(b, n, "header length 3 at offset 0 runs past the end of the file (10 bytes)"));
    memset(b, 0xff, 8);
    CHECK(mem_fails(b, n, "header length 18446744073709551615 at offset 0 runs past the end"));
    memset(b, 0, 8);
    b[7] = 0x80;
    CHECK(mem_fails(b, n, "header length 9223372036854775808 at offset 0 runs past the end"));
    n = mk(b, "{}", 0);
    b[0] = 1;
    CHECK(mem_fails(b, n, "header length 1, expected a JSON object"));
    CHECK(mem_fails(b, mk(b, "{\"w\":}", 0), "m.st: header byte 5: expected a value"));
    CHECK(mem_fails(b, mk(b, "[]", 0), "m.st: header byte 0: expected an object, found an array"));
    CHECK(mem_fails(b, mk(b, "{\"__metadata__\":[]}", 0), "__metadata__ is a JSON array"));
    CHECK(mem_fails(b, mk(b, "{\"w\":1}", 0), "tensor 'w': entry is a JSON number"));
    CHECK(mem_fails(b, mk(b, T1("F31", "[1]", "[0,4]"), 4), "tensor 'w': unknown dtype \"F31\""));
    CHECK(mem_fails(b, mk(b, "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4), "missing string field 'dtype'"));
    CHECK(mem_fails(b, mk(b, "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4), "missing array field 'shape'"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[2]", "[0,4]"), 8), "4 bytes in data_offsets, but shape x F32 needs 8"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[-1]", "[0,4]"), 4), "shape[0] is not a non-negative integer"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1, 1e0, 0.5]", "[0,4]"), 4), "shape[2] is not a non-negative integer"));
    CHECK(mem_fails(b, mk(b, T1("U8", "[4294967296,4294967296]", "[0,4]"), 4), "shape overflows 64 bits"));
    CHECK(mem_fails(b, mk(b, T1("F64", "[2305843009213693952]", "[0,4]"), 4), "byte size overflows"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4), "9 dimensions, at most 8"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1]", "[4,0]"), 4), "data_offsets [4, 0] has begin > end"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1]", "[0]"), 4), "'data_offsets' must be [begin, end]"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1]", "[-4,0]"), 4), "'data_offsets' must be [begin, end]"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1]", "[0,\"4\"]"), 4), "'data_offsets' must be [begin, end]"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1]", "[4,8]"), 4), "data_offsets end 8 is past the data section (4 bytes"));
    CHECK(mem_fails(b, mk(b, T1("F32", "[1]", "[9223372036854775800,9223372036854775804]"), 4),
                    "is past the data section"));
    CHECK(mem_fails(b, mk(b, "{\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0),
                    "tensor name is empty or contains NUL"));
    CHECK(mem_fails(b, mk(b, "{\"a\\tb\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0),
                    "header byte 8: tensor name contains a control character"));
    CHECK(mem_fails(b, mk(b, "{\"w\":{\"dtype\":\"F\\n32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0),
                    "unknown dtype \"F\\n32\""));
    CHECK(mem_fails(b, mk(b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                    "tensors 'a' and 'b' overlap (bytes 0..8 and 4..8)"));
    CHECK(mem_fails(b, mk(b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                             "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16),
                    "overlap"));
    CHECK(mem_fails(b, mk(b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                    "m.st: header byte 54: duplicate key \"a\" (a key may appear once per object)"));
    /* Accepted: empty tensors anywhere (even at the same offset), touching spans, trailing bytes. */
    n = mk(b, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[2,2]},"
              "\"f\":{\"dtype\":\"BOOL\",\"shape\":[0],\"data_offsets\":[2,2]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 12);
    lm_tensor_set *set = NULL;
    lm_error err;
    CHECKF(lm_st_open_mem(b, n, "ok", &set, &err) == 0, "%s", err.msg);
    CHECK(set && lm_st_count(set) == 4 && lm_st_find(set, "e")->numel == 0);
    lm_st_close(set);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lemma_test_st.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(round_trip_all_dtypes);
    RUN(metadata_and_empty_file);
    RUN(many_tensors_lookup);
    RUN(unaligned_by_hand);
    RUN(atomic_writer);
    RUN(writer_refuses);
    RUN(sharded_dir);
    RUN(reader_refuses);
    rm_rf(tmpdir);
    return test_report("test_safetensors");
}
