/* fuzz_safetensors.c — libFuzzer target: arbitrary bytes as a .safetensors
 * file, through lm_st_open_mem (the same validation the file reader uses).
 * Either it fails with a one-line message naming the file, or every tensor
 * it returns lies inside the input, has nbytes = numel x dtype size, no two
 * non-empty tensors overlap, and lookup by name finds each one.
 *
 * FUZZ_SEEDS: tests/bad/*\/*.safetensors tests/golden/*\/*.safetensors
 * FUZZ_MAX_LEN: 65536
 * FUZZ_DICT: fuzz/json.dict
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "formats/safetensors.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    lm_tensor_set *set = NULL;
    if (lm_st_open_mem(data, size, "fuzz.safetensors", &set, &err)) {
        require(set == NULL && err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, "fuzz.safetensors"));
        return 0;
    }
    int64_t n = lm_st_count(set);
    const uint8_t *end = data + size;
    unsigned sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const lm_tensor *t = lm_st_tensor(set, i);
        require(t && t->name && t->name[0]);
        require(lm_st_find(set, t->name) == t);
        require(t->ndim >= 0 && t->ndim <= LM_MAX_DIMS);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
        require((int64_t)numel == t->numel && t->nbytes == numel * lm_dtype_size(t->dtype));
        const uint8_t *p = t->data;
        require(p >= data + 8 && p <= end && t->nbytes <= (size_t)(end - p));
        for (size_t k = 0; k < t->nbytes; k++) sum += p[k]; /* ASan checks every byte */
        for (int64_t j = 0; j < i && t->nbytes; j++) {  /* pairwise overlap, small n only */
            const lm_tensor *u = lm_st_tensor(set, j);
            if (n > 256 || !u->nbytes) continue;
            const uint8_t *q = u->data;
            require(p + t->nbytes <= q || q + u->nbytes <= p);
        }
    }
    require(lm_st_find(set, "\x01 not a name") == NULL);
    lm_st_close(set);
    return (int)(sum & 0);
}
