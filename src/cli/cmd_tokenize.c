/* cmd_tokenize.c — lemma tokenize / detokenize / tokenizer (placeholder until
 * the tokenizer library lands). */
#include <stdio.h>

#include "cli/commands.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "lemma tokenize: not implemented yet\n");
    return 1;
}

int cmd_detokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "lemma detokenize: not implemented yet\n");
    return 1;
}

int cmd_tokenizer(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "lemma tokenizer: not implemented yet\n");
    return 1;
}
