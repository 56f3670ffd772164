/* fuzz_json.c — libFuzzer target: arbitrary bytes through json_parse.
 * Either it fails with "byte N: ..." (N within the input) on one line, or it
 * gives a tree whose every string survives json_write_string + json_parse
 * unchanged, whose offsets lie inside the input, whose member counts match,
 * and whose object keys are unique (a lookup by key finds that member).
 *
 * FUZZ_SEEDS: tests/golden/*\/*.json tests/bad/*\/*.json
 * FUZZ_MAX_LEN: 16384
 * FUZZ_DICT: fuzz/json.dict
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/json.h"

static void require(int ok) {
    if (!ok) __builtin_trap();
}

static size_t input_len;

static void check_string(const char *s, size_t len) {
    size_t cap = 6 * len + 3, pos = 0;
    char *buf = malloc(cap);
    require(buf != NULL);
    require(json_write_string(buf, cap, &pos, s, len) == 0);
    lm_error err;
    json_doc *d = json_parse(buf, pos, &err);
    require(d != NULL);
    const json_value *v = json_root(d);
    require(v->type == JSON_STRING && v->len == len && !memcmp(v->str, s, len));
    json_free(d);
    char q[40];
    json_quote(q, sizeof q, s, len);
    require(strlen(q) < sizeof q && !strchr(q, '\n'));
    free(buf);
}

static void walk(const json_value *v, int depth) {
    require(depth <= JSON_MAX_DEPTH && v->offset < input_len);
    switch (v->type) {
    case JSON_STRING:
        require(v->str[v->len] == 0);
        check_string(v->str, v->len);
        break;
    case JSON_NUMBER: {
        double x;
        int64_t i;
        require(json_as_double(v, &x));
        if (v->is_int) require(json_as_int(v, &i) && i == v->inum);
        break;
    }
    case JSON_ARRAY:
    case JSON_OBJECT: {
        size_t n = 0;
        for (const json_value *m = v->child; m; m = m->next, n++) {
            if (v->type == JSON_OBJECT) {
                require(m->key != NULL && m->key[m->key_len] == 0);
                /* keys are unique: the lookup finds this very member */
                require(json_get(v, m->key) == m || strlen(m->key) != m->key_len);
            }
            walk(m, depth + 1);
        }
        require(n == v->len);
        if (v->type == JSON_ARRAY && n) require(json_at(v, n - 1) != NULL && json_at(v, n) == NULL);
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lm_error err;
    err.msg[0] = 0;
    input_len = size;
    json_doc *d = json_parse((const char *)data, size, &err);
    if (!d) {
        size_t at;
        require(sscanf(err.msg, "byte %zu", &at) == 1 && at <= size && !strchr(err.msg, '\n'));
        return 0;
    }
    walk(json_root(d), 1);
    json_free(d);
    return 0;
}
