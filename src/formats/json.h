/* json.h — a small strict JSON (RFC 8259) parser into an arena-allocated tree.
 *
 * Used for config.json, safetensors headers, tokenizer.json and JSONL inputs.
 * Every value records its byte offset in the source so errors can point at it.
 * Strings are decoded (escapes, surrogate pairs) into NUL-terminated UTF-8;
 * invalid UTF-8 in the source, lone surrogates, trailing commas, comments,
 * leading zeros, NaN/Infinity and nesting deeper than JSON_MAX_DEPTH are
 * errors, and so is a key that appears twice in one object ("byte N:
 * duplicate key ...": Python and Hugging Face would take the last value, a
 * first-match reader the first).
 *
 *   json_doc *doc = json_parse(text, len, &err);
 *   const json_value *v = json_get(json_root(doc), "hidden_size");
 *   int64_t d; if (!json_as_int(v, &d)) ...
 *   json_free(doc);
 */
#ifndef LEMMA_FORMATS_JSON_H
#define LEMMA_FORMATS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum { JSON_MAX_DEPTH = 512 };

typedef enum json_type {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_value json_value;
struct json_value {
    json_type type;
    int is_int;             /* NUMBER written without fraction/exponent and fits int64 */
    size_t offset;          /* byte offset of the value in the source */
    size_t len;             /* STRING: bytes (excluding NUL); ARRAY/OBJECT: members */
    const char *key;        /* set when this value is an object member */
    size_t key_len;
    double num;             /* NUMBER */
    int64_t inum;           /* NUMBER with is_int */
    const char *str;        /* STRING: decoded UTF-8, NUL-terminated (may contain NUL) */
    json_value *child;      /* ARRAY/OBJECT: first member */
    json_value *next;       /* next sibling */
};

typedef struct json_doc json_doc;

/* Parses len bytes (need not be NUL-terminated). On error returns NULL and
 * err says "byte N: expected ..." */
json_doc *json_parse(const char *text, size_t len, lm_error *err);
const json_value *json_root(const json_doc *doc);

/* Streams the members of a top-level object: each member's value is parsed
 * into a tree, handed to fn (member->key names it) and freed before the next
 * one, so memory is bounded by the largest member plus 32 bytes per member
 * (the duplicate-key index), not by the document: the reader of a
 * safetensors header with millions of entries uses this. Errors as
 * json_parse ("byte N: ..."); a top level that is not an object is
 * "byte N: expected an object, found an array". fn returns 0 to go on, or
 * non-zero to stop: json_parse_each_member then returns -1 with fn's error. */
typedef int (*json_member_fn)(void *ctx, const json_value *member);
int json_parse_each_member(const char *text, size_t len, json_member_fn fn, void *ctx, lm_error *err);
void json_free(json_doc *doc);

/* Object member by key (first match), or NULL (also when obj is not an object). */
const json_value *json_get(const json_value *obj, const char *key);
/* Array element i, or NULL. O(i). */
const json_value *json_at(const json_value *arr, size_t i);

/* Typed reads: return 1 when v has the type (and value range), else 0. */
int json_as_int(const json_value *v, int64_t *out);
int json_as_double(const json_value *v, double *out);
int json_as_bool(const json_value *v, int *out);
const char *json_type_name(json_type t);

/* ---- writing ----
 * The escapes of a JSON string, written once: json_write_string (into a
 * fixed buffer) and the lm_text writer in formats/jsonw.h both use
 * json_escape_byte. */

/* The escape of byte c inside a JSON string literal (\", \\, \n, \r, \t,
 * \u00XX for the other control bytes), in buf or a constant; NULL when c
 * stands for itself (every other byte, 0x80 and above included). */
const char *json_escape_byte(unsigned char c, char buf[8]);

/* Appends s as a JSON string literal (with quotes and escapes) to buf of size
 * cap at *pos; returns 0, or -1 when it does not fit. Bytes of 0x80 and above
 * are copied as they are (formats/jsonw.h's jw_strn replaces invalid UTF-8). */
int json_write_string(char *buf, size_t cap, size_t *pos, const char *s, size_t len);

/* s as a JSON string literal for an error message: quotes, escapes (so the
 * message stays one line whatever s holds), cut with "..." to fit cap bytes
 * (cap >= 8). Returns buf. */
const char *json_quote(char *buf, size_t cap, const char *s, size_t len);

#endif
