/* cmd_chat.c — interactive multi-turn chat in DeepSeek-V3's format, with
 * streaming, reasoning shown apart (--think), and Ctrl-C stopping the answer
 * in progress rather than the program. The KV cache of the conversation so
 * far is reused from turn to turn (only the new turn is prefilled). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/memcheck.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "infer/generate.h"
#include "tokenizer/chat.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct stream_state {
    int in_think;              /* still inside the reasoning part */
    lm_text pending;           /* reasoning text not yet checked for </think> */
    int color;                 /* stderr is a terminal */
} stream_state;

/* Reasoning goes to stderr (dim on a terminal), the answer to stdout. */
static int chat_emit(void *user, const char *text, size_t len) {
    stream_state *st = user;
    if (interrupted) return 1;
    if (!st->in_think) return stdout_write(text, len);
    lm_text_append(&st->pending, text, len);
    const char *end = strstr(st->pending.data, "</think>");
    size_t show = end ? (size_t)(end - st->pending.data) : st->pending.len;
    /* hold back a possible partial "</think>" */
    if (!end)
        for (size_t k = 7; k > 0; k--)
            if (show >= k && !memcmp(st->pending.data + show - k, "</think>", k)) {
                show -= k;
                break;
            }
    if (show) {
        if (st->color) fputs("\033[2m", stderr);
        fwrite(st->pending.data, 1, show, stderr);
        if (st->color) fputs("\033[0m", stderr);
        fflush(stderr);
    }
    if (end) {
        st->in_think = 0;
        const char *rest = end + 8;
        while (*rest == '\n' || *rest == ' ') rest++;
        fputs("\n", stderr);
        st->pending.len = 0;
        return stdout_write(rest, strlen(rest));
    } else {
        memmove(st->pending.data, st->pending.data + show, st->pending.len - show);
        st->pending.len -= show;
        st->pending.data[st->pending.len] = 0;
    }
    return 0;
}

typedef struct history {
    lm_chat_msg *msgs;
    char **owned;              /* strings owned by the history */
    size_t n, cap, nowned;
} history;

static int history_add(history *h, const char *role, const char *content, size_t len) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        lm_chat_msg *m = realloc(h->msgs, cap * sizeof *m);
        char **o = realloc(h->owned, cap * sizeof *o);
        if (!m || !o) return -1;
        h->msgs = m;
        h->owned = o;
        h->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, content, len);
    copy[len] = 0;
    h->owned[h->nowned++] = copy;
    memset(&h->msgs[h->n], 0, sizeof h->msgs[h->n]);
    h->msgs[h->n].role = role;
    h->msgs[h->n].content = copy;
    h->n++;
    return 0;
}

static void history_clear(history *h, size_t keep) {
    for (size_t i = keep; i < h->nowned; i++) free(h->owned[i]);
    h->nowned = keep;
    h->n = keep;
}

typedef struct chat_cli {
    const char *dir, *tok_dir, *system;
    int threads;
    int64_t n, ctx, seed, top_k;
    double temp, top_p, min_p;
    int think, ignore_eos;
    int fp8;                     /* --fp8-emulation */
    lm_prefill_mode prefill;     /* --prefill */
    int no_memory_check;
} chat_cli;

static const cli_arg chat_args[] = {{"MODEL_DIR", CLI_ARG_AT(chat_cli, dir), CLI_REQUIRED}};
static const cli_opt chat_opts[] = {
    {"--system", NULL, CLI_STRING, CLI_AT(chat_cli, system), .metavar = "TEXT", .help = "system prompt"},
    {"--think", NULL, CLI_FLAG, CLI_AT(chat_cli, think), .help = "start in reasoning mode; the reasoning streams to stderr"},
    {"--max-tokens", "-n", CLI_INT, CLI_AT(chat_cli, n), .min = 1, .max = 1 << 24, .def = "1024", .metavar = "N",
     .help = "most tokens per answer"},
    {"--ctx", NULL, CLI_INT, CLI_AT(chat_cli, ctx), .min = 16, .max = 1ll << 24, .def = "4096", .metavar = "N",
     .help = "context size"},
    {"--temperature", NULL, CLI_REAL, CLI_AT(chat_cli, temp), .lo = 0, .hi = 100, .def = "0.6", .metavar = "T",
     .help = "0 = greedy"},
    {"--top-p", NULL, CLI_REAL, CLI_AT(chat_cli, top_p), .lo = 0, .hi = 1, .def = "0.95", .metavar = "P",
     .help = "nucleus mass (1 = off)"},
    {"--top-k", NULL, CLI_INT, CLI_AT(chat_cli, top_k), .min = 0, .max = 1ll << 31, .def = "0", .metavar = "K",
     .help = "keep the K most likely (0 = off)"},
    {"--min-p", NULL, CLI_REAL, CLI_AT(chat_cli, min_p), .lo = 0, .hi = 1, .def = "0", .metavar = "P",
     .help = "drop tokens below P x the top probability"},
    {"--seed", NULL, CLI_INT, CLI_AT(chat_cli, seed), .min = 0, .max = INT64_MAX, .def = "0", .metavar = "S",
     .help = "sampling seed (turn t uses S+t)"},
    {"--ignore-eos", NULL, CLI_FLAG, CLI_AT(chat_cli, ignore_eos),
     .help = "answers end only at -n or Ctrl-C (no EOS, no <｜User｜> stop)"},
    {"--tokenizer", NULL, CLI_PATH, CLI_AT(chat_cli, tok_dir), .note = "MODEL_DIR", .metavar = "DIR",
     .help = "tokenizer.json location"},
    CLI_OPT_THREADS(chat_cli, threads, "worker threads"),
    {"--prefill", NULL, CLI_ENUM, CLI_AT(chat_cli, prefill), .choices = "absorbed|expanded", .def = "absorbed",
     .metavar = "FORM", .help = "absorbed, or expanded (latents decompressed for long turns: fewer FLOPs; bits depend on the "
     "chunking, docs/arithmetic.md)"},
    CLI_OPT_FP8_EMULATION(chat_cli, fp8),
    CLI_OPT_NO_MEMORY_CHECK(chat_cli, no_memory_check),
};
static int chat_run(const void *dest);
const cli_spec cli_chat_spec = {
    .cmd = "chat", .usage = "MODEL_DIR [--system TEXT] [--think] [options]",
    .about = "Interactive chat in DeepSeek-V3's format; one line per user turn on stdin.\n"
             "The answer streams to stdout; with --think the model starts in reasoning mode and\n"
             "its reasoning streams to stderr. Ctrl-C stops the current answer; Ctrl-D or /exit\n"
             "ends the chat; /reset forgets the conversation.",
    CLI_ARGS(chat_args), CLI_OPTS(chat_opts), .size = sizeof(chat_cli),
    .run = chat_run,
};

static int chat_run(const void *dest) {
    chat_cli o = *(const chat_cli *)dest;
    const char *dir = o.dir, *tok_dir = o.tok_dir, *system = o.system;
    int64_t threads = o.threads, n = o.n, ctx = o.ctx, seed = o.seed, top_k = o.top_k;
    double temp = o.temp, top_p = o.top_p, min_p = o.min_p;
    int think = o.think, ignore_eos = o.ignore_eos;
    lm_error err;
    lm_model *m = NULL;
    /* lm_generator_create: one sequence of ctx, forward rows of a whole prompt chunk (256) */
    if (cli_memory_check("chat", dir,
                         &(lm_memplan_req){.ctx = ctx, .seqs = 1, .rows = 256, .threads = (int)threads,
                                           .attn = LM_ATTN_LATENT, .fp8_off = !o.fp8},
                         o.no_memory_check))
        return 1;
    if (lm_model_load(dir, &m, &err)) {
        fprintf(stderr, "lemma chat: %s\n", err.msg);
        return 1;
    }
    m->cfg.fp8_emulation = o.fp8;
    lm_tokenizer *tok = lm_tokenizer_load(tok_dir ? tok_dir : dir, &err);
    if (!tok) {
        fprintf(stderr, "lemma chat: %s\n", err.msg);
        lm_model_free(m);
        return 1;
    }
    lm_generator *g = NULL;
    lm_pool *pool = lm_pool_create_err((int)threads, &err);
    if (pool) g = lm_generator_create(m, tok, pool, ctx, LM_ATTN_LATENT, &err);
    if (g && lm_generator_set_prefill(g, o.prefill, &err)) {
        lm_generator_free(g);
        g = NULL;
    }
    int rc = 1;
    history h = {0};
    lm_text prompt = {0};
    lm_ids ids = {0};
    stream_state st = {0};
    st.color = isatty(2);
    char *line = NULL;
    size_t cap = 0;
    if (!g) {
        fprintf(stderr, "lemma chat: %s\n", err.msg);
        goto done;
    }
    if (system && history_add(&h, "system", system, strlen(system))) goto oom;
    size_t base = h.n;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: Ctrl-C interrupts a read */
    int interactive = isatty(0);
    lm_gen_params gp = lm_gen_params_default();
    gp.max_tokens = n;
    gp.sampling.temperature = (float)temp;
    gp.sampling.top_p = (float)top_p;
    gp.sampling.top_k = (int)top_k;
    gp.sampling.min_p = (float)min_p;
    const char *stops[] = {"<｜User｜>"};
    gp.stop = stops;
    gp.nstop = ignore_eos ? 0 : 1;
    gp.skip_special = 1;
    gp.stop_at_eos = !ignore_eos;
    for (uint64_t turn = 0;; turn++) {
        if (interactive) {
            fputs("\n> ", stderr);
            fflush(stderr);
        }
        interrupted = 0;
        errno = 0;
        ssize_t len = getline(&line, &cap, stdin);
        if (len < 0) {
            if (errno == EINTR && interrupted) {
                clearerr(stdin);
                continue;
            }
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            history_clear(&h, base);
            fputs("(conversation forgotten)\n", stderr);
            continue;
        }
        if (history_add(&h, "user", line, (size_t)len)) goto oom;
        lm_chat_opts co = {.add_generation_prompt = 1, .thinking = think, .bos = NULL};
        prompt.len = 0;
        ids.n = 0;
        if (lm_chat_render(h.msgs, h.n, &co, &prompt, &err) ||
            lm_tokenizer_encode(tok, prompt.data, prompt.len, LM_TOK_SPECIAL, &ids, &err)) {
            fprintf(stderr, "lemma chat: %s\n", err.msg);
            goto done;
        }
        if ((int64_t)ids.n + 1 >= ctx) {
            fprintf(stderr, "lemma chat: the conversation (%zu tokens) fills the context of %lld; /reset to start over\n",
                    ids.n, (long long)ctx);
            h.n--;
            free(h.owned[--h.nowned]);
            continue;
        }
        gp.max_tokens = n < ctx - (int64_t)ids.n - 1 ? n : ctx - (int64_t)ids.n - 1;
        gp.sampling.seed = (uint64_t)seed + turn;
        st.in_think = think;
        st.pending.len = 0;
        lm_gen_result res = {0};
        if (lm_generate(g, ids.ids, (int64_t)ids.n, &gp, chat_emit, &st, &res, &err)) {
            fprintf(stderr, "\nlemma chat: %s\n", err.msg);
            lm_gen_result_free(&res);
            goto done;
        }
        if (st.in_think && st.pending.len) { /* reasoning never closed */
            fwrite(st.pending.data, 1, st.pending.len, stderr);
        }
        stdout_write("\n", 1);
        if (stdout_failed("chat")) {
            lm_gen_result_free(&res);
            goto done;
        }
        if (res.finish == LM_FINISH_CANCELLED) fputs("(stopped)\n", stderr);
        lm_chat_split sp;
        lm_chat_split_output(res.text.data ? res.text.data : "", res.text.len, think, &sp);
        if (history_add(&h, "assistant", sp.answer ? sp.answer : "", sp.answer_len)) {
            lm_gen_result_free(&res);
            goto oom;
        }
        fprintf(stderr, "[%lld tokens, %.1f tok/s, prefilled %lld]\n", (long long)res.ids.n,
                res.ids.n / (res.decode_s + 1e-12), (long long)res.prefilled_tokens);
        lm_gen_result_free(&res);
    }
    rc = 0;
    goto done;
oom:
    fprintf(stderr, "lemma chat: out of memory\n");
done:
    free(line);
    history_clear(&h, 0);
    free(h.msgs);
    free(h.owned);
    lm_text_free(&prompt);
    lm_text_free(&st.pending);
    lm_ids_free(&ids);
    lm_generator_free(g);
    lm_pool_free(pool);
    lm_tokenizer_free(tok);
    lm_model_free(m);
    return rc;
}
