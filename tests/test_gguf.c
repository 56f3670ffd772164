/* test_gguf.c — the GGUF writer (formats/gguf.h) byte by byte against the
 * published layout, the Q8_0 encoder against ggml's reference rule, and
 * lm_export_gguf's errors and marker (model/export_gguf.h). Whole exports are
 * checked bit for bit by tests/gguf_roundtrip.py (tests/sh/test_export.sh)
 * and through llama.cpp (tests/sh/test_gguf_parity.sh). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h"
#include "core/fileio.h"
#include "formats/gguf.h"
#include "model/export_gguf.h"
#include "test.h"

static char tmpdir[256];

static uint64_t u64_at(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t u32_at(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

TEST(header_layout) {
    lm_gguf *g = lm_gguf_new();
    CHECK(g != NULL);
    if (!g) return;
    CHECK(lm_gguf_kv_u32(g, "a.n", 7) == 0);
    CHECK(lm_gguf_kv_str(g, "a.s", "xy") == 0);
    const char *strs[2] = {"p", "qr"};
    size_t lens[2] = {1, 2};
    CHECK(lm_gguf_kv_str_array(g, "a.t", strs, lens, 2) == 0);
    CHECK(lm_gguf_tensor(g, "w", LM_GGML_F32, 2, (int64_t[]){3, 2}) == 0);   /* 24 bytes, padded to 32 */
    CHECK(lm_gguf_tensor(g, "q", LM_GGML_Q8_0, 1, (int64_t[]){64}) == 1);    /* 2 blocks: 68 bytes */
    CHECK(lm_gguf_kv_count(g) == 3 && lm_gguf_tensor_count(g) == 2);
    CHECK(lm_gguf_tensor_bytes(g, 0) == 24 && lm_gguf_tensor_bytes(g, 1) == 68);
    char path[512];
    snprintf(path, sizeof path, "%s/h.gguf", tmpdir);
    lm_error err;
    lm_atomic_writer *w = lm_atomic_begin(path, &err);
    CHECKF(w != NULL, "%s", err.msg);
    if (!w) return;
    CHECKF(lm_gguf_write_header(g, w, &err) == 0, "%s", err.msg);
    float data[6] = {1, 2, 3, 4, 5, 6};
    lm_atomic_put(w, data, 24);
    lm_gguf_pad(g, w, 0);
    unsigned char q[68] = {0};
    lm_atomic_put(w, q, 68);
    lm_gguf_pad(g, w, 1);
    CHECKF(lm_atomic_finish(w, &err) == 0, "%s", err.msg);
    char *b;
    size_t n;
    CHECKF(lm_read_file(path, 1 << 20, &b, &n, &err) == 0, "%s", err.msg);
    const unsigned char *p = (const unsigned char *)b;
    CHECK(n == lm_gguf_file_bytes(g));
    CHECK(!memcmp(p, "GGUF", 4) && u32_at(p + 4) == 3 && u64_at(p + 8) == 2 && u64_at(p + 16) == 3);
    size_t o = 24;
    /* "a.n" u32 7 */
    CHECK(u64_at(p + o) == 3 && !memcmp(p + o + 8, "a.n", 3) && u32_at(p + o + 11) == 4 && u32_at(p + o + 15) == 7);
    o += 8 + 3 + 4 + 4;
    /* "a.s" string "xy" */
    CHECK(u64_at(p + o) == 3 && u32_at(p + o + 11) == 8 && u64_at(p + o + 15) == 2 && !memcmp(p + o + 23, "xy", 2));
    o += 8 + 3 + 4 + 8 + 2;
    /* "a.t" array of 2 strings */
    CHECK(u32_at(p + o + 11) == 9 && u32_at(p + o + 15) == 8 && u64_at(p + o + 19) == 2);
    o += 8 + 3 + 4 + 4 + 8 + (8 + 1) + (8 + 2);
    /* tensor infos: "w" ne {3, 2} f32 offset 0; "q" ne {64} q8_0 offset 32 */
    CHECK(u64_at(p + o) == 1 && p[o + 8] == 'w' && u32_at(p + o + 9) == 2 && u64_at(p + o + 13) == 3 &&
          u64_at(p + o + 21) == 2 && u32_at(p + o + 29) == 0 && u64_at(p + o + 33) == 0);
    o += 8 + 1 + 4 + 16 + 4 + 8;
    CHECK(u64_at(p + o) == 1 && p[o + 8] == 'q' && u32_at(p + o + 9) == 1 && u64_at(p + o + 13) == 64 &&
          u32_at(p + o + 21) == 8 && u64_at(p + o + 25) == 32);
    o += 8 + 1 + 4 + 8 + 4 + 8;
    size_t data_at = (o + 31) / 32 * 32;
    CHECK(n == data_at + 32 + 96);
    if (n >= data_at + 24) CHECK(!memcmp(p + data_at, data, 24));
    free(b);
    lm_gguf_free(g);
}

TEST(q8_0_follows_the_reference_rule) {
    float x[64];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) * 0.37f; /* amax at j = 0: 5.92 */
    for (int j = 32; j < 64; j++) x[j] = 0;                     /* a zero block */
    unsigned char out[68];
    lm_ggml_encode_row(LM_GGML_Q8_0, x, 64, out);
    uint16_t dh;
    memcpy(&dh, out, 2);
    float d = 5.92f / 127.0f, id = 1.0f / d;
    CHECK(dh == lm_f32_to_f16(d));
    for (int j = 0; j < 32; j++) {
        int8_t q = (int8_t)out[2 + j];
        CHECKF(q == (int8_t)roundf(x[j] * id), "q[%d] = %d", j, q);
        CHECK(fabsf(lm_f16_to_f32(dh) * q - x[j]) <= 0.5f * d + 1e-3f); /* F16 scale: a little more than d/2 */
    }
    CHECK((int8_t)out[2] == -127);
    memcpy(&dh, out + 34, 2);
    CHECK(dh == 0);
    for (int j = 0; j < 32; j++) CHECK(out[36 + j] == 0);
    /* halves round away from zero (C's roundf), not to even */
    float h[32] = {0};
    h[0] = 127.0f; /* d = 1: q = x */
    h[1] = 2.5f, h[2] = -2.5f, h[3] = 0.5f;
    lm_ggml_encode_row(LM_GGML_Q8_0, h, 32, out);
    CHECK((int8_t)out[3] == 3 && (int8_t)out[4] == -3 && (int8_t)out[5] == 1);
    /* F16 / BF16 rows: the dtype.h conversions */
    float y[2] = {1.0f / 3, -65536.5f};
    uint16_t hb[2];
    lm_ggml_encode_row(LM_GGML_BF16, y, 2, hb);
    CHECK(hb[0] == lm_f32_to_bf16(y[0]) && hb[1] == lm_f32_to_bf16(y[1]));
    lm_ggml_encode_row(LM_GGML_F16, y, 2, hb);
    CHECK(hb[0] == lm_f32_to_f16(y[0]) && hb[1] == lm_f32_to_f16(y[1]));
    CHECK(lm_ggml_bytes(LM_GGML_Q8_0, 64) == 68 && lm_ggml_bytes(LM_GGML_BF16, 3) == 6);
}

TEST(export_marks_its_files_and_fails_cleanly) {
    char out[512], other[512];
    lm_error err;
    lm_export_result r;
    snprintf(out, sizeof out, "%s/m.gguf", tmpdir);
    CHECKF(lm_export_gguf("tests/golden/v3_f32", out, &(lm_export_opts){.type = LM_EXPORT_Q8_0}, &r, &err) == 0, "%s",
           err.msg);
    CHECK(lm_export_made_by_lemma(out) == 1);
    CHECK(r.tensors == 65 && !strcmp(r.type, "q8_0") && r.f16_fallbacks > 0 && r.tokenizer == 0);
    struct stat st;
    CHECK(stat(out, &st) == 0 && (uint64_t)st.st_size == r.bytes);
    snprintf(other, sizeof other, "%s/other.gguf", tmpdir);
    CHECK(lm_write_file_atomic(other, "GGUF\3\0\0\0", 8, &err) == 0);
    CHECK(lm_export_made_by_lemma(other) == 0);               /* a GGUF, but not lemma's */
    CHECK(lm_export_made_by_lemma("tests/golden/v3_f32/config.json") == 0);
    CHECK(lm_export_made_by_lemma(tmpdir) == 0);             /* a folder */
    CHECK(lm_export_made_by_lemma("/nonexistent/x.gguf") == 0);
    /* errors name the file, field or tensor; nothing is left behind */
    snprintf(out, sizeof out, "%s/bad.gguf", tmpdir);
    CHECK(lm_export_gguf("tests/golden/no_such_model", out, NULL, &r, &err) == -1);
    CHECKF(strstr(err.msg, "tests/golden/no_such_model/config.json") != NULL, "%s", err.msg);
    CHECK(lm_export_gguf("tests/golden/v2lite_yarn_f32", out, NULL, &r, &err) == -1);
    CHECKF(strstr(err.msg, "moe_layer_freq is 2") != NULL, "%s", err.msg);
    CHECK(lm_export_gguf("tests/golden/v3_f32", out, &(lm_export_opts){.tokenizer = "tests/golden/v3_f32"}, &r,
                         &err) == -1);
    CHECKF(strstr(err.msg, "tests/golden/v3_f32/tokenizer.json") != NULL, "%s", err.msg);
    CHECK(access(out, F_OK) != 0);
    snprintf(out, sizeof out, "%s/no/such/folder/x.gguf", tmpdir);
    CHECK(lm_export_gguf("tests/golden/v3_f32", out, NULL, &r, &err) == -1);
    CHECKF(strstr(err.msg, "cannot create") != NULL, "%s", err.msg);
    /* V2 grouped routing: exported, with the warning */
    snprintf(out, sizeof out, "%s/v2.gguf", tmpdir);
    CHECKF(lm_export_gguf("tests/golden/v2_f32", out, NULL, &r, &err) == 0, "%s", err.msg);
    CHECKF(strstr(r.warning, "group_limited_greedy") != NULL, "%s", r.warning);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lemma_test_gguf_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary folder\n");
        return 1;
    }
    RUN(header_layout);
    RUN(q8_0_follows_the_reference_rule);
    RUN(export_marks_its_files_and_fails_cleanly);
    lm_error err;
    lm_remove_tree(tmpdir, &err);
    return test_report("test_gguf");
}
