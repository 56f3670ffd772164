/* test_recipe.c — SHA-256 against the FIPS 180-2 / NIST vectors (one-shot,
 * byte-by-byte and across block boundaries), recipe parsing (fields,
 * references, path resolution, rejections), canonical JSON, the synth-text
 * generator, and lemma.lock (write/read round trip, editing, volatile paths,
 * comparison, malformed locks). The end-to-end build is tests/sh/test_build.sh. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "core/stop.h"
#include "recipe/lock.h"
#include "recipe/recipe.h"
#include "test.h"

static void hex_of(const void *p, size_t n, char out[65]) {
    uint8_t d[32];
    lm_sha256_buf(p, n, d);
    lm_sha256_hex(d, out);
}

TEST(sha256_vectors) {
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
        {"The quick brown fox jumps over the lazy dog",
         "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"},
    };
    char h[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hex_of(v[i].msg, strlen(v[i].msg), h);
        CHECKF(!strcmp(h, v[i].hex), "vector %zu: %s", i, h);
        /* byte by byte */
        lm_sha256 s;
        uint8_t d[32];
        lm_sha256_init(&s);
        for (size_t k = 0; k < strlen(v[i].msg); k++) lm_sha256_update(&s, v[i].msg + k, 1);
        lm_sha256_final(&s, d);
        lm_sha256_hex(d, h);
        CHECK(!strcmp(h, v[i].hex));
    }
    /* one million 'a' in uneven pieces */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    lm_sha256 s;
    uint8_t d[32];
    lm_sha256_init(&s);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 1000 + 1)
        lm_sha256_update(&s, a + off, off + step > 1000000 ? 1000000 - off : step);
    lm_sha256_final(&s, d);
    lm_sha256_hex(d, h);
    CHECK(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    /* every length around the padding boundaries agrees between one-shot and split feeding */
    int agree = 1;
    for (size_t n = 0; n < 200; n++) {
        char h1[65], h2[65];
        hex_of(a, n, h1);
        lm_sha256_init(&s);
        lm_sha256_update(&s, a, n / 3);
        lm_sha256_update(&s, a + n / 3, n - n / 3);
        lm_sha256_final(&s, d);
        lm_sha256_hex(d, h2);
        agree &= !strcmp(h1, h2);
    }
    CHECK(agree);
    /* file hashing */
    char path[] = "/tmp/lemma_test_sha_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "abc", 3) == 3);
    close(fd);
    lm_error err;
    CHECK(lm_sha256_file(path, h, &err) == 0 && !strcmp(h, v[1].hex));
    /* a stop request (core/stop.h) ends the hashing */
    lm_stop_request();
    CHECK(lm_sha256_file(path, h, &err) == -1 && !strcmp(err.msg, "interrupted"));
    lm_stop_clear();
    unlink(path);
    CHECK(lm_sha256_file(path, h, &err) == -1 && strstr(err.msg, path));
    /* only regular files: a device or FIFO could be read without end (or block) */
    CHECK(lm_sha256_file("/dev/zero", h, &err) == -1 && !strcmp(err.msg, "/dev/zero: not a regular file"));
    CHECK(mkfifo(path, 0600) == 0);
    CHECK(lm_sha256_file(path, h, &err) == -1 && strstr(err.msg, "not a regular file"));
    unlink(path);
    CHECK(lm_sha256_file("/tmp", h, &err) == -1 && strstr(err.msg, "not a regular file"));
    /* parse */
    uint8_t p[32];
    CHECK(lm_sha256_parse(v[1].hex, p) == 0 && p[0] == 0xba && p[31] == 0xad);
    CHECK(lm_sha256_parse("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", p) == 0);
    CHECK(lm_sha256_parse("ba78", p) == -1);
    CHECK(lm_sha256_parse("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adff", p) == -1);
    CHECK(lm_sha256_parse("za7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", p) == -1);
    free(a);
}

static const char *good =
    "{\"lemma_recipe\": 1, \"name\": \"t1\",\n"
    " \"inputs\": {\"s\": {\"builtin\": \"synth-text\", \"seed\": 4, \"lines\": 10},\n"
    "            \"f\": {\"path\": \"corpus/a.txt\", \"sha256\": \"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\"},\n"
    "            \"k\": {\"builtin\": \"bible-kjv\"}},\n"
    " \"stages\": [{\"name\": \"tok\", \"kind\": \"tokenizer\", \"inputs\": [\"s\", \"f\"], \"vocab_size\": 300},\n"
    "            {\"name\": \"data\", \"kind\": \"data\", \"inputs\": [\"f\", \"tok\"], \"val_fraction\": 0.1, \"doc_sep\": \"blank\"},\n"
    "            {\"name\": \"m\", \"kind\": \"pretrain\", \"inputs\": [\"data\", \"tok\"], \"anything\": {\"goes\": [1, 2.5]}}]}";

TEST(recipe_parse) {
    lm_error err;
    lm_recipe *r = lm_recipe_parse(good, strlen(good), "dir/sub/r.json", &err);
    CHECKF(r != NULL, "%s", err.msg);
    if (!r) return;
    CHECK(!strcmp(r->name, "t1") && !strcmp(r->dir, "dir/sub"));
    CHECK(r->n_inputs == 3 && r->n_stages == 3);
    CHECK(r->inputs[0].builtin == LM_BUILTIN_SYNTH_TEXT && r->inputs[0].seed == 4 && r->inputs[0].lines == 10);
    CHECK(!r->inputs[0].sha256[0]);
    CHECK(r->inputs[1].builtin == LM_BUILTIN_NONE && !strcmp(r->inputs[1].resolved, "dir/sub/corpus/a.txt"));
    CHECK(!strcmp(r->inputs[1].sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(r->inputs[2].builtin == LM_BUILTIN_BIBLE_KJV);
    CHECK(r->stages[0].kind_id == LM_STAGE_TOKENIZER && r->stages[0].n_inputs == 2);
    CHECK(r->stages[1].kind_id == LM_STAGE_DATA && r->stages[1].input_ref[0] == 1 && r->stages[1].input_ref[1] == -1);
    CHECK(r->stages[2].kind_id == LM_STAGE_PRETRAIN && r->stages[2].input_ref[0] == -2);
    CHECK(lm_recipe_stage_index(r, "data") == 1 && lm_recipe_stage_index(r, "x") == -1);
    char h[65];
    hex_of(good, strlen(good), h);
    CHECK(!strcmp(h, r->sha256));
    /* canonical JSON of a stage */
    lm_text t = {0};
    CHECK(lm_json_canonical(r->stages[2].def, &t) == 0);
    CHECKF(!strcmp(t.data, "{\"name\":\"m\",\"kind\":\"pretrain\",\"inputs\":[\"data\",\"tok\"],\"anything\":{\"goes\":[1,2.5]}}"),
           "%s", t.data);
    lm_text_free(&t);
    lm_recipe_free(r);
    /* the name defaults to the file name; a path without a directory */
    const char *noname = "{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"/abs/a.txt\"}}, \"stages\": "
                         "[{\"name\": \"t\", \"kind\": \"tokenizer\", \"inputs\": [\"a\"], \"vocab_size\": 300}]}";
    r = lm_recipe_parse(noname, strlen(noname), "my-recipe.json", &err);
    CHECK(r && !strcmp(r->name, "my-recipe") && !strcmp(r->dir, ".") && !strcmp(r->inputs[0].resolved, "/abs/a.txt"));
    lm_recipe_free(r);
}

TEST(recipe_rejections) {
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"[]", "expected a JSON object"},
        {"{\"lemma_recipe\": 2, \"inputs\": {}, \"stages\": [{}]}", "recipe format version"},
        {"{\"lemma_recipe\": 1, \"name\": \"Bad Name\", \"inputs\": {}, \"stages\": [{}]}", "\"name\""},
        {"{\"lemma_recipe\": 1, \"inputs\": [], \"stages\": [{}]}", "object of named inputs"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\", \"builtin\": \"synth-text\"}}, \"stages\": [{}]}",
         "exactly one of"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"synth-text\", \"lines\": 0}}, \"stages\": [{}]}", "lines"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"bible-kjv\", \"seed\": 1}}, \"stages\": [{}]}",
         "unknown key \"seed\""},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"\"}}, \"stages\": [{}]}", "expected a file path"},
        /* a key with a control character is quoted and escaped: the message stays one line (fuzz_recipe) */
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"text\", \"n\": 1, "
         "\"x\\ny\": 1}}, \"stages\": [{}]}",
         "unknown key \"x\\ny\" for a tasks input"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"A b\": {\"path\": \"x\"}}, \"stages\": [{}]}", "expected a name"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}, \"a\": {\"path\": \"y\"}}, \"stages\": [{}]}",
         "byte 51: duplicate key \"a\""}, /* from the JSON parser, before the recipe's own check */
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"a\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}]}",
         "an input has the same name"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"inputs\", \"kind\": "
         "\"tokenizer\", \"inputs\": [\"a\"], \"vocab_size\": 300}]}",
         "reserved"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\", \"a\"], \"vocab_size\": 300}]}",
         "listed twice"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [], \"vocab_size\": 300}]}",
         "non-empty array"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"]}]}",
         "missing \"vocab_size\""},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"d\", \"kind\": \"data\", \"inputs\": [\"a\", \"t\"], "
         "\"doc_sep\": \"para\"}]}",
         "doc_sep"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"d\", \"kind\": \"data\", \"inputs\": [\"a\", \"t\"], "
         "\"val_fraction\": 0.9}]}",
         "val_fraction"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"m\", \"kind\": \"pretrain\", \"inputs\": [\"t\"]}]}",
         "one data stage"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"t2\", \"kind\": \"tokenizer\", \"inputs\": [\"t\"], "
         "\"vocab_size\": 300}]}",
         "text inputs only"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"d\", \"kind\": \"data\", \"inputs\": [\"a\", \"t\"]}, "
         "{\"name\": \"m\", \"kind\": \"pretrain\", \"inputs\": [\"d\"]}, {\"name\": \"m2\", \"kind\": \"data\", "
         "\"inputs\": [\"m\", \"t\", \"a\"]}]}",
         "a pretrain stage, which a data stage cannot take"},
        /* tasks inputs */
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"n\": 5}}, \"stages\": [{}]}",
         "inputs.a.set"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"problems\"}}, \"stages\": [{}]}",
         "inputs.a.n"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"problems\", \"n\": 5, "
         "\"difficulty\": [3, 2]}}, \"stages\": [{}]}",
         "inputs.a.difficulty"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"sft\", \"n\": 5}}, "
         "\"stages\": [{}]}",
         "needs \"templates\""},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"text\", \"n\": 5, "
         "\"exclude\": \"b\"}, \"b\": {\"builtin\": \"tasks\", \"set\": \"problems\", \"n\": 5}}, \"stages\": [{}]}",
         "not an earlier tasks input"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"text\", \"n\": 5, "
         "\"p_generate\": 2}}, \"stages\": [{}]}",
         "p_generate"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"builtin\": \"tasks\", \"set\": \"text\", \"n\": 5, "
         "\"lines\": 2}}, \"stages\": [{}]}",
         "unknown key \"lines\""},
        /* sft stages */
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"d\", \"kind\": \"data\", \"inputs\": [\"a\", \"t\"]}, "
         "{\"name\": \"s\", \"kind\": \"sft\", \"inputs\": [\"d\", \"t\"]}]}",
         "an sft stage takes one data stage, one pretrain or sft stage"},
        {"{\"lemma_recipe\": 1, \"inputs\": {\"a\": {\"path\": \"x\"}}, \"stages\": [{\"name\": \"t\", \"kind\": \"tokenizer\", "
         "\"inputs\": [\"a\"], \"vocab_size\": 300}, {\"name\": \"d\", \"kind\": \"data\", \"inputs\": [\"a\", \"t\"]}, "
         "{\"name\": \"m\", \"kind\": \"pretrain\", \"inputs\": [\"d\"]}, "
         "{\"name\": \"s\", \"kind\": \"sft\", \"inputs\": [\"d\", \"m\"], \"config\": {}}]}",
         "takes its config from the model"},
    };
    lm_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_recipe *r = lm_recipe_parse(bad[i].text, strlen(bad[i].text), "r.json", &err);
        CHECKF(r == NULL && strstr(err.msg, bad[i].want) && strstr(err.msg, "r.json") && !strchr(err.msg, '\n'),
               "case %zu: %s", i, r ? "(accepted)" : err.msg);
        lm_recipe_free(r);
    }
    /* a missing file */
    CHECK(lm_recipe_load("/nonexistent/r.json", &err) == NULL && strstr(err.msg, "/nonexistent/r.json"));
}

TEST(synth_text) {
    lm_text a = {0}, b = {0}, c = {0};
    CHECK(lm_synth_text(1, 500, &a) == 0 && lm_synth_text(1, 500, &b) == 0 && lm_synth_text(2, 500, &c) == 0);
    CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
    CHECK(a.len != c.len || memcmp(a.data, c.data, a.len));
    int lines = 0;
    for (size_t i = 0; i < a.len; i++) lines += a.data[i] == '\n';
    CHECK(lines == 500 && a.data[a.len - 1] == '\n');
    /* a prefix of a longer run: line i depends on (seed, i) only */
    lm_text d = {0};
    lm_synth_text(1, 1000, &d);
    CHECK(d.len > a.len && !memcmp(d.data, a.data, a.len));
    CHECK(strstr(a.data, " plus ") && strstr(a.data, "The "));
    lm_text_free(&a); lm_text_free(&b); lm_text_free(&c); lm_text_free(&d);
}

static int ndiff;
static char diffs[8][160];
static void on_diff(void *ctx, const char *what, const char *path, const char *a, const char *b) {
    (void)ctx; (void)a; (void)b;
    if (ndiff < 8) snprintf(diffs[ndiff], sizeof diffs[ndiff], "%s %s", what, path);
    ndiff++;
}

TEST(lock_round_trip) {
    const char *h1 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const char *h2 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    lm_lock lk;
    memset(&lk, 0, sizeof lk);
    CHECK(lm_lock_set_recipe(&lk, "r\"q", h1) == 0);
    CHECK(lm_lock_set_input(&lk, "kjv", "inputs/kjv.txt", h2) == 0);
    CHECK(lm_lock_set_stage(&lk, "tok", "tokenizer", h1, h2) == 0);
    CHECK(lm_lock_set_stage(&lk, "data", "data", h2, h1) == 0);
    CHECK(lm_lock_set_stage(&lk, "tok", "tokenizer", h2, h2) == 0); /* replace */
    CHECK(lk.n_stages == 2 && !strcmp(lm_lock_find_stage(&lk, "tok")->key, h2));
    lm_lock_file f1[] = {{"tok/tokenizer.json", ""}, {"tok/a b.json", ""}};
    memcpy(f1[0].sha256, h1, 65);
    memcpy(f1[1].sha256, h2, 65);
    lm_lock_file f2[] = {{"data/index.json", ""}};
    memcpy(f2[0].sha256, h1, 65);
    CHECK(lm_lock_replace_files(&lk, "tok", f1, 2) == 0);
    CHECK(lm_lock_replace_files(&lk, "data", f2, 1) == 0);
    CHECK(lk.n_files == 3 && !strcmp(lk.files[0].path, "data/index.json") && !strcmp(lk.files[1].path, "tok/a b.json"));
    CHECK(lm_lock_replace_files(&lk, "tok", f1, 1) == 0);
    CHECK(lk.n_files == 2 && lm_lock_find_file(&lk, "tok/a b.json") == NULL);
    CHECK(lm_lock_find_file(&lk, "tok/tokenizer.json") != NULL);
    char path[] = "/tmp/lemma_test_lock_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    lm_error err;
    CHECK(lm_lock_write(path, &lk, &err) == 0);
    lm_lock back;
    CHECK(lm_lock_read(path, &back, &err) == 0);
    CHECK(!strcmp(back.recipe, "r\"q") && !strcmp(back.recipe_sha256, h1));
    CHECK(back.n_inputs == 1 && !strcmp(back.inputs[0].path, "inputs/kjv.txt"));
    CHECK(back.n_stages == 2 && !strcmp(lm_lock_find_stage(&back, "data")->outputs_sha256, h1));
    CHECK(back.n_files == 2 && !strcmp(back.files[1].path, "tok/tokenizer.json"));
    /* write of the read-back is the same bytes */
    char path2[] = "/tmp/lemma_test_lock2_XXXXXX";
    fd = mkstemp(path2);
    close(fd);
    CHECK(lm_lock_write(path2, &back, &err) == 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "cmp -s %s %s", path, path2);
    CHECK(system(cmd) == 0);
    /* compare */
    ndiff = 0;
    CHECK(lm_lock_compare(&lk, &back, on_diff, NULL) == 0);
    memcpy(back.files[0].sha256, h2, 65);
    lm_lock_replace_files(&back, "tok", NULL, 0);
    lm_lock_file f3[] = {{"z/new", ""}};
    memcpy(f3[0].sha256, h1, 65);
    lm_lock_replace_files(&back, "z", f3, 1);
    ndiff = 0;
    CHECK(lm_lock_compare(&lk, &back, on_diff, NULL) == 3);
    CHECK(!strcmp(diffs[0], "differs data/index.json") && !strcmp(diffs[1], "missing tok/tokenizer.json") &&
          !strcmp(diffs[2], "extra z/new"));
    lm_lock_free(&back);
    lm_lock_free(&lk);
    unlink(path);
    unlink(path2);
    /* a missing lock is not an error */
    CHECK(lm_lock_read(path, &back, &err) == 1 && back.n_files == 0);
}

TEST(lock_rejections) {
    static const char *bad[] = {
        "{",
        "{\"lemma_lock\": 2}",
        "{\"lemma_lock\": 1, \"recipe\": \"r\"}",
        "{\"lemma_lock\": 1, \"recipe\": \"r\", \"recipe_sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}",
        "{\"lemma_lock\": 1, \"recipe\": \"r\", \"recipe_sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\", "
        "\"inputs\": {}, \"stages\": {}, \"artifacts\": {\"a\": \"xyz\"}}",
        "{\"lemma_lock\": 1, \"recipe\": \"r\", \"recipe_sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\", "
        "\"inputs\": {}, \"stages\": {\"s\": {\"kind\": \"data\"}}, \"artifacts\": {}}",
        "{\"lemma_lock\": 1, \"recipe\": \"r\", \"recipe_sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\", "
        "\"inputs\": {}, \"stages\": {}, \"artifacts\": {\"a\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\", "
        "\"a\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}}",
    };
    lm_error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lm_lock lk;
        int rc = lm_lock_parse(bad[i], strlen(bad[i]), "x.lock", &lk, &err);
        CHECKF(rc == -1 && strstr(err.msg, "x.lock"), "case %zu: %s", i, rc ? err.msg : "(accepted)");
    }
}

TEST(volatile_paths) {
    CHECK(lm_lock_volatile("model/metrics.jsonl"));
    CHECK(lm_lock_volatile("model/logs/anything.bin"));
    CHECK(lm_lock_volatile("model/train.log"));
    CHECK(lm_lock_volatile("model/plot.svg"));
    CHECK(!lm_lock_volatile("model/latest/model.safetensors"));
    CHECK(!lm_lock_volatile("model/logs"));          /* a file named logs */
    CHECK(!lm_lock_volatile("model/catalogs/x"));
    CHECK(!lm_lock_volatile("model/metrics.jsonl.bak"));
    CHECK(lm_lock_volatile("model/.lock"));          /* core/dirlock.h */
    CHECK(lm_lock_volatile("tok/.lemma-made"));
    CHECK(!lm_lock_volatile("tok/x.lock"));
}

int main(void) {
    RUN(sha256_vectors);
    RUN(recipe_parse);
    RUN(recipe_rejections);
    RUN(synth_text);
    RUN(lock_round_trip);
    RUN(lock_rejections);
    RUN(volatile_paths);
    return test_report("test_recipe");
}
