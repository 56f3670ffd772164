/* test_fileio.c — the shared plumbing in src/core: lm_mkdir_p (the one
 * mkdir -p that lemma data, lemma build, lemma init and lemma prove use),
 * lm_remove_tree, lm_read_file / lm_write_file_atomic round trips and the
 * growable buffers of core/buf.h. */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/fileio.h"
#include "test.h"

static char tmpdir[256];

static int is_dir(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

TEST(mkdir_p_makes_parents_and_accepts_existing) {
    char dir[512];
    lm_error err;
    snprintf(dir, sizeof dir, "%s/a/b/c", tmpdir);
    CHECKF(lm_mkdir_p(dir, &err) == 0, "%s", err.msg);
    CHECK(is_dir(dir));
    CHECKF(lm_mkdir_p(dir, &err) == 0, "%s", err.msg); /* already there */
    snprintf(dir, sizeof dir, "%s/a/b/d/", tmpdir);   /* a trailing slash */
    CHECKF(lm_mkdir_p(dir, &err) == 0, "%s", err.msg);
    CHECK(is_dir(dir));
}

TEST(mkdir_p_errors_name_the_path) {
    char file[512], dir[600];
    lm_error err;
    snprintf(file, sizeof file, "%s/plain", tmpdir);
    write_text(file, "x");
    CHECK(lm_mkdir_p(file, &err) == -1);
    CHECKF(strstr(err.msg, "plain exists and is not a folder") != NULL, "%s", err.msg);
    snprintf(dir, sizeof dir, "%s/sub/deeper", file);
    CHECK(lm_mkdir_p(dir, &err) == -1);
    char want[600];
    snprintf(want, sizeof want, "cannot create %s/sub: ", file);
    CHECKF(strstr(err.msg, want) != NULL, "%s", err.msg);
    CHECK(lm_mkdir_p("", &err) == -1 && strstr(err.msg, "empty folder name"));
    char longname[PATH_MAX + 16];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(lm_mkdir_p(longname, &err) == -1 && strstr(err.msg, "folder name longer than"));
    CHECK(strchr(err.msg, '\n') == NULL && strlen(err.msg) < 200);
}

TEST(remove_tree_removes_folders_files_and_links_only) {
    char top[512], keep[512], p[700];
    lm_error err;
    snprintf(top, sizeof top, "%s/tree", tmpdir);
    snprintf(keep, sizeof keep, "%s/keep", tmpdir);
    snprintf(p, sizeof p, "%s/x/y", top);
    CHECK(lm_mkdir_p(p, &err) == 0 && lm_mkdir_p(keep, &err) == 0);
    snprintf(p, sizeof p, "%s/x/y/f", top);
    write_text(p, "f");
    snprintf(p, sizeof p, "%s/keep/k", tmpdir);
    write_text(p, "k");
    snprintf(p, sizeof p, "%s/x/link", top);
    CHECK(symlink(keep, p) == 0); /* a link into a folder that must survive */
    CHECKF(lm_remove_tree(top, &err) == 0, "%s", err.msg);
    CHECK(access(top, F_OK) == -1 && errno == ENOENT);
    snprintf(p, sizeof p, "%s/keep/k", tmpdir);
    CHECK(access(p, F_OK) == 0);
    CHECK(lm_remove_tree(top, &err) == 0); /* missing: fine */
    CHECK(lm_remove_tree(p, &err) == 0 && access(p, F_OK) == -1);
}

TEST(atomic_write_and_read_round_trip) {
    char path[512];
    lm_error err;
    snprintf(path, sizeof path, "%s/out.txt", tmpdir);
    CHECKF(lm_write_file_atomic(path, "hello\n", 6, &err) == 0, "%s", err.msg);
    char *text = NULL;
    size_t len = 0;
    CHECKF(lm_read_file(path, 100, &text, &len, &err) == 0, "%s", err.msg);
    CHECK(text && len == 6 && !strcmp(text, "hello\n"));
    free(text);
    CHECK(lm_read_file(path, 5, &text, &len, &err) == -1 && strstr(err.msg, "larger than the 5-byte limit"));
    CHECK(lm_read_file(tmpdir, 100, &text, &len, &err) == -1 && strstr(err.msg, "not a regular file"));
    lm_atomic_writer *w = lm_atomic_begin(path, &err);
    CHECK(w != NULL);
    if (w) {
        lm_atomic_put(w, "ab", 2);
        lm_atomic_put(w, "cd", 2);
        CHECKF(lm_atomic_finish(w, &err) == 0, "%s", err.msg);
    }
    CHECK(lm_read_file(path, 100, &text, &len, &err) == 0 && len == 4 && !strcmp(text, "abcd"));
    free(text);
    char stray[600];
    snprintf(stray, sizeof stray, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(stray, F_OK) == -1); /* no temporary left behind */
}

TEST(text_and_id_buffers) {
    lm_text t = {0};
    CHECK(lm_text_append(&t, "ab", 2) == 0 && t.len == 2 && !strcmp(t.data, "ab"));
    CHECK(lm_text_appendf(&t, "-%d-%s", 42, "x") == 0 && !strcmp(t.data, "ab-42-x") && t.len == 7);
    char big[3000];
    memset(big, 'z', sizeof big);
    CHECK(lm_text_append(&t, big, sizeof big) == 0 && t.len == 3007 && t.data[t.len] == 0);
    lm_text_free(&t);
    CHECK(t.data == NULL && t.len == 0 && t.cap == 0);
    lm_ids ids = {0};
    for (int32_t i = 0; i < 1000; i++) CHECK(lm_ids_push(&ids, i * 3) == 0);
    CHECK(ids.n == 1000 && ids.ids[999] == 2997);
    lm_ids_free(&ids);
    CHECK(ids.ids == NULL && ids.n == 0);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lemma_test_fileio_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("cannot create a temporary folder\n");
        return 1;
    }
    RUN(mkdir_p_makes_parents_and_accepts_existing);
    RUN(mkdir_p_errors_name_the_path);
    RUN(remove_tree_removes_folders_files_and_links_only);
    RUN(atomic_write_and_read_round_trip);
    RUN(text_and_id_buffers);
    lm_error err;
    lm_remove_tree(tmpdir, &err);
    return test_report("test_fileio");
}
