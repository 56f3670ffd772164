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

#include "cli/args.h"
#include "cli/commands.h"
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

int cmd_chat(int argc, char **argv) {
    args a = {argc, argv, 1, "chat", 0};
    const char *dir = NULL, *tok_dir = NULL, *system = NULL, *v;
    int64_t threads = args_default_threads(), n = 1024, ctx = 4096, seed = 0, top_k = 0;
    double temp = 0.6, top_p = 0.95, min_p = 0;
    int think = 0, ignore_eos = 0;
    for (; a.i < argc && !a.bad; a.i++) {
        if (args_opt(&a, "--help", "-h", NULL)) {
            printf("usage: lemma chat MODEL_DIR [--system TEXT] [--think] [options]\n"
                   "  Interactive chat in DeepSeek-V3's format; one line per user turn on stdin.\n"
                   "  The answer streams to stdout; with --think the model starts in reasoning mode and\n"
                   "  its reasoning streams to stderr. Ctrl-C stops the current answer; Ctrl-D or /exit\n"
                   "  ends the chat; /reset forgets the conversation.\n"
                   "  --system TEXT     system prompt\n"
                   "  -n N              most tokens per answer (default 1024)\n"
                   "  --ctx N           context size (default 4096)\n"
                   "  --temperature T   (default 0.6)  --top-p P (default 0.95)  --top-k K  --min-p P\n"
                   "  --seed S          sampling seed (default 0)\n"
                   "  --ignore-eos      answers end only at -n or Ctrl-C (no EOS, no <｜User｜> stop)\n"
                   "  --tokenizer DIR   tokenizer.json location (default MODEL_DIR)\n"
                   "  --threads N       worker threads (default: all cores)\n");
            return 0;
        } else if (args_opt(&a, "--system", NULL, &v)) {
            system = v;
        } else if (args_opt(&a, "--think", NULL, NULL)) {
            think = 1;
        } else if (args_opt(&a, "--ignore-eos", NULL, NULL)) {
            ignore_eos = 1;
        } else if (args_opt(&a, "-n", NULL, &v) || args_opt(&a, "--max-tokens", NULL, &v)) {
            args_int(&a, "-n", v, 1, 1 << 24, &n);
        } else if (args_opt(&a, "--ctx", NULL, &v)) {
            args_int(&a, "--ctx", v, 16, 1ll << 24, &ctx);
        } else if (args_opt(&a, "--temperature", NULL, &v)) {
            args_double(&a, "--temperature", v, 0, 100, &temp);
        } else if (args_opt(&a, "--top-p", NULL, &v)) {
            args_double(&a, "--top-p", v, 0, 1, &top_p);
        } else if (args_opt(&a, "--min-p", NULL, &v)) {
            args_double(&a, "--min-p", v, 0, 1, &min_p);
        } else if (args_opt(&a, "--top-k", NULL, &v)) {
            args_int(&a, "--top-k", v, 0, 1ll << 31, &top_k);
        } else if (args_opt(&a, "--seed", NULL, &v)) {
            args_int(&a, "--seed", v, 0, INT64_MAX, &seed);
        } else if (args_opt(&a, "--tokenizer", NULL, &v)) {
            tok_dir = v;
        } else if (args_opt(&a, "--threads", "-t", &v)) {
            args_int(&a, "--threads", v, 1, 1024, &threads);
        } else if (argv[a.i][0] == '-') {
            fprintf(stderr, "lemma chat: unknown option '%s' (see --help)\n", argv[a.i]);
            a.bad = 1;
        } else if (!dir) {
            dir = argv[a.i];
        } else {
            fprintf(stderr, "lemma chat: unexpected argument '%s'\n", argv[a.i]);
            a.bad = 1;
        }
    }
    if (!a.bad && !dir) {
        fprintf(stderr, "lemma chat: missing MODEL_DIR\n");
        a.bad = 1;
    }
    if (a.bad) return 2;
    lm_error err;
    lm_model *m = NULL;
    if (lm_model_load(dir, &m, &err)) {
        fprintf(stderr, "lemma chat: %s\n", err.msg);
        return 1;
    }
    lm_tokenizer *tok = lm_tokenizer_load(tok_dir ? tok_dir : dir, &err);
    if (!tok) {
        fprintf(stderr, "lemma chat: %s\n", err.msg);
        lm_model_free(m);
        return 1;
    }
    lm_generator *g = NULL;
    lm_pool *pool = lm_pool_create_err((int)threads, &err);
    if (pool) g = lm_generator_create(m, tok, pool, ctx, LM_ATTN_LATENT, &err);
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
