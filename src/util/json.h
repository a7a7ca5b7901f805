/* JSON (RFC 8259) for the management plane: a DOM parser with hard limits for
 * untrusted input, lookup helpers, a streaming framer that splits a byte
 * stream into messages, and a writer into a growable buffer.
 *
 * Input rules (as QEMU's QMP parser): UTF-8 only, strings may not contain
 * NUL (raw or \u0000) or raw control characters, lone surrogates are
 * rejected, duplicate object keys are rejected, nesting is limited to
 * JSON_MAX_DEPTH, nothing but whitespace may follow the value. The caller
 * bounds the input size. Numbers without fraction/exponent that fit int64
 * become JSON_INT, every other number JSON_DOUBLE. */
#ifndef VSCSI_UTIL_JSON_H
#define VSCSI_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_INT,
    JSON_DOUBLE,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json_value;

struct json_member {
    char *key;                  /* NUL-terminated, valid UTF-8 */
    struct json_value *value;
};

struct json_value {
    enum json_type type;
    union {
        bool b;
        int64_t i;
        double d;
        struct { char *s; size_t len; } str;   /* NUL-terminated, no inner NUL */
        struct { struct json_value **items; size_t n, cap; } arr;
        struct { struct json_member *members; size_t n, cap; } obj;   /* input order */
    } u;
};

/* ---- parser ---- */

/* Accept QEMU's 'single-quoted' string extension (with \' escape). */
#define JSON_PARSE_SQUOTE  (1u << 0)

/* Parse exactly one value from text[0..len). NULL on error with a message
 * ending in "at byte N" in err. */
struct json_value *json_parse(const char *text, size_t len, unsigned flags, char *err, size_t errlen);
void json_free(struct json_value *v);

/* ---- lookup ---- */

const char *json_type_name(enum json_type t);  /* QEMU's words: "integer", "string", ... */
static inline bool json_is(const struct json_value *v, enum json_type t) { return v && v->type == t; }
/* NULL when obj is not an object or has no such key. */
const struct json_value *json_obj_get(const struct json_value *obj, const char *key);
/* NULL when v is not a string. */
const char *json_get_str(const struct json_value *v);
/* 0, -EINVAL (not an integer), -ERANGE (outside [min, max]). */
int json_get_int(const struct json_value *v, int64_t min, int64_t max, int64_t *out);
/* 0 or -EINVAL (not a boolean). */
int json_get_bool(const struct json_value *v, bool *out);
size_t json_array_len(const struct json_value *v);
const struct json_value *json_array_at(const struct json_value *v, size_t i);

/* ---- building a DOM (for clients; the server writes with json_buf) ---- */

struct json_value *json_new_null(void);
struct json_value *json_new_bool(bool b);
struct json_value *json_new_int(int64_t i);
struct json_value *json_new_double(double d);
struct json_value *json_new_str(const char *s);     /* copies; NULL on ENOMEM */
struct json_value *json_new_array(void);
struct json_value *json_new_object(void);
/* Take ownership of item (freed on failure too). 0, -ENOMEM, -EINVAL. */
int json_array_append(struct json_value *arr, struct json_value *item);
/* -EEXIST when key is present (value freed), -ENOMEM. */
int json_obj_add(struct json_value *obj, const char *key, struct json_value *value);

/* ---- streaming framer ----
 * Splits a byte stream into top-level JSON texts by tracking strings,
 * escapes and bracket depth (the lexical level only; the parser checks the
 * rest). Several messages may arrive in one read and one message may be
 * split over reads. A raw control character other than TAB/CR/LF, or a byte
 * that never occurs in UTF-8 (0xC0, 0xC1, 0xF5-0xFF), is a lexical error
 * that discards the partial message: clients use it to resynchronise
 * (QEMU's qmp-spec "Forcing the JSON parser into known-good state"). */
struct json_stream {
    char *buf;                  /* the message being collected */
    size_t len, cap, max;
    size_t depth;
    uint64_t offset;            /* bytes consumed so far, for messages */
    unsigned flags;             /* JSON_PARSE_SQUOTE: track '...' strings too */
    char quote;                 /* inside a string: its quote character */
    bool escape;
    bool scalar;                /* collecting a top-level non-container token */
    char err[96];
};

enum json_stream_status {
    JSON_STREAM_MORE,           /* everything consumed, no complete message */
    JSON_STREAM_MESSAGE,        /* js->buf[0..len) is a message (NUL-terminated) */
    JSON_STREAM_ERROR,          /* lexical error, message discarded, js->err says why */
    JSON_STREAM_TOO_BIG,        /* message over max bytes: stream cannot resynchronise */
};

void json_stream_init(struct json_stream *js, size_t max, unsigned flags);
void json_stream_free(struct json_stream *js);
/* Consume from data[0..len) until a message completes or an error; *used
 * is the number of bytes consumed. Call json_stream_next() after a MESSAGE
 * before feeding again. -ENOMEM is reported as TOO_BIG. */
enum json_stream_status json_stream_feed(struct json_stream *js, const char *data, size_t len,
                                         size_t *used);
void json_stream_next(struct json_stream *js);
/* True when a message has begun but is incomplete. */
bool json_stream_pending(const struct json_stream *js);

/* ---- writer ----
 * Values are written in order; commas and separators are inserted
 * automatically. Errors are sticky in b->err (-ENOMEM, or -EINVAL for
 * misuse such as a value where a key is needed). Output is ASCII with
 * \uXXXX escapes (QMP sends ASCII) unless JSON_BUF_UTF8; invalid UTF-8 in
 * a string is written as U+FFFD. */
#define JSON_BUF_PRETTY  (1u << 0)      /* newlines and 4-space indentation */
#define JSON_BUF_UTF8    (1u << 1)      /* keep non-ASCII characters as UTF-8 */
#define JSON_BUF_MAX_DEPTH 128

struct json_buf {
    char *data;                 /* NUL-terminated when data != NULL */
    size_t len, cap;
    int err;
    unsigned flags;
    unsigned depth;
    bool after_key;
    uint8_t nonempty[JSON_BUF_MAX_DEPTH / 8];
    uint8_t is_obj[JSON_BUF_MAX_DEPTH / 8];
};

void json_buf_init(struct json_buf *b, unsigned flags);
void json_buf_free(struct json_buf *b);
/* Empty the buffer, keep the memory and flags, clear errors. */
void json_buf_reset(struct json_buf *b);
/* Text so far ("" when empty). */
const char *json_buf_str(const struct json_buf *b);

void json_buf_begin_object(struct json_buf *b);
void json_buf_end_object(struct json_buf *b);
void json_buf_begin_array(struct json_buf *b);
void json_buf_end_array(struct json_buf *b);
void json_buf_add_key(struct json_buf *b, const char *key);
void json_buf_add_str(struct json_buf *b, const char *s);
void json_buf_add_strn(struct json_buf *b, const char *s, size_t len);
void json_buf_add_int(struct json_buf *b, int64_t v);
void json_buf_add_uint(struct json_buf *b, uint64_t v);
void json_buf_add_double(struct json_buf *b, double v);     /* non-finite -> null */
void json_buf_add_bool(struct json_buf *b, bool v);
void json_buf_add_null(struct json_buf *b);
/* A DOM value (re-indented in pretty mode). */
void json_buf_add_value(struct json_buf *b, const struct json_value *v);
/* JSON text the caller vouches for, inserted as one value verbatim. */
void json_buf_add_raw(struct json_buf *b, const char *json, size_t len);
/* Bytes outside the value structure (e.g. a "\r\n" message separator). */
void json_buf_append(struct json_buf *b, const void *data, size_t len);

/* key + value shorthands for objects */
static inline void json_buf_kv_str(struct json_buf *b, const char *k, const char *v)
{ json_buf_add_key(b, k); json_buf_add_str(b, v); }
static inline void json_buf_kv_int(struct json_buf *b, const char *k, int64_t v)
{ json_buf_add_key(b, k); json_buf_add_int(b, v); }
static inline void json_buf_kv_uint(struct json_buf *b, const char *k, uint64_t v)
{ json_buf_add_key(b, k); json_buf_add_uint(b, v); }
static inline void json_buf_kv_bool(struct json_buf *b, const char *k, bool v)
{ json_buf_add_key(b, k); json_buf_add_bool(b, v); }

#endif
