/* kernels_avx2.c — AVX2 kernels (work in progress: scalar fallbacks). */
#include "core/kernels.h"

const lm_kernel_table lm_kernels_avx2 = {0, NULL, NULL, NULL, NULL, NULL};
