/* kernels_scalar.c — the scalar path: kernels_simd.h over 1-lane vectors
 * (kernels_scalar_layer.h), for CPUs without FMA: fmaf from the C library. */
#define TABLE_NAME lm_kernels_scalar
#include "core/kernels_scalar_layer.h"
