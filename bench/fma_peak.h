/* fma_peak.h — the machine's peak FMA rate, measured: a register-only loop
 * of 12 independent FMA chains (enough to hide the FMA latency), shared by
 * the benchmarks that report a fraction of peak. A flop count of
 * iters * 12 lanes-per-vector(16 or 8) * 2 per call. Include once per program. */
#ifndef LEMMA_BENCH_FMA_PEAK_H
#define LEMMA_BENCH_FMA_PEAK_H

#include <immintrin.h>

/* 12 independent accumulators, named (an array would live in memory). */
#define FMA12(F, V, S)                                                               \
    V a0 = S(1), a1 = S(2), a2 = S(3), a3 = S(4), a4 = S(5), a5 = S(6), a6 = S(7),     \
      a7 = S(8), a8 = S(9), a9 = S(10), a10 = S(11), a11 = S(12);                    \
    for (long it = 0; it < iters; it++) {                                        \
        a0 = F(a0, m, c), a1 = F(a1, m, c), a2 = F(a2, m, c), a3 = F(a3, m, c);      \
        a4 = F(a4, m, c), a5 = F(a5, m, c), a6 = F(a6, m, c), a7 = F(a7, m, c);      \
        a8 = F(a8, m, c), a9 = F(a9, m, c), a10 = F(a10, m, c), a11 = F(a11, m, c);  \
    }

__attribute__((target("avx512f"))) static double fma_loop_avx512(long iters) {
    __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    FMA12(_mm512_fmadd_ps, __m512, _mm512_set1_ps)
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double fma_loop_avx2(long iters) {
    __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    FMA12(_mm256_fmadd_ps, __m256, _mm256_set1_ps)
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float t[8];
    _mm256_storeu_ps(t, s);
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

#endif
