/* test_dp_nompi.c — the process group of a lemma built without MPI
 * (train/dp.h): alone it is a group of one, and started as one of several
 * ranks (what mpirun puts in the environment) it refuses with a message
 * that says what to do, instead of training copies into one folder. dp.c
 * is compiled here without LEMMA_MPI whatever the library was built with. */
#undef LEMMA_MPI
#include "../src/train/dp.c"

#include "test.h"

static void clear_env(void) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("OMPI_COMM_WORLD_RANK");
    unsetenv("PMI_SIZE");
    unsetenv("PMI_RANK");
    unsetenv("PMIX_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("SLURM_NTASKS");
}

TEST(alone_is_a_group_of_one) {
    clear_env();
    lm_error err;
    CHECK(lm_dp_built() == 0);
    CHECK(lm_dp_env_size() == 1);
    CHECK(lm_dp_start(&err) == 0);
    CHECK(lm_dp_rank() == 0 && lm_dp_size() == 1);
    int x = 7;
    CHECK(lm_dp_bcast(&x, sizeof x, 0, &err) == 0 && x == 7);
    CHECK(lm_dp_send(&x, sizeof x, 1, &err) == -1 && strstr(err.msg, "built without MPI"));
    lm_dp_stop();
}

TEST(one_of_several_ranks_refuses) {
    clear_env();
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    lm_error err;
    CHECK(lm_dp_env_size() == 3);
    CHECK(lm_dp_start(&err) == -1);
    CHECK(strstr(err.msg, "one of 3 ranks") && strstr(err.msg, "built without MPI") && strstr(err.msg, "libopenmpi-dev"));
    clear_env();
    setenv("PMI_SIZE", "2", 1); /* MPICH's launcher */
    CHECK(lm_dp_start(&err) == -1 && strstr(err.msg, "one of 2 ranks"));
    clear_env();
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1); /* mpirun -np 1: fine */
    CHECK(lm_dp_start(&err) == 0);
    setenv("OMPI_COMM_WORLD_SIZE", "x2", 1); /* not a number: not a launcher's */
    CHECK(lm_dp_env_size() == 1);
    clear_env();
}

/* `lemma build` started as several ranks of a lemma without MPI: rank 0
 * alone says so, so the launcher's rank must be read right. */
TEST(env_rank) {
    clear_env();
    CHECK(lm_dp_env_rank() == 0);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    CHECK(lm_dp_env_rank() == 2);
    clear_env();
    setenv("PMIX_RANK", "1", 1);
    CHECK(lm_dp_env_rank() == 1);
    setenv("PMIX_RANK", "-1", 1); /* not a rank */
    CHECK(lm_dp_env_rank() == 0);
    clear_env();
}

/* The build's rank 0 runs its own stages as a group of one; a word deferred
 * but never needed is never sent. */
TEST(solo_and_deferred_word) {
    clear_env();
    lm_error err;
    CHECK(lm_dp_start(&err) == 0);
    CHECK(lm_dp_solo(1) == 0);
    CHECK(lm_dp_size() == 1 && lm_dp_rank() == 0);
    CHECK(lm_dp_solo(0) == 1);
    CHECK(lm_dp_solo(0) == 0);
    int word = 5;
    lm_dp_defer_bcast(&word, sizeof word);
    CHECK(lm_dp_defer_end() == 0);
    lm_dp_stop();
}

int main(void) {
    RUN(alone_is_a_group_of_one);
    RUN(one_of_several_ranks_refuses);
    RUN(env_rank);
    RUN(solo_and_deferred_word);
    return test_report("test_dp_nompi");
}
