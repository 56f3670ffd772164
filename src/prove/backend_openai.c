/* backend_openai.c — the proof pipeline's prompts answered by an
 * OpenAI-compatible chat-completions endpoint; see prove/backend.h.
 *
 * One thread drives every endpoint's transfers with libcurl's multi
 * interface; each endpoint owns `parallel` slots. A request lives in one of
 * three places: the fresh queue (not tried yet, taken in order), a transfer
 * slot (in flight), or the retry list (failed in a way worth retrying, in
 * the order of failure). The waiting is the endpoint's, not the request's:
 * an endpoint that failed is on probation and takes no work until it is
 * over, then one probe; a failed request goes straight to whichever endpoint
 * is available, before any fresh request, so it is not starved by a long
 * queue. Replies are built from the body kept in memory, which the write
 * callback refuses to grow beyond max_reply_bytes (the transfer is aborted
 * there, nothing more is read). */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/fileio.h"
#include "core/rng.h"
#include "core/utf8.h"
#include "formats/json.h"
#include "prove/backend.h"

enum {
    ERROR_MAX = 600,          /* bytes of one reply's error line */
    EXCERPT_MAX = 200,        /* bytes of a server message quoted in an error */
    POLL_MS_MAX = 100,        /* longest wait without looking at the stop flag */
};
static const double BACKOFF_CAP_S = 60;      /* longest backoff, and longest Retry-After honoured */
static const uint64_t JITTER_STREAM = 0x6a6974746572ull; /* "jitter": the rng stream of backoff jitter */

/* curl_global_init is not thread-safe: once per process, whoever comes first. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;
static void curl_init_once(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct endpoint {
    char *base;                /* api_base without trailing slashes nor user:password@ (messages) */
    char *url;                 /* {base}/chat/completions */
    int parallel;
    /* health, kept across run calls */
    int failures;              /* probation episodes in a row; 0: healthy */
    double since;              /* when the current episode began: a transfer started before failed with it */
    double until;              /* no new work before this (monotonic seconds) */
    char last_error[ERROR_MAX];
    int in_flight;             /* transfers now (within a run) */
} endpoint;

typedef struct openai_impl {
    endpoint *eps;
    int neps;
    char *model;
    char *auth_header;         /* "Authorization: Bearer ...", or NULL when the variable is unset */
    lm_openai_opts o;          /* numbers only; the strings above are the owned copies */
} openai_impl;

typedef struct slot {
    CURL *easy;
    int ep;                    /* the endpoint this slot belongs to */
    int req;                   /* request index, -1 when free */
    int attempt;               /* 1-based number of this try */
    char *body;                /* the request JSON (curl reads it in place) */
    char *buf;                 /* the reply body so far */
    size_t len, cap;
    int64_t max_bytes;
    int oversize;              /* the write callback refused more bytes */
    double t0;
    char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct retry {
    int req;
    int attempts;              /* tries made so far */
    int avoid;                 /* the endpoint that sent a bad body, or -1 */
    char *error;               /* why the last try failed (for the final reply) */
} retry;

void lm_openai_opts_default(lm_openai_opts *o) {
    memset(o, 0, sizeof *o);
    o->api_key_env = "OPENAI_API_KEY";
    o->parallel = 8;
    o->timeout_s = 600;
    o->connect_timeout_s = 10;
    o->max_retries = 5;
    o->backoff_s = 1;
    o->max_reply_bytes = (int64_t)64 << 20;
}

/* ---- request body ---------------------------------------------------------- */

/* The shortest %g form of x that reads back as x, as Python's repr writes it. */
static void format_double(char *buf, size_t cap, double x) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* The chat-completions JSON for one request, malloc'd; NULL when out of
 * memory. Invalid UTF-8 in the prompt becomes U+FFFD: a strict server would
 * refuse the whole body otherwise. */
static char *request_body(const openai_impl *I, const lm_chat_request *r) {
    lm_text clean = {0};
    if (lm_utf8_sanitize(r->prompt, strlen(r->prompt), &clean)) return NULL;
    const char *prompt = clean.data ? clean.data : "";
    size_t cap = 6 * (clean.len + strlen(I->model)) + 512, pos = 0;
    char *body = malloc(cap);
    if (!body) {
        lm_text_free(&clean);
        return NULL;
    }
    char num[64];
#define ADD(...) pos += (size_t)snprintf(body + pos, cap - pos, __VA_ARGS__)
    ADD("{\"model\":");
    json_write_string(body, cap, &pos, I->model, strlen(I->model));
    ADD(",\"messages\":[{\"role\":\"user\",\"content\":");
    json_write_string(body, cap, &pos, prompt, clean.len);
    ADD("}]");
    if (r->max_tokens > 0) ADD(",\"max_tokens\":%lld", (long long)r->max_tokens);
    format_double(num, sizeof num, isfinite(r->temperature) && r->temperature > 0 ? r->temperature : 0);
    ADD(",\"temperature\":%s", num);
    if (r->top_p > 0 && r->top_p <= 1) {
        format_double(num, sizeof num, r->top_p);
        ADD(",\"top_p\":%s", num);
    }
    /* servers take a signed 64-bit seed (vLLM refuses larger ones) */
    ADD(",\"seed\":%llu,\"stream\":false}", (unsigned long long)(r->seed & (uint64_t)INT64_MAX));
#undef ADD
    lm_text_free(&clean);
    return body;
}

/* ---- reply parsing ------------------------------------------------------------ */

/* A server's own explanation in an error body: error.message, error (a
 * string), message or detail when the body is JSON, else the body itself;
 * quoted onto one line. */
static const char *server_message(const char *body, size_t len, char *out, size_t cap) {
    if (!len) {
        snprintf(out, cap, "(empty body)");
        return out;
    }
    lm_error perr;
    json_doc *doc = json_parse(body, len, &perr);
    const json_value *root = doc ? json_root(doc) : NULL, *m = NULL;
    if (root) {
        const json_value *e = json_get(root, "error");
        m = json_get(e, "message");
        if (!m || m->type != JSON_STRING) m = e;
        if (!m || m->type != JSON_STRING) m = json_get(root, "message");
        if (!m || m->type != JSON_STRING) m = json_get(root, "detail");
        if (m && m->type != JSON_STRING) m = NULL;
    }
    if (m) json_quote(out, cap, m->str, m->len);
    else json_quote(out, cap, body, len);
    json_free(doc);
    return out;
}

static const char *string_or_empty(const json_value *v) {
    return v && v->type == JSON_STRING ? v->str : "";
}

static int64_t count_or_unknown(const json_value *v) {
    int64_t x;
    return json_as_int(v, &x) && x >= 0 ? x : -1;
}

/* Fills rep from a 2xx body. Returns the parsed document (rep's strings point
 * into it) or NULL with why. */
static json_doc *parse_completion(const char *body, size_t len, lm_chat_reply *rep, char *why, size_t cap) {
    lm_error perr;
    char ex[EXCERPT_MAX];
    json_doc *doc = json_parse(body, len, &perr);
    if (!doc) {
        snprintf(why, cap, "the reply is not JSON (%zu bytes, %.300s), it starts %s", len, perr.msg,
                 json_quote(ex, 64, body, len < 64 ? len : 64));
        return NULL;
    }
    const json_value *root = json_root(doc);
    const json_value *choices = json_get(root, "choices");
    if (root->type != JSON_OBJECT) {
        snprintf(why, cap, "the reply is not a chat completion: a JSON %s, expected an object",
                 json_type_name(root->type));
        goto fail;
    }
    if (!choices && json_get(root, "error")) {
        snprintf(why, cap, "the reply is an error: %s", server_message(body, len, ex, sizeof ex));
        goto fail;
    }
    const json_value *choice = json_at(choices, 0);
    if (!choices || choices->type != JSON_ARRAY || !choice) {
        snprintf(why, cap, "the reply has no choices[0] (not a chat completion)");
        goto fail;
    }
    const json_value *msg = json_get(choice, "message");
    if (!msg || msg->type != JSON_OBJECT) {
        snprintf(why, cap, "the reply has no choices[0].message object");
        goto fail;
    }
    const json_value *content = json_get(msg, "content");
    if (content && content->type != JSON_STRING && content->type != JSON_NULL) {
        snprintf(why, cap, "byte %zu of the reply: choices[0].message.content is a %s, expected a string or null",
                 content->offset, json_type_name(content->type));
        goto fail;
    }
    const char *reasoning = string_or_empty(json_get(msg, "reasoning_content")); /* DeepSeek */
    if (!*reasoning) reasoning = string_or_empty(json_get(msg, "reasoning"));    /* vLLM */
    const json_value *usage = json_get(root, "usage");
    rep->ok = 1;
    rep->content = string_or_empty(content);
    rep->reasoning = reasoning;
    rep->finish_reason = string_or_empty(json_get(choice, "finish_reason"));
    rep->error = "";
    rep->prompt_tokens = count_or_unknown(json_get(usage, "prompt_tokens"));
    rep->completion_tokens = count_or_unknown(json_get(usage, "completion_tokens"));
    return doc;
fail:
    json_free(doc);
    return NULL;
}

/* ---- transfers ----------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *user) {
    slot *s = user;
    size_t n = size * nmemb;
    if ((int64_t)(s->len + n) > s->max_bytes) {
        s->oversize = 1;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + n + 1) cap *= 2;
        if ((int64_t)cap > s->max_bytes + 1) cap = (size_t)s->max_bytes + 1;
        char *b = realloc(s->buf, cap);
        if (!b) return 0;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = 0;
    return n;
}

static long milliseconds(double s) {
    double ms = ceil(s * 1000);
    return ms < 1 ? 1 : ms > 1e9 ? 1000000000L : (long)ms;
}

static int start_transfer(const openai_impl *I, CURLM *multi, struct curl_slist *headers, slot *s,
                          const lm_chat_request *r, int req, int attempt, char *why, size_t cap) {
    s->body = request_body(I, r);
    if (!s->body) {
        snprintf(why, cap, "out of memory for the request body");
        return -1;
    }
    s->req = req;
    s->attempt = attempt;
    s->len = 0;
    s->oversize = 0;
    s->max_bytes = I->o.max_reply_bytes;
    s->errbuf[0] = 0;
    CURL *e = s->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, I->eps[s->ep].url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(s->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "lemma");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, milliseconds(I->o.timeout_s));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, milliseconds(I->o.connect_timeout_s));
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)I->o.max_reply_bytes);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    s->t0 = lm_now_s();
    CURLMcode mc = curl_multi_add_handle(multi, e);
    if (mc != CURLM_OK) {
        snprintf(why, cap, "cannot start the transfer: %s", curl_multi_strerror(mc));
        free(s->body);
        s->body = NULL;
        s->req = -1;
        return -1;
    }
    return 0;
}

static void end_transfer(CURLM *multi, slot *s) {
    curl_multi_remove_handle(multi, s->easy);
    free(s->body);
    s->body = NULL;
    s->req = -1;
}

/* Transfer errors that another try may not repeat: the network, the server
 * going away, a timeout. */
static int retryable_curl(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* Seconds of probation after an endpoint's failures-th failure in a row:
 * backoff_s doubled per failure, capped, times a jitter factor in [0.5, 1.5)
 * drawn from (endpoint, failures), so that endpoints that failed together do
 * not come back together; at least what Retry-After asked (capped too). */
static double probation_s(const openai_impl *I, int ep, int failures, double retry_after) {
    double d = I->o.backoff_s * ldexp(1.0, failures - 1 < 62 ? failures - 1 : 62);
    if (d > BACKOFF_CAP_S) d = BACKOFF_CAP_S;
    d *= 0.5 + lm_rng_uniform((uint64_t)ep, JITTER_STREAM, (uint64_t)failures);
    if (retry_after > 0) {
        double ra = retry_after < BACKOFF_CAP_S ? retry_after : BACKOFF_CAP_S;
        if (d < ra) d = ra;
    }
    return d;
}

/* The endpoint failed a transfer started at t0: a new episode of probation,
 * unless the transfer was sent before the current one began (the requests in
 * flight when a server dies fail together: one failure, not parallel). */
static void endpoint_failed(openai_impl *I, int ep, double t0, double retry_after, const char *why) {
    endpoint *e = &I->eps[ep];
    double now = lm_now_s();
    if (e->failures == 0 || t0 >= e->since) {
        e->failures++;
        e->since = now;
        e->until = now + probation_s(I, ep, e->failures, retry_after);
    } else if (retry_after > 0) {
        double until = now + probation_s(I, ep, e->failures, retry_after);
        if (until > e->until) e->until = until;
    }
    snprintf(e->last_error, sizeof e->last_error, "%s", why);
}

/* How many transfers the endpoint may have now: all its slots when healthy,
 * one (the probe) when its probation is over, none during it. */
static int endpoint_capacity(const endpoint *e, int slots, double now) {
    if (e->failures == 0) return slots;
    return now >= e->until ? 1 : 0;
}

static int all_endpoints_failing(const openai_impl *I) {
    for (int k = 0; k < I->neps; k++)
        if (I->eps[k].failures <= I->o.max_retries) return 0;
    return 1;
}

typedef struct run_state {
    openai_impl *I;
    const lm_chat_request *reqs;
    lm_reply_fn on_reply;
    void *user;
    retry *retries;            /* in the order they failed */
    int nretries, cap_retries;
    int endpoint_failures;     /* in this run: all endpoints failing stops a run only after one of its own */
} run_state;

static void reply_failure(run_state *st, int req, int ep, int attempts, double secs, const char *why) {
    char line[ERROR_MAX + 300];
    int n = 0;
    if (st->I->neps > 1 && ep >= 0) n = snprintf(line, sizeof line, "%.250s: ", st->I->eps[ep].base);
    if (attempts > 1) snprintf(line + n, sizeof line - (size_t)n, "%s (after %d attempts)", why, attempts);
    else snprintf(line + n, sizeof line - (size_t)n, "%s", why);
    lm_chat_reply rep = {.key = st->reqs[req].key, .ok = 0, .content = "", .reasoning = "",
                         .finish_reason = "", .error = line, .prompt_tokens = -1,
                         .completion_tokens = -1, .seconds = secs, .attempts = attempts};
    st->on_reply(st->user, &rep);
}

/* The endpoint ep failed the request: it goes on probation, and the request
 * is asked again elsewhere (never at ep when avoid_ep), or replied with the
 * failure when its tries are spent. Returns 1 when a reply was made. */
static int retry_or_fail(run_state *st, int req, int ep, int attempts, double t0, double secs, double retry_after,
                         int avoid_ep, const char *why) {
    endpoint_failed(st->I, ep, t0, retry_after, why);
    st->endpoint_failures++;
    if (attempts > st->I->o.max_retries) {
        reply_failure(st, req, ep, attempts, secs, why);
        return 1;
    }
    char *copy = strdup(why);
    if (st->nretries == st->cap_retries) {
        int cap = st->cap_retries ? 2 * st->cap_retries : 16;
        retry *r = realloc(st->retries, (size_t)cap * sizeof *r);
        if (!r) copy = (free(copy), NULL);
        else {
            st->retries = r;
            st->cap_retries = cap;
        }
    }
    if (!copy) { /* out of memory: give up on this one rather than lose it */
        reply_failure(st, req, ep, attempts, secs, why);
        return 1;
    }
    st->retries[st->nretries++] = (retry){.req = req, .attempts = attempts, .avoid = avoid_ep ? ep : -1, .error = copy};
    return 0;
}

/* A finished transfer: a reply, or a scheduled retry. Returns 1 when a reply
 * was made. */
static int finish_transfer(run_state *st, CURLM *multi, slot *s, CURLcode result) {
    openai_impl *I = st->I;
    int req = s->req, attempts = s->attempt, ep = s->ep;
    double t0 = s->t0, secs = lm_now_s() - s->t0;
    long status = 0;
    curl_off_t retry_after = -1;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after);
    end_transfer(multi, s);
    I->eps[ep].in_flight--;
    char why[ERROR_MAX], ex[EXCERPT_MAX];
    const char *detail = s->errbuf[0] ? s->errbuf : curl_easy_strerror(result);
    if (s->oversize || result == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, sizeof why, "the reply is over %lld bytes (max_reply_bytes): refused",
                 (long long)I->o.max_reply_bytes);
        reply_failure(st, req, ep, attempts, secs, why);
        return 1;
    }
    if (result != CURLE_OK) {
        if (result == CURLE_OPERATION_TIMEDOUT)
            snprintf(why, sizeof why, "timed out (timeout_s %g, connect_timeout_s %g): %s", I->o.timeout_s,
                     I->o.connect_timeout_s, detail);
        else if (result == CURLE_COULDNT_CONNECT || result == CURLE_COULDNT_RESOLVE_HOST)
            snprintf(why, sizeof why, "cannot connect to %.250s/chat/completions: %s", I->eps[ep].base, detail);
        else
            snprintf(why, sizeof why, "transfer failed: %s", detail);
        if (retryable_curl(result)) return retry_or_fail(st, req, ep, attempts, t0, secs, 0, 0, why);
        reply_failure(st, req, ep, attempts, secs, why);
        return 1;
    }
    if (status == 429 || status >= 500) {
        snprintf(why, sizeof why, "HTTP %ld: %s", status, server_message(s->buf, s->len, ex, sizeof ex));
        return retry_or_fail(st, req, ep, attempts, t0, secs, retry_after > 0 ? (double)retry_after : 0, 0, why);
    }
    if (status < 200 || status > 299) {
        snprintf(why, sizeof why, "HTTP %ld: %s", status, server_message(s->buf, s->len, ex, sizeof ex));
        reply_failure(st, req, ep, attempts, secs, why);
        return 1;
    }
    lm_chat_reply rep = {.key = st->reqs[req].key, .seconds = secs, .attempts = attempts};
    json_doc *doc = parse_completion(s->buf ? s->buf : "", s->len, &rep, why, sizeof why);
    if (!doc) {
        /* another endpoint may answer properly; the only one would send the same */
        if (I->neps > 1) return retry_or_fail(st, req, ep, attempts, t0, secs, 0, 1, why);
        reply_failure(st, req, ep, attempts, secs, why);
        return 1;
    }
    I->eps[ep].failures = 0;
    st->on_reply(st->user, &rep);
    json_free(doc);
    return 1;
}

/* A slot keeps its reply buffer for the next transfer, unless it grew large. */
static void trim_buffer(slot *s) {
    if (s->cap > ((size_t)1 << 20)) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
    }
    s->len = 0;
}

/* "every endpoint is failing: U of N requests not answered (BASE: F failures
 * in a row, last: WHY; ...)", the count first so that a long list cut to
 * the message's size never hides it. */
static int fail_all_down(const openai_impl *I, int unanswered, int n, lm_error *err) {
    char list[sizeof err->msg];
    size_t pos = 0;
    list[0] = 0;
    for (int k = 0; k < I->neps && pos < sizeof list; k++)
        pos += (size_t)snprintf(list + pos, sizeof list - pos, "%s%.120s: %d failures in a row, last: %.160s",
                                k ? "; " : "", I->eps[k].base, I->eps[k].failures, I->eps[k].last_error);
    return lm_fail(err, "every endpoint is failing: %d of %d requests not answered (%s)", unanswered, n, list);
}

static int openai_run(lm_backend *b, const lm_chat_request *reqs, int n, lm_reply_fn on_reply, void *user,
                      volatile int *stop, lm_error *err) {
    openai_impl *I = b->impl;
    if (n < 0) return lm_fail(err, "openai backend: %d requests", n);
    if (n == 0) return 0;
    for (int i = 0; i < n; i++)
        if (!reqs[i].prompt)
            return lm_fail(err, "openai backend: request %d (key %llu) has no prompt", i,
                           (unsigned long long)reqs[i].key);
    /* each endpoint's slots, endpoint after endpoint; never more than n each */
    int nslots = 0;
    int *first_slot = calloc((size_t)I->neps + 1, sizeof *first_slot);
    for (int k = 0; first_slot && k < I->neps; k++) {
        first_slot[k] = nslots;
        nslots += I->eps[k].parallel < n ? I->eps[k].parallel : n;
        I->eps[k].in_flight = 0;
    }
    if (first_slot) first_slot[I->neps] = nslots;
    int rc = -1, replied = 0, next_fresh = 0;
    run_state st = {.I = I, .reqs = reqs, .on_reply = on_reply, .user = user};
    struct curl_slist *headers = NULL, *h;
    slot *slots = first_slot ? calloc((size_t)nslots, sizeof *slots) : NULL;
    CURLM *multi = curl_multi_init();
    if (!slots || !multi) {
        lm_fail(err, "openai backend: out of memory");
        goto done;
    }
    /* "Expect:" off: curl would wait a second for "100 Continue" before a long body */
    const char *hdr[] = {"Content-Type: application/json", "Accept: application/json", "Expect:", I->auth_header};
    for (size_t k = 0; k < sizeof hdr / sizeof *hdr; k++) {
        if (!hdr[k]) continue;
        if (!(h = curl_slist_append(headers, hdr[k]))) {
            lm_fail(err, "openai backend: out of memory");
            goto done;
        }
        headers = h;
    }
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)nslots);
    for (int k = 0; k < I->neps; k++)
        for (int j = first_slot[k]; j < first_slot[k + 1]; j++) {
            slots[j].req = -1;
            slots[j].ep = k;
            if (!(slots[j].easy = curl_easy_init())) {
                lm_fail(err, "openai backend: cannot create a curl handle");
                goto done;
            }
        }
    while (replied < n) {
        if (stop && *stop) {
            lm_fail(err, "interrupted");
            goto done;
        }
        /* Hand out work: retries first (in the order they failed), then fresh
         * requests, each to the available endpoint with the most free slots. */
        double now = lm_now_s();
        while (st.nretries > 0 || next_fresh < n) {
            int best = -1, best_free = 0, ri = -1;
            for (int k = 0; k < I->neps; k++) {
                endpoint *e = &I->eps[k];
                int free_slots = endpoint_capacity(e, first_slot[k + 1] - first_slot[k], now) - e->in_flight;
                if (free_slots <= best_free) continue;
                int r = -1;
                for (int j = 0; j < st.nretries && r < 0; j++)
                    if (st.retries[j].avoid != k) r = j;
                if (r < 0 && next_fresh >= n) continue; /* only retries that must go elsewhere */
                best = k;
                best_free = free_slots;
                ri = r;
            }
            if (best < 0) break;
            int req, attempts = 0;
            if (ri >= 0) {
                req = st.retries[ri].req;
                attempts = st.retries[ri].attempts;
                free(st.retries[ri].error);
                memmove(&st.retries[ri], &st.retries[ri + 1], (size_t)(st.nretries - ri - 1) * sizeof *st.retries);
                st.nretries--;
            } else {
                req = next_fresh++;
            }
            slot *s = NULL;
            for (int j = first_slot[best]; j < first_slot[best + 1] && !s; j++)
                if (slots[j].req < 0) s = &slots[j];
            char why[ERROR_MAX];
            if (start_transfer(I, multi, headers, s, &reqs[req], req, attempts + 1, why, sizeof why)) {
                reply_failure(&st, req, best, attempts + 1, 0, why);
                replied++;
                if (stop && *stop) break;
            } else {
                I->eps[best].in_flight++;
            }
        }
        if (stop && *stop) continue; /* a failure reply above raised it: no more replies */
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode result = msg->data.result;
            replied += finish_transfer(&st, multi, s, result);
            trim_buffer(s);
            if (stop && *stop) break; /* checked again at the top */
        }
        if (replied >= n || (stop && *stop)) continue;
        if (st.endpoint_failures && all_endpoints_failing(I)) {
            fail_all_down(I, n - replied, n, err);
            goto done;
        }
        /* wait for the network, the end of a probation, or POLL_MS_MAX to look at the stop flag */
        long wait_ms = POLL_MS_MAX;
        if (st.nretries > 0 || next_fresh < n)
            for (int k = 0; k < I->neps; k++) {
                const endpoint *e = &I->eps[k];
                if (e->failures == 0 || e->in_flight > 0) continue;
                double w = (e->until - lm_now_s()) * 1000;
                long wm = w <= 0 ? 0 : (long)ceil(w);
                if (wm < wait_ms) wait_ms = wm;
            }
        if (wait_ms > 0 || running) curl_multi_poll(multi, NULL, 0, (int)wait_ms, NULL);
    }
    rc = 0;
done:
    for (int k = 0; slots && k < nslots; k++) {
        if (slots[k].req >= 0) end_transfer(multi, &slots[k]);
        if (slots[k].easy) curl_easy_cleanup(slots[k].easy);
        free(slots[k].buf);
    }
    for (int j = 0; j < st.nretries; j++) free(st.retries[j].error);
    free(st.retries);
    free(slots);
    free(first_slot);
    if (multi) curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    return rc;
}

static void impl_free(openai_impl *I) {
    if (!I) return;
    for (int k = 0; I->eps && k < I->neps; k++) {
        free(I->eps[k].base);
        free(I->eps[k].url);
    }
    free(I->eps);
    free(I->model);
    if (I->auth_header) {
        memset(I->auth_header, 0, strlen(I->auth_header)); /* the key does not outlive the backend */
        free(I->auth_header);
    }
    free(I);
}

static void openai_free(lm_backend *b) {
    if (!b) return;
    impl_free(b->impl);
    free(b);
}

/* api_base checked: http(s)://, no white space. */
static int check_base(const char *base, lm_error *err) {
    char q[128];
    if (strncmp(base, "http://", 7) && strncmp(base, "https://", 8))
        return lm_fail(err, "openai backend: api_base %s: expected a URL starting with http:// or https://",
                       json_quote(q, sizeof q, base, strlen(base)));
    if (strpbrk(base, " \t\r\n"))
        return lm_fail(err, "openai backend: api_base %s: a URL has no spaces or line breaks",
                       json_quote(q, sizeof q, base, strlen(base)));
    return 0;
}

/* The endpoint's URL and its base for messages (trailing slashes dropped,
 * and a password in the URL kept out of messages, which end up in the pool);
 * -1 when out of memory. */
static int endpoint_init(endpoint *e, const char *base, int parallel) {
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    e->parallel = parallel;
    e->url = malloc(blen + sizeof "/chat/completions");
    e->base = malloc(blen + 1);
    if (!e->base || !e->url) return -1;
    memcpy(e->url, base, blen);
    memcpy(e->url + blen, "/chat/completions", sizeof "/chat/completions");
    const char *host = strstr(base, "://") + 3; /* checked: http:// or https:// */
    const char *at = memchr(host, '@', blen - (size_t)(host - base)), *slash = strchr(host, '/');
    if (at && (!slash || at < slash)) {
        size_t scheme = (size_t)(host - base);
        memcpy(e->base, base, scheme);
        memcpy(e->base + scheme, at + 1, blen - (size_t)(at + 1 - base));
        e->base[scheme + blen - (size_t)(at + 1 - base)] = 0;
    } else {
        memcpy(e->base, base, blen);
        e->base[blen] = 0;
    }
    return 0;
}

lm_backend *lm_backend_openai_create(const lm_openai_opts *o, lm_error *err) {
    if (!o) {
        lm_fail(err, "openai backend: no options");
        return NULL;
    }
    int neps = o->n_endpoints > 0 ? o->n_endpoints : 1;
    if (o->n_endpoints < 0 || o->n_endpoints > LM_OPENAI_MAX_ENDPOINTS || (o->n_endpoints > 0 && !o->endpoints)) {
        lm_fail(err, "openai backend: %d endpoints: expected 1..%d", o->n_endpoints, LM_OPENAI_MAX_ENDPOINTS);
        return NULL;
    }
    if (o->parallel < 1 || o->parallel > 4096) {
        lm_fail(err, "openai backend: parallel %d: expected 1..4096", o->parallel);
        return NULL;
    }
    for (int k = 0; k < neps; k++) {
        const char *base = o->n_endpoints ? o->endpoints[k].api_base : o->api_base;
        if (check_base(base ? base : "", err)) return NULL;
        if (o->n_endpoints && o->endpoints[k].parallel > 4096) {
            lm_fail(err, "openai backend: endpoint %s: parallel %d: expected 1..4096", base, o->endpoints[k].parallel);
            return NULL;
        }
    }
    if (!o->model || !*o->model) {
        lm_fail(err, "openai backend: no model name (--api-model)");
        return NULL;
    }
    if (!(o->timeout_s > 0) || !(o->connect_timeout_s > 0)) {
        lm_fail(err, "openai backend: timeout_s %g, connect_timeout_s %g: expected positive seconds", o->timeout_s,
                o->connect_timeout_s);
        return NULL;
    }
    if (o->max_retries < 0 || o->max_retries > 1000 || !(o->backoff_s >= 0) || o->backoff_s > 3600) {
        lm_fail(err, "openai backend: max_retries %d, backoff_s %g: expected 0..1000 and 0..3600 s", o->max_retries,
                o->backoff_s);
        return NULL;
    }
    if (o->max_reply_bytes < 1024) {
        lm_fail(err, "openai backend: max_reply_bytes %lld: expected at least 1024", (long long)o->max_reply_bytes);
        return NULL;
    }
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        lm_fail(err, "openai backend: libcurl did not initialise: %s", curl_easy_strerror(curl_init_result));
        return NULL;
    }
    const char *env = o->api_key_env && *o->api_key_env ? o->api_key_env : "OPENAI_API_KEY";
    const char *key = getenv(env);
    if (key && strpbrk(key, "\r\n")) {
        lm_fail(err, "openai backend: the environment variable %s holds a line break: not a valid API key", env);
        return NULL;
    }
    lm_backend *b = calloc(1, sizeof *b);
    openai_impl *I = calloc(1, sizeof *I);
    int oom = !b || !I;
    if (!oom) {
        I->o = *o;
        I->o.api_base = I->o.model = I->o.api_key_env = NULL;
        I->o.endpoints = NULL;
        I->model = strdup(o->model);
        I->eps = calloc((size_t)neps, sizeof *I->eps);
        oom = !I->model || !I->eps;
        if (I->eps) I->neps = neps;
        for (int k = 0; !oom && k < neps; k++) {
            int par = o->n_endpoints && o->endpoints[k].parallel > 0 ? o->endpoints[k].parallel : o->parallel;
            oom = endpoint_init(&I->eps[k], o->n_endpoints ? o->endpoints[k].api_base : o->api_base, par) != 0;
        }
        if (!oom && key && *key && (I->auth_header = malloc(strlen(key) + 32)))
            sprintf(I->auth_header, "Authorization: Bearer %s", key);
        oom = oom || (key && *key && !I->auth_header);
    }
    if (oom) {
        free(b);
        impl_free(I);
        lm_fail(err, "openai backend: out of memory");
        return NULL;
    }
    b->name = "openai";
    b->run = openai_run;
    b->free = openai_free;
    b->impl = I;
    return b;
}

/* ---- endpoints file ------------------------------------------------------------ */

void lm_openai_endpoints_free(lm_openai_endpoint *e, int n) {
    for (int k = 0; e && k < n; k++) free((char *)e[k].api_base);
    free(e);
}

int lm_openai_endpoints_load(const char *path, lm_openai_endpoint **out, int *n, lm_error *err) {
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    *n = 0;
    if (lm_read_file(path, 1 << 20, &text, &len, err)) return -1;
    lm_openai_endpoint *eps = NULL;
    int neps = 0, line_no = 0, rc = -1;
    char q[128];
    for (char *line = text; line && line < text + len;) {
        char *next = memchr(line, '\n', (size_t)(text + len - line));
        if (next) *next++ = 0;
        line_no++;
        if (strlen(line) != (size_t)((next ? next - 1 : text + len) - line)) {
            lm_fail(err, "%s:%d: a NUL byte: expected a URL", path, line_no);
            goto done;
        }
        char *p = line, *url, *word;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (!*p || *p == '#') {
            line = next;
            continue;
        }
        url = strtok_r(p, " \t\r", &word);
        if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
            lm_fail(err, "%s:%d: %s: expected a URL starting with http:// or https://", path, line_no,
                    json_quote(q, sizeof q, url, strlen(url)));
            goto done;
        }
        int parallel = 0;
        for (char *w; (w = strtok_r(NULL, " \t\r", &word));) {
            char *end;
            long v = strncmp(w, "parallel=", 9) ? 0 : strtol(w + 9, &end, 10);
            if (!v || *end || v < 1 || v > 4096) {
                lm_fail(err, "%s:%d: %s: expected parallel=K with K in 1..4096", path, line_no,
                        json_quote(q, sizeof q, w, strlen(w)));
                goto done;
            }
            parallel = (int)v;
        }
        if (neps == LM_OPENAI_MAX_ENDPOINTS) {
            lm_fail(err, "%s:%d: more than %d endpoints", path, line_no, LM_OPENAI_MAX_ENDPOINTS);
            goto done;
        }
        lm_openai_endpoint *grown = realloc(eps, (size_t)(neps + 1) * sizeof *eps);
        char *copy = strdup(url);
        if (!grown || !copy) {
            free(copy);
            if (grown) eps = grown;
            lm_fail(err, "%s: out of memory", path);
            goto done;
        }
        eps = grown;
        eps[neps++] = (lm_openai_endpoint){.api_base = copy, .parallel = parallel};
        line = next;
    }
    if (!neps) {
        lm_fail(err, "%s: no endpoint (expected one URL a line)", path);
        goto done;
    }
    *out = eps;
    *n = neps;
    eps = NULL;
    rc = 0;
done:
    lm_openai_endpoints_free(eps, neps);
    free(text);
    return rc;
}
