/* test_data.c — token shards (src/data/shards.h): build/read round trip
 * against a direct encoding, document framing (BOS ... EOS), the
 * content-keyed train/validation split, header and size validation, window
 * determinism and distribution, evaluation windows, the SFT loss-mask path,
 * clear errors for bad input (FIFOs refused without blocking), and a stop
 * request honoured between documents. A small BPE tokenizer is trained in a
 * temporary directory first. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/sha256.h"
#include "core/stop.h"
#include "data/shards.h"
#include "formats/json.h"
#include "test.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/train.h"

static char tmp_root[256];
static char tok_dir[300];
static lm_tokenizer *tok;

static const char *tpath(const char *name) {
    static char b[256][512]; /* a ring: results stay valid for 256 calls */
    static int k;
    char *p = b[k++ & 255];
    snprintf(p, 512, "%s/%s", tmp_root, name);
    return p;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void rm_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

/* A corpus: lines "doc N: the quick ... N" with some repeats. */
static const char *words[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
                              "iota", "kappa", "lambda", "mu"};

static char *make_lines(int ndocs, int salt) {
    size_t cap = (size_t)ndocs * 200 + 1, pos = 0;
    char *s = malloc(cap);
    for (int i = 0; i < ndocs; i++) {
        pos += (size_t)snprintf(s + pos, cap - pos, "doc %d:", i + salt);
        int nw = 3 + (i * 7 + salt) % 9;
        for (int w = 0; w < nw; w++) pos += (size_t)snprintf(s + pos, cap - pos, " %s", words[(i * 5 + w * 3 + salt) % 12]);
        pos += (size_t)snprintf(s + pos, cap - pos, ".\n");
    }
    return s;
}

static int setup(void) {
    snprintf(tmp_root, sizeof tmp_root, "%s/lemma_test_data_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) return -1;
    snprintf(tok_dir, sizeof tok_dir, "%s/tok", tmp_root);
    lm_bpe_train_opts o;
    lm_bpe_train_defaults(&o);
    o.vocab_size = 400;
    lm_error err;
    char *text = make_lines(400, 0);
    write_text(tpath("train.txt"), text);
    free(text);
    const char *files[] = {tpath("train.txt")};
    if (lm_bpe_train_files(files, 1, &o, tok_dir, &err)) {
        printf("tokenizer training failed: %s\n", err.msg);
        return -1;
    }
    tok = lm_tokenizer_load(tok_dir, &err);
    if (!tok) printf("tokenizer load failed: %s\n", err.msg);
    return tok ? 0 : -1;
}

/* Reads a whole shard's ids (and loss bytes) from disk. */
static int read_shard(const char *path, lm_ids *ids, unsigned char **loss, uint32_t *flags) {
    char *buf;
    size_t len;
    lm_error err;
    if (lm_read_file(path, (size_t)1 << 30, &buf, &len, &err)) return -1;
    lm_shard_info info;
    if (lm_shard_check(buf, len, path, &info, &err)) {
        printf("  %s\n", err.msg);
        free(buf);
        return -1;
    }
    const unsigned char *p = (const unsigned char *)buf + LM_SHARD_HEADER;
    for (uint64_t i = 0; i < info.n; i++)
        lm_ids_push(ids, (int32_t)(p[4 * i] | p[4 * i + 1] << 8 | p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24));
    if (loss) {
        *loss = NULL;
        if (info.flags & LM_SHARD_MASKED) {
            *loss = malloc(info.n);
            memcpy(*loss, p + 4 * info.n, info.n);
        }
    }
    if (flags) *flags = info.flags;
    free(buf);
    return 0;
}

/* Reads every shard of a split (in index order) into ids. */
static int read_split(const char *dir, int split, lm_ids *ids) {
    for (int i = 0;; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s-%05d.bin", dir, split ? "val" : "train", i);
        if (access(p, F_OK)) return 0;
        if (read_shard(p, ids, NULL, NULL)) return -1;
    }
}

static int build(const char *const *files, int n, const char *out, lm_data_opts *o, lm_error *err) {
    return lm_data_build(files, n, tok_dir, out, o, err);
}

/* Splits a token stream at EOS into documents; returns count. */
static int count_id(const lm_ids *v, int32_t id) {
    int c = 0;
    for (size_t i = 0; i < v->n; i++) c += v->ids[i] == id;
    return c;
}

TEST(round_trip_and_framing) {
    char *text = make_lines(300, 1);
    write_text(tpath("a.txt"), text);
    const char *files[] = {tpath("a.txt")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    o.val_fraction = 0.1;
    o.shard_tokens = 500; /* several shards */
    lm_error err;
    int rc = build(files, 1, tpath("d1"), &o, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) { free(text); return; }
    lm_data *d = lm_data_open(tpath("d1"), &err);
    CHECKF(d != NULL, "%s", err.msg);
    if (!d) { free(text); return; }
    CHECK(lm_data_shard_count(d, LM_SPLIT_TRAIN) > 2);
    CHECK(lm_data_documents(d, LM_SPLIT_TRAIN) + lm_data_documents(d, LM_SPLIT_VAL) == 300);
    CHECK(lm_data_documents(d, LM_SPLIT_VAL) > 10 && lm_data_documents(d, LM_SPLIT_VAL) < 60);
    int32_t bos = lm_tokenizer_bos(tok), eos = lm_tokenizer_eos(tok);
    CHECK(lm_data_bos(d) == bos && lm_data_eos(d) == eos && bos >= 0 && eos >= 0);
    char hex[65];
    char tj[400];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", tok_dir);
    lm_sha256_file(tj, hex, &err);
    CHECK(!strcmp(hex, lm_data_tokenizer_sha256(d)));

    /* Expected streams: encode every line, route by the documented rule. */
    lm_ids want[2] = {{0}, {0}}, got[2] = {{0}, {0}};
    int ndocs[2] = {0, 0};
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        uint8_t s8[8] = {0}, dg[32];
        lm_sha256 h;
        lm_sha256_init(&h);
        lm_sha256_update(&h, s8, 8);
        lm_sha256_update(&h, p, n);
        lm_sha256_final(&h, dg);
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | dg[i];
        int s = u < (uint64_t)(0.1 * 18446744073709551616.0);
        lm_ids_push(&want[s], bos);
        lm_tokenizer_encode(tok, p, n, 0, &want[s], &err);
        lm_ids_push(&want[s], eos);
        ndocs[s]++;
        p = nl + 1;
    }
    for (int s = 0; s < 2; s++) {
        CHECK(read_split(tpath("d1"), s, &got[s]) == 0);
        CHECKF(got[s].n == want[s].n, "split %d: %zu tokens, want %zu", s, got[s].n, want[s].n);
        CHECK(got[s].n == want[s].n && !memcmp(got[s].ids, want[s].ids, got[s].n * 4));
        CHECK((int64_t)got[s].n == lm_data_tokens(d, s));
        CHECK(count_id(&got[s], eos) == ndocs[s]);
        CHECK(count_id(&got[s], bos) == ndocs[s]);
        CHECK(ndocs[s] == lm_data_documents(d, s));
        /* every shard ends with EOS and starts with BOS: whole documents */
        for (int i = 0; i < lm_data_shard_count(d, s); i++) {
            char sp[600];
            snprintf(sp, sizeof sp, "%s/%s-%05d.bin", tpath("d1"), s ? "val" : "train", i);
            lm_ids one = {0};
            CHECK(read_shard(sp, &one, NULL, NULL) == 0);
            CHECK(one.n > 0 && one.ids[0] == bos && one.ids[one.n - 1] == eos);
            lm_ids_free(&one);
        }
        lm_ids_free(&want[s]);
        lm_ids_free(&got[s]);
    }
    lm_data_close(d);

    /* Same inputs, same bytes (index and shards). */
    rc = build(files, 1, tpath("d1b"), &o, &err);
    CHECK(rc == 0);
    char a[600], b[600];
    snprintf(a, sizeof a, "cmp -s %s/index.json %s/index.json && cmp -s %s/train-00001.bin %s/train-00001.bin",
             tpath("d1"), tpath("d1b"), tpath("d1"), tpath("d1b"));
    CHECK(system(a) == 0);
    (void)b;
    free(text);
}

TEST(doc_sep_modes) {
    write_text(tpath("p.txt"), "first para\nstill first\n\n\n  \nsecond para\n\nthird\n\n");
    const char *files[] = {tpath("p.txt")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.val_fraction = 0;
    lm_error err;
    int want_docs[3] = {1, 4, 3}; /* file, line, blank */
    for (int m = 0; m < 3; m++) {
        o.doc_sep = m;
        int rc = build(files, 1, tpath("dsep"), &o, &err);
        CHECKF(rc == 0, "%s", err.msg);
        lm_data *d = lm_data_open(tpath("dsep"), &err);
        CHECKF(d && lm_data_documents(d, LM_SPLIT_TRAIN) == want_docs[m], "mode %d: %lld docs", m,
               d ? (long long)lm_data_documents(d, LM_SPLIT_TRAIN) : -1LL);
        if (d && m == LM_DOC_BLANK) {
            /* the first paragraph keeps its inner newline */
            lm_ids got = {0}, want = {0};
            read_split(tpath("dsep"), 0, &got);
            lm_ids_push(&want, lm_tokenizer_bos(tok));
            lm_tokenizer_encode(tok, "first para\nstill first", 22, 0, &want, &err);
            lm_ids_push(&want, lm_tokenizer_eos(tok));
            CHECK(got.n > want.n && !memcmp(got.ids, want.ids, want.n * 4));
            lm_ids_free(&got);
            lm_ids_free(&want);
        }
        lm_data_close(d);
    }
    /* no BOS */
    o.doc_sep = LM_DOC_LINE;
    o.bos = 0;
    CHECK(build(files, 1, tpath("dsep"), &o, &err) == 0);
    lm_ids got = {0};
    read_split(tpath("dsep"), 0, &got);
    CHECK(count_id(&got, lm_tokenizer_bos(tok)) == 0 && count_id(&got, lm_tokenizer_eos(tok)) == 4);
    lm_ids_free(&got);
}

TEST(split_is_content_keyed) {
    /* Same documents in two files, in a different order and with additions:
     * every document keeps its side. */
    char *t1 = make_lines(200, 3), *t2 = make_lines(250, 3);
    write_text(tpath("s1.txt"), t1);
    /* reverse the line order of t2 into s2 */
    size_t n = strlen(t2);
    char *rev = malloc(n + 1);
    size_t pos = 0;
    for (size_t end = n; end > 0;) {
        size_t st = end - 1;
        while (st > 0 && t2[st - 1] != '\n') st--;
        memcpy(rev + pos, t2 + st, end - st);
        pos += end - st;
        end = st;
    }
    rev[pos] = 0;
    write_text(tpath("s2.txt"), rev);
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    o.val_fraction = 0.2;
    o.seed = 7;
    lm_error err;
    const char *f1[] = {tpath("s1.txt")}, *f2[] = {tpath("s2.txt")};
    CHECK(build(f1, 1, tpath("sp1"), &o, &err) == 0);
    CHECK(build(f2, 1, tpath("sp2"), &o, &err) == 0);
    /* Compare the sets of val documents: every val doc of sp1 must be a val doc of sp2. */
    lm_ids v1 = {0}, v2 = {0}, tr1 = {0}, tr2 = {0};
    read_split(tpath("sp1"), 1, &v1);
    read_split(tpath("sp2"), 1, &v2);
    read_split(tpath("sp1"), 0, &tr1);
    read_split(tpath("sp2"), 0, &tr2);
    int32_t eos = lm_tokenizer_eos(tok);
    /* each doc is BOS..EOS; look each val doc of sp1 up in sp2's val and train streams */
    int in_val = 0, in_train = 0, docs = 0;
    size_t s = 0;
    for (size_t i = 0; i < v1.n; i++) {
        if (v1.ids[i] != eos) continue;
        size_t len = i + 1 - s;
        int found_v = 0, found_t = 0;
        for (size_t j = 0; j + len <= v2.n && !found_v; j++) found_v = !memcmp(v2.ids + j, v1.ids + s, len * 4);
        for (size_t j = 0; j + len <= tr2.n && !found_t; j++) found_t = !memcmp(tr2.ids + j, v1.ids + s, len * 4);
        in_val += found_v;
        in_train += found_t;
        docs++;
        s = i + 1;
    }
    CHECK(docs > 10);
    CHECKF(in_val == docs && in_train == 0, "%d docs, %d in val, %d in train", docs, in_val, in_train);
    /* disjoint within one build: no val document appears in train */
    int leak = 0;
    s = 0;
    for (size_t i = 0; i < v1.n; i++) {
        if (v1.ids[i] != eos) continue;
        size_t len = i + 1 - s;
        for (size_t j = 0; j + len <= tr1.n && !leak; j++) leak = !memcmp(tr1.ids + j, v1.ids + s, len * 4);
        s = i + 1;
    }
    CHECK(!leak);
    /* another seed gives another split */
    o.seed = 8;
    CHECK(build(f1, 1, tpath("sp3"), &o, &err) == 0);
    lm_ids v3 = {0};
    read_split(tpath("sp3"), 1, &v3);
    CHECK(v3.n != v1.n || memcmp(v3.ids, v1.ids, v1.n * 4));
    lm_ids_free(&v1); lm_ids_free(&v2); lm_ids_free(&v3); lm_ids_free(&tr1); lm_ids_free(&tr2);
    free(t1); free(t2); free(rev);
}

TEST(val_never_empty) {
    write_text(tpath("two.txt"), "one document\ntwo documents\nthree\n");
    const char *files[] = {tpath("two.txt")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    o.val_fraction = 1e-9;
    lm_error err;
    CHECK(build(files, 1, tpath("ve"), &o, &err) == 0);
    lm_data *d = lm_data_open(tpath("ve"), &err);
    CHECK(d && lm_data_documents(d, LM_SPLIT_VAL) == 1 && lm_data_documents(d, LM_SPLIT_TRAIN) == 2);
    lm_data_close(d);
    o.val_fraction = 0;
    CHECK(build(files, 1, tpath("ve"), &o, &err) == 0);
    d = lm_data_open(tpath("ve"), &err);
    CHECK(d && lm_data_documents(d, LM_SPLIT_VAL) == 0 && lm_data_shard_count(d, LM_SPLIT_VAL) == 0);
    int32_t ids[8], tg[8];
    CHECK(d && lm_data_window(d, LM_SPLIT_VAL, 0, 0, 0, 1, 4, ids, tg, &err) == -1);
    CHECKF(strstr(err.msg, "val split"), "%s", err.msg);
    lm_data_close(d);
}

/* A data dir for the window tests: 2 train shards. */
static lm_data *window_data(void) {
    char *text = make_lines(500, 11);
    write_text(tpath("w.txt"), text);
    free(text);
    const char *files[] = {tpath("w.txt")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    o.val_fraction = 0.05;
    o.shard_tokens = 3000;
    lm_error err;
    if (build(files, 1, tpath("wd"), &o, &err)) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    return lm_data_open(tpath("wd"), &err);
}

TEST(window_determinism) {
    lm_data *d = window_data();
    CHECK(d != NULL);
    if (!d) return;
    enum { B = 4, T = 16 };
    int32_t a[B * T], at[B * T], b[B * T], bt[B * T], c[B * T], ct[B * T];
    lm_error err;
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 42, 10, 0, B, T, a, at, &err) == 0);
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 42, 10, 0, B, T, b, bt, &err) == 0);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(at, bt, sizeof at));
    /* micro-batches of 2 rows draw the same windows as one of 4 */
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 42, 10, 0, 2, T, c, ct, &err) == 0);
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 42, 10, 1, 2, T, c + 2 * T, ct + 2 * T, &err) == 0);
    CHECK(!memcmp(a, c, sizeof a) && !memcmp(at, ct, sizeof at));
    /* another step, seed or split differs */
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 42, 11, 0, B, T, b, bt, &err) == 0);
    CHECK(memcmp(a, b, sizeof a));
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 43, 10, 0, B, T, b, bt, &err) == 0);
    CHECK(memcmp(a, b, sizeof a));
    CHECK(lm_data_window(d, LM_SPLIT_VAL, 42, 10, 0, B, T, b, bt, &err) == 0);
    CHECK(memcmp(a, b, sizeof a));
    /* targets are the ids shifted by one within a row (unmasked data) */
    int shifted = 1;
    for (int r = 0; r < B; r++)
        for (int t = 0; t + 1 < T; t++) shifted &= at[r * T + t] == a[r * T + t + 1];
    CHECK(shifted);
    /* rows come from the stream at the documented start */
    lm_ids all = {0};
    read_split(tpath("wd"), LM_SPLIT_TRAIN, &all);
    int match = 1;
    for (int r = 0; r < B; r++) {
        int64_t k = lm_data_window_start(d, LM_SPLIT_TRAIN, 42, 10, r, T);
        /* map the k-th start to an offset in the concatenation: shards have n-T starts each */
        int64_t off = 0, kk = k;
        for (int i = 0;; i++) {
            char sp[600];
            snprintf(sp, sizeof sp, "%s/train-%05d.bin", tpath("wd"), i);
            lm_ids one = {0};
            if (read_shard(sp, &one, NULL, NULL)) { match = 0; break; }
            int64_t n = (int64_t)one.n;
            lm_ids_free(&one);
            if (kk < n - T) { off += kk; break; }
            kk -= n - T;
            off += n;
        }
        match &= !memcmp(a + r * T, all.ids + off, T * 4) && at[r * T + T - 1] == all.ids[off + T];
    }
    CHECK(match);
    lm_ids_free(&all);
    /* bad shapes */
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 1, 0, 0, 0, T, a, at, &err) == -1);
    CHECK(lm_data_window(d, 5, 1, 0, 0, 1, T, a, at, &err) == -1);
    CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 1, 0, 0, 1, 1 << 20, a, at, &err) == -1);
    CHECKF(strstr(err.msg, "no shard holds more than"), "%s", err.msg);
    lm_data_close(d);
}

/* "windows": "document": every training window starts at a BOS, every BOS
 * that has T tokens after it in its shard is a start, and the index says so. */
TEST(document_windows) {
    char *text = make_lines(500, 11);
    write_text(tpath("dw.txt"), text);
    free(text);
    const char *files[] = {tpath("dw.txt")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    o.val_fraction = 0.05;
    o.shard_tokens = 3000;
    o.doc_windows = 1;
    lm_error err;
    CHECK(build(files, 1, tpath("dwd"), &o, &err) == 0);
    lm_data *d = lm_data_open(tpath("dwd"), &err);
    CHECK(d != NULL);
    if (!d) return;
    enum { B = 8, T = 16 };
    int32_t ids[B * T], tg[B * T];
    int32_t bos = lm_data_bos(d);
    int all_bos = 1;
    for (int step = 0; step < 50; step++) {
        CHECK(lm_data_window(d, LM_SPLIT_TRAIN, 7, step, 0, B, T, ids, tg, &err) == 0);
        for (int r = 0; r < B; r++) all_bos &= ids[r * T] == bos;
    }
    CHECK(all_bos);
    /* the number of starts: BOS positions p with p + T < n, summed over shards */
    lm_ids one = {0};
    int64_t want = 0;
    for (int i = 0;; i++) {
        char sp[600];
        snprintf(sp, sizeof sp, "%s/train-%05d.bin", tpath("dwd"), i);
        if (access(sp, F_OK)) break;
        one.n = 0;
        CHECK(read_shard(sp, &one, NULL, NULL) == 0);
        for (size_t t = 0; t < one.n; t++) want += one.ids[t] == bos && (int64_t)t + T < (int64_t)one.n;
    }
    lm_ids_free(&one);
    CHECKF(lm_data_starts(d, LM_SPLIT_TRAIN, T) == want && want > 100, "%lld starts, want %lld",
           (long long)lm_data_starts(d, LM_SPLIT_TRAIN, T), (long long)want);
    lm_data_close(d);
    /* without a BOS there are no documents to align to */
    o.bos = 0;
    CHECK(build(files, 1, tpath("dwd2"), &o, &err) == -1 && strstr(err.msg, "BOS"));
}

TEST(window_distribution) {
    lm_data *d = window_data();
    if (!d) { CHECK(0); return; }
    enum { T = 8, NB = 16 };
    int64_t S = lm_data_starts(d, LM_SPLIT_TRAIN, T);
    CHECK(S > 1000);
    int64_t cnt[NB] = {0};
    const int draws = 64000;
    for (int step = 0; step < draws / 8; step++)
        for (int r = 0; r < 8; r++) {
            int64_t k = lm_data_window_start(d, LM_SPLIT_TRAIN, 5, step, r, T);
            CHECK(k >= 0 && k < S);
            cnt[k * NB / S]++;
        }
    double chi = 0, e = draws / (double)NB;
    for (int i = 0; i < NB; i++) chi += (cnt[i] - e) * (cnt[i] - e) / e;
    /* 15 degrees of freedom: P(chi2 > 40) < 0.001 */
    CHECKF(chi < 40, "chi2 = %.1f", chi);
    /* consecutive steps are not correlated: starts of step s and s+1 differ */
    int same = 0;
    for (int s = 0; s < 1000; s++)
        same += lm_data_window_start(d, LM_SPLIT_TRAIN, 5, s, 0, T) == lm_data_window_start(d, LM_SPLIT_TRAIN, 5, s + 1, 0, T);
    CHECK(same < 5);
    lm_data_close(d);
}

TEST(eval_windows) {
    lm_data *d = window_data();
    if (!d) { CHECK(0); return; }
    enum { T = 32 };
    int64_t n = lm_data_eval_count(d, LM_SPLIT_VAL, T);
    CHECK(n >= 2);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(n * T)), *tg = malloc(sizeof(int32_t) * (size_t)(n * T));
    lm_error err;
    CHECK(lm_data_eval_window(d, LM_SPLIT_VAL, 0, n, T, ids, tg, &err) == 0);
    lm_ids all = {0};
    read_split(tpath("wd"), LM_SPLIT_VAL, &all);
    /* one val shard: window k = tokens [kT, kT+T], nothing overlaps */
    CHECK(lm_data_shard_count(d, LM_SPLIT_VAL) == 1);
    CHECK(!memcmp(ids, all.ids, (size_t)(n * T) * 4));
    CHECK(!memcmp(tg, all.ids + 1, (size_t)(n * T - 1) * 4));
    /* a later row alone equals the same row of the full pass */
    int32_t one[T], onet[T];
    CHECK(lm_data_eval_window(d, LM_SPLIT_VAL, n - 1, 1, T, one, onet, &err) == 0);
    CHECK(!memcmp(one, ids + (n - 1) * T, sizeof one));
    CHECK(lm_data_eval_window(d, LM_SPLIT_VAL, n - 1, 2, T, one, onet, &err) == -1);
    lm_ids_free(&all);
    free(ids);
    free(tg);
    lm_data_close(d);
}

TEST(mask_path) {
    write_text(tpath("sft.jsonl"),
               "{\"segments\": [{\"text\": \"<｜User｜>alpha beta\", \"loss\": false}, {\"text\": \"<｜Assistant｜>gamma delta\", \"loss\": true}]}\n"
               "\n"
               "{\"text\": \"plain zeta eta\"}\n"
               "{\"segments\": [{\"text\": \"question\"}, {\"text\": \"answer\", \"loss\": true}, {\"text\": \" tail\", \"loss\": false}]}\n");
    const char *files[] = {tpath("sft.jsonl")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.val_fraction = 0;
    lm_error err;
    int rc = build(files, 1, tpath("md"), &o, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    lm_ids ids = {0};
    unsigned char *loss = NULL;
    uint32_t flags = 0;
    char sp[600];
    snprintf(sp, sizeof sp, "%s/train-00000.bin", tpath("md"));
    CHECK(read_shard(sp, &ids, &loss, &flags) == 0);
    CHECK(flags & LM_SHARD_MASKED);
    CHECK(loss != NULL);
    if (!loss) return;
    /* expected: record 1 */
    lm_ids w = {0};
    unsigned char wl[256];
    size_t k = 0;
    int32_t bos = lm_tokenizer_bos(tok), eos = lm_tokenizer_eos(tok);
#define SEG(txt, l) do { size_t b0 = w.n; lm_tokenizer_encode(tok, txt, strlen(txt), LM_TOK_SPECIAL, &w, &err); \
                         for (size_t q = b0; q < w.n; q++) wl[k++] = l; } while (0)
#define ONE(id, l) do { lm_ids_push(&w, id); wl[k++] = l; } while (0)
    ONE(bos, 0); SEG("<｜User｜>alpha beta", 0); SEG("<｜Assistant｜>gamma delta", 1); ONE(eos, 1);
    ONE(bos, 1); SEG("plain zeta eta", 1); ONE(eos, 1);
    ONE(bos, 0); SEG("question", 0); SEG("answer", 1); SEG(" tail", 0); ONE(eos, 0);
#undef SEG
#undef ONE
    CHECK(ids.n == w.n && !memcmp(ids.ids, w.ids, w.n * 4) && !memcmp(loss, wl, k));
    /* special-token text in JSONL is the added token */
    int32_t user = lm_tokenizer_find(tok, "<｜User｜>");
    CHECK(user >= 0 && ids.n > 1 && ids.ids[1] == user);
    /* eval windows: targets -1 exactly where the loss byte is 0 */
    lm_data *d = lm_data_open(tpath("md"), &err);
    CHECK(d != NULL);
    if (d) {
        int64_t T = (int64_t)ids.n - 1;
        int32_t *x = malloc(sizeof(int32_t) * (size_t)T), *t = malloc(sizeof(int32_t) * (size_t)T);
        CHECK(lm_data_eval_window(d, LM_SPLIT_TRAIN, 0, 1, T, x, t, &err) == 0);
        int ok = 1, masked = 0;
        for (int64_t i = 0; i < T; i++) {
            ok &= x[i] == ids.ids[i];
            ok &= t[i] == (loss[i + 1] ? ids.ids[i + 1] : -1);
            masked += t[i] == -1;
        }
        CHECK(ok && masked > 3);
        free(x);
        free(t);
        lm_data_close(d);
    }
    /* a plain-text corpus never matches special tokens */
    write_text(tpath("inj.txt"), "<｜User｜>hi");
    const char *f2[] = {tpath("inj.txt")};
    CHECK(build(f2, 1, tpath("inj"), &o, &err) == 0);
    lm_ids inj = {0};
    read_split(tpath("inj"), 0, &inj);
    CHECK(count_id(&inj, user) == 0);
    lm_ids_free(&inj);
    lm_ids_free(&ids);
    lm_ids_free(&w);
    free(loss);
}

static int corrupt_and_open(const char *dir, long off, const void *bytes, size_t n, long truncate_to, lm_error *err) {
    char src[600], cmd[1400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", tpath("bad"), dir, tpath("bad"));
    if (system(cmd)) return 99;
    snprintf(src, sizeof src, "%s/train-00000.bin", tpath("bad"));
    if (bytes) {
        FILE *f = fopen(src, "r+b");
        fseek(f, off, SEEK_SET);
        fwrite(bytes, 1, n, f);
        fclose(f);
    }
    if (truncate_to >= 0 && truncate(src, truncate_to)) return 98;
    lm_data *d = lm_data_open(tpath("bad"), err);
    lm_data_close(d);
    return d ? 0 : -1;
}

TEST(header_validation) {
    char *text = make_lines(50, 2);
    write_text(tpath("h.txt"), text);
    free(text);
    const char *files[] = {tpath("h.txt")};
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    o.val_fraction = 0;
    lm_error err;
    CHECK(build(files, 1, tpath("hd"), &o, &err) == 0);
    const char *dir = tpath("hd");
    CHECK(corrupt_and_open(dir, 0, NULL, 0, -1, &err) == 0);
    CHECK(corrupt_and_open(dir, 0, "XXXX", 4, -1, &err) == -1 && strstr(err.msg, "magic"));
    uint8_t v2[4] = {2, 0, 0, 0};
    CHECK(corrupt_and_open(dir, 8, v2, 4, -1, &err) == -1 && strstr(err.msg, "version 2"));
    uint8_t fl[4] = {0x10, 0, 0, 0};
    CHECK(corrupt_and_open(dir, 12, fl, 4, -1, &err) == -1 && strstr(err.msg, "unknown flags"));
    uint8_t big[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    CHECK(corrupt_and_open(dir, 16, big, 8, -1, &err) == -1 && strstr(err.msg, "truncated or corrupt"));
    CHECKF(corrupt_and_open(dir, 0, NULL, 0, 200, &err) == -1 && strstr(err.msg, "truncated or corrupt"), "%s", err.msg);
    CHECK(corrupt_and_open(dir, 0, NULL, 0, 10, &err) == -1 && strstr(err.msg, "shorter than"));
    uint8_t h[1] = {0};
    CHECK(corrupt_and_open(dir, 40, h, 1, -1, &err) == -1 && strstr(err.msg, "tokenizer hash"));
    uint8_t vs[4] = {1, 0, 0, 0};
    CHECK(corrupt_and_open(dir, 24, vs, 4, -1, &err) == -1 && strstr(err.msg, "vocab size"));
    /* an id past the vocabulary is caught when a window reads it */
    uint8_t id[4] = {0xff, 0xff, 0, 0};
    CHECK(corrupt_and_open(dir, LM_SHARD_HEADER + 4, id, 4, -1, &err) == 0);
    lm_data *d = lm_data_open(tpath("bad"), &err);
    int32_t ids[4], tg[4];
    CHECK(d && lm_data_eval_window(d, LM_SPLIT_TRAIN, 0, 1, 4, ids, tg, &err) == -1 && strstr(err.msg, "byte 68"));
    lm_data_close(d);
    /* the index: missing, malformed, a shard file outside the directory */
    write_text(tpath("bad/index.json"), "{\"format\": \"lemma-tokens\", \"version\": 1");
    CHECK(lm_data_open(tpath("bad"), &err) == NULL && strstr(err.msg, "index.json"));
    unlink(tpath("bad/index.json"));
    CHECK(lm_data_open(tpath("bad"), &err) == NULL && strstr(err.msg, "index.json"));
    write_text(tpath("bad/index.json"), "{\"format\": \"lemma-tokens\", \"version\": 1, \"vocab_size\": 400, \"eos_id\": 1, "
                                        "\"bos_id\": 0, \"tokenizer_sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\", "
                                        "\"splits\": {\"train\": {\"shards\": [{\"file\": \"../x.bin\", \"tokens\": 1}]}, \"val\": {\"shards\": []}}}");
    CHECK(lm_data_open(tpath("bad"), &err) == NULL && strstr(err.msg, "file name"));
}

TEST(bad_input) {
    lm_data_opts o;
    lm_data_opts_default(&o);
    lm_error err;
    write_text(tpath("ok.txt"), "some text");
    const char *ok[] = {tpath("ok.txt")};
    CHECK(lm_data_build(ok, 1, tpath("no_such_tok"), tpath("x"), &o, &err) == -1 && strstr(err.msg, "tokenizer"));
    const char *missing[] = {tpath("no_such.txt")};
    CHECK(build(missing, 1, tpath("x"), &o, &err) == -1 && strstr(err.msg, "no_such.txt"));
    write_text(tpath("empty.txt"), "");
    write_text(tpath("blank.txt"), "\n  \n\t\n");
    const char *empty[] = {tpath("empty.txt"), tpath("blank.txt")};
    CHECK(build(empty, 2, tpath("x"), &o, &err) == -1 && strstr(err.msg, "empty corpus"));
    write_text(tpath("bad.jsonl"), "{\"text\": \"fine\"}\n{\"text\": 5}\n");
    const char *bj[] = {tpath("bad.jsonl")};
    CHECKF(build(bj, 1, tpath("x"), &o, &err) == -1 && strstr(err.msg, "bad.jsonl:2"), "%s", err.msg);
    write_text(tpath("bad2.jsonl"), "{\"text\": \"fine\"}\nnot json\n");
    const char *bj2[] = {tpath("bad2.jsonl")};
    CHECK(build(bj2, 1, tpath("x"), &o, &err) == -1 && strstr(err.msg, "bad2.jsonl:2"));
    write_text(tpath("bad3.jsonl"), "{\"segments\": [{\"text\": \"a\", \"loss\": 1}]}\n");
    const char *bj3[] = {tpath("bad3.jsonl")};
    CHECK(build(bj3, 1, tpath("x"), &o, &err) == -1 && strstr(err.msg, "segment"));
    /* nothing was written for the failed builds */
    CHECK(access(tpath("x/index.json"), F_OK) != 0);
    o.val_fraction = 0.9;
    CHECK(build(ok, 1, tpath("x"), &o, &err) == -1 && strstr(err.msg, "val_fraction"));
    /* a directory as corpus */
    lm_data_opts_default(&o);
    const char *dirs[] = {tmp_root};
    CHECK(build(dirs, 1, tpath("x"), &o, &err) == -1 && strstr(err.msg, "regular file"));
    /* stale shards are removed on rebuild */
    char *text = make_lines(200, 1);
    write_text(tpath("st.txt"), text);
    free(text);
    const char *st[] = {tpath("st.txt")};
    o.doc_sep = LM_DOC_LINE;
    o.shard_tokens = 300;
    CHECK(build(st, 1, tpath("stale"), &o, &err) == 0);
    CHECK(access(tpath("stale/train-00003.bin"), F_OK) == 0);
    o.shard_tokens = 1 << 20;
    CHECK(build(st, 1, tpath("stale"), &o, &err) == 0);
    CHECK(access(tpath("stale/train-00001.bin"), F_OK) != 0 && access(tpath("stale/train-00000.bin"), F_OK) == 0);
}

/* Requests a stop at the first tokenize report (without returning
 * non-zero: the build must notice the request itself). */
static int progress_reports, reports_after_stop;
static int stop_at_first_report(void *ctx, const char *phase, int64_t done, int64_t total, int64_t tokens) {
    (void)ctx, (void)done, (void)total, (void)tokens;
    if (strcmp(phase, "tokenize")) return 0;
    if (lm_stop_requested()) reports_after_stop++;
    if (progress_reports++ == 0) lm_stop_request();
    return 0;
}

TEST(streams_refused_and_stop_honoured) {
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    lm_error err;
    CHECK(mkfifo(tpath("fifo"), 0600) == 0);
    const char *ff[] = {tpath("fifo")};
    CHECK(build(ff, 1, tpath("s"), &o, &err) == -1 && strstr(err.msg, "fifo: not a regular file"));
    const char *zero[] = {"/dev/zero"};
    CHECK(build(zero, 1, tpath("s"), &o, &err) == -1 && strstr(err.msg, "/dev/zero: not a regular file"));
    /* about 1 MB of lines: several progress reports (one per 256 KiB) */
    char *text = make_lines(30000, 3);
    write_text(tpath("long.txt"), text);
    free(text);
    const char *lf[] = {tpath("long.txt")};
    o.progress = stop_at_first_report;
    CHECK(build(lf, 1, tpath("s"), &o, &err) == -1 && !strcmp(err.msg, "interrupted"));
    CHECKF(progress_reports == 1 && reports_after_stop == 0, "%d reports, %d after the stop", progress_reports,
           reports_after_stop);
    CHECK(access(tpath("s/index.json"), F_OK) != 0);
    /* a request before the build: stops while scanning */
    o.progress = NULL;
    lm_stop_request();
    CHECKF(build(lf, 1, tpath("s"), &o, &err) == -1 && strstr(err.msg, "interrupted"), "%s", err.msg);
    lm_stop_clear();
    CHECK(build(lf, 1, tpath("s"), &o, &err) == 0);
}

static int notices;
static char last_notice[600];
static void count_notice(void *ctx, const char *msg) {
    (void)ctx;
    notices++;
    snprintf(last_notice, sizeof last_notice, "%s", msg);
}

/* lemma data writes only into a new, empty or lemma-made folder, and says
 * what it removes there. */
TEST(out_dir_ownership) {
    lm_data_opts o;
    lm_data_opts_default(&o);
    o.doc_sep = LM_DOC_LINE;
    lm_error err;
    char *text = make_lines(200, 5);
    write_text(tpath("own.txt"), text);
    free(text);
    const char *in[] = {tpath("own.txt")};
    mkdir(tpath("user"), 0777);
    write_text(tpath("user/train-00001.bin"), "mine");
    CHECKF(build(in, 1, tpath("user"), &o, &err) == -1 && strstr(err.msg, "user is not empty (it holds train-00001.bin)"),
           "%s", err.msg);
    FILE *f = fopen(tpath("user/train-00001.bin"), "rb");
    char buf[8] = {0};
    CHECK(f && fread(buf, 1, sizeof buf, f) == 4 && !memcmp(buf, "mine", 4));
    if (f) fclose(f);
    CHECK(access(tpath("user/index.json"), F_OK) != 0);
    /* a new folder gets the marker; an earlier output is rebuilt, its stale shards removed with a notice */
    o.shard_tokens = 300;
    CHECK(build(in, 1, tpath("own"), &o, &err) == 0);
    CHECK(access(tpath("own/.lemma-made"), F_OK) == 0 && access(tpath("own/train-00001.bin"), F_OK) == 0);
    unlink(tpath("own/.lemma-made")); /* as an older lemma left it: index.json says it is lemma's */
    o.shard_tokens = 1 << 20;
    o.notice = count_notice;
    notices = 0;
    CHECKF(build(in, 1, tpath("own"), &o, &err) == 0, "%s", err.msg);
    CHECKF(notices >= 1 && strstr(last_notice, "removing ") && strstr(last_notice, "not in the new index"), "%d: %s",
           notices, last_notice);
    CHECK(access(tpath("own/train-00001.bin"), F_OK) != 0);
}

int main(void) {
    if (setup()) {
        printf("setup failed\n");
        return 1;
    }
    RUN(round_trip_and_framing);
    RUN(doc_sep_modes);
    RUN(split_is_content_keyed);
    RUN(val_never_empty);
    RUN(window_determinism);
    RUN(window_distribution);
    RUN(document_windows);
    RUN(eval_windows);
    RUN(mask_path);
    RUN(header_validation);
    RUN(bad_input);
    RUN(streams_refused_and_stop_honoured);
    RUN(out_dir_ownership);
    lm_tokenizer_free(tok);
    rm_tree(tmp_root);
    return test_report("test_data");
}
