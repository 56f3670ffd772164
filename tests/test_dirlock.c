/* test_dirlock.c — the folder lock (core/dirlock.h): a second holder, in this
 * process or another, gets "DIR is in use by pid N"; release removes .lock
 * and lets the next one in; a stale .lock (its holder gone) is taken over; a
 * missing folder or a .lock that is a symbolic link is an error naming it.
 * The ownership marker, and the stop request (core/stop.h). */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dirlock.h"
#include "core/stop.h"
#include "test.h"

static char root[256];

static void path_in(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", root, name); }

TEST(lock_excludes_a_second_holder) {
    char dir[512], lockfile[600], want[600];
    path_in(dir, sizeof dir, "run");
    mkdir(dir, 0777);
    lm_dir_lock a, b;
    lm_error err;
    CHECK(lm_dir_lock_acquire(dir, &a, &err) == 0);
    snprintf(lockfile, sizeof lockfile, "%s/.lock", dir);
    FILE *f = fopen(lockfile, "r");
    long pid = 0;
    CHECK(f && fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid());
    if (f) fclose(f);
    /* the same process, a second open file */
    CHECK(lm_dir_lock_acquire(dir, &b, &err) == -1);
    snprintf(want, sizeof want, "%s is in use by pid %ld", dir, (long)getpid());
    CHECKF(!strcmp(err.msg, want), "%s", err.msg);
    CHECK(b.fd == -1);
    /* another process */
    pid_t child = fork();
    if (child == 0) {
        lm_dir_lock c;
        lm_error e;
        _exit(lm_dir_lock_acquire(dir, &c, &e) == -1 && strstr(e.msg, "is in use by pid") ? 0 : 1);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    lm_dir_lock_release(&a);
    CHECK(access(lockfile, F_OK) != 0);
    lm_dir_lock_release(&a); /* a no-op */
    CHECK(lm_dir_lock_acquire(dir, &b, &err) == 0);
    lm_dir_lock_release(&b);
}

TEST(stale_lock_file_is_taken_over) {
    char dir[512], lockfile[600];
    path_in(dir, sizeof dir, "stale");
    mkdir(dir, 0777);
    /* a holder that dies without releasing */
    pid_t child = fork();
    if (child == 0) {
        lm_dir_lock c;
        lm_error e;
        _exit(lm_dir_lock_acquire(dir, &c, &e) ? 1 : 0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(lockfile, sizeof lockfile, "%s/.lock", dir);
    CHECK(access(lockfile, F_OK) == 0);
    lm_dir_lock a;
    lm_error err;
    CHECKF(lm_dir_lock_acquire(dir, &a, &err) == 0, "%s", err.msg);
    lm_dir_lock_release(&a);
}

TEST(lock_errors_name_the_folder) {
    char dir[512], lockfile[600];
    lm_dir_lock a;
    lm_error err;
    path_in(dir, sizeof dir, "missing");
    CHECK(lm_dir_lock_acquire(dir, &a, &err) == -1);
    CHECKF(strstr(err.msg, "missing/.lock: cannot create") != NULL, "%s", err.msg);
    path_in(dir, sizeof dir, "linked");
    mkdir(dir, 0777);
    snprintf(lockfile, sizeof lockfile, "%s/.lock", dir);
    CHECK(symlink("/tmp/elsewhere", lockfile) == 0);
    CHECK(lm_dir_lock_acquire(dir, &a, &err) == -1);
    CHECKF(strstr(err.msg, "linked/.lock") != NULL, "%s", err.msg);
}

TEST(marker_says_who_made_a_folder) {
    char dir[512], link[512], file[600];
    lm_error err;
    path_in(dir, sizeof dir, "made");
    mkdir(dir, 0777);
    CHECK(!lm_dir_made_by_lemma(dir));
    CHECK(lm_dir_mark_made(dir, &err) == 0);
    CHECK(lm_dir_made_by_lemma(dir));
    /* a symbolic link to a marked folder is not a folder lemma made */
    path_in(link, sizeof link, "made-link");
    CHECK(symlink(dir, link) == 0);
    CHECK(!lm_dir_made_by_lemma(link));
    /* a marker that is not a regular file does not count */
    path_in(dir, sizeof dir, "fake");
    mkdir(dir, 0777);
    snprintf(file, sizeof file, "%s/.lemma-made", dir);
    mkdir(file, 0777);
    CHECK(!lm_dir_made_by_lemma(dir));
    CHECK(lm_dir_mark_made(dir, &err) == -1 && strstr(err.msg, "fake/.lemma-made"));
    path_in(dir, sizeof dir, "nope");
    CHECK(!lm_dir_made_by_lemma(dir));
    CHECK(lm_dir_mark_made(dir, &err) == -1 && strstr(err.msg, "nope/.lemma-made: cannot create"));
}

TEST(stop_request_from_signals) {
    lm_stop_clear();
    CHECK(!lm_stop_requested());
    lm_stop_on_signals();
    raise(SIGTERM);
    CHECK(lm_stop_requested());
    /* the first signal restored the default action: a second would kill */
    struct sigaction sa;
    sigaction(SIGTERM, NULL, &sa);
    CHECK(sa.sa_handler == SIG_DFL);
    lm_stop_clear();
    lm_stop_on_signals();
    raise(SIGINT);
    CHECK(lm_stop_requested());
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    lm_stop_clear();
    lm_stop_request();
    CHECK(lm_stop_requested());
    lm_stop_clear();
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/lemma-test-dirlock-XXXXXX");
    if (!mkdtemp(root)) return 1;
    RUN(lock_excludes_a_second_holder);
    RUN(stale_lock_file_is_taken_over);
    RUN(lock_errors_name_the_folder);
    RUN(marker_says_who_made_a_folder);
    RUN(stop_request_from_signals);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) printf("  could not remove %s\n", root);
    return test_report("test_dirlock");
}
