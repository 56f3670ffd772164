/* chat.h — DeepSeek-V3's conversation format, and splitting model output
 * into reasoning and answer.
 *
 *   lm_chat_msg msgs[] = {{.role = "system", .content = "Be brief."},
 *                         {.role = "user", .content = "Is 91 prime?"}};
 *   lm_chat_opts o = {.add_generation_prompt = 1};
 *   lm_text prompt = {0};
 *   lm_chat_render(msgs, 2, &o, &prompt, &err);
 *   // "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Is 91 prime?<｜Assistant｜>"
 *   // then lm_tokenizer_encode(tok, prompt.data, prompt.len, LM_TOK_SPECIAL, ...)
 *
 * lm_chat_render produces exactly what the model's Jinja template
 * (tokenizer_config.json's chat_template, rendered by transformers) produces,
 * quirks included: all system messages are joined with "\n\n" and put right
 * after BOS; tool calls and tool outputs use the <｜tool▁…｜> markers; with a
 * single tool call the "<｜tool▁calls▁end｜><｜end▁of▁sentence｜>" is never
 * written (the template writes it only after the second and later calls), and
 * calls in later assistant turns take the "\n<｜tool▁call▁begin｜>" form.
 * Assistant content goes through unchanged.
 *
 * Two lemma additions, both off by default so the template is matched:
 *   - msg.reasoning (assistant): rendered as "<think>\n" reasoning
 *     "\n</think>\n\n" in front of the content (the layout of the examples);
 *   - opts.thinking with add_generation_prompt: "<think>\n" is appended after
 *     the final <｜Assistant｜>, starting the answer in reasoning mode (as
 *     DeepSeek-R1's template does). */
#ifndef LEMMA_TOKENIZER_CHAT_H
#define LEMMA_TOKENIZER_CHAT_H

#include <stddef.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

typedef struct lm_chat_tool_call {
    const char *type;      /* "function" */
    const char *name;
    const char *arguments; /* JSON text, written verbatim */
} lm_chat_tool_call;

typedef struct lm_chat_msg {
    const char *role;      /* "system", "user", "assistant" or "tool" */
    const char *content;   /* NULL = none (an assistant turn with only tool calls) */
    const char *reasoning; /* assistant only, optional */
    const lm_chat_tool_call *tool_calls;
    size_t ntool_calls;
} lm_chat_msg;

typedef struct lm_chat_opts {
    int add_generation_prompt; /* end with <｜Assistant｜> (unless the last turn is a tool output) */
    int thinking;              /* ... followed by "<think>\n" */
    const char *bos;           /* NULL: "<｜begin▁of▁sentence｜>" */
} lm_chat_opts;

/* Appends the rendered prompt to out. Errors: an unknown role, NULL content
 * where the template needs text, an assistant turn with neither content nor
 * tool calls. */
int lm_chat_render(const lm_chat_msg *msgs, size_t n, const lm_chat_opts *opts, lm_text *out, lm_error *err);

/* Model output split into reasoning and answer (pointers into text, not
 * copies). Text before the first "</think>" is reasoning (without a leading
 * "<think>" and surrounding whitespace) and the rest, with leading whitespace
 * trimmed, is the answer. With no "</think>": when the output starts with
 * "<think>" or started_in_think is set (the prompt ended with "<think>\n"),
 * all of it is unfinished reasoning and the answer is empty (finished = 0);
 * otherwise all of it is the answer. A trailing <｜end▁of▁sentence｜> is
 * dropped from the answer. */
typedef struct lm_chat_split {
    const char *reasoning;
    size_t reasoning_len;
    const char *answer;
    size_t answer_len;
    int has_reasoning; /* a reasoning part was present */
    int finished;      /* the reasoning was closed by </think> (or there was none) */
} lm_chat_split;

void lm_chat_split_output(const char *text, size_t len, int started_in_think, lm_chat_split *out);

/* DeepSeek-V3's chat template (Jinja), verbatim from its tokenizer_config.json;
 * written into the tokenizer_config.json of trained tokenizers. */
extern const char lm_chat_template_v3[];

#endif
