/* bpe.c — byte-pair merging of one pre-token.
 *
 * A piece starts as one symbol per byte (the byte-level token of that byte)
 * and repeatedly merges the adjacent pair with the lowest merge rank, the
 * leftmost one on ties, until no pair has a merge. That is what HF's
 * Word::merge_all computes with its priority queue (a stale queue entry can
 * never pass its check, since a symbol only grows to the right).
 *
 * Three implementations, tested against each other:
 *   - lm_bpe_encode_naive: the plain reference, rescans all pairs per merge;
 *   - short pieces (the common case): pair ranks in an array, O(n^2) but with
 *     n small and no allocation;
 *   - lm_bpe_encode_heap: symbols in a linked list, candidate pairs in a
 *     binary min-heap keyed (rank, position), O(n log n): a 5,000-emoji run
 *     costs what its length says, not its square;
 *   - lm_bpe_encode_bucket (pieces of 512 bytes or more): the same linked list, the
 *     candidates in one bucket per merge rank; a bucket is drained in
 *     position order, and when a merge queues a pair of lower rank than the
 *     bucket's, the rest of the bucket waits — the (rank, position) order of
 *     the heap, without its log n.
 * Before any of them, a piece that is itself a vocab token is looked up; the
 * answer "BPE of these bytes is exactly this token" is computed once per
 * token and remembered in tok->whole (relaxed atomics: every thread computes
 * the same value). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

enum { SHORT_PIECE = 48 };

static int ids_reserve(lm_ids *out, size_t extra) {
    if (out->n + extra <= out->cap) return 0;
    size_t cap = out->cap ? out->cap : 64;
    while (cap < out->n + extra) cap *= 2;
    int32_t *nv = realloc(out->ids, cap * sizeof *nv);
    if (!nv) return -1;
    out->ids = nv;
    out->cap = cap;
    return 0;
}

/* Initial symbols of s into sym; returns their count (bytes without a token
 * are dropped, as HF does when there is no unk token). */
static size_t initial_symbols(const lm_tokenizer *tok, const unsigned char *s, size_t n, int32_t *sym) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[s[i]];
        if (id >= 0) sym[m++] = id;
    }
    return m;
}

int lm_bpe_encode_naive(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out) {
    int32_t *sym = malloc((n ? n : 1) * sizeof *sym);
    if (!sym) return -1;
    size_t m = initial_symbols(tok, s, n, sym);
    for (;;) {
        uint32_t best = UINT32_MAX, r;
        size_t bi = 0;
        int32_t bid = -1, nid;
        for (size_t i = 0; i + 1 < m; i++)
            if (merge_find(&tok->merges, sym[i], sym[i + 1], &r, &nid) && r < best) {
                best = r;
                bi = i;
                bid = nid;
            }
        if (bid < 0) break;
        sym[bi] = bid;
        memmove(sym + bi + 1, sym + bi + 2, (m - bi - 2) * sizeof *sym);
        m--;
    }
    int rc = m ? ids_reserve(out, m) : 0;
    if (!rc && m) {
        memcpy(out->ids + out->n, sym, m * sizeof *sym);
        out->n += m;
    }
    free(sym);
    return rc;
}

/* Short pieces: sym[i] and the rank/new id of pair (i, i+1) in arrays. */
static int bpe_short(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out) {
    int32_t sym[SHORT_PIECE], pid[SHORT_PIECE];
    uint32_t prank[SHORT_PIECE];
    size_t m = initial_symbols(tok, s, n, sym);
    for (size_t i = 0; i + 1 < m; i++)
        if (!merge_find(&tok->merges, sym[i], sym[i + 1], &prank[i], &pid[i])) prank[i] = UINT32_MAX;
    while (m > 1) {
        uint32_t best = UINT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (prank[i] < best) {
                best = prank[i];
                bi = i;
            }
        if (best == UINT32_MAX) break;
        sym[bi] = pid[bi];
        /* remove symbol bi+1 and pair bi+1 */
        for (size_t k = bi + 1; k + 1 < m; k++) {
            sym[k] = sym[k + 1];
            prank[k] = prank[k + 1];
            pid[k] = pid[k + 1];
        }
        m--;
        if (bi > 0 && !merge_find(&tok->merges, sym[bi - 1], sym[bi], &prank[bi - 1], &pid[bi - 1]))
            prank[bi - 1] = UINT32_MAX;
        if (bi + 1 < m && !merge_find(&tok->merges, sym[bi], sym[bi + 1], &prank[bi], &pid[bi]))
            prank[bi] = UINT32_MAX;
    }
    if (!m) return 0; /* out->ids may still be NULL: no pointer arithmetic on it */
    if (ids_reserve(out, m)) return -1;
    memcpy(out->ids + out->n, sym, m * sizeof *sym);
    out->n += m;
    return 0;
}

typedef struct hsym {
    int32_t id;         /* -1 once merged into its left neighbour */
    int32_t prev, next; /* -1 at the ends */
    uint32_t rank;      /* merge rank of the pair (this, next), UINT32_MAX if none */
    int32_t nid;        /* ... and the id it merges into */
} hsym;

static void heap_push(uint64_t *h, size_t *hn, uint64_t v) {
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *hn) {
    uint64_t top = h[0], v = h[--(*hn)];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = v;
    return top;
}

/* Looks up the pair (p, next of p), records it in sym[p] and queues it. */
static inline void queue_pair(const lm_tokenizer *tok, hsym *sym, int32_t p, uint64_t *h, size_t *hn) {
    int32_t q = sym[p].next;
    if (q >= 0 && merge_find(&tok->merges, sym[p].id, sym[q].id, &sym[p].rank, &sym[p].nid))
        heap_push(h, hn, ((uint64_t)sym[p].rank << 32) | (uint32_t)p);
    else
        sym[p].rank = UINT32_MAX;
}

/* Symbol and heap arrays of the scratch, grown to n. */
static int ensure_sym(bpe_scratch *sc, size_t n) {
    if (sc->sym_cap >= n) return 0;
    free(sc->sym);
    sc->sym = malloc(n * sizeof(hsym));
    sc->sym_cap = sc->sym ? n : 0;
    return sc->sym ? 0 : -1;
}

static int ensure_heap(bpe_scratch *sc, size_t n) {
    if (sc->heap_cap >= n) return 0;
    free(sc->heap);
    /* every merge queues at most 2 pairs: n - 1 initial + 2 per merge */
    sc->heap = malloc(3 * n * sizeof(uint64_t));
    sc->heap_cap = sc->heap ? n : 0;
    return sc->heap ? 0 : -1;
}

int lm_bpe_encode_heap(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out,
                       bpe_scratch *sc) {
    if (n > INT32_MAX / 2) return -1;
    if (ensure_sym(sc, n) || ensure_heap(sc, n)) return -1;
    hsym *sym = sc->sym;
    uint64_t *h = sc->heap;
    size_t hn = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[s[i]];
        if (id < 0) continue;
        sym[m] = (hsym){id, (int32_t)m - 1, (int32_t)m + 1, UINT32_MAX, -1};
        m++;
    }
    if (m == 0) return 0;
    sym[m - 1].next = -1;
    for (size_t i = 0; i + 1 < m; i++) queue_pair(tok, sym, (int32_t)i, h, &hn);
    while (hn) {
        uint64_t top = heap_pop(h, &hn);
        int32_t p = (int32_t)(uint32_t)top;
        /* stale: p was merged away, or its pair changed since it was queued
         * (a rank names one pair, so an equal rank is the same pair) */
        if (sym[p].id < 0 || sym[p].rank != (uint32_t)(top >> 32)) continue;
        int32_t q = sym[p].next;
        sym[p].id = sym[p].nid;
        sym[q].id = -1;
        sym[p].next = sym[q].next;
        if (sym[q].next >= 0) sym[sym[q].next].prev = p;
        if (sym[p].prev >= 0) queue_pair(tok, sym, sym[p].prev, h, &hn);
        queue_pair(tok, sym, p, h, &hn);
    }
    size_t cnt = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next) cnt++;
    if (ids_reserve(out, cnt)) return -1;
    for (int32_t i = 0; i >= 0; i = sym[i].next) out->ids[out->n++] = sym[i].id;
    return 0;
}

/* ---- bucket queue ---------------------------------------------------------- */

typedef struct bq {
    int32_t *heads, *node;
    uint32_t cur;   /* no non-empty bucket below this rank */
    size_t nn, live;
} bq;

static inline void bq_push(bq *q, uint32_t rank, int32_t pos) {
    q->node[2 * q->nn] = pos;
    q->node[2 * q->nn + 1] = q->heads[rank];
    q->heads[rank] = (int32_t)q->nn++;
    q->live++;
    if (rank < q->cur) q->cur = rank;
}

static inline void bq_queue_pair(const lm_tokenizer *tok, hsym *sym, int32_t p, bq *q) {
    int32_t nx = sym[p].next;
    if (nx >= 0 && merge_find(&tok->merges, sym[p].id, sym[nx].id, &sym[p].rank, &sym[p].nid))
        bq_push(q, sym[p].rank, p);
    else
        sym[p].rank = UINT32_MAX;
}

/* Sorts a[0..n) ascending (values < 2^31); tmp has room for n. */
static void sort_positions(int32_t *a, size_t n, int32_t *tmp) {
    int desc = 1, asc = 1;
    for (size_t i = 1; i < n && (desc || asc); i++) {
        if (a[i] > a[i - 1]) desc = 0;
        if (a[i] < a[i - 1]) asc = 0;
    }
    if (asc) return;
    if (desc) {
        for (size_t i = 0, j = n - 1; i < j; i++, j--) {
            int32_t t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return;
    }
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            int32_t x = a[i];
            size_t j = i;
            while (j > 0 && a[j - 1] > x) { a[j] = a[j - 1]; j--; }
            a[j] = x;
        }
        return;
    }
    /* LSD radix sort, three passes of 11 bits (16 KiB of counters on the stack) */
    uint32_t maxv = 0;
    for (size_t i = 0; i < n; i++) if ((uint32_t)a[i] > maxv) maxv = (uint32_t)a[i];
    for (int shift = 0; shift < 33 && (maxv >> shift); shift += 11) {
        size_t cnt[2049] = {0};
        for (size_t i = 0; i < n; i++) cnt[(((uint32_t)a[i] >> shift) & 0x7ff) + 1]++;
        for (size_t k = 0; k < 2048; k++) cnt[k + 1] += cnt[k];
        for (size_t i = 0; i < n; i++) tmp[cnt[((uint32_t)a[i] >> shift) & 0x7ff]++] = a[i];
        memcpy(a, tmp, n * sizeof *a);
    }
}

int lm_bpe_encode_bucket(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out,
                         bpe_scratch *sc) {
    if (n > INT32_MAX / 4) return -1;
    size_t nr = tok->nmerges ? tok->nmerges : 1;
    if (sc->nheads < nr) {
        free(sc->heads);
        sc->heads = malloc(nr * sizeof *sc->heads);
        if (!sc->heads) { sc->nheads = 0; return -1; }
        memset(sc->heads, 0xff, nr * sizeof *sc->heads);
        sc->nheads = nr;
    }
    if (sc->node_cap < n) {
        free(sc->node);
        free(sc->tmp);
        sc->node = malloc(6 * n * sizeof *sc->node); /* 3n entries of 2 */
        sc->tmp = malloc(6 * n * sizeof *sc->tmp);   /* positions + radix buffer */
        if (!sc->node || !sc->tmp) {
            free(sc->node);
            free(sc->tmp);
            sc->node = sc->tmp = NULL;
            sc->node_cap = 0;
            return -1;
        }
        sc->node_cap = n;
    }
    if (ensure_sym(sc, n)) return -1;
    hsym *sym = sc->sym;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[s[i]];
        if (id < 0) continue;
        sym[m] = (hsym){id, (int32_t)m - 1, (int32_t)m + 1, UINT32_MAX, -1};
        m++;
    }
    if (m == 0) return 0;
    sym[m - 1].next = -1;
    bq q = {sc->heads, sc->node, UINT32_MAX, 0, 0};
    for (size_t i = 0; i + 1 < m; i++) bq_queue_pair(tok, sym, (int32_t)i, &q);
    int32_t *pos = sc->tmp, *rtmp = sc->tmp + 3 * n;
    while (q.live) {
        while (q.heads[q.cur] < 0) q.cur++;
        uint32_t r = q.cur;
        size_t c = 0;
        for (int32_t e = q.heads[r]; e >= 0; e = q.node[2 * e + 1]) pos[c++] = q.node[2 * e];
        q.heads[r] = -1;
        q.live -= c;
        sort_positions(pos, c, rtmp);
        for (size_t k = 0; k < c; k++) {
            int32_t p = pos[k];
            if (sym[p].id < 0 || sym[p].rank != r) continue; /* stale */
            int32_t nx = sym[p].next;
            sym[p].id = sym[p].nid;
            sym[nx].id = -1;
            sym[p].next = sym[nx].next;
            if (sym[nx].next >= 0) sym[sym[nx].next].prev = p;
            if (sym[p].prev >= 0) bq_queue_pair(tok, sym, sym[p].prev, &q);
            bq_queue_pair(tok, sym, p, &q);
            if (q.cur < r) { /* a lower rank came up: it goes first, the rest waits */
                for (size_t j = c; j-- > k + 1;) bq_push(&q, r, pos[j]);
                break;
            }
        }
    }
    size_t cnt = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next) cnt++;
    if (ids_reserve(out, cnt)) return -1;
    for (int32_t i = 0; i >= 0; i = sym[i].next) out->ids[out->n++] = sym[i].id;
    return 0;
}

enum { BUCKET_PIECE = 512 };

static int bpe_any(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out, bpe_scratch *sc) {
    if (n <= SHORT_PIECE) return bpe_short(tok, s, n, out);
    if (n < BUCKET_PIECE) return lm_bpe_encode_heap(tok, s, n, out, sc);
    return lm_bpe_encode_bucket(tok, s, n, out, sc);
}

int lm_bpe_encode_piece(const lm_tokenizer *tok, const unsigned char *s, size_t n, lm_ids *out,
                        bpe_scratch *sc) {
    if (n == 1 && tok->byte_id[s[0]] >= 0) {
        if (ids_reserve(out, 1)) return -1;
        out->ids[out->n++] = tok->byte_id[s[0]];
        return 0;
    }
    int32_t id = lm_tok_lookup_bytes(tok, s, n);
    if (id >= 0) {
        uint8_t w = tok->ignore_merges ? 1 : __atomic_load_n(&tok->whole[id], __ATOMIC_RELAXED);
        if (w == 1) {
            if (ids_reserve(out, 1)) return -1;
            out->ids[out->n++] = id;
            return 0;
        }
        if (w == 0) {
            size_t n0 = out->n;
            if (bpe_any(tok, s, n, out, sc)) return -1;
            w = (out->n == n0 + 1 && out->ids[n0] == id) ? 1 : 2;
            __atomic_store_n(&tok->whole[id], w, __ATOMIC_RELAXED);
            return 0;
        }
    }
    return bpe_any(tok, s, n, out, sc);
}

void lm_bpe_scratch_free(bpe_scratch *sc) {
    free(sc->sym);
    free(sc->heap);
    free(sc->heads);
    free(sc->node);
    free(sc->tmp);
    memset(sc, 0, sizeof *sc);
}
