/* tvec.c — picks the training vector kernels for the CPU; see tvec.h. */
#include "train/tvec.h"

#include "core/kernels.h"

const tv_table *tv_kernels(void) {
    switch (lm_kernel_isa()) {
    case LM_ISA_AVX512: return &tv_avx512;
    case LM_ISA_AVX2: return &tv_avx2;
    default: return &tv_scalar;
    }
}
