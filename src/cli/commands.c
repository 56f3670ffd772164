/* commands.c — every option table in one list, for the tests that check
 * them all (tests/test_cli_options.c). */
#include "cli/commands.h"

const cli_spec *const cli_specs[] = {
    &cli_info_spec, &cli_logits_spec, &cli_generate_spec, &cli_bench_spec, &cli_chat_spec,
    &cli_init_spec, &cli_train_spec, &cli_tokenize_spec, &cli_detokenize_spec, &cli_tokenizer_info_spec,
    &cli_tokenizer_train_spec, &cli_data_spec, &cli_build_spec, &cli_plot_spec, &cli_tasks_list_spec,
    &cli_tasks_gen_spec, &cli_tasks_corrupt_spec, &cli_check_spec, &cli_prove_spec, &cli_verify_spec, &cli_serve_spec,
    &cli_eval_spec, &cli_export_spec, &cli_quantize_spec,
    NULL,
};
