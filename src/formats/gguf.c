/* gguf.c — see gguf.h. */
#include "formats/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/dtype.h"

/* GGUF metadata value types */
enum { T_U32 = 4, T_I32 = 5, T_F32 = 6, T_BOOL = 7, T_STRING = 8, T_ARRAY = 9 };

typedef struct tensor_info {
    char *name;
    lm_ggml_type type;
    int ndim;
    int64_t ne[4];
    uint64_t bytes, offset;
} tensor_info;

struct lm_gguf {
    lm_text kv;                  /* the encoded key/values */
    uint64_t nkv;
    tensor_info *t;
    int64_t nt, cap;
    uint64_t data_bytes;         /* with padding */
    int oom;
};

uint64_t lm_ggml_bytes(lm_ggml_type t, uint64_t n) {
    switch (t) {
    case LM_GGML_F32: return n * 4;
    case LM_GGML_F16:
    case LM_GGML_BF16: return n * 2;
    case LM_GGML_Q8_0: return n / LM_Q8_0_BLOCK * LM_Q8_0_BYTES;
    }
    return 0;
}

const char *lm_ggml_type_name(lm_ggml_type t) {
    switch (t) {
    case LM_GGML_F32: return "f32";
    case LM_GGML_F16: return "f16";
    case LM_GGML_BF16: return "bf16";
    case LM_GGML_Q8_0: return "q8_0";
    }
    return "?";
}

lm_gguf *lm_gguf_new(void) { return calloc(1, sizeof(lm_gguf)); }

void lm_gguf_free(lm_gguf *g) {
    if (!g) return;
    lm_text_free(&g->kv);
    for (int64_t i = 0; i < g->nt; i++) free(g->t[i].name);
    free(g->t);
    free(g);
}

static void put(lm_gguf *g, const void *p, size_t n) {
    if (!g->oom && lm_text_append(&g->kv, p, n)) g->oom = 1;
}
static void put_u32(lm_gguf *g, uint32_t v) { put(g, &v, 4); } /* x86-64 and aarch64: little-endian */
static void put_u64(lm_gguf *g, uint64_t v) { put(g, &v, 8); }
static void put_str(lm_gguf *g, const char *s, size_t n) {
    put_u64(g, n);
    put(g, s, n);
}
static int key(lm_gguf *g, const char *k, uint32_t type) {
    put_str(g, k, strlen(k));
    put_u32(g, type);
    g->nkv++;
    return g->oom ? -1 : 0;
}

int lm_gguf_kv_u32(lm_gguf *g, const char *k, uint32_t v) {
    key(g, k, T_U32);
    put_u32(g, v);
    return g->oom ? -1 : 0;
}
int lm_gguf_kv_f32(lm_gguf *g, const char *k, float v) {
    key(g, k, T_F32);
    put(g, &v, 4);
    return g->oom ? -1 : 0;
}
int lm_gguf_kv_bool(lm_gguf *g, const char *k, int v) {
    key(g, k, T_BOOL);
    uint8_t b = v != 0;
    put(g, &b, 1);
    return g->oom ? -1 : 0;
}
int lm_gguf_kv_str(lm_gguf *g, const char *k, const char *v) {
    key(g, k, T_STRING);
    put_str(g, v, strlen(v));
    return g->oom ? -1 : 0;
}
int lm_gguf_kv_str_array(lm_gguf *g, const char *k, const char *const *v, const size_t *len, uint64_t n) {
    key(g, k, T_ARRAY);
    put_u32(g, T_STRING);
    put_u64(g, n);
    for (uint64_t i = 0; i < n; i++) put_str(g, v[i], len[i]);
    return g->oom ? -1 : 0;
}
int lm_gguf_kv_i32_array(lm_gguf *g, const char *k, const int32_t *v, uint64_t n) {
    key(g, k, T_ARRAY);
    put_u32(g, T_I32);
    put_u64(g, n);
    put(g, v, (size_t)n * 4);
    return g->oom ? -1 : 0;
}

int64_t lm_gguf_tensor(lm_gguf *g, const char *name, lm_ggml_type type, int ndim, const int64_t *ne) {
    if (g->nt == g->cap) {
        int64_t cap = g->cap ? 2 * g->cap : 64;
        tensor_info *t = realloc(g->t, (size_t)cap * sizeof *t);
        if (!t) return g->oom = 1, -1;
        g->t = t;
        g->cap = cap;
    }
    tensor_info *t = &g->t[g->nt];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return g->oom = 1, -1;
    t->type = type;
    t->ndim = ndim;
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (uint64_t)(t->ne[d] = ne[d]);
    t->bytes = lm_ggml_bytes(type, n);
    t->offset = g->data_bytes;
    g->data_bytes += (t->bytes + LM_GGUF_ALIGN - 1) / LM_GGUF_ALIGN * LM_GGUF_ALIGN;
    return g->nt++;
}

int64_t lm_gguf_tensor_count(const lm_gguf *g) { return g->nt; }
int64_t lm_gguf_kv_count(const lm_gguf *g) { return (int64_t)g->nkv; }
uint64_t lm_gguf_tensor_bytes(const lm_gguf *g, int64_t i) { return g->t[i].bytes; }

static uint64_t header_bytes(const lm_gguf *g) {
    uint64_t n = 4 + 4 + 8 + 8 + g->kv.len;
    for (int64_t i = 0; i < g->nt; i++) n += 8 + strlen(g->t[i].name) + 4 + 8 * (uint64_t)g->t[i].ndim + 4 + 8;
    return (n + LM_GGUF_ALIGN - 1) / LM_GGUF_ALIGN * LM_GGUF_ALIGN;
}

uint64_t lm_gguf_file_bytes(const lm_gguf *g) { return header_bytes(g) + g->data_bytes; }

int lm_gguf_write_header(lm_gguf *g, lm_atomic_writer *w, lm_error *err) {
    if (g->oom) return lm_fail(err, "out of memory building the GGUF header");
    uint32_t version = 3;
    uint64_t nt = (uint64_t)g->nt;
    lm_atomic_put(w, "GGUF", 4);
    lm_atomic_put(w, &version, 4);
    lm_atomic_put(w, &nt, 8);
    lm_atomic_put(w, &g->nkv, 8);
    lm_atomic_put(w, g->kv.data, g->kv.len);
    uint64_t n = 4 + 4 + 8 + 8 + g->kv.len;
    for (int64_t i = 0; i < g->nt; i++) {
        const tensor_info *t = &g->t[i];
        uint64_t len = strlen(t->name);
        uint32_t nd = (uint32_t)t->ndim, type = (uint32_t)t->type;
        lm_atomic_put(w, &len, 8);
        lm_atomic_put(w, t->name, len);
        lm_atomic_put(w, &nd, 4);
        for (int d = 0; d < t->ndim; d++) {
            uint64_t e = (uint64_t)t->ne[d];
            lm_atomic_put(w, &e, 8);
        }
        lm_atomic_put(w, &type, 4);
        lm_atomic_put(w, &t->offset, 8);
        n += 8 + len + 4 + 8 * (uint64_t)t->ndim + 4 + 8;
    }
    static const char zeros[LM_GGUF_ALIGN];
    lm_atomic_put(w, zeros, (size_t)((LM_GGUF_ALIGN - n % LM_GGUF_ALIGN) % LM_GGUF_ALIGN));
    return 0;
}

void lm_gguf_pad(const lm_gguf *g, lm_atomic_writer *w, int64_t i) {
    static const char zeros[LM_GGUF_ALIGN];
    lm_atomic_put(w, zeros, (size_t)((LM_GGUF_ALIGN - g->t[i].bytes % LM_GGUF_ALIGN) % LM_GGUF_ALIGN));
}

void lm_ggml_encode_row(lm_ggml_type t, const float *x, int64_t n, void *out) {
    switch (t) {
    case LM_GGML_F32: memcpy(out, x, (size_t)n * 4); return;
    case LM_GGML_F16: {
        uint16_t *o = out;
        for (int64_t i = 0; i < n; i++) o[i] = lm_f32_to_f16(x[i]);
        return;
    }
    case LM_GGML_BF16: {
        uint16_t *o = out;
        for (int64_t i = 0; i < n; i++) o[i] = lm_f32_to_bf16(x[i]);
        return;
    }
    case LM_GGML_Q8_0: {
        uint8_t *o = out;
        for (int64_t b = 0; b < n / LM_Q8_0_BLOCK; b++, o += LM_Q8_0_BYTES) {
            const float *xb = x + b * LM_Q8_0_BLOCK;
            float amax = 0;
            for (int j = 0; j < LM_Q8_0_BLOCK; j++) { /* ggml's MAX(a, b): a NaN propagates */
                float v = fabsf(xb[j]);
                amax = amax > v ? amax : v;
            }
            float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
            uint16_t dh = lm_f32_to_f16(d);
            memcpy(o, &dh, 2);
            /* roundf (halves away from zero) without the libm call: v - truncf(v) is
             * exact, so comparing it with 0.5 decides as roundf does */
            int8_t q[LM_Q8_0_BLOCK];
            for (int j = 0; j < LM_Q8_0_BLOCK; j++) {
                float v = xb[j] * id, t = truncf(v), f = v - t;
                q[j] = (int8_t)((int)t + (f >= 0.5f) - (f <= -0.5f)); /* no branch: the sign is random */
            }
            memcpy(o + 2, q, LM_Q8_0_BLOCK);
        }
        return;
    }
    }
}
