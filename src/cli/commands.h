/* commands.h — the subcommands of the lemma binary. Each takes the arguments
 * after the subcommand name (argv[0] is the subcommand) and returns the exit
 * status. Errors go to stderr as one line "lemma <cmd>: <message>". */
#ifndef LEMMA_CLI_COMMANDS_H
#define LEMMA_CLI_COMMANDS_H

#include "cli/options.h"

int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_prove(int argc, char **argv);
int cmd_verify(int argc, char **argv);

/* The option table of every command and subcommand (src/cli/options.h),
 * all of them in cli_specs (NULL-terminated) for the tests. */
extern const cli_spec cli_info_spec, cli_logits_spec, cli_generate_spec, cli_bench_spec, cli_chat_spec,
    cli_init_spec, cli_train_spec, cli_tokenize_spec, cli_detokenize_spec, cli_tokenizer_info_spec,
    cli_tokenizer_train_spec, cli_data_spec, cli_build_spec, cli_plot_spec, cli_tasks_list_spec,
    cli_tasks_gen_spec, cli_tasks_corrupt_spec, cli_check_spec, cli_prove_spec, cli_verify_spec;
extern const cli_spec *const cli_specs[];

#endif
