/* templates.c — loading and checking the pipeline's prompt templates; see
 * templates.h. */
#include "prove/templates.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/sha256.h"
#include "formats/json.h"
#include "prove/template.h"

/* templates/lemma.json, embedded by the assembler; the Makefile makes this
 * object depend on the file. The path is relative to the repository root,
 * where every build runs the compiler. */
__asm__(".section .rodata\n"
        ".global lm_builtin_templates_bytes\n"
        "lm_builtin_templates_bytes:\n"
        ".incbin \"templates/lemma.json\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char lm_builtin_templates_bytes[];

static const char *const keys[LM_TPL_COUNT] = {"proof_generation", "proof_verification", "meta_verification",
                                               "proof_refinement"};
static const char *const gen_fields[] = {"question", NULL};
static const char *const verify_fields[] = {"statement", "proof", NULL};
static const char *const meta_fields[] = {"statement", "proof", "rating", NULL};
static const char *const refine_fields[] = {"instruction", "proofs_to_refine", NULL};
static const char *const *const fields[LM_TPL_COUNT] = {gen_fields, verify_fields, meta_fields, refine_fields};

const char *lm_templates_key(int kind) { return kind >= 0 && kind < LM_TPL_COUNT ? keys[kind] : "?"; }
const char *const *lm_templates_fields(int kind) { return kind >= 0 && kind < LM_TPL_COUNT ? fields[kind] : NULL; }

const char *lm_templates_builtin_json(void) { return lm_builtin_templates_bytes; }

/* "{a}, {b} and {c}" into buf. */
static const char *field_list(int kind, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    const char *const *f = fields[kind];
    int n = 0;
    while (f[n]) n++;
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s{%s}", i == 0 ? "" : i == n - 1 ? " and " : ", ", f[i]);
    return buf;
}

static int check_template(const char *name, int kind, const char *text, lm_error *err) {
    char **names;
    int n;
    char list[128], q[128];
    if (lm_template_names(text, &names, &n, err)) return lm_fail_prefix(err, "%s: %s", name, keys[kind]);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int known = 0;
        for (const char *const *f = fields[kind]; *f; f++) known |= !strcmp(*f, names[i]);
        if (!known)
            rc = lm_fail(err, "%s: %s: unknown placeholder %s (this template takes %s; write {{ and }} for literal braces)",
                         name, keys[kind], lm_template_show_field(q, sizeof q, names[i], strlen(names[i])),
                         field_list(kind, list, sizeof list));
    }
    for (const char *const *f = fields[kind]; *f && !rc; f++) {
        int used = 0;
        for (int i = 0; i < n; i++) used |= !strcmp(*f, names[i]);
        if (!used)
            rc = lm_fail(err, "%s: %s: missing placeholder {%s} (this template takes %s)", name, keys[kind], *f,
                         field_list(kind, list, sizeof list));
    }
    lm_template_names_free(names, n);
    return rc;
}

int lm_templates_parse(const char *json, size_t len, const char *name, lm_prompt_templates *t, lm_error *err) {
    memset(t, 0, sizeof *t);
    json_doc *doc = json_parse(json, len, err);
    if (!doc) return lm_fail_prefix(err, "%s", name);
    const json_value *root = json_root(doc);
    int rc = 0;
    if (root->type != JSON_OBJECT) {
        rc = lm_fail(err, "%s: expected a JSON object with the keys proof_generation, proof_verification, "
                          "meta_verification and proof_refinement",
                     name);
        goto done;
    }
    for (const json_value *m = root->child; m && !rc; m = m->next) {
        int kind = -1;
        for (int k = 0; k < LM_TPL_COUNT; k++)
            if (strlen(keys[k]) == m->key_len && !memcmp(keys[k], m->key, m->key_len)) kind = k;
        char q[80];
        if (kind < 0) {
            rc = lm_fail(err, "%s: byte %zu: unknown key %s (expected proof_generation, proof_verification, "
                              "meta_verification, proof_refinement)",
                         name, m->offset, json_quote(q, sizeof q, m->key, m->key_len));
        } else if (t->text[kind]) {
            rc = lm_fail(err, "%s: byte %zu: key %s appears twice", name, m->offset, keys[kind]);
        } else if (m->type != JSON_STRING || strlen(m->str) != m->len) {
            rc = lm_fail(err, "%s: byte %zu: %s: expected a string without NUL bytes", name, m->offset, keys[kind]);
        } else if (!(t->text[kind] = strdup(m->str))) {
            rc = lm_fail(err, "out of memory");
        } else {
            rc = check_template(name, kind, t->text[kind], err);
        }
    }
    for (int k = 0; k < LM_TPL_COUNT && !rc; k++)
        if (!t->text[k]) rc = lm_fail(err, "%s: missing key %s", name, keys[k]);
    if (!rc) {
        uint8_t d[32];
        lm_sha256_buf(json, len, d);
        lm_sha256_hex(d, t->sha256);
    }
done:
    json_free(doc);
    if (rc) lm_templates_free(t);
    return rc;
}

int lm_templates_load(const char *path, lm_prompt_templates *t, lm_error *err) {
    char *text;
    size_t len;
    if (lm_read_file(path, 16u << 20, &text, &len, err)) return -1;
    int rc = lm_templates_parse(text, len, path, t, err);
    free(text);
    return rc;
}

int lm_templates_builtin(lm_prompt_templates *t, lm_error *err) {
    return lm_templates_parse(lm_builtin_templates_bytes, strlen(lm_builtin_templates_bytes), "built-in templates",
                              t, err);
}

void lm_templates_free(lm_prompt_templates *t) {
    for (int k = 0; k < LM_TPL_COUNT; k++) free(t->text[k]);
    memset(t, 0, sizeof *t);
}
