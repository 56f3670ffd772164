/* options.h — declarative command-line options. Each command describes its
 * options once, in a table (name, alias, kind of value, range or choices,
 * destination field, default, metavar, help line); cli_parse reads argv
 * against it, validates, stores into the command's struct, and answers
 * --help with text made from the same table. Every command therefore takes
 * "--opt VALUE" and "--opt=VALUE" anywhere, and says what is wrong in one
 * format:
 *
 *   lemma CMD: unknown option '--x' (see lemma CMD --help)
 *   lemma CMD: unexpected argument 'x' (see lemma CMD --help)
 *   lemma CMD: missing MODEL_DIR (see lemma CMD --help)
 *   lemma CMD: missing --out DIR (see lemma CMD --help)
 *   lemma CMD: --threads needs a value (N)
 *   lemma CMD: --force takes no value, got '--force=1'
 *   lemma CMD: --threads expects an integer in 1..1024, got 'abc'
 *   lemma CMD: --top-p expects a number in 0..1, got '2'
 *   lemma CMD: --attn expects one of naive, latent, got 'x'
 *   lemma CMD: --ids and --prompt cannot be used together
 *   lemma CMD: --restart goes with --resume RUN_DIR
 *
 * and exits 2 (main.c's convention for a command line it cannot run).
 *
 * A command is its table and a run function (cmd_plot.c, in short):
 *
 *   typedef struct plot_cli { const char *run, *out, *title; } plot_cli;
 *   static const cli_arg plot_args[] = {{"RUN_DIR", CLI_ARG_AT(plot_cli, run), CLI_REQUIRED}};
 *   static const cli_opt plot_opts[] = {
 *       {"--out", "-o", CLI_PATH, CLI_AT(plot_cli, out), .note = "RUN_DIR/plot.svg", .metavar = "FILE",
 *        .help = "output file, '-' for stdout"},
 *       ...
 *   };
 *   const cli_spec cli_plot_spec = {
 *       .cmd = "plot", .usage = "RUN_DIR [--out FILE.svg] [--title TEXT]", .about = "Draws ...",
 *       CLI_ARGS(plot_args), CLI_OPTS(plot_opts), .size = sizeof(plot_cli), .run = plot_run,
 *   };
 *
 * and main.c calls cli_run(&cli_plot_spec, argc, argv), which hands plot_run
 * the filled plot_cli. */
#ifndef LEMMA_CLI_OPTIONS_H
#define LEMMA_CLI_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cli_kind {
    CLI_FLAG,   /* no value: sets an int field to 1 */
    CLI_UNSET,  /* no value: sets an int field to 0 (--no-bos, --no-meta) */
    CLI_INT,    /* an integer in min..max, into an integer field of 1, 2, 4 or 8 bytes */
    CLI_REAL,   /* a number in lo..hi, into a float or double field */
    CLI_STRING, /* the argument itself, into a const char * field */
    CLI_PATH,   /* the same, refused when empty */
    CLI_ENUM,   /* one of choices "a|b|c" ("fp8/FP8": FP8 is another spelling of fp8); the
                   index of the choice goes into an int-sized (enum) field */
    CLI_LIST,   /* repeatable: every value appended to a cli_list field; at most max (0: any) */
    CLI_CUSTOM, /* converted by parse (release frees what it kept); expects says what it takes */
} cli_kind;

enum {
    CLI_REQUIRED = 1u,   /* must be given (unless the option named by .unless is) */
    CLI_HIDDEN = 2u,     /* for tests: accepted, left out of --help */
    CLI_NONEMPTY = 4u,   /* CLI_STRING, CLI_LIST: an empty value is refused */
    CLI_SHOW_FIELD = 8u, /* --help shows the field's value before parsing as the default
                            (defaults that a library function sets) */
    CLI_ALL_CORES = 16u, /* CLI_INT: the default is the number of online cores */
};

/* The values of a CLI_LIST option or of a repeatable positional argument
 * (pointers into argv; the array is the parser's, freed by cli_free). */
typedef struct cli_list {
    const char **items;
    int n;
} cli_list;

typedef struct cli_opt {
    const char *name;  /* "--threads" */
    const char *alias; /* "-t", or NULL */
    cli_kind kind;
    size_t offset, size; /* the destination field: CLI_AT(struct, field) */
    int64_t min, max;    /* CLI_INT range; CLI_LIST most values */
    double lo, hi;       /* CLI_REAL range */
    const char *choices; /* CLI_ENUM */
    const char *def;     /* default, as typed on the command line; stored before parsing */
    const char *note;    /* default in words, where the command works it out ("all cores") */
    const char *metavar; /* "N", "DIR"; NULL for flags */
    const char *help;    /* what it does; '\n' continues on the next line */
    unsigned flags;      /* CLI_REQUIRED, ... */
    const char *needs;   /* another option this one goes with */
    const char *unless;  /* CLI_REQUIRED does not apply when this option is given */
    const char *expects; /* CLI_CUSTOM: "comma-separated token ids" */
    /* CLI_CUSTOM: 0, or -1 with an optional detail for the message. */
    int (*parse)(const char *s, void *field, char *detail, size_t cap);
    void (*release)(void *field);
} cli_opt;

/* A positional argument: a const char * field, or, when the metavar ends in
 * "...", a cli_list field that takes every remaining argument. */
typedef struct cli_arg {
    const char *metavar;
    size_t offset;
    unsigned flags;     /* CLI_REQUIRED */
    const char *unless; /* not required when this option is given */
} cli_arg;

typedef struct cli_spec {
    const char *cmd;   /* "info", "tasks gen" */
    const char *usage; /* what follows "usage: lemma CMD "; one form per line */
    const char *about; /* the description: lines of text, '\n'-separated */
    const cli_arg *args;
    int nargs;
    const cli_opt *opts;
    int nopts;
    const char *const *one_of; /* NULL-terminated; each "--a|--b": exactly one of them is required */
    const char *footer;        /* printed after the options */
    size_t size;               /* of the destination struct */
    unsigned flags;            /* CLI_DASH_ARGS */
    void (*init)(void *dest);  /* optional: defaults a library function sets, before the table's */
    int (*run)(const void *dest); /* the command, on the parsed options; returns the exit status */
} cli_spec;

enum {
    CLI_DASH_ARGS = 1u, /* an argument like "-x" that is no option of the table is a positional
                           argument (tokenize's TEXT may start with '-') */
};

#define CLI_AT(type, field) .offset = offsetof(type, field), .size = sizeof(((type *)0)->field)
#define CLI_ARG_AT(type, field) .offset = offsetof(type, field)
#define CLI_COUNT(array) (int)(sizeof(array) / sizeof((array)[0]))
#define CLI_ARGS(array) .args = array, .nargs = CLI_COUNT(array)
#define CLI_OPTS(array) .opts = array, .nopts = CLI_COUNT(array)

/* --threads N, which every computing command takes. */
#define CLI_OPT_THREADS(type, field, text)                                                                  \
    {"--threads", "-t", CLI_INT, CLI_AT(type, field), .min = 1, .max = 1024, .flags = CLI_ALL_CORES,         \
     .note = "all cores", .metavar = "N", .help = text}

/* --fp8-emulation on|off, which every computing command takes: the index of
 * "off|on" (1, on, by default) into an int field, for lm_config's
 * fp8_emulation (DeepSeek-V3.2; no effect on V2/V3 models). */
#define CLI_OPT_FP8_EMULATION(type, field)                                                                  \
    {"--fp8-emulation", NULL, CLI_ENUM, CLI_AT(type, field), .choices = "off|on", .def = "on",               \
     .metavar = "on|off", .help = "DeepSeek-V3.2: on rounds the indexer's q/k and the cached latent\n"      \
     "through FP8 as the released model does; off keeps them in fp32 (V2/V3: no effect)"}

/* Returned by cli_parse when the command should run. */
enum { CLI_RUN = -1 };

/* A command from argv to exit status: a zeroed destination struct, s->init,
 * cli_parse, s->run, cli_free. */
int cli_run(const cli_spec *s, int argc, char **argv);

/* Stores the table's defaults into dest, then argv[1..argc) (argv[0] is
 * the command). Returns CLI_RUN, or the status the command must exit with:
 * 0 after printing --help on stdout, 2 after printing a usage error on
 * stderr. Lists and custom values are freed again unless CLI_RUN. */
int cli_parse(const cli_spec *s, int argc, char **argv, void *dest);
/* The same without printing: CLI_RUN, 0 for --help, or 2 with the whole
 * message line (without newline) in msg. */
int cli_parse_quiet(const cli_spec *s, int argc, char **argv, void *dest, char *msg, size_t cap);
/* Frees the lists and custom values that cli_parse stored into dest. */
void cli_free(const cli_spec *s, void *dest);

/* The --help text: the usage line(s), the description, one line per option
 * with its default, the footer. dest holds the values CLI_SHOW_FIELD shows. */
void cli_help(const cli_spec *s, const void *dest, FILE *f);

/* A usage error found by the command itself: prints "lemma CMD: MESSAGE
 * (see lemma CMD --help)" on stderr and returns 2. */
int cli_fail(const cli_spec *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks a table: unique names and aliases, help and metavars present,
 * ranges ordered, defaults valid, references to other options resolved.
 * Returns 0, or -1 with the first problem in msg. */
int cli_spec_check(const cli_spec *s, char *msg, size_t cap);

/* Commands with subcommands ("lemma tasks gen"): runs the one argv[1] names. */
typedef struct cli_sub {
    const char *name;
    const cli_spec *spec;
} cli_sub;
int cli_dispatch(const char *cmd, const char *about, const cli_sub *subs, int nsubs, int argc, char **argv);

#endif
