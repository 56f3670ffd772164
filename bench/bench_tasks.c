/* bench_tasks.c — the exact checkers' speed: reference proofs checked per
 * second for each theorem domain and difficulty, with the corrupted proofs
 * beside them. No other program checks these step languages, so the anchor
 * printed in the same run is the cost of making the same proofs (generator +
 * reference writer): a checker slower than the generator would be the
 * bottleneck of a data pipeline that filters what it makes.
 *
 *   build/release/bench/bench_tasks [--n 2000] [--json FILE]
 * One table on stdout; with --json one line per (domain, difficulty). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "tasks/tasks.h"

int main(int argc, char **argv) {
    int n = 2000;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else {
            fprintf(stderr, "usage: bench_tasks [--n N] [--json FILE]\n");
            return 2;
        }
    }
    if (n < 1) n = 1;
    FILE *jf = json ? fopen(json, "a") : NULL;
    if (json && !jf) {
        perror(json);
        return 1;
    }
    printf("| domain | difficulty | proof bytes | generate proofs/s (anchor) | check proofs/s | check MB/s | "
           "check / generate | corrupted checked/s |\n|---|---|---|---|---|---|---|---|\n");
    int bad = 0;
    for (int di = 0; di < lm_task_count(); di++) {
        const lm_task_domain *d = lm_task_domain_at(di);
        for (int diff = 1; diff <= 5; diff += 2) {
            lm_text *q = calloc((size_t)n, sizeof *q), *p = calloc((size_t)n, sizeof *p), *c = calloc((size_t)n, sizeof *c);
            lm_error err;
            double t0 = lm_now_s();
            for (int i = 0; i < n; i++)
                if (d->generate((uint64_t)i * 7919 + 1, diff, &q[i], &p[i], &err)) bad = 1;
            double tgen = lm_now_s() - t0;
            for (int i = 0; i < n; i++) {
                lm_corruption k;
                if (d->corrupt(q[i].data, p[i].data, (uint64_t)i, &c[i], &k, &err)) bad = 1;
            }
            size_t bytes = 0;
            lm_check_result r;
            int ones = 0;
            t0 = lm_now_s();
            for (int i = 0; i < n; i++) {
                if (lm_task_check(q[i].data, p[i].data, &r, &err)) bad = 1;
                ones += r.score == 1;
                bytes += p[i].len;
            }
            double tchk = lm_now_s() - t0;
            t0 = lm_now_s();
            for (int i = 0; i < n; i++)
                if (lm_task_check(q[i].data, c[i].data, &r, &err)) bad = 1;
            double tcor = lm_now_s() - t0;
            if (ones != n) bad = 1;
            printf("| %s | %d | %.0f | %.0f | %.0f | %.1f | %.2fx | %.0f |\n", d->name, diff, (double)bytes / n, n / tgen,
                   n / tchk, bytes / tchk / 1e6, tgen / tchk, n / tcor);
            if (jf)
                fprintf(jf,
                        "{\"bench\": \"tasks_check\", \"domain\": \"%s\", \"difficulty\": %d, \"n\": %d, \"proof_bytes\": %.1f, "
                        "\"generate_per_s\": %.1f, \"check_per_s\": %.1f, \"check_corrupted_per_s\": %.1f}\n",
                        d->name, diff, n, (double)bytes / n, n / tgen, n / tchk, n / tcor);
            for (int i = 0; i < n; i++) lm_text_free(&q[i]), lm_text_free(&p[i]), lm_text_free(&c[i]);
            free(q), free(p), free(c);
        }
    }
    if (jf && fclose(jf)) bad = 1;
    if (bad) fprintf(stderr, "bench_tasks: a generator, corrupter or check failed, or a reference proof did not score 1\n");
    return bad;
}
