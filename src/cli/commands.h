/* commands.h — the subcommands of the lemma binary. A command is its option
 * table (cli_spec, src/cli/options.h), whose run function gets the parsed
 * options and returns the exit status; cli_run takes the arguments after
 * the subcommand name (argv[0] is the subcommand). Errors go to stderr as
 * one line "lemma <cmd>: <message>". */
#ifndef LEMMA_CLI_COMMANDS_H
#define LEMMA_CLI_COMMANDS_H

#include "cli/options.h"

/* Commands with subcommands; the others are their option tables. */
int cmd_tasks(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);

/* The option table of every command and subcommand, all of them in
 * cli_specs (NULL-terminated) for the tests. */
extern const cli_spec cli_info_spec, cli_logits_spec, cli_generate_spec, cli_bench_spec, cli_chat_spec,
    cli_init_spec, cli_train_spec, cli_tokenize_spec, cli_detokenize_spec, cli_tokenizer_info_spec,
    cli_tokenizer_train_spec, cli_data_spec, cli_build_spec, cli_plot_spec, cli_tasks_list_spec,
    cli_tasks_gen_spec, cli_tasks_corrupt_spec, cli_check_spec, cli_prove_spec, cli_verify_spec, cli_serve_spec,
    cli_eval_spec, cli_export_spec, cli_quantize_spec;
extern const cli_spec *const cli_specs[];

#endif
