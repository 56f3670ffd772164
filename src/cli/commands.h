/* commands.h — the subcommands of the lemma binary. Each takes the arguments
 * after the subcommand name (argv[0] is the subcommand) and returns the exit
 * status. Errors go to stderr as one line "lemma <cmd>: <message>". */
#ifndef LEMMA_CLI_COMMANDS_H
#define LEMMA_CLI_COMMANDS_H

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

#endif
