/* server.c — lemma serve's HTTP side and its bridge to the engine; see
 * server.h.
 *
 * Threads. libmicrohttpd runs one thread per connection
 * (MHD_USE_THREAD_PER_CONNECTION); one engine thread calls lm_engine_step
 * in a loop and sleeps in lm_engine_wait when idle. A connection thread
 * parses and tokenizes its request, submits it (lm_engine_submit is
 * thread-safe) and then waits for the answer on its own thread, so a slow
 * or stuck client holds only its thread.
 *
 * The bridge. Each request is a job: the engine's event callback (on the
 * engine thread) formats what an event brings — SSE chunks for a stream,
 * the accumulated text and logprobs otherwise — into the job under the
 * job's mutex, and signals the job's eventfd. The connection thread waits
 * in poll() on two descriptors at once: the eventfd (output is ready) and
 * the client's socket with POLLRDHUP (the peer closed), so a client that
 * disconnects is noticed at once, even while nothing is being written, and
 * its request is cancelled (lm_engine_cancel frees its cache blocks at the
 * next step). A condvar could not wait on the socket as well; libmicrohttpd's
 * suspend/resume would notice a disconnect only at the next write.
 *
 * A job has two owners, counted in refs: the connection (until its
 * response is built, or a stream's response is destroyed) and the engine
 * (until the DONE event of its last choice). The last one frees it. The
 * server keeps every job in a list so that shutdown can cut them. */
#include "serve/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "formats/jsonw.h"
#include "infer/engine.h"
#include "model/model.h"
#include "serve/request.h"
#include "serve/response.h"
#include "serve/split.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

enum { MAX_STOP = 16, WAIT_SLICE_MS = 200 };

/* HTTP statuses counted for /metrics. */
static const int counted_status[] = {200, 400, 401, 404, 405, 413, 429, 500, 503};
#define NSTATUS (sizeof counted_status / sizeof counted_status[0])

typedef struct job job;

struct lm_server {
    lm_serve_opts o;
    char *host, *api_key, *served_name;
    struct MHD_Daemon *d;
    int port;
    atomic_int ready, stopping, closing;
    lm_model *m;
    lm_tokenizer *tok;
    lm_pool *pool;
    lm_engine *e;
    pthread_t engine_thread;
    int engine_started;
    atomic_int engine_quit;
    pthread_mutex_t mu;      /* jobs, inflight */
    pthread_cond_t cv;       /* inflight went down */
    job *jobs;
    int inflight;            /* jobs a connection still waits on */
    atomic_uint_fast64_t next_id, requests, status_count[NSTATUS + 1], disconnects;
    int64_t started;
};

typedef struct choice_state {
    lm_serve_split split;
    lm_text reasoning, content;   /* the whole answer (not for streams) */
    lm_text chat_lp;              /* chat logprobs entries */
    int chat_lp_n;
    lm_serve_cmpl_logprobs cmpl_lp;
    int64_t text_bytes;           /* completions: text so far (the next token's text_offset) */
    int role_sent;
    const char *finish;
} choice_state;

struct job {
    lm_server *srv;
    pthread_mutex_t mu;
    int refs;
    int efd;                      /* eventfd: the engine has added output */
    uint64_t id;                  /* the engine's */
    int submitted;
    lm_serve_kind kind;
    int stream, include_usage, logprobs, ntop, n, think;
    char id_str[48];
    lm_serve_head head;
    int choices_left;
    int cancelled;                /* lm_engine_cancel was called */
    char *error;                  /* the engine failed (its message) */
    int64_t prompt_tokens, completion_tokens;
    lm_text out;                  /* stream bytes not yet sent (from out_sent) */
    size_t out_sent;
    int done;
    choice_state *ch;
    lm_text scratch;              /* engine thread: a token's bytes for logprobs */
    job *prev, *next;
};

/* ---- jobs ---- */

static void job_free(job *j) {
    for (int i = 0; j->ch && i < j->n; i++) {
        choice_state *c = &j->ch[i];
        lm_serve_split_free(&c->split);
        lm_text_free(&c->reasoning);
        lm_text_free(&c->content);
        lm_text_free(&c->chat_lp);
        lm_serve_cmpl_logprobs_free(&c->cmpl_lp);
    }
    free(j->ch);
    lm_text_free(&j->out);
    lm_text_free(&j->scratch);
    free(j->error);
    if (j->efd >= 0) close(j->efd);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Drops one owner's reference; conn = 1 for the connection's (which also
 * counts against the requests in flight). */
static void job_release(job *j, int conn) {
    lm_server *s = j->srv;
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_lock(&s->mu);
    if (conn) {
        s->inflight--;
        pthread_cond_broadcast(&s->cv);
    }
    if (!left) {
        if (j->prev) j->prev->next = j->next;
        else s->jobs = j->next;
        if (j->next) j->next->prev = j->prev;
    }
    pthread_mutex_unlock(&s->mu);
    if (!left) job_free(j);
}

static job *job_create(lm_server *s, const lm_serve_request *r) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&j->mu, NULL);
    j->ch = calloc((size_t)r->n, sizeof *j->ch);
    if (j->efd < 0 || !j->ch) {
        job_free(j);
        return NULL;
    }
    j->srv = s;
    j->refs = 1;
    j->kind = r->kind;
    j->stream = r->stream;
    j->include_usage = r->include_usage;
    j->logprobs = r->logprobs;
    j->ntop = r->top_logprobs;
    j->n = j->choices_left = r->n;
    j->think = r->thinking;
    for (int i = 0; i < r->n; i++) lm_serve_split_init(&j->ch[i].split, r->thinking);
    snprintf(j->id_str, sizeof j->id_str, "%s-%" PRIx64 "%08" PRIx64, r->kind == LM_SERVE_CHAT ? "chatcmpl" : "cmpl",
             (uint64_t)s->started, (uint64_t)atomic_fetch_add(&s->next_id, 1));
    j->head = (lm_serve_head){.id = j->id_str, .created = (int64_t)time(NULL), .model = s->served_name};
    pthread_mutex_lock(&s->mu);
    j->next = s->jobs;
    if (s->jobs) s->jobs->prev = j;
    s->jobs = j;
    s->inflight++;
    pthread_mutex_unlock(&s->mu);
    return j;
}

static void job_signal(job *j) {
    uint64_t one = 1;
    ssize_t w = write(j->efd, &one, sizeof one);
    (void)w; /* a full counter is still a wake-up */
}

static const char *finish_reason(const job *j, lm_finish f) {
    if (f == LM_FINISH_EOS || f == LM_FINISH_STOP) return "stop";
    (void)j;
    return "length"; /* LENGTH, CONTEXT, and CANCELLED (shutdown; a gone client reads nothing) */
}

/* A token's raw bytes, for logprobs (into j->scratch, which may move: take
 * the pointers only after every decode of one event). */
static int token_bytes(job *j, int32_t id, size_t *off, size_t *len) {
    lm_error err;
    *off = j->scratch.len;
    if (lm_tokenizer_decode(j->srv->tok, &id, 1, LM_TOK_RAW, &j->scratch, &err)) return -1;
    *len = j->scratch.len - *off;
    return 0;
}

/* The logprobs of one token event: chat entries into *chat_lp (a stream's
 * delta or the choice's list), completions into the choice's object (and
 * for a stream, a one-token object into *cmpl_delta). */
static int add_logprobs(job *j, choice_state *c, const lm_engine_event *ev, lm_text *chat_lp, int first,
                        lm_text *cmpl_delta) {
    enum { MAXTOP = 64 };
    lm_serve_token tok, top[MAXTOP];
    size_t offs[MAXTOP + 1], lens[MAXTOP + 1];
    int ntop = ev->ntop < MAXTOP ? ev->ntop : MAXTOP;
    j->scratch.len = 0;
    if (token_bytes(j, ev->token, &offs[0], &lens[0])) return -1;
    for (int i = 0; i < ntop; i++)
        if (token_bytes(j, ev->top_ids[i], &offs[i + 1], &lens[i + 1])) return -1;
    const char *base = j->scratch.data ? j->scratch.data : "";
    tok = (lm_serve_token){base + offs[0], lens[0], ev->logprob};
    for (int i = 0; i < ntop; i++) top[i] = (lm_serve_token){base + offs[i + 1], lens[i + 1], ev->top_logprobs[i]};
    if (j->kind == LM_SERVE_CHAT) return lm_serve_fmt_chat_logprob(chat_lp, first, &tok, top, ntop);
    if (cmpl_delta) {
        lm_serve_cmpl_logprobs one = {0};
        int rc = lm_serve_cmpl_logprobs_add(&one, &tok, top, ntop, c->text_bytes) ||
                 lm_serve_fmt_cmpl_logprobs(cmpl_delta, &one);
        lm_serve_cmpl_logprobs_free(&one);
        return rc ? -1 : 0;
    }
    return lm_serve_cmpl_logprobs_add(&c->cmpl_lp, &tok, top, ntop, c->text_bytes);
}

/* Engine thread: one event into the job. */
static void on_event(void *user, const lm_engine_event *ev) {
    job *j = user;
    lm_server *s = j->srv;
    int last = 0, oom = 0;
    pthread_mutex_lock(&j->mu);
    choice_state *c = &j->ch[ev->choice];
    lm_text r = {0}, t = {0}, lp = {0};
    const char *text = ev->text ? ev->text : "";
    int done = ev->kind == LM_EV_DONE;
    if (ev->kind == LM_EV_TOKEN && j->logprobs)
        oom |= add_logprobs(j, c, ev, j->stream ? &lp : &c->chat_lp, j->stream ? 1 : c->chat_lp_n == 0,
                            j->stream ? &lp : NULL) != 0;
    if (ev->kind == LM_EV_TOKEN && j->logprobs && !j->stream && j->kind == LM_SERVE_CHAT) c->chat_lp_n++;
    if (j->kind == LM_SERVE_CHAT) {
        oom |= lm_serve_split_feed(&c->split, text, ev->text_len, done, &r, &t) != 0;
    } else if (ev->text_len) {
        oom |= lm_text_append(&t, text, ev->text_len) != 0;
    }
    c->text_bytes += (int64_t)ev->text_len;
    if (done) {
        c->finish = finish_reason(j, ev->finish);
        j->prompt_tokens = ev->prompt_tokens;
        j->completion_tokens += ev->completion_tokens;
        if (ev->error && !j->error) j->error = strdup(ev->error);
        last = --j->choices_left == 0;
    }
    if (j->stream) {
        /* the role first, then whatever this event decided, then the finish */
        int chat = j->kind == LM_SERVE_CHAT;
        if (chat && !c->role_sent) {
            lm_serve_delta d = {.role = 1, .content = "", .content_len = 0};
            oom |= lm_serve_fmt_chunk(&j->out, j->kind, &j->head, ev->choice, &d) != 0;
            c->role_sent = 1;
        }
        if (r.len || t.len || lp.len) {
            lm_serve_delta d = {.reasoning = r.len ? r.data : NULL, .reasoning_len = r.len,
                                .content = t.len || !chat ? (t.data ? t.data : "") : NULL, .content_len = t.len,
                                .logprobs = lp.len ? lp.data : NULL, .logprobs_len = lp.len};
            oom |= lm_serve_fmt_chunk(&j->out, j->kind, &j->head, ev->choice, &d) != 0;
        }
        if (done) {
            lm_serve_delta d = {.finish = c->finish, .content = chat ? NULL : ""};
            oom |= lm_serve_fmt_chunk(&j->out, j->kind, &j->head, ev->choice, &d) != 0;
        }
        if (last) {
            if (j->error) {
                oom |= jw_raw(&j->out, "data: ") || lm_serve_fmt_error(&j->out, j->error, "server_error", NULL, NULL) ||
                       jw_raw(&j->out, "\n\n");
            }
            if (j->include_usage)
                oom |= lm_serve_fmt_usage_chunk(&j->out, j->kind, &j->head, j->prompt_tokens, j->completion_tokens) != 0;
            oom |= lm_serve_fmt_done(&j->out) != 0;
        }
    } else {
        if (r.len) oom |= lm_text_append(&c->reasoning, r.data, r.len) != 0;
        if (t.len) oom |= lm_text_append(&c->content, t.data, t.len) != 0;
    }
    if (oom && !j->error) j->error = strdup("out of memory while formatting the answer");
    if (last) j->done = 1;
    pthread_mutex_unlock(&j->mu);
    lm_text_free(&r);
    lm_text_free(&t);
    lm_text_free(&lp);
    job_signal(j);
    if (last) {
        atomic_fetch_add(&s->requests, 1);
        job_release(j, 0);
    }
}

/* Waits for output or a hang-up of the client: 1 when the client has gone
 * (or the server is closing), 0 otherwise (maybe spuriously). */
static int wait_output(job *j, int client_fd) {
    struct pollfd p[2] = {{.fd = j->efd, .events = POLLIN}, {.fd = client_fd, .events = POLLRDHUP}};
    int n = poll(p, client_fd >= 0 ? 2 : 1, WAIT_SLICE_MS);
    if (n > 0 && (p[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t rd = read(j->efd, &v, sizeof v);
        (void)rd;
    }
    if (client_fd >= 0 && n > 0 && (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))) return 1;
    return atomic_load(&j->srv->closing) ? 1 : 0;
}

static void job_cancel(job *j) {
    pthread_mutex_lock(&j->mu);
    int live = j->submitted && !j->done && !j->cancelled;
    j->cancelled |= live;
    uint64_t id = j->id;
    pthread_mutex_unlock(&j->mu);
    if (live) lm_engine_cancel(j->srv->e, id);
}

/* ---- the engine thread ---- */

static void *engine_main(void *arg) {
    lm_server *s = arg;
    lm_error err;
    for (;;) {
        int left = lm_engine_step(s->e, &err);
        if (left == 0 && atomic_load(&s->engine_quit)) break;
        if (left <= 0) lm_engine_wait(s->e, left < 0 ? 0.05 : 0.5);
    }
    return NULL;
}

/* ---- HTTP helpers ---- */

static void count_status(lm_server *s, int status) {
    size_t i = 0;
    while (i < NSTATUS && counted_status[i] != status) i++;
    atomic_fetch_add(&s->status_count[i], 1);
}

static enum MHD_Result send_text(lm_server *s, struct MHD_Connection *c, int status, const char *type, const char *body,
                                 size_t len, const char *extra_header, const char *extra_value) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (extra_header) MHD_add_response_header(r, extra_header, extra_value);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    count_status(s, status);
    return rc;
}

static enum MHD_Result send_json(lm_server *s, struct MHD_Connection *c, int status, lm_text *body) {
    enum MHD_Result rc = send_text(s, c, status, "application/json", body->data ? body->data : "", body->len, NULL, NULL);
    lm_text_free(body);
    return rc;
}

static enum MHD_Result send_error(lm_server *s, struct MHD_Connection *c, int status, const char *message,
                                  const char *param, const char *code) {
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 429 ? "rate_limit_error"
                       : status >= 500 ? (status == 503 ? "service_unavailable" : "server_error")
                                       : "invalid_request_error";
    lm_text t = {0};
    if (lm_serve_fmt_error(&t, message, type, param, code)) {
        lm_text_free(&t);
        return MHD_NO;
    }
    const char *h = NULL, *v = NULL;
    if (status == 401) h = "WWW-Authenticate", v = "Bearer";
    if (status == 405) h = "Allow", v = code; /* the allowed method travels in code's place */
    enum MHD_Result rc = send_text(s, c, status, "application/json", t.data, t.len, h, v);
    lm_text_free(&t);
    return rc;
}

static int authorized(lm_server *s, struct MHD_Connection *c) {
    if (!s->api_key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    h += 7;
    size_t a = strlen(h), b = strlen(s->api_key);
    unsigned char diff = a != b;
    for (size_t i = 0; i < a && i < b; i++) diff |= (unsigned char)(h[i] ^ s->api_key[i]);
    return diff == 0;
}

/* ---- the endpoints ---- */

static enum MHD_Result models(lm_server *s, struct MHD_Connection *c) {
    lm_text t = {0};
    if (jw_raw(&t, "{\"object\":\"list\",\"data\":[{\"id\":") || jw_str(&t, s->served_name) ||
        jw_raw(&t, ",\"object\":\"model\",\"created\":") || jw_int(&t, s->started) ||
        jw_raw(&t, ",\"owned_by\":\"lemma\",\"max_model_len\":") || jw_int(&t, s->o.ctx) || jw_raw(&t, "}]}")) {
        lm_text_free(&t);
        return MHD_NO;
    }
    return send_json(s, c, 200, &t);
}

static enum MHD_Result metrics(lm_server *s, struct MHD_Connection *c) {
    lm_engine_stats st = {0};
    int ready = atomic_load(&s->ready);
    if (ready) lm_engine_stats_get(s->e, &st);
    pthread_mutex_lock(&s->mu);
    int inflight = s->inflight;
    pthread_mutex_unlock(&s->mu);
    lm_text t = {0};
    int bad = lm_text_appendf(&t,
                              "# HELP lemma_ready 1 once the model is loaded\n# TYPE lemma_ready gauge\nlemma_ready %d\n"
                              "# HELP lemma_requests_total completion requests answered by the engine\n"
                              "# TYPE lemma_requests_total counter\nlemma_requests_total %" PRIu64 "\n"
                              "# HELP lemma_requests_in_flight completion requests a client is waiting on\n"
                              "# TYPE lemma_requests_in_flight gauge\nlemma_requests_in_flight %d\n"
                              "# HELP lemma_client_disconnects_total requests cancelled because the client left\n"
                              "# TYPE lemma_client_disconnects_total counter\nlemma_client_disconnects_total %" PRIu64 "\n"
                              "# HELP lemma_http_responses_total HTTP responses by status\n"
                              "# TYPE lemma_http_responses_total counter\n",
                              ready, (uint64_t)atomic_load(&s->requests), inflight,
                              (uint64_t)atomic_load(&s->disconnects));
    for (size_t i = 0; i <= NSTATUS; i++) {
        if (i < NSTATUS)
            bad |= lm_text_appendf(&t, "lemma_http_responses_total{code=\"%d\"} %" PRIu64 "\n", counted_status[i],
                                   (uint64_t)atomic_load(&s->status_count[i]));
        else
            bad |= lm_text_appendf(&t, "lemma_http_responses_total{code=\"other\"} %" PRIu64 "\n",
                                   (uint64_t)atomic_load(&s->status_count[i]));
    }
    bad |= lm_text_appendf(
        &t,
        "# HELP lemma_prompt_tokens_total prompt tokens processed\n# TYPE lemma_prompt_tokens_total counter\n"
        "lemma_prompt_tokens_total %" PRIu64 "\n"
        "# HELP lemma_completion_tokens_total tokens generated\n# TYPE lemma_completion_tokens_total counter\n"
        "lemma_completion_tokens_total %" PRIu64 "\n"
        "# HELP lemma_completion_tokens_per_second tokens generated per second of engine work\n"
        "# TYPE lemma_completion_tokens_per_second gauge\nlemma_completion_tokens_per_second %.3f\n"
        "# HELP lemma_sequences_running sequences in the running batch\n# TYPE lemma_sequences_running gauge\n"
        "lemma_sequences_running %d\n"
        "# HELP lemma_requests_queued requests waiting to start\n# TYPE lemma_requests_queued gauge\n"
        "lemma_requests_queued %d\n"
        "# HELP lemma_cache_blocks_used latent cache blocks in use\n# TYPE lemma_cache_blocks_used gauge\n"
        "lemma_cache_blocks_used %" PRId64 "\n"
        "# HELP lemma_cache_blocks_total latent cache blocks in the pool\n# TYPE lemma_cache_blocks_total gauge\n"
        "lemma_cache_blocks_total %" PRId64 "\n"
        "# HELP lemma_preemptions_total sequences preempted for cache space\n# TYPE lemma_preemptions_total counter\n"
        "lemma_preemptions_total %" PRIu64 "\n"
        "# HELP lemma_engine_steps_total forwards run\n# TYPE lemma_engine_steps_total counter\n"
        "lemma_engine_steps_total %" PRIu64 "\n",
        st.prompt_tokens, st.completion_tokens, st.busy_s > 0 ? st.completion_tokens / st.busy_s : 0.0, st.running,
        st.queued, st.blocks_used, st.blocks_total, st.preemptions, st.steps);
    if (bad) {
        lm_text_free(&t);
        return MHD_NO;
    }
    enum MHD_Result rc = send_text(s, c, 200, "text/plain; version=0.0.4", t.data, t.len, NULL, NULL);
    lm_text_free(&t);
    return rc;
}

/* The prompt's token ids: the chat format rendered and encoded, a string as
 * `lemma generate -p` encodes it (BOS, then the text with special tokens),
 * or the ids given. */
static int prompt_ids(lm_server *s, const lm_serve_request *r, lm_ids *ids, lm_error *err) {
    if (r->kind == LM_SERVE_CHAT) {
        lm_text rendered = {0};
        lm_chat_opts co = {.add_generation_prompt = 1, .thinking = r->thinking};
        int rc = lm_chat_render(r->msgs, r->nmsgs, &co, &rendered, err) ||
                 lm_tokenizer_encode(s->tok, rendered.data ? rendered.data : "", rendered.len, LM_TOK_SPECIAL, ids, err);
        lm_text_free(&rendered);
        return rc ? -1 : 0;
    }
    if (r->prompt_ids) {
        for (size_t i = 0; i < r->nprompt_ids; i++)
            if (lm_ids_push(ids, r->prompt_ids[i])) return lm_fail(err, "out of memory");
        return 0;
    }
    int32_t bos = lm_tokenizer_bos(s->tok);
    if (bos >= 0 && lm_ids_push(ids, bos)) return lm_fail(err, "out of memory");
    return lm_tokenizer_encode(s->tok, r->prompt, r->prompt_len, LM_TOK_SPECIAL, ids, err);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max);
static void stream_free(void *cls);

typedef struct stream_ctx {
    job *j;
    int fd;
} stream_ctx;

/* The whole answer of a job that is done. */
static enum MHD_Result answer_whole(lm_server *s, struct MHD_Connection *c, job *j) {
    if (j->error) return send_error(s, c, 500, j->error, NULL, NULL);
    lm_serve_choice *cs = calloc((size_t)j->n, sizeof *cs);
    lm_text lp = {0}, t = {0};
    size_t *lp_off = calloc((size_t)j->n + 1, sizeof *lp_off);
    int bad = !cs || !lp_off;
    for (int i = 0; !bad && i < j->n; i++) {
        choice_state *ch = &j->ch[i];
        cs[i].content = ch->content.data ? ch->content.data : "";
        cs[i].content_len = ch->content.len;
        if (j->kind == LM_SERVE_CHAT && ch->split.reasoning) {
            cs[i].reasoning = ch->reasoning.data ? ch->reasoning.data : "";
            cs[i].reasoning_len = ch->reasoning.len;
        }
        cs[i].finish = ch->finish ? ch->finish : "length";
        lp_off[i] = lp.len;
        if (j->logprobs) {
            if (j->kind == LM_SERVE_CHAT) bad |= ch->chat_lp.len && lm_text_append(&lp, ch->chat_lp.data, ch->chat_lp.len);
            else bad |= lm_serve_fmt_cmpl_logprobs(&lp, &ch->cmpl_lp) != 0;
        }
        lp_off[i + 1] = lp.len;
    }
    for (int i = 0; !bad && j->logprobs && i < j->n; i++) {
        cs[i].logprobs = lp.data ? lp.data + lp_off[i] : "";
        cs[i].logprobs_len = lp_off[i + 1] - lp_off[i];
    }
    bad = bad || lm_serve_fmt_response(&t, j->kind, &j->head, cs, j->n, j->prompt_tokens, j->completion_tokens);
    free(cs);
    free(lp_off);
    lm_text_free(&lp);
    if (bad) {
        lm_text_free(&t);
        return send_error(s, c, 500, "out of memory while formatting the answer", NULL, NULL);
    }
    return send_json(s, c, 200, &t);
}

static enum MHD_Result completion(lm_server *s, struct MHD_Connection *c, lm_serve_kind kind, const char *body,
                                  size_t len) {
    lm_serve_limits lim = {.max_n = s->o.max_seqs, .max_top_logprobs = s->o.max_top_logprobs, .max_ctx = s->o.ctx,
                           .max_stop = MAX_STOP};
    lm_serve_request r;
    lm_serve_param_error pe;
    if (lm_serve_request_parse(kind, body, len, &lim, &r, &pe)) return send_error(s, c, 400, pe.msg, pe.param, NULL);
    lm_ids ids = {0};
    lm_error err;
    enum MHD_Result rc;
    const char *prompt_field = kind == LM_SERVE_CHAT ? "messages" : "prompt";
    if (prompt_ids(s, &r, &ids, &err)) {
        rc = send_error(s, c, 400, err.msg, prompt_field, NULL);
        goto done;
    }
    if (!ids.n) {
        rc = send_error(s, c, 400, "the prompt encodes to no tokens", prompt_field, NULL);
        goto done;
    }
    if ((int64_t)ids.n >= s->o.ctx) {
        snprintf(err.msg, sizeof err.msg, "the prompt has %zu tokens; the context holds %lld (prompt and completion)",
                 ids.n, (long long)s->o.ctx);
        rc = send_error(s, c, 400, err.msg, prompt_field, "context_length_exceeded");
        goto done;
    }
    if (r.max_tokens > 0 && (int64_t)ids.n + r.max_tokens > s->o.ctx) {
        snprintf(err.msg, sizeof err.msg,
                 "the prompt (%zu tokens) and max_tokens (%lld) exceed the context of %lld tokens", ids.n,
                 (long long)r.max_tokens, (long long)s->o.ctx);
        rc = send_error(s, c, 400, err.msg, kind == LM_SERVE_CHAT ? "max_tokens" : "max_tokens", "context_length_exceeded");
        goto done;
    }
    lm_gen_params gp = lm_gen_params_default();
    gp.max_tokens = r.max_tokens > 0 ? r.max_tokens : s->o.ctx - (int64_t)ids.n;
    gp.sampling.temperature = (float)r.temperature;
    gp.sampling.top_p = (float)r.top_p;
    gp.sampling.top_k = r.top_k;
    gp.sampling.min_p = (float)r.min_p;
    gp.sampling.seed = r.seed;
    gp.stop = r.stop;
    gp.nstop = r.nstop;
    gp.stop_at_eos = !r.ignore_eos;
    gp.skip_special = 0; /* "</think>" must reach the splitter; a final EOS is dropped there */
    job *j = job_create(s, &r);
    if (!j) {
        rc = send_error(s, c, 500, "out of memory", NULL, NULL);
        goto done;
    }
    lm_engine_request er = {.prompt = ids.ids, .prompt_len = (int64_t)ids.n, .n = r.n, .params = gp,
                            .logprobs = r.logprobs, .top_logprobs = r.top_logprobs, .on_event = on_event, .user = j};
    pthread_mutex_lock(&j->mu);
    j->refs++; /* the engine's, given back by the last DONE event */
    pthread_mutex_unlock(&j->mu);
    uint64_t id;
    if (lm_engine_submit(s->e, &er, &id, &err)) {
        job_release(j, 0);
        int full = lm_engine_queue_full(&err);
        rc = send_error(s, c, full ? 429 : 400, err.msg, full ? NULL : prompt_field, full ? "queue_full" : NULL);
        job_release(j, 1);
        goto done;
    }
    pthread_mutex_lock(&j->mu);
    j->id = id;
    j->submitted = 1;
    pthread_mutex_unlock(&j->mu);

    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    if (r.stream) {
        stream_ctx *sc = malloc(sizeof *sc);
        struct MHD_Response *resp =
            sc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, sc, stream_free) : NULL;
        if (!resp) {
            free(sc);
            job_cancel(j);
            job_release(j, 1);
            rc = MHD_NO;
            goto done;
        }
        *sc = (stream_ctx){j, fd};
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        rc = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        count_status(s, 200);
        goto done;
    }
    /* a whole answer: wait for it here, watching the client */
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int finished = j->done;
        pthread_mutex_unlock(&j->mu);
        if (finished) break;
        if (wait_output(j, fd)) {
            atomic_fetch_add(&s->disconnects, 1);
            job_cancel(j);
            job_release(j, 1);
            rc = MHD_NO;
            goto done;
        }
    }
    rc = answer_whole(s, c, j);
    job_release(j, 1);
done:
    lm_ids_free(&ids);
    lm_serve_request_free(&r);
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    job *j = sc->j;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t avail = j->out.len - j->out_sent;
        if (avail) {
            size_t n = avail < max ? avail : max;
            memcpy(buf, j->out.data + j->out_sent, n);
            j->out_sent += n;
            if (j->out_sent == j->out.len) j->out.len = j->out_sent = 0;
            pthread_mutex_unlock(&j->mu);
            return (ssize_t)n;
        }
        int finished = j->done;
        pthread_mutex_unlock(&j->mu);
        if (finished) return MHD_CONTENT_READER_END_OF_STREAM;
        if (wait_output(j, sc->fd)) return MHD_CONTENT_READER_END_WITH_ERROR; /* stream_free cancels */
    }
}

static void stream_free(void *cls) {
    stream_ctx *sc = cls;
    job *j = sc->j;
    pthread_mutex_lock(&j->mu);
    int cut_short = !j->done;
    pthread_mutex_unlock(&j->mu);
    if (cut_short) {
        atomic_fetch_add(&j->srv->disconnects, 1);
        job_cancel(j);
    }
    job_release(j, 1);
    free(sc);
}

/* ---- routing ---- */

typedef struct conn {
    lm_serve_kind kind;
    lm_text body;
} conn;

static enum MHD_Result route(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                             const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    lm_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) {
        int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
        int chat = !strcmp(url, "/v1/chat/completions"), cmpl = !strcmp(url, "/v1/completions");
        if (!strcmp(url, "/health")) {
            if (!get) return send_error(s, c, 405, "use GET /health", NULL, "GET");
            if (!atomic_load(&s->ready)) return send_error(s, c, 503, "the model is loading", NULL, "loading");
            static const char ok[] = "{\"status\":\"ok\"}";
            return send_text(s, c, 200, "application/json", ok, sizeof ok - 1, NULL, NULL);
        }
        if (!chat && !cmpl && strcmp(url, "/v1/models") && strcmp(url, "/metrics")) {
            char m[300];
            snprintf(m, sizeof m, "no endpoint %.200s (lemma serves /v1/chat/completions, /v1/completions, /v1/models, "
                                  "/health, /metrics)", url);
            return send_error(s, c, 404, m, NULL, "not_found");
        }
        if ((chat || cmpl) && !post) return send_error(s, c, 405, "use POST", NULL, "POST");
        if (!chat && !cmpl && !get) return send_error(s, c, 405, "use GET", NULL, "GET");
        if (!authorized(s, c))
            return send_error(s, c, 401, "a valid API key is required (Authorization: Bearer KEY)", NULL,
                              "invalid_api_key");
        if (!strcmp(url, "/metrics")) return metrics(s, c);
        if (!strcmp(url, "/v1/models")) return models(s, c);
        if (!atomic_load(&s->ready)) return send_error(s, c, 503, "the model is loading", NULL, "loading");
        if (atomic_load(&s->stopping)) return send_error(s, c, 503, "the server is shutting down", NULL, "shutting_down");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->o.max_body) {
            char m[160];
            snprintf(m, sizeof m, "the body has %.30s bytes; at most %zu are accepted (--max-body)", cl, s->o.max_body);
            return send_error(s, c, 413, m, NULL, "body_too_large");
        }
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        cn->kind = chat ? LM_SERVE_CHAT : LM_SERVE_COMPLETION;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cn->body.len + *upload_size > s->o.max_body) {
            /* a body without Content-Length (chunked) that grows too big: answered at once, the
             * rest is never read (libmicrohttpd closes the connection after the answer) */
            lm_text_free(&cn->body);
            char m[120];
            snprintf(m, sizeof m, "the body is over %zu bytes (--max-body)", s->o.max_body);
            *upload_size = 0;
            return send_error(s, c, 413, m, NULL, "body_too_large");
        }
        if (lm_text_append(&cn->body, upload, *upload_size)) return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    return completion(s, c, cn->kind, cn->body.data ? cn->body.data : "", cn->body.len);
}

static void request_done(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    lm_text_free(&cn->body);
    free(cn);
    *con_cls = NULL;
}

static void quiet_log(void *cls, const char *fmt, va_list ap) { (void)cls, (void)fmt, (void)ap; }

/* ---- the server ---- */

lm_serve_opts lm_serve_opts_default(void) {
    return (lm_serve_opts){.host = "127.0.0.1", .port = 8080, .served_name = "lemma", .max_seqs = 64,
                           .max_queue = 256, .ctx = 8192, .max_body = 1 << 20, .max_header = 32 << 10,
                           .threads = 0, .idle_timeout_s = 60, .max_connections = 512, .max_top_logprobs = 20};
}

int lm_serve_is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

lm_server *lm_serve_start(const lm_serve_opts *o, lm_error *err) {
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)o->port)};
    struct sockaddr *addr;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_POLL;
    if (inet_pton(AF_INET, o->host, &a4.sin_addr) == 1) {
        addr = (struct sockaddr *)&a4;
    } else if (inet_pton(AF_INET6, o->host, &a6.sin6_addr) == 1) {
        addr = (struct sockaddr *)&a6;
        flags |= MHD_USE_IPv6;
    } else {
        lm_fail(err, "--host: expected a numeric IPv4 or IPv6 address, got '%.200s'", o->host);
        return NULL;
    }
    if (o->port < 0 || o->port > 65535) {
        lm_fail(err, "--port: expected 0..65535, got %d", o->port);
        return NULL;
    }
    if (o->max_seqs < 1 || o->max_queue < 1 || o->ctx < 2 || o->max_body < 1) {
        lm_fail(err, "serve options out of range (max_seqs, max_queue, ctx, max_body must be positive)");
        return NULL;
    }
    lm_server *s = calloc(1, sizeof *s);
    if (!s) {
        lm_fail(err, "out of memory");
        return NULL;
    }
    s->o = *o;
    s->host = strdup(o->host);
    s->served_name = strdup(o->served_name ? o->served_name : "lemma");
    if (o->api_key && *o->api_key) s->api_key = strdup(o->api_key);
    s->o.host = s->host;
    s->o.served_name = s->served_name;
    s->o.api_key = NULL;
    s->started = (int64_t)time(NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->host || !s->served_name || (o->api_key && *o->api_key && !s->api_key)) {
        lm_fail(err, "out of memory");
        lm_serve_free(s);
        return NULL;
    }
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, route, s,
                            MHD_OPTION_SOCK_ADDR, addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout_s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, o->max_header,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, s,
                            MHD_OPTION_EXTERNAL_LOGGER, quiet_log, NULL,
                            MHD_OPTION_END);
    if (!s->d) {
        lm_fail(err, "cannot listen on %s port %d: %s", o->host, o->port, errno ? strerror(errno) : "libmicrohttpd failed");
        lm_serve_free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    return s;
}

int lm_serve_port(const lm_server *s) { return s->port; }

int lm_serve_load(lm_server *s, const char *model_dir, lm_error *err) {
    if (lm_model_load(model_dir, &s->m, err)) return -1;
    s->m->cfg.fp8_emulation = !s->o.no_fp8_emulation;
    if (!(s->tok = lm_tokenizer_load(model_dir, err))) return -1;
    if (!(s->pool = lm_pool_create_err(s->o.threads, err))) return -1;
    lm_engine_opts eo = lm_engine_opts_default();
    eo.max_ctx = s->o.ctx;
    eo.max_seqs = s->o.max_seqs;
    eo.max_queue = s->o.max_queue;
    eo.max_top_logprobs = s->o.max_top_logprobs;
    if (eo.max_batch_tokens < eo.max_seqs) eo.max_batch_tokens = eo.max_seqs; /* a step carries every decoding sequence */
    if (!(s->e = lm_engine_create(s->m, s->tok, s->pool, &eo, err))) return -1;
    if (pthread_create(&s->engine_thread, NULL, engine_main, s)) return lm_fail(err, "cannot start the engine thread");
    s->engine_started = 1;
    atomic_store(&s->ready, 1);
    return 0;
}

/* Waits until no request is in flight or the deadline passes; 1 when none is. */
static int drain(lm_server *s, double deadline) {
    pthread_mutex_lock(&s->mu);
    while (s->inflight > 0) {
        double left = deadline - lm_now_s();
        if (left <= 0) break;
        struct timespec ts = lm_realtime_after(left < 0.2 ? left : 0.2);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    int none = s->inflight == 0;
    pthread_mutex_unlock(&s->mu);
    return none;
}

/* Cancels every job the engine still runs. The ids are collected under
 * s->mu and cancelled after it is released: the engine thread takes s->mu
 * (a job's last event releases the job) while it may hold its own lock. */
static void cancel_all(lm_server *s) {
    for (;;) {
        enum { BATCH = 64 };
        uint64_t ids[BATCH];
        int n = 0, more = 0;
        pthread_mutex_lock(&s->mu);
        for (job *j = s->jobs; j; j = j->next) {
            pthread_mutex_lock(&j->mu);
            if (j->submitted && !j->done && !j->cancelled) {
                if (n < BATCH) ids[n++] = j->id, j->cancelled = 1;
                else more = 1;
            }
            pthread_mutex_unlock(&j->mu);
        }
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n; i++) lm_engine_cancel(s->e, ids[i]);
        if (!more) return;
    }
}

void lm_serve_shutdown(lm_server *s, double grace_s) {
    if (!s || !s->d) return;
    atomic_store(&s->stopping, 1);
    int lfd = MHD_quiesce_daemon(s->d);
    if (lfd >= 0) close(lfd);
    if (s->e) {
        if (!drain(s, lm_now_s() + grace_s)) {
            cancel_all(s); /* the rest end with "length"; their clients get the ending */
            drain(s, lm_now_s() + 5);
        }
    }
    atomic_store(&s->closing, 1);
    MHD_stop_daemon(s->d);
    s->d = NULL;
}

void lm_serve_free(lm_server *s) {
    if (!s) return;
    if (s->d) {
        atomic_store(&s->closing, 1);
        MHD_stop_daemon(s->d);
    }
    if (s->engine_started) {
        cancel_all(s);
        atomic_store(&s->engine_quit, 1);
        lm_engine_wake(s->e);
        pthread_join(s->engine_thread, NULL);
    }
    if (s->e) lm_engine_free(s->e);
    /* jobs the engine never finished (none after the join above) */
    while (s->jobs) {
        job *j = s->jobs;
        s->jobs = j->next;
        job_free(j);
    }
    lm_pool_free(s->pool);
    lm_tokenizer_free(s->tok);
    lm_model_free(s->m);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->host);
    free(s->api_key);
    free(s->served_name);
    free(s);
}
