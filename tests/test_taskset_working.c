/* test_taskset_working.c — a tasks input's "working" key (recipe/taskset.h):
 * by default the checker's analyses in a set are its verdicts alone (the
 * bytes every recipe's recorded sha256 was made with), with "working": true
 * they carry its working before each verdict, and anything but a boolean is
 * refused with one line naming the recipe, input and byte. */
#include <string.h>

#include "formats/json.h"
#include "recipe/taskset.h"
#include "test.h"

/* The text set of the recipe input def (JSON). NULL with err on a bad def. */
static char *text_set(const char *def, lm_error *err) {
    json_doc *doc = json_parse(def, strlen(def), err);
    if (!doc) return NULL;
    lm_taskset_opts o;
    const char *exclude, *templates;
    lm_text out = {0};
    char *set = NULL;
    if (!lm_taskset_opts_from_json(json_root(doc), "r.json", "text", &o, &exclude, &templates, err) &&
        !lm_taskset_build(&o, &out, err))
        set = out.data;
    else lm_text_free(&out);
    json_free(doc);
    return set;
}

TEST(working_off_by_default_on_request) {
    lm_error err = {{0}};
#define SET "{\"builtin\": \"tasks\", \"set\": \"text\", \"seed\": 3, \"n\": 24"
    char *also = text_set(SET "}", &err);
    char *worked = text_set(SET ", \"working\": true}", &err);
    char *plain = text_set(SET ", \"working\": false}", &err);
#undef SET
    CHECK(worked && also && plain);
    if (!worked || !also || !plain) return;
    CHECK(!strcmp(plain, also));
    CHECK(strstr(worked, "## Evaluation\\nHere is my evaluation of the solution:\\nLine 1: "));
    CHECK(strstr(plain, "## Evaluation\\nHere is my evaluation of the solution:\\nStep 1 "));
    CHECK(!strstr(plain, "\\nLine ") && strlen(plain) < strlen(worked));
    free(worked);
    free(also);
    free(plain);
}

TEST(working_must_be_a_boolean) {
    lm_error err = {{0}};
    CHECK(!text_set("{\"builtin\": \"tasks\", \"set\": \"text\", \"n\": 2, \"working\": \"yes\"}", &err));
    CHECKF(strstr(err.msg, "r.json: byte ") && strstr(err.msg, "inputs.text.working: expected true or false") &&
               !strchr(err.msg, '\n'),
           "%s", err.msg);
}

int main(void) {
    RUN(working_off_by_default_on_request);
    RUN(working_must_be_a_boolean);
    return test_report("test_taskset_working");
}
