/* fuzz_build_lock.c — libFuzzer target: arbitrary bytes as BUILD/lemma.lock,
 * then a real `lemma build` (lm_build) of a fixed two-stage recipe into BUILD,
 * where the user has put files of their own in the places the build writes:
 * a folder with a stage's name, a folder named like an unfinished stage, a
 * file where a built-in input goes. Whatever the lock says (stages, keys,
 * digests, artifacts naming the user's files), the build may refuse, fail
 * or build, but every user file must still be there with its bytes, and a
 * failure is one line. (The one way a lock can vouch for a file is to record
 * its exact SHA-256, which a build of an older lemma does for what it made;
 * an input holding the hash of the user's bytes is exempt.) The first input byte picks which user files exist
 * (so that some executions build for real), the rest is the lock.
 *
 * FUZZ_SEEDS: fuzz/seeds/build-lock-*
 * FUZZ_MAX_LEN: 8192
 * FUZZ_DICT: fuzz/json.dict
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha256.h"
#include "recipe/build.h"
#include "recipe/recipe.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

static char root[256];
static lm_recipe *recipe;
static char mine_hex[65]; /* SHA-256 of a user file's bytes */

static void write_text(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    require(f != NULL);
    require(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static int same_text(const char *path, const char *want) {
    char buf[64];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return n == strlen(want) && !memcmp(buf, want, n);
}

static void rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st)) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void remove_root(void) { rm_tree(root); }

static void setup(void) {
    snprintf(root, sizeof root, "/tmp/lemma-fuzz-build-%ld", (long)getpid());
    mkdir(root, 0777);
    atexit(remove_root);
    lm_text t = {0};
    require(lm_synth_text(1, 40, &t) == 0);
    uint8_t d[32];
    char hex[65], text[1024];
    lm_sha256_buf(t.data, t.len, d);
    lm_sha256_hex(d, hex);
    lm_text_free(&t);
    int n = snprintf(text, sizeof text,
                     "{\"lemma_recipe\": 1, \"name\": \"fz\",\n"
                     " \"inputs\": {\"synth\": {\"builtin\": \"synth-text\", \"seed\": 1, \"lines\": 40, \"sha256\": \"%s\"}},\n"
                     " \"stages\": [{\"name\": \"tok\", \"kind\": \"tokenizer\", \"inputs\": [\"synth\"], \"vocab_size\": 280},\n"
                     "  {\"name\": \"data\", \"kind\": \"data\", \"inputs\": [\"synth\", \"tok\"], \"doc_sep\": \"line\"}]}\n",
                     hex);
    lm_sha256_buf("mine\n", 5, d);
    lm_sha256_hex(d, mine_hex);
    lm_error err;
    recipe = lm_recipe_parse(text, (size_t)n, "fz/r.json", &err);
    require(recipe != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!recipe) setup();
    if (size < 1) return 0;
    uint8_t layout = data[0];
    char dir[512], p[700];
    snprintf(dir, sizeof dir, "%s/b", root);
    rm_tree(dir);
    require(mkdir(dir, 0777) == 0);
    snprintf(p, sizeof p, "%s/lemma.lock", dir);
    write_text(p, data + 1, size - 1);
    /* the user's files, by the layout bits */
    static const char *const user_dirs[] = {"tok", "data", ".tok.partial-0123456789abcdef", ".data.partial-00000000000000ff"};
    for (int i = 0; i < 4; i++) {
        if (!(layout & (1 << i))) continue;
        snprintf(p, sizeof p, "%s/%s", dir, user_dirs[i]);
        require(mkdir(p, 0777) == 0);
        snprintf(p, sizeof p, "%s/%s/mine.txt", dir, user_dirs[i]);
        write_text(p, "mine\n", 5);
    }
    if (layout & 16) {
        snprintf(p, sizeof p, "%s/inputs", dir);
        require(mkdir(p, 0777) == 0);
        snprintf(p, sizeof p, "%s/inputs/synth.txt", dir);
        write_text(p, "mine\n", 5);
    }
    lm_build_opts o = {.out_dir = dir, .threads = 1, .until = (layout & 32) ? "tok" : NULL, .force = (layout & 64) != 0};
    lm_build_result res;
    lm_error err;
    err.msg[0] = 0;
    int rc = lm_build(recipe, &o, &res, &err);
    if (rc) require(err.msg[0] && !strchr(err.msg, '\n'));
    int vouched = 0;
    for (size_t i = 1; i + 64 <= size && !vouched; i++) vouched = !strncasecmp((const char *)data + i, mine_hex, 64);
    if (vouched) layout = 0;
    for (int i = 0; i < 4; i++) {
        if (!(layout & (1 << i))) continue;
        snprintf(p, sizeof p, "%s/%s/mine.txt", dir, user_dirs[i]);
        require(same_text(p, "mine\n"));
    }
    if (layout & 16) {
        snprintf(p, sizeof p, "%s/inputs/synth.txt", dir);
        require(same_text(p, "mine\n"));
    }
    rm_tree(dir);
    return 0;
}
