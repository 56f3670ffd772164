/* options.c — the parser, the --help text and the table check behind every
 * command's option table (options.h). */
#include "cli/options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

/* ---- fields ---------------------------------------------------------------- */

static void *field_of(void *dest, const cli_opt *o) { return (char *)dest + o->offset; }

/* Integer fields of any width; the range check has made the value fit. */
static void store_int(void *p, size_t size, int64_t v) {
    switch (size) {
    case 1: { int8_t x = (int8_t)v; memcpy(p, &x, 1); break; }
    case 2: { int16_t x = (int16_t)v; memcpy(p, &x, 2); break; }
    case 4: { int32_t x = (int32_t)v; memcpy(p, &x, 4); break; }
    default: memcpy(p, &v, 8); break;
    }
}

static int64_t load_int(const void *p, size_t size) {
    switch (size) {
    case 1: { int8_t x; memcpy(&x, p, 1); return x; }
    case 2: { int16_t x; memcpy(&x, p, 2); return x; }
    case 4: { int32_t x; memcpy(&x, p, 4); return x; }
    default: { int64_t x; memcpy(&x, p, 8); return x; }
    }
}

static void store_real(void *p, size_t size, double v) {
    if (size == sizeof(float)) {
        float x = (float)v;
        memcpy(p, &x, sizeof x);
    } else {
        memcpy(p, &v, sizeof v);
    }
}

static double load_real(const void *p, size_t size) {
    if (size == sizeof(float)) {
        float x;
        memcpy(&x, p, sizeof x);
        return x;
    }
    double x;
    memcpy(&x, p, sizeof x);
    return x;
}

/* The index of s among choices "a|b/B|c" ('/' separates other spellings), or -1. */
static int choice_index(const char *choices, const char *s) {
    size_t n = strlen(s);
    int index = 0;
    for (const char *p = choices;; p++) {
        const char *end = p + strcspn(p, "|/");
        if ((size_t)(end - p) == n && !memcmp(p, s, n)) return index;
        if (!*end) return -1;
        if (*end == '|') index++;
        p = end;
    }
}

/* The first spelling of choice i. */
static int choice_name(const char *choices, int i, const char **name) {
    const char *p = choices;
    for (; i > 0; i--) {
        p = strchr(p, '|');
        if (!p) return -1;
        p++;
    }
    *name = p;
    return (int)strcspn(p, "|/");
}

/* "a, b, c": the first spelling of every choice. */
static void choices_text(const char *choices, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    const char *name;
    int n;
    for (int i = 0; (n = choice_name(choices, i, &name)) >= 0; i++)
        if (len < cap) len += (size_t)snprintf(buf + len, cap - len, "%s%.*s", i ? ", " : "", n, name);
}

/* ---- messages ------------------------------------------------------------- */

typedef struct parser {
    const cli_spec *s;
    char *msg;
    size_t cap;
} parser;

__attribute__((format(printf, 2, 3))) static int fail(parser *p, const char *fmt, ...) {
    int n = snprintf(p->msg, p->cap, "lemma %s: ", p->s->cmd);
    if (n < 0 || (size_t)n >= p->cap) return 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->msg + n, p->cap - (size_t)n, fmt, ap);
    va_end(ap);
    return 2;
}

/* ---- values --------------------------------------------------------------- */

/* Converts one value into the option's field. spelled: the option as the user
 * typed it, for the message. */
static int convert(parser *p, const cli_opt *o, const char *spelled, const char *v, void *dest) {
    void *field = field_of(dest, o);
    char *end;
    switch (o->kind) {
    case CLI_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < o->min || x > o->max)
            return fail(p, "%s expects an integer in %lld..%lld, got '%s'", spelled, (long long)o->min,
                        (long long)o->max, v);
        store_int(field, o->size, x);
        return 0;
    }
    case CLI_REAL: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !(x >= o->lo && x <= o->hi))
            return fail(p, "%s expects a number in %g..%g, got '%s'", spelled, o->lo, o->hi, v);
        store_real(field, o->size, x);
        return 0;
    }
    case CLI_PATH:
        if (!*v) return fail(p, "%s expects a path, got ''", spelled);
        memcpy(field, &v, sizeof v);
        return 0;
    case CLI_STRING:
        if (!*v && (o->flags & CLI_NONEMPTY)) return fail(p, "%s expects a non-empty string, got ''", spelled);
        memcpy(field, &v, sizeof v);
        return 0;
    case CLI_ENUM: {
        int i = choice_index(o->choices, v);
        if (i < 0) {
            char names[256];
            choices_text(o->choices, names, sizeof names);
            return fail(p, "%s expects one of %s, got '%s'", spelled, names, v);
        }
        store_int(field, o->size, i);
        return 0;
    }
    case CLI_LIST: {
        cli_list *l = field;
        if (!*v && (o->flags & CLI_NONEMPTY)) return fail(p, "%s expects a non-empty string, got ''", spelled);
        if (o->max && l->n >= o->max) return fail(p, "%s is given more than %lld times", spelled, (long long)o->max);
        const char **items = realloc(l->items, (size_t)(l->n + 1) * sizeof *items);
        if (!items) return fail(p, "out of memory");
        items[l->n++] = v;
        l->items = items;
        return 0;
    }
    case CLI_CUSTOM: {
        char detail[200] = "";
        if (o->release) o->release(field);
        if (o->parse(v, field, detail, sizeof detail))
            return fail(p, "%s expects %s, got '%s'%s%s%s", spelled, o->expects, v, *detail ? " (" : "", detail,
                        *detail ? ")" : "");
        return 0;
    }
    case CLI_FLAG:
    case CLI_UNSET:
        break;
    }
    return fail(p, "%s: not an option with a value", spelled);
}

static int takes_value(const cli_opt *o) { return o->kind != CLI_FLAG && o->kind != CLI_UNSET; }

static const cli_opt *find_name(const cli_spec *s, const char *name) {
    for (int i = 0; i < s->nopts; i++)
        if (!strcmp(s->opts[i].name, name)) return &s->opts[i];
    return NULL;
}

/* The option arg names: --name, --name=VALUE, or the alias alone. */
static const cli_opt *find_arg(const cli_spec *s, const char *arg, const char **inline_val) {
    *inline_val = NULL;
    for (int i = 0; i < s->nopts; i++) {
        const cli_opt *o = &s->opts[i];
        size_t n = strlen(o->name);
        if (!strncmp(arg, o->name, n) && (arg[n] == 0 || arg[n] == '=')) {
            if (arg[n] == '=') *inline_val = arg + n + 1;
            return o;
        }
        size_t m = o->alias ? strlen(o->alias) : 0;
        if (m && !strncmp(arg, o->alias, m) && (arg[m] == 0 || arg[m] == '=')) {
            if (arg[m] == '=') *inline_val = arg + m + 1;
            return o;
        }
    }
    return NULL;
}

static int is_list_arg(const cli_arg *a) {
    size_t n = strlen(a->metavar);
    return n > 3 && !strcmp(a->metavar + n - 3, "...");
}

void cli_free(const cli_spec *s, void *dest) {
    for (int i = 0; i < s->nopts; i++) {
        const cli_opt *o = &s->opts[i];
        if (o->kind == CLI_LIST) {
            cli_list *l = field_of(dest, o);
            free(l->items);
            l->items = NULL;
            l->n = 0;
        } else if (o->kind == CLI_CUSTOM && o->release) {
            o->release(field_of(dest, o));
        }
    }
    for (int i = 0; i < s->nargs; i++)
        if (is_list_arg(&s->args[i])) {
            cli_list *l = (cli_list *)((char *)dest + s->args[i].offset);
            free(l->items);
            l->items = NULL;
            l->n = 0;
        }
}

/* ---- parsing -------------------------------------------------------------- */

static int apply_defaults(parser *p, void *dest) {
    for (int i = 0; i < p->s->nopts; i++) {
        const cli_opt *o = &p->s->opts[i];
        if (o->def && convert(p, o, o->name, o->def, dest)) return 2;
        if (o->flags & CLI_ALL_CORES) store_int(field_of(dest, o), o->size, args_default_threads());
    }
    return 0;
}

/* " or "-joined "--name METAVAR" of the shown options of a group. */
static void group_text(const cli_spec *s, const char *group, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    for (const char *q = group; *q;) {
        size_t n = strcspn(q, "|");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)n, q);
        const cli_opt *o = find_name(s, name);
        if (o && !(o->flags & CLI_HIDDEN) && len < cap)
            len += (size_t)snprintf(buf + len, cap - len, "%s%s%s%s", len ? " or " : "", name,
                                    o->metavar ? " " : "", o->metavar ? o->metavar : "");
        q += n + (q[n] == '|');
    }
}

static int parse(parser *p, int argc, char **argv, void *dest, unsigned char *given) {
    const cli_spec *s = p->s;
    int next_arg = 0, only_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        int dash = arg[0] == '-' && arg[1] && !only_args;
        const char *inline_val = NULL;
        const cli_opt *o = dash ? find_arg(s, arg, &inline_val) : NULL;
        if (dash && !o) {
            if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 0;
            if (!strcmp(arg, "--")) {
                only_args = 1;
                continue;
            }
            if (!(s->flags & CLI_DASH_ARGS) || arg[1] == '-')
                return fail(p, "unknown option '%s' (see lemma %s --help)", arg, s->cmd);
            dash = 0;
        }
        if (!dash) {
            if (next_arg >= s->nargs)
                return fail(p, "unexpected argument '%s' (see lemma %s --help)", arg, s->cmd);
            const cli_arg *a = &s->args[next_arg];
            if (is_list_arg(a)) {
                cli_list *l = (cli_list *)((char *)dest + a->offset);
                const char **items = realloc(l->items, (size_t)(l->n + 1) * sizeof *items);
                if (!items) return fail(p, "out of memory");
                items[l->n++] = arg;
                l->items = items;
            } else {
                memcpy((char *)dest + a->offset, &arg, sizeof arg);
                next_arg++;
            }
            continue;
        }
        given[o - s->opts] = 1;
        /* the spelling the user typed: "-n", "--threads" */
        char spelled[64];
        snprintf(spelled, sizeof spelled, "%.*s", (int)(inline_val ? inline_val - 1 - arg : (long)strlen(arg)), arg);
        if (!takes_value(o)) {
            if (inline_val) return fail(p, "%s takes no value, got '%s'", spelled, arg);
            store_int(field_of(dest, o), o->size, o->kind == CLI_FLAG);
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) return fail(p, "%s needs a value (%s)", spelled, o->metavar ? o->metavar : "VALUE");
            v = argv[++i];
        }
        if (convert(p, o, spelled, v, dest)) return 2;
    }

    /* what is required, what goes together */
    for (int i = 0; i < s->nargs; i++) {
        const cli_arg *a = &s->args[i];
        if (!(a->flags & CLI_REQUIRED)) continue;
        const cli_opt *u = a->unless ? find_name(s, a->unless) : NULL;
        if (u && given[u - s->opts]) continue;
        int have = is_list_arg(a) ? ((cli_list *)((char *)dest + a->offset))->n > 0 : i < next_arg;
        if (!have) return fail(p, "missing %s (see lemma %s --help)", a->metavar, s->cmd);
    }
    for (int i = 0; i < s->nopts; i++) {
        const cli_opt *o = &s->opts[i];
        if (!(o->flags & CLI_REQUIRED) || given[i]) continue;
        const cli_opt *u = o->unless ? find_name(s, o->unless) : NULL;
        if (u && given[u - s->opts]) continue;
        return fail(p, "missing %s%s%s (see lemma %s --help)", o->name, o->metavar ? " " : "",
                    o->metavar ? o->metavar : "", s->cmd);
    }
    for (const char *const *g = s->one_of; g && *g; g++) {
        const cli_opt *first = NULL;
        for (const char *q = *g; *q;) {
            size_t n = strcspn(q, "|");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)n, q);
            const cli_opt *o = find_name(s, name);
            if (o && given[o - s->opts]) {
                if (first) return fail(p, "%s and %s cannot be used together", first->name, o->name);
                first = o;
            }
            q += n + (q[n] == '|');
        }
        if (!first) {
            char names[256];
            group_text(s, *g, names, sizeof names);
            return fail(p, "missing %s (see lemma %s --help)", names, s->cmd);
        }
    }
    for (int i = 0; i < s->nopts; i++) {
        const cli_opt *o = &s->opts[i], *n = o->needs ? find_name(s, o->needs) : NULL;
        if (given[i] && n && !given[n - s->opts])
            return fail(p, "%s goes with %s%s%s", o->name, n->name, n->metavar ? " " : "", n->metavar ? n->metavar : "");
    }
    return CLI_RUN;
}

int cli_parse_quiet(const cli_spec *s, int argc, char **argv, void *dest, char *msg, size_t cap) {
    parser p = {s, msg, cap};
    if (cap) msg[0] = 0;
    if (apply_defaults(&p, dest)) return 2;
    unsigned char *given = calloc((size_t)s->nopts + 1, 1);
    if (!given) return fail(&p, "out of memory");
    int rc = parse(&p, argc, argv, dest, given);
    free(given);
    if (rc != CLI_RUN) cli_free(s, dest);
    return rc;
}

int cli_parse(const cli_spec *s, int argc, char **argv, void *dest) {
    char msg[1024];
    int rc = cli_parse_quiet(s, argc, argv, dest, msg, sizeof msg);
    if (rc == 0) cli_help(s, dest, stdout);
    else if (rc != CLI_RUN) fprintf(stderr, "%s\n", msg);
    return rc;
}

int cli_run(const cli_spec *s, int argc, char **argv) {
    void *dest = calloc(1, s->size);
    if (!dest) {
        fprintf(stderr, "lemma %s: out of memory\n", s->cmd);
        return 1;
    }
    if (s->init) s->init(dest);
    int status = cli_parse(s, argc, argv, dest);
    if (status == CLI_RUN) {
        status = s->run(dest);
        cli_free(s, dest);
    }
    free(dest);
    return status;
}

int cli_fail(const cli_spec *s, const char *fmt, ...) {
    fprintf(stderr, "lemma %s: ", s->cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see lemma %s --help)\n", s->cmd);
    return 2;
}

/* ---- help ----------------------------------------------------------------- */

/* "  -t, --threads N" */
static int left_column(const cli_opt *o, char *buf, size_t cap) {
    return snprintf(buf, cap, "  %s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "    ", o->name,
                    o->metavar ? " " : "", o->metavar ? o->metavar : "");
}

static void print_lines(FILE *f, const char *text, int indent) {
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "%*s%.*s\n", indent, "", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

static void default_text(const cli_opt *o, const void *dest, char *buf, size_t cap) {
    buf[0] = 0;
    if (o->def) {
        snprintf(buf, cap, " (default %s)", o->def);
    } else if (o->note) {
        snprintf(buf, cap, " (default: %s)", o->note);
    } else if ((o->flags & CLI_SHOW_FIELD) && dest) {
        const void *field = (const char *)dest + o->offset;
        const char *name;
        int n;
        if (o->kind == CLI_INT) snprintf(buf, cap, " (default %lld)", (long long)load_int(field, o->size));
        else if (o->kind == CLI_REAL) snprintf(buf, cap, " (default %g)", load_real(field, o->size));
        else if (o->kind == CLI_ENUM && (n = choice_name(o->choices, (int)load_int(field, o->size), &name)) >= 0)
            snprintf(buf, cap, " (default %.*s)", n, name);
    }
}

void cli_help(const cli_spec *s, const void *dest, FILE *f) {
    int width = 0;
    char left[160], def[160];
    for (int i = 0; i < s->nopts; i++) {
        int n = left_column(&s->opts[i], left, sizeof left);
        if (!(s->opts[i].flags & CLI_HIDDEN) && n > width) width = n;
    }
    if (width < 12) width = 12;
    const char *p = s->usage;
    do { /* one line per form; an empty usage is the command alone */
        size_t n = strcspn(p, "\n");
        fprintf(f, "%s lemma %s%s%.*s\n", p == s->usage ? "usage:" : "      ", s->cmd, n ? " " : "", (int)n, p);
        p += n + (p[n] == '\n');
    } while (*p);
    if (s->about) print_lines(f, s->about, 2);
    for (int i = 0; i < s->nopts; i++) {
        const cli_opt *o = &s->opts[i];
        if (o->flags & CLI_HIDDEN) continue;
        left_column(o, left, sizeof left);
        default_text(o, dest, def, sizeof def);
        /* the help lines, the first beside the option; the default after the
         * last one, or on a line of its own where that one would grow long */
        const char *help = o->help ? o->help : "";
        int line = 0;
        for (const char *p = help; *p; line++) {
            size_t m = strcspn(p, "\n");
            int last = !p[m] || !p[m + 1];
            int fits = width + 2 + (int)m + (int)strlen(def) <= 100;
            fprintf(f, "%-*s  %.*s%s\n", width, line ? "" : left, (int)m, p, last && fits ? def : "");
            if (last && !fits && *def) fprintf(f, "%-*s  %s\n", width, "", def + 1);
            p += m + (p[m] == '\n');
        }
    }
    fprintf(f, "%-*s  %s\n", width, "  -h, --help", "this text");
    if (s->footer) print_lines(f, s->footer, 0);
}

/* ---- the table's own check ------------------------------------------------ */

int cli_spec_check(const cli_spec *s, char *msg, size_t cap) {
    parser p = {s, msg, cap};
    if (!s->cmd || !s->usage || !s->about || !*s->about)
        return fail(&p, "the spec needs a usage line and a description"), -1;
    for (int i = 0; i < s->nopts; i++) {
        const cli_opt *o = &s->opts[i];
        if (!o->name || strncmp(o->name, "--", 2) || strlen(o->name) < 3 || strchr(o->name, '='))
            return fail(&p, "option %d: a name is --word", i), -1;
        if (o->alias && (o->alias[0] != '-' || !o->alias[1] || o->alias[1] == '-' || o->alias[2]))
            return fail(&p, "%s: an alias is -x", o->name), -1;
        if (!o->help || !*o->help) return fail(&p, "%s has no help line", o->name), -1;
        if (takes_value(o) != (o->metavar != NULL)) return fail(&p, "%s: a metavar exactly when it takes a value", o->name), -1;
        if (!strcmp(o->name, "--help") || (o->alias && !strcmp(o->alias, "-h")))
            return fail(&p, "%s: --help and -h are every command's", o->name), -1;
        for (int j = 0; j < i; j++) {
            const cli_opt *q = &s->opts[j];
            if (!strcmp(o->name, q->name)) return fail(&p, "%s is listed twice", o->name), -1;
            if (o->alias && ((q->alias && !strcmp(o->alias, q->alias)) || !strcmp(o->alias, q->name)))
                return fail(&p, "%s: alias %s is taken", o->name, o->alias), -1;
            /* "--n" would also match "--n=..." only, but "--top" vs "--top-p" is fine: no prefix matching */
        }
        if (o->offset + o->size > s->size || !o->size) return fail(&p, "%s: field outside the struct", o->name), -1;
        switch (o->kind) {
        case CLI_FLAG:
        case CLI_UNSET:
        case CLI_ENUM:
            if (o->size != sizeof(int)) return fail(&p, "%s: expects an int-sized field", o->name), -1;
            break;
        case CLI_INT:
            if (o->min > o->max) return fail(&p, "%s: range %lld..%lld", o->name, (long long)o->min, (long long)o->max), -1;
            if (o->size < 8 && (o->max > (int64_t)((1ull << (8 * o->size - 1)) - 1) ||
                                o->min < -(int64_t)(1ull << (8 * o->size - 1))))
                return fail(&p, "%s: range does not fit a %zu-byte field", o->name, o->size), -1;
            break;
        case CLI_REAL:
            if (!(o->lo <= o->hi) || (o->size != sizeof(float) && o->size != sizeof(double)))
                return fail(&p, "%s: range or field", o->name), -1;
            break;
        case CLI_STRING:
        case CLI_PATH:
            if (o->size != sizeof(char *)) return fail(&p, "%s: expects a pointer field", o->name), -1;
            break;
        case CLI_LIST:
            if (o->size != sizeof(cli_list)) return fail(&p, "%s: expects a cli_list field", o->name), -1;
            break;
        case CLI_CUSTOM:
            if (!o->parse || !o->expects) return fail(&p, "%s: a custom option needs parse and expects", o->name), -1;
            break;
        }
        if (o->kind == CLI_ENUM) {
            if (!o->choices || !*o->choices) return fail(&p, "%s: no choices", o->name), -1;
            /* every choice is named in the help line */
            const char *name;
            int n;
            for (int k = 0; (n = choice_name(o->choices, k, &name)) >= 0; k++) {
                char word[64];
                snprintf(word, sizeof word, "%.*s", n, name);
                if (!strstr(o->help, word)) return fail(&p, "%s: the help line does not name '%s'", o->name, word), -1;
            }
        }
        if ((o->needs && !find_name(s, o->needs)) || (o->unless && !find_name(s, o->unless)))
            return fail(&p, "%s: refers to an option the table lacks", o->name), -1;
        if (o->def && o->note) return fail(&p, "%s: a default or a note, not both", o->name), -1;
    }
    for (int i = 0; i < s->nargs; i++) {
        const cli_arg *a = &s->args[i];
        if (!a->metavar || (is_list_arg(a) && i != s->nargs - 1))
            return fail(&p, "argument %d: only the last one may be repeatable", i), -1;
        if (a->offset + (is_list_arg(a) ? sizeof(cli_list) : sizeof(char *)) > s->size)
            return fail(&p, "argument %s: field outside the struct", a->metavar), -1;
        if (a->unless && !find_name(s, a->unless)) return fail(&p, "argument %s: unknown option", a->metavar), -1;
    }
    for (const char *const *g = s->one_of; g && *g; g++)
        for (const char *q = *g; *q;) {
            size_t n = strcspn(q, "|");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)n, q);
            if (!find_name(s, name)) return fail(&p, "group '%s' names %s, which the table lacks", *g, name), -1;
            q += n + (q[n] == '|');
        }
    if (!s->run) return fail(&p, "the spec has no run function"), -1;
    /* the defaults convert */
    void *dest = calloc(1, s->size ? s->size : 1);
    if (!dest) return fail(&p, "out of memory"), -1;
    int bad = apply_defaults(&p, dest);
    cli_free(s, dest);
    free(dest);
    return bad ? -1 : 0;
}

/* ---- subcommands ---------------------------------------------------------- */

static void dispatch_help(const char *cmd, const char *about, const cli_sub *subs, int nsubs, FILE *f) {
    for (int i = 0; i < nsubs; i++) {
        const char *usage = subs[i].spec->usage;
        size_t n = strcspn(usage, "\n");
        fprintf(f, "%s lemma %s%s%.*s\n", i ? "      " : "usage:", subs[i].spec->cmd, n ? " " : "", (int)n, usage);
    }
    print_lines(f, about, 2);
    fprintf(f, "  'lemma %s SUBCOMMAND --help' describes each.\n", cmd);
}

int cli_dispatch(const char *cmd, const char *about, const cli_sub *subs, int nsubs, int argc, char **argv) {
    if (argc < 2) {
        dispatch_help(cmd, about, subs, nsubs, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        dispatch_help(cmd, about, subs, nsubs, stdout);
        return 0;
    }
    for (int i = 0; i < nsubs; i++)
        if (!strcmp(argv[1], subs[i].name)) return cli_run(subs[i].spec, argc - 1, argv + 1);
    fprintf(stderr, "lemma %s: unknown subcommand '%s' (see lemma %s --help)\n", cmd, argv[1], cmd);
    return 2;
}
