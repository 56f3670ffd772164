/* kernels_scalar_fma.c — the scalar path compiled with -mfma (Makefile):
 * fmaf is one instruction. Same bits as kernels_scalar.c, faster; chosen when
 * the CPU has FMA. */
#define TABLE_NAME lm_kernels_scalar_fma
#include "core/kernels_scalar_layer.h"
