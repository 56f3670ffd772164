/* kernels_avx512.c — AVX512 kernels (work in progress: scalar fallbacks). */
#include "core/kernels.h"

const lm_kernel_table lm_kernels_avx512 = {0, NULL, NULL, NULL, NULL, NULL};
