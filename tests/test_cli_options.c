/* test_cli_options.c — the option tables of every command (src/cli/options.h):
 * each passes the table's own check, its --help names every option, and
 * unknown or malformed options get the one message format; then the parser
 * itself on a table made for the purpose. Linked with the CLI objects (not
 * main.o), see the Makefile. */
#include <stddef.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "test.h"

static char msg[1024];

/* Parses argv (NULL-terminated, argv[0] the command) into a fresh dest. */
static int parse_into(const cli_spec *s, void *dest, const char **argv) {
    int argc = 0;
    while (argv[argc]) argc++;
    return cli_parse_quiet(s, argc, (char **)argv, dest, msg, sizeof msg);
}

static int parse_fresh(const cli_spec *s, const char **argv) {
    void *dest = calloc(1, s->size);
    int rc = parse_into(s, dest, argv);
    if (rc == CLI_RUN) cli_free(s, dest);
    free(dest);
    return rc;
}

static char *help_text(const cli_spec *s) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    void *dest = calloc(1, s->size);
    cli_help(s, dest, f);
    fclose(f);
    free(dest);
    return text;
}

/* " --name" or " -x," as a word of the help text. */
static int help_names(const char *help, const char *name, const char *after) {
    char word[80];
    snprintf(word, sizeof word, " %s%s", name, after);
    return strstr(help, word) != NULL;
}

TEST(every_table_passes_its_check) {
    int n = 0;
    for (const cli_spec *const *s = cli_specs; *s; s++, n++) {
        if (cli_spec_check(*s, msg, sizeof msg)) {
            printf("  %s\n", msg);
            CHECK(0);
        }
    }
    CHECK(n == 24);
}

TEST(every_help_names_every_option) {
    for (const cli_spec *const *s = cli_specs; *s; s++) {
        char *help = help_text(*s);
        char usage[80];
        snprintf(usage, sizeof usage, "usage: lemma %s", (*s)->cmd);
        CHECK(!strncmp(help, usage, strlen(usage)));
        CHECK(help_names(help, "--help", ""));
        for (int i = 0; i < (*s)->nopts; i++) {
            const cli_opt *o = &(*s)->opts[i];
            int hidden = (o->flags & CLI_HIDDEN) != 0;
            if (help_names(help, o->name, o->metavar ? " " : "") == hidden) {
                printf("  lemma %s --help: %s %s\n", (*s)->cmd, o->name, hidden ? "shown" : "missing");
                CHECK(0);
            }
            if (o->alias && !hidden) CHECK(help_names(help, o->alias, ","));
        }
        free(help);
    }
}

TEST(every_command_names_an_unknown_option_the_same_way) {
    for (const cli_spec *const *s = cli_specs; *s; s++) {
        const char *argv[] = {"x", "--no-such-option", NULL};
        char want[200];
        snprintf(want, sizeof want, "lemma %s: unknown option '--no-such-option' (see lemma %s --help)", (*s)->cmd,
                 (*s)->cmd);
        CHECK(parse_fresh(*s, argv) == 2);
        if (strcmp(msg, want)) {
            printf("  got  %s\n  want %s\n", msg, want);
            CHECK(0);
        }
        const char *help[] = {"x", "--help", NULL}, *h[] = {"x", "-h", NULL};
        CHECK(parse_fresh(*s, help) == 0 && parse_fresh(*s, h) == 0);
    }
}

/* Every option with a value, given "abc" or nothing; every flag given "=1". */
TEST(every_malformed_value_gets_the_one_format) {
    int checked = 0;
    for (const cli_spec *const *s = cli_specs; *s; s++) {
        for (int i = 0; i < (*s)->nopts; i++) {
            const cli_opt *o = &(*s)->opts[i];
            char want[300], eq[80];
            if (o->kind == CLI_FLAG || o->kind == CLI_UNSET) {
                snprintf(eq, sizeof eq, "%s=1", o->name);
                const char *argv[] = {"x", eq, NULL};
                snprintf(want, sizeof want, "lemma %s: %s takes no value, got '%s'", (*s)->cmd, o->name, eq);
                CHECK(parse_fresh(*s, argv) == 2 && !strcmp(msg, want));
                checked++;
                continue;
            }
            const char *missing[] = {"x", o->name, NULL};
            snprintf(want, sizeof want, "lemma %s: %s needs a value (%s)", (*s)->cmd, o->name, o->metavar);
            CHECK(parse_fresh(*s, missing) == 2 && !strcmp(msg, want));
            const char *argv[] = {"x", o->name, "abc", NULL};
            want[0] = 0;
            if (o->kind == CLI_INT)
                snprintf(want, sizeof want, "lemma %s: %s expects an integer in %lld..%lld, got 'abc'", (*s)->cmd,
                         o->name, (long long)o->min, (long long)o->max);
            else if (o->kind == CLI_REAL)
                snprintf(want, sizeof want, "lemma %s: %s expects a number in %g..%g, got 'abc'", (*s)->cmd, o->name,
                         o->lo, o->hi);
            else if (o->kind == CLI_ENUM)
                snprintf(want, sizeof want, "lemma %s: %s expects one of ", (*s)->cmd, o->name);
            else if (o->kind == CLI_CUSTOM)
                snprintf(want, sizeof want, "lemma %s: %s expects %s, got 'abc'", (*s)->cmd, o->name, o->expects);
            if (!want[0]) continue;
            int rc = parse_fresh(*s, argv);
            if (rc != 2 || strncmp(msg, want, strlen(want))) {
                printf("  got  %s\n  want %s\n", msg, want);
                CHECK(0);
            }
            checked++;
        }
    }
    CHECK(checked > 60);
}

/* ---- the parser on a table of its own ------------------------------------- */

typedef struct demo {
    const char *dir;
    cli_list files;
    int64_t n;
    int threads;
    double rate;
    float temp;
    int mode, flag, on;
    const char *name, *path, *other;
    cli_list tags;
    int64_t twice;
} demo;

static int parse_twice(const char *s, void *field, char *detail, size_t cap) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end) {
        snprintf(detail, cap, "not a number");
        return -1;
    }
    *(int64_t *)field = 2 * v;
    return 0;
}

static const cli_arg demo_args[] = {
    {"DIR", CLI_ARG_AT(demo, dir), CLI_REQUIRED},
    {"FILES...", CLI_ARG_AT(demo, files), 0},
};
static const cli_opt demo_opts[] = {
    {"--n", "-n", CLI_INT, CLI_AT(demo, n), .min = -5, .max = 100, .def = "7", .metavar = "N", .help = "a count"},
    CLI_OPT_THREADS(demo, threads, "threads"),
    {"--rate", NULL, CLI_REAL, CLI_AT(demo, rate), .lo = 0, .hi = 1, .def = "0.25", .metavar = "R", .help = "a rate"},
    {"--temp", NULL, CLI_REAL, CLI_AT(demo, temp), .lo = 0, .hi = 2, .def = "0.6", .metavar = "T", .help = "a float"},
    {"--mode", NULL, CLI_ENUM, CLI_AT(demo, mode), .choices = "fast/quick|slow|exact", .def = "slow", .metavar = "M",
     .help = "fast, slow or exact"},
    {"--flag", NULL, CLI_FLAG, CLI_AT(demo, flag), .help = "a flag"},
    {"--no-on", NULL, CLI_UNSET, CLI_AT(demo, on), .help = "clears on"},
    {"--name", NULL, CLI_STRING, CLI_AT(demo, name), .flags = CLI_REQUIRED, .unless = "--flag", .metavar = "S",
     .help = "a name"},
    {"--path", NULL, CLI_PATH, CLI_AT(demo, path), .needs = "--other", .metavar = "P", .help = "a path"},
    {"--other", NULL, CLI_STRING, CLI_AT(demo, other), .metavar = "O", .help = "goes with --path"},
    {"--tag", NULL, CLI_LIST, CLI_AT(demo, tags), .max = 2, .flags = CLI_NONEMPTY, .metavar = "T", .help = "repeatable"},
    {"--twice", NULL, CLI_CUSTOM, CLI_AT(demo, twice), .parse = parse_twice, .expects = "an integer to double",
     .metavar = "K", .help = "doubled"},
};
/* cli_run's run function: keeps what it got. */
static demo demo_seen;
static int demo_run(const void *dest) {
    demo_seen = *(const demo *)dest;
    return demo_seen.n == 42 ? 3 : 0;
}
static void demo_init(void *dest) { ((demo *)dest)->on = 1; }

static const cli_spec demo_spec = {
    .cmd = "demo", .usage = "DIR [FILES...] [options]", .about = "A table for the tests.",
    CLI_ARGS(demo_args), CLI_OPTS(demo_opts), .size = sizeof(demo), .run = demo_run, .init = demo_init,
};

static int demo_parse(demo *d, const char **argv) {
    memset(d, 0, sizeof *d);
    d->on = 1;
    d->threads = 3;
    return parse_into(&demo_spec, d, argv);
}

TEST(parser_defaults_and_both_spellings) {
    demo d;
    CHECK(cli_spec_check(&demo_spec, msg, sizeof msg) == 0);
    const char *a[] = {"demo", "D", "--name", "x", NULL};
    CHECK(demo_parse(&d, a) == CLI_RUN);
    CHECK(!strcmp(d.dir, "D") && d.n == 7 && d.threads == args_default_threads() && d.rate == 0.25 &&
          d.temp == 0.6f && d.mode == 1);
    CHECK(d.on == 1 && !d.flag && d.files.n == 0);
    cli_free(&demo_spec, &d);
    const char *b[] = {"demo", "--n=-5", "f1", "--rate", "1", "D", "-t", "8", "--mode=quick", "--no-on", "f2",
                       "--name=", "--twice", "21", "--tag", "a", "--tag=b", "-n=4", "--", "--f3", NULL};
    CHECK(demo_parse(&d, b) == CLI_RUN);
    CHECK(!strcmp(d.dir, "f1") && d.files.n == 3 && !strcmp(d.files.items[0], "D") &&
          !strcmp(d.files.items[1], "f2") && !strcmp(d.files.items[2], "--f3"));
    CHECK(d.n == 4 && d.rate == 1 && d.threads == 8 && d.mode == 0 && d.on == 0 && d.twice == 42);
    CHECK(d.name && !*d.name && d.tags.n == 2 && !strcmp(d.tags.items[1], "b"));
    cli_free(&demo_spec, &d);
    CHECK(d.tags.items == NULL && d.files.items == NULL);
}

/* cli_run: init, parse, run, the status of run; --help 0, a usage error 2. */
TEST(run_runs_the_command) {
    const char *a[] = {"demo", "D", "--name", "x", "--n", "42", "--tag", "t", NULL};
    CHECK(cli_run(&demo_spec, 8, (char **)a) == 3);
    CHECK(demo_seen.on == 1 && demo_seen.n == 42 && demo_seen.tags.n == 1 && !strcmp(demo_seen.dir, "D"));
    const char *b[] = {"demo", "D", "--name", "x", NULL};
    CHECK(cli_run(&demo_spec, 4, (char **)b) == 0 && demo_seen.n == 7);
    const char *c[] = {"demo", "--bogus", NULL}; /* prints its one line */
    CHECK(cli_run(&demo_spec, 2, (char **)c) == 2);
}

static int demo_fails(const char **argv, const char *want) {
    demo d;
    int rc = demo_parse(&d, argv);
    if (rc != 2 || strcmp(msg, want)) {
        printf("  got  %s (rc %d)\n  want %s\n", msg, rc, want);
        return 0;
    }
    return d.tags.items == NULL && d.files.items == NULL; /* freed on failure */
}

TEST(parser_messages) {
    const char *a[] = {"demo", "D", "--name", "x", "--n", "101", NULL};
    CHECK(demo_fails(a, "lemma demo: --n expects an integer in -5..100, got '101'"));
    const char *b[] = {"demo", "D", "--tag", "a", "-n", "1x", NULL};
    CHECK(demo_fails(b, "lemma demo: -n expects an integer in -5..100, got '1x'"));
    const char *c[] = {"demo", "--rate=nan", NULL};
    CHECK(demo_fails(c, "lemma demo: --rate expects a number in 0..1, got 'nan'"));
    const char *d[] = {"demo", "--mode", "Fast", NULL};
    CHECK(demo_fails(d, "lemma demo: --mode expects one of fast, slow, exact, got 'Fast'"));
    const char *e[] = {"demo", "--path", "", NULL};
    CHECK(demo_fails(e, "lemma demo: --path expects a path, got ''"));
    const char *f[] = {"demo", "--tag", "a", "--tag", "b", "--tag", "c", NULL};
    CHECK(demo_fails(f, "lemma demo: --tag is given more than 2 times"));
    const char *g[] = {"demo", "--tag", "", NULL};
    CHECK(demo_fails(g, "lemma demo: --tag expects a non-empty string, got ''"));
    const char *h[] = {"demo", "--twice", "x", NULL};
    CHECK(demo_fails(h, "lemma demo: --twice expects an integer to double, got 'x' (not a number)"));
    const char *i[] = {"demo", "--name", "x", NULL};
    CHECK(demo_fails(i, "lemma demo: missing DIR (see lemma demo --help)"));
    const char *j[] = {"demo", "D", NULL};
    CHECK(demo_fails(j, "lemma demo: missing --name S (see lemma demo --help)"));
    const char *k[] = {"demo", "D", "--flag", "--path", "p", NULL};
    CHECK(demo_fails(k, "lemma demo: --path goes with --other O"));
    const char *l[] = {"demo", "-x", NULL};
    CHECK(demo_fails(l, "lemma demo: unknown option '-x' (see lemma demo --help)"));
    const char *m[] = {"demo", "--flag=yes", NULL};
    CHECK(demo_fails(m, "lemma demo: --flag takes no value, got '--flag=yes'"));
    const char *n[] = {"demo", "--names", "x", NULL}; /* no prefix matching */
    CHECK(demo_fails(n, "lemma demo: unknown option '--names' (see lemma demo --help)"));
    /* unless: --flag makes --name optional */
    demo dd;
    const char *o[] = {"demo", "D", "--flag", NULL};
    CHECK(demo_parse(&dd, o) == CLI_RUN);
    cli_free(&demo_spec, &dd);
}

TEST(parser_one_of_and_dash_arguments) {
    static const char *const groups[] = {"--name|--other", NULL};
    cli_spec s = demo_spec;
    s.one_of = groups;
    demo d;
    memset(&d, 0, sizeof d);
    const char *a[] = {"demo", "D", "--flag", NULL};
    CHECK(parse_into(&s, &d, a) == 2 && !strcmp(msg, "lemma demo: missing --name S or --other O (see lemma demo --help)"));
    const char *b[] = {"demo", "D", "--name", "x", "--other", "y", NULL};
    CHECK(parse_into(&s, &d, b) == 2 && !strcmp(msg, "lemma demo: --name and --other cannot be used together"));
    s.flags = CLI_DASH_ARGS;
    const char *c[] = {"demo", "-D", "-", "-n", "3", "--flag", "--other", "o", NULL};
    CHECK(parse_into(&s, &d, c) == CLI_RUN && !strcmp(d.dir, "-D") && d.files.n == 1 && d.n == 3);
    cli_free(&s, &d);
}

TEST(help_shows_defaults_and_every_line) {
    char *help = help_text(&demo_spec);
    CHECK(strstr(help, "usage: lemma demo DIR [FILES...] [options]\n  A table for the tests.\n") != NULL);
    CHECK(strstr(help, "  -n, --n N") && strstr(help, "a count (default 7)"));
    CHECK(strstr(help, "threads (default: all cores)") && strstr(help, "fast, slow or exact (default slow)"));
    CHECK(strstr(help, "      --flag ") && strstr(help, "  -h, --help"));
    free(help);
}

/* Mistake k in a copy of demo_opts[0..1]: what the check must say (NULL:
 * nothing, the table is fine). */
static const char *make_mistake(int k, cli_opt *bad) {
    memcpy(bad, demo_opts, 2 * sizeof *bad);
    switch (k) {
    case 1: bad[1].name = "--n"; return "--n is listed twice";
    case 2: bad[1].alias = "-n"; return "alias -n is taken";
    case 3: bad[0].help = ""; return "--n has no help line";
    case 4: bad[0].def = "1000"; return "--n expects an integer in -5..100, got '1000'";
    case 5: bad[0].metavar = NULL; return "a metavar exactly when it takes a value";
    case 6: bad[0].name = "--help"; return "--help and -h are every command's";
    case 7: bad[0] = demo_opts[4]; bad[0].help = "fast or slow"; return "does not name 'exact'";
    case 8: bad[0].size = 2; return NULL; /* -5..100 fits two bytes */
    case 9: bad[0].size = 2; bad[0].max = 1 << 20; return "does not fit a 2-byte field";
    default: return NULL;
    }
}

/* The check can fail: a table with each kind of mistake. */
TEST(the_table_check_finds_mistakes) {
    cli_opt bad[2];
    cli_spec s = demo_spec;
    s.opts = bad;
    s.nopts = 2;
    for (int k = 0; k < 10; k++) {
        const char *want = make_mistake(k, bad);
        int rc = cli_spec_check(&s, msg, sizeof msg);
        if (want ? rc != -1 || !strstr(msg, want) : rc != 0) {
            printf("  mistake %d: got %d '%s', want '%s'\n", k, rc, msg, want ? want : "no complaint");
            CHECK(0);
        }
    }
}

int main(void) {
    RUN(every_table_passes_its_check);
    RUN(every_help_names_every_option);
    RUN(every_command_names_an_unknown_option_the_same_way);
    RUN(every_malformed_value_gets_the_one_format);
    RUN(parser_defaults_and_both_spellings);
    RUN(parser_messages);
    RUN(run_runs_the_command);
    RUN(parser_one_of_and_dash_arguments);
    RUN(help_shows_defaults_and_every_line);
    RUN(the_table_check_finds_mistakes);
    return test_report("test_cli_options");
}
