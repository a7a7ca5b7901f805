/* JSON parser, framer and writer; see json.h for the rules. */
#include "util/json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

/* Length of the valid UTF-8 sequence at s (n bytes available) with its code
 * point in *cp, or 0 when invalid (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ---- DOM ---- */

static struct json_value *new_value(enum json_type t)
{
    struct json_value *v = calloc(1, sizeof(*v));

    if (v)
        v->type = t;
    return v;
}

struct json_value *json_new_null(void)
{
    return new_value(JSON_NULL);
}

struct json_value *json_new_bool(bool b)
{
    struct json_value *v = new_value(JSON_BOOL);

    if (v)
        v->u.b = b;
    return v;
}

struct json_value *json_new_int(int64_t i)
{
    struct json_value *v = new_value(JSON_INT);

    if (v)
        v->u.i = i;
    return v;
}

struct json_value *json_new_double(double d)
{
    struct json_value *v = new_value(JSON_DOUBLE);

    if (v)
        v->u.d = d;
    return v;
}

struct json_value *json_new_str(const char *s)
{
    struct json_value *v = new_value(JSON_STRING);

    if (!v)
        return NULL;
    v->u.str.len = strlen(s);
    v->u.str.s = strdup(s);
    if (!v->u.str.s) {
        free(v);
        return NULL;
    }
    return v;
}

/* The empty container is spelled out although calloc zeroed it: clang's
 * analyzer does not see a zero fill through a union member, takes the count
 * for unknown, and then reports the first element as read uninitialized. */
struct json_value *json_new_array(void)
{
    struct json_value *v = new_value(JSON_ARRAY);

    if (v) {
        v->u.arr.items = NULL;
        v->u.arr.n = v->u.arr.cap = 0;
    }
    return v;
}

struct json_value *json_new_object(void)
{
    struct json_value *v = new_value(JSON_OBJECT);

    if (v) {
        v->u.obj.members = NULL;
        v->u.obj.n = v->u.obj.cap = 0;
    }
    return v;
}

void json_free(struct json_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case JSON_STRING:
        free(v->u.str.s);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->u.arr.n; i++)
            json_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->u.obj.n; i++) {
            free(v->u.obj.members[i].key);
            json_free(v->u.obj.members[i].value);
        }
        free(v->u.obj.members);
        break;
    default:
        break;
    }
    free(v);
}

static int array_push(struct json_value *arr, struct json_value *item)
{
    if (arr->u.arr.n == arr->u.arr.cap) {
        size_t ncap = arr->u.arr.cap ? arr->u.arr.cap * 2 : 4;
        struct json_value **n = realloc(arr->u.arr.items, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        arr->u.arr.items = n;
        arr->u.arr.cap = ncap;
    }
    arr->u.arr.items[arr->u.arr.n++] = item;
    return 0;
}

/* Appends without a duplicate check; key ownership moves on success. */
static int obj_push(struct json_value *obj, char *key, struct json_value *value)
{
    if (obj->u.obj.n == obj->u.obj.cap) {
        size_t ncap = obj->u.obj.cap ? obj->u.obj.cap * 2 : 4;
        struct json_member *n = realloc(obj->u.obj.members, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        obj->u.obj.members = n;
        obj->u.obj.cap = ncap;
    }
    obj->u.obj.members[obj->u.obj.n++] = (struct json_member){ .key = key, .value = value };
    return 0;
}

int json_array_append(struct json_value *arr, struct json_value *item)
{
    int ret;

    if (!item)
        return -ENOMEM;
    if (!json_is(arr, JSON_ARRAY)) {
        json_free(item);
        return -EINVAL;
    }
    ret = array_push(arr, item);
    if (ret < 0)
        json_free(item);
    return ret;
}

int json_obj_add(struct json_value *obj, const char *key, struct json_value *value)
{
    char *k;

    if (!value)
        return -ENOMEM;
    if (!json_is(obj, JSON_OBJECT)) {
        json_free(value);
        return -EINVAL;
    }
    if (json_obj_get(obj, key)) {
        json_free(value);
        return -EEXIST;
    }
    k = strdup(key);
    if (!k || obj_push(obj, k, value) < 0) {
        free(k);
        json_free(value);
        return -ENOMEM;
    }
    return 0;
}

/* ---- lookup ---- */

const char *json_type_name(enum json_type t)
{
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_INT: return "integer";
    case JSON_DOUBLE: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "unknown";
}

const struct json_value *json_obj_get(const struct json_value *obj, const char *key)
{
    if (!json_is(obj, JSON_OBJECT))
        return NULL;
    for (size_t i = 0; i < obj->u.obj.n; i++)
        if (!strcmp(obj->u.obj.members[i].key, key))
            return obj->u.obj.members[i].value;
    return NULL;
}

const char *json_get_str(const struct json_value *v)
{
    return json_is(v, JSON_STRING) ? v->u.str.s : NULL;
}

int json_get_int(const struct json_value *v, int64_t min, int64_t max, int64_t *out)
{
    if (!json_is(v, JSON_INT))
        return -EINVAL;
    if (v->u.i < min || v->u.i > max)
        return -ERANGE;
    *out = v->u.i;
    return 0;
}

int json_get_bool(const struct json_value *v, bool *out)
{
    if (!json_is(v, JSON_BOOL))
        return -EINVAL;
    *out = v->u.b;
    return 0;
}

size_t json_array_len(const struct json_value *v)
{
    return json_is(v, JSON_ARRAY) ? v->u.arr.n : 0;
}

const struct json_value *json_array_at(const struct json_value *v, size_t i)
{
    return i < json_array_len(v) ? v->u.arr.items[i] : NULL;
}

/* ---- parser ---- */

struct parser {
    const unsigned char *p;
    size_t len, pos;
    unsigned flags;
    char *err;
    size_t errlen;
    bool failed;
};

static void perr(struct parser *ps, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void perr(struct parser *ps, size_t at, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ps->failed)
        return;
    ps->failed = true;
    if (!ps->errlen)
        return;
    va_start(ap, fmt);
    n = vsnprintf(ps->err, ps->errlen, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < ps->errlen)
        snprintf(ps->err + n, ps->errlen - (size_t)n, " at byte %zu", at);
}

/* A short printable rendering of an untrusted string for messages. */
static void sanitize(const char *s, char *out, size_t outlen)
{
    size_t j = 0;

    for (size_t i = 0; s[i] && j + 4 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[j++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    if (s[0] && strlen(s) + 4 >= outlen && j + 4 <= outlen) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = 0;
}

static void skip_ws(struct parser *ps)
{
    while (ps->pos < ps->len) {
        unsigned char c = ps->p[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

static void describe_char(unsigned char c, char *out, size_t outlen)
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, outlen, "'%c'", c);
    else
        snprintf(out, outlen, "byte 0x%02x", c);
}

static struct json_value *parse_value(struct parser *ps, unsigned depth);

struct sbuf {
    char *s;
    size_t len, cap;
};

static int sbuf_put(struct sbuf *sb, const char *data, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t ncap = sb->cap ? sb->cap : 16;
        while (ncap < sb->len + n + 1)
            ncap *= 2;
        char *ns = realloc(sb->s, ncap);
        if (!ns)
            return -ENOMEM;
        sb->s = ns;
        sb->cap = ncap;
    }
    memcpy(sb->s + sb->len, data, n);
    sb->len += n;
    sb->s[sb->len] = 0;
    return 0;
}

static int hex4(const unsigned char *s, uint32_t *out)
{
    uint32_t v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -EINVAL;
    }
    *out = v;
    return 0;
}

/* Parse \uXXXX at ps->pos (pointing at the backslash), including a following
 * low surrogate. Returns the code point or -1 after reporting. */
static int64_t parse_uescape(struct parser *ps)
{
    size_t at = ps->pos;
    uint32_t cp, lo;

    if (ps->len - ps->pos < 6 || hex4(ps->p + ps->pos + 2, &cp) < 0) {
        perr(ps, at, "invalid \\u escape (need 4 hex digits)");
        return -1;
    }
    ps->pos += 6;
    if (cp == 0) {
        perr(ps, at, "\\u0000 is not allowed in strings");
        return -1;
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        perr(ps, at, "lone low surrogate \\u%04X", cp);
        return -1;
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (ps->len - ps->pos < 6 || ps->p[ps->pos] != '\\' || ps->p[ps->pos + 1] != 'u' ||
            hex4(ps->p + ps->pos + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
            perr(ps, at, "high surrogate \\u%04X not followed by a low surrogate", cp);
            return -1;
        }
        ps->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return cp;
}

/* ps->pos is at the opening quote. Returns a malloc'ed string or NULL. */
static char *parse_string(struct parser *ps, size_t *outlen)
{
    unsigned char quote = ps->p[ps->pos];
    size_t start = ps->pos;
    struct sbuf sb = { 0 };
    char tmp[4], tmp4[16];
    size_t run;

    ps->pos++;
    if (sbuf_put(&sb, "", 0) < 0)
        goto oom;
    for (;;) {
        if (ps->pos >= ps->len) {
            perr(ps, start, "unterminated string");
            goto fail;
        }
        unsigned char c = ps->p[ps->pos];
        if (c == quote) {
            ps->pos++;
            break;
        }
        if (c == '\\') {
            if (ps->pos + 1 >= ps->len) {
                perr(ps, start, "unterminated string");
                goto fail;
            }
            unsigned char e = ps->p[ps->pos + 1];
            char lit;
            switch (e) {
            case '"': lit = '"'; break;
            case '\\': lit = '\\'; break;
            case '/': lit = '/'; break;
            case 'b': lit = '\b'; break;
            case 'f': lit = '\f'; break;
            case 'n': lit = '\n'; break;
            case 'r': lit = '\r'; break;
            case 't': lit = '\t'; break;
            case '\'':
                if (ps->flags & JSON_PARSE_SQUOTE) {
                    lit = '\'';
                    break;
                }
                /* fall through */
            default:
                if (e == 'u') {
                    int64_t cp = parse_uescape(ps);
                    if (cp < 0)
                        goto fail;
                    if (sbuf_put(&sb, tmp, utf8_encode((uint32_t)cp, tmp)) < 0)
                        goto oom;
                    continue;
                }
                describe_char(e, tmp4, sizeof(tmp4));
                perr(ps, ps->pos, "invalid escape: backslash followed by %s", tmp4);
                goto fail;
            }
            if (sbuf_put(&sb, &lit, 1) < 0)
                goto oom;
            ps->pos += 2;
            continue;
        }
        if (c == 0) {
            perr(ps, ps->pos, "NUL byte in string");
            goto fail;
        }
        if (c < 0x20) {
            perr(ps, ps->pos, "control character 0x%02x in string (must be escaped)", c);
            goto fail;
        }
        if (c < 0x80) {
            /* copy a run of plain ASCII at once */
            run = 1;
            while (ps->pos + run < ps->len) {
                unsigned char d = ps->p[ps->pos + run];
                if (d < 0x20 || d >= 0x80 || d == '\\' || d == quote)
                    break;
                run++;
            }
        } else {
            uint32_t cp;
            run = utf8_decode(ps->p + ps->pos, ps->len - ps->pos, &cp);
            if (!run) {
                perr(ps, ps->pos, "invalid UTF-8 in string");
                goto fail;
            }
        }
        if (sbuf_put(&sb, (const char *)ps->p + ps->pos, run) < 0)
            goto oom;
        ps->pos += run;
    }
    *outlen = sb.len;
    return sb.s;

oom:
    perr(ps, ps->pos, "out of memory");
fail:
    free(sb.s);
    return NULL;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_word_char(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.' || c == '+' || c == '-';
}

static struct json_value *parse_number(struct parser *ps)
{
    size_t start = ps->pos, p = ps->pos;
    bool neg = false, is_int = true;
    struct json_value *v;

    if (p < ps->len && ps->p[p] == '-') {
        neg = true;
        p++;
    }
    if (p >= ps->len || !is_digit(ps->p[p]))
        goto bad;
    if (ps->p[p] == '0')
        p++;
    else
        while (p < ps->len && is_digit(ps->p[p]))
            p++;
    if (p < ps->len && ps->p[p] == '.') {
        is_int = false;
        p++;
        if (p >= ps->len || !is_digit(ps->p[p]))
            goto bad;
        while (p < ps->len && is_digit(ps->p[p]))
            p++;
    }
    if (p < ps->len && (ps->p[p] == 'e' || ps->p[p] == 'E')) {
        is_int = false;
        p++;
        if (p < ps->len && (ps->p[p] == '+' || ps->p[p] == '-'))
            p++;
        if (p >= ps->len || !is_digit(ps->p[p]))
            goto bad;
        while (p < ps->len && is_digit(ps->p[p]))
            p++;
    }
    if (p < ps->len && is_word_char(ps->p[p]))
        goto bad;              /* 01, 1x, 1.2.3 */
    ps->pos = p;

    if (is_int) {
        /* accumulate negatively so INT64_MIN fits */
        int64_t acc = 0;
        bool overflow = false;
        for (size_t i = start + neg; i < p; i++) {
            int d = ps->p[i] - '0';
            if (acc < (INT64_MIN + d) / 10) {
                overflow = true;
                break;
            }
            acc = acc * 10 - d;
        }
        if (!overflow && (neg || acc != INT64_MIN)) {
            v = json_new_int(neg ? acc : -acc);
            if (!v)
                perr(ps, start, "out of memory");
            return v;
        }
    }
    {
        size_t n = p - start;
        char *tmp = malloc(n + 1);
        double d;
        if (!tmp) {
            perr(ps, start, "out of memory");
            return NULL;
        }
        memcpy(tmp, ps->p + start, n);
        tmp[n] = 0;
        errno = 0;
        d = strtod(tmp, NULL);
        free(tmp);
        if (errno == ERANGE && isinf(d)) {
            perr(ps, start, "number out of range");
            return NULL;
        }
        v = json_new_double(d);
        if (!v)
            perr(ps, start, "out of memory");
        return v;
    }

bad:
    perr(ps, start, "invalid number");
    return NULL;
}

static int cmp_member_key(const void *a, const void *b)
{
    const struct json_member *const *x = a, *const *y = b;

    return strcmp((*x)->key, (*y)->key);
}

/* Duplicate check for objects too large for the per-key linear scan. */
static const char *find_duplicate(const struct json_value *obj)
{
    size_t n = obj->u.obj.n;
    const struct json_member **idx = malloc(n * sizeof(*idx));
    const char *dup = NULL;

    if (!idx)
        return "";             /* treated as out of memory by the caller */
    for (size_t i = 0; i < n; i++)
        idx[i] = &obj->u.obj.members[i];
    qsort(idx, n, sizeof(*idx), cmp_member_key);
    for (size_t i = 1; i < n && !dup; i++)
        if (!strcmp(idx[i - 1]->key, idx[i]->key))
            dup = idx[i]->key;
    free(idx);
    return dup;
}

#define LINEAR_DUP_CHECK 16

static struct json_value *parse_object(struct parser *ps, unsigned depth)
{
    size_t start = ps->pos;
    struct json_value *obj = json_new_object();
    char name[48];

    if (!obj) {
        perr(ps, start, "out of memory");
        return NULL;
    }
    ps->pos++;
    skip_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
        ps->pos++;
        return obj;
    }
    for (;;) {
        size_t key_at, klen;
        char *key;
        struct json_value *v;

        skip_ws(ps);
        key_at = ps->pos;
        if (ps->pos >= ps->len) {
            perr(ps, ps->pos, "unexpected end of input in object");
            goto fail;
        }
        if (ps->p[ps->pos] != '"' && !(ps->p[ps->pos] == '\'' && (ps->flags & JSON_PARSE_SQUOTE))) {
            char d[16];
            describe_char(ps->p[ps->pos], d, sizeof(d));
            perr(ps, ps->pos, "expected a string key in object, got %s", d);
            goto fail;
        }
        key = parse_string(ps, &klen);
        if (!key)
            goto fail;
        if (obj->u.obj.n < LINEAR_DUP_CHECK && json_obj_get(obj, key)) {
            sanitize(key, name, sizeof(name));
            perr(ps, key_at, "duplicate key '%s'", name);
            free(key);
            goto fail;
        }
        skip_ws(ps);
        if (ps->pos >= ps->len || ps->p[ps->pos] != ':') {
            perr(ps, ps->pos, "expected ':' after object key");
            free(key);
            goto fail;
        }
        ps->pos++;
        v = parse_value(ps, depth);
        if (!v) {
            free(key);
            goto fail;
        }
        if (obj_push(obj, key, v) < 0) {
            free(key);
            json_free(v);
            perr(ps, key_at, "out of memory");
            goto fail;
        }
        skip_ws(ps);
        if (ps->pos >= ps->len) {
            perr(ps, ps->pos, "unexpected end of input in object");
            goto fail;
        }
        if (ps->p[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->p[ps->pos] == '}') {
            ps->pos++;
            break;
        }
        {
            char d[16];
            describe_char(ps->p[ps->pos], d, sizeof(d));
            perr(ps, ps->pos, "expected ',' or '}' in object, got %s", d);
        }
        goto fail;
    }
    if (obj->u.obj.n > LINEAR_DUP_CHECK) {
        const char *dup = find_duplicate(obj);
        if (dup && !*dup) {
            perr(ps, start, "out of memory");
            goto fail;
        }
        if (dup) {
            sanitize(dup, name, sizeof(name));
            perr(ps, start, "duplicate key '%s' in object", name);
            goto fail;
        }
    }
    return obj;

fail:
    json_free(obj);
    return NULL;
}

static struct json_value *parse_array(struct parser *ps, unsigned depth)
{
    struct json_value *arr = json_new_array();

    if (!arr) {
        perr(ps, ps->pos, "out of memory");
        return NULL;
    }
    ps->pos++;
    skip_ws(ps);
    if (ps->pos < ps->len && ps->p[ps->pos] == ']') {
        ps->pos++;
        return arr;
    }
    for (;;) {
        struct json_value *v = parse_value(ps, depth);
        if (!v)
            goto fail;
        if (array_push(arr, v) < 0) {
            json_free(v);
            perr(ps, ps->pos, "out of memory");
            goto fail;
        }
        skip_ws(ps);
        if (ps->pos >= ps->len) {
            perr(ps, ps->pos, "unexpected end of input in array");
            goto fail;
        }
        if (ps->p[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->p[ps->pos] == ']') {
            ps->pos++;
            break;
        }
        {
            char d[16];
            describe_char(ps->p[ps->pos], d, sizeof(d));
            perr(ps, ps->pos, "expected ',' or ']' in array, got %s", d);
        }
        goto fail;
    }
    return arr;

fail:
    json_free(arr);
    return NULL;
}

static struct json_value *parse_keyword(struct parser *ps)
{
    static const struct { const char *word; enum json_type t; bool b; } kw[] = {
        { "true", JSON_BOOL, true }, { "false", JSON_BOOL, false }, { "null", JSON_NULL, false },
    };
    size_t start = ps->pos, end = ps->pos;
    struct json_value *v;

    while (end < ps->len && is_word_char(ps->p[end]))
        end++;
    for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++) {
        size_t n = strlen(kw[i].word);
        if (end - start == n && !memcmp(ps->p + start, kw[i].word, n)) {
            ps->pos = end;
            v = kw[i].t == JSON_NULL ? json_new_null() : json_new_bool(kw[i].b);
            if (!v)
                perr(ps, start, "out of memory");
            return v;
        }
    }
    {
        char word[24];
        size_t n = end - start < sizeof(word) - 4 ? end - start : sizeof(word) - 4;
        char raw[24];
        memcpy(raw, ps->p + start, n);
        raw[n] = 0;
        sanitize(raw, word, sizeof(word));
        perr(ps, start, "invalid literal '%s%s'", word, n < end - start ? "..." : "");
    }
    return NULL;
}

/* depth: containers around this value. */
static struct json_value *parse_value(struct parser *ps, unsigned depth)
{
    unsigned char c;

    skip_ws(ps);
    if (ps->pos >= ps->len) {
        perr(ps, ps->pos, "unexpected end of input");
        return NULL;
    }
    c = ps->p[ps->pos];
    if (c == '{' || c == '[') {
        if (depth >= JSON_MAX_DEPTH) {
            perr(ps, ps->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
            return NULL;
        }
        return c == '{' ? parse_object(ps, depth + 1) : parse_array(ps, depth + 1);
    }
    if (c == '"' || (c == '\'' && (ps->flags & JSON_PARSE_SQUOTE))) {
        size_t len;
        char *s = parse_string(ps, &len);
        struct json_value *v;
        if (!s)
            return NULL;
        v = new_value(JSON_STRING);
        if (!v) {
            free(s);
            perr(ps, ps->pos, "out of memory");
            return NULL;
        }
        v->u.str.s = s;
        v->u.str.len = len;
        return v;
    }
    if (c == '-' || is_digit(c))
        return parse_number(ps);
    if (c >= 'a' && c <= 'z')
        return parse_keyword(ps);
    {
        char d[16];
        describe_char(c, d, sizeof(d));
        perr(ps, ps->pos, "unexpected %s", d);
    }
    return NULL;
}

struct json_value *json_parse(const char *text, size_t len, unsigned flags, char *err, size_t errlen)
{
    struct parser ps = {
        .p = (const unsigned char *)text, .len = len, .flags = flags, .err = err, .errlen = errlen,
    };
    struct json_value *v;

    if (errlen)
        err[0] = 0;
    v = parse_value(&ps, 0);
    if (!v)
        return NULL;
    skip_ws(&ps);
    if (ps.pos < ps.len) {
        perr(&ps, ps.pos, "trailing characters after the JSON value");
        json_free(v);
        return NULL;
    }
    return v;
}

/* ---- streaming framer ---- */

void json_stream_init(struct json_stream *js, size_t max, unsigned flags)
{
    memset(js, 0, sizeof(*js));
    js->max = max;
    js->flags = flags;
}

void json_stream_free(struct json_stream *js)
{
    free(js->buf);
    js->buf = NULL;
    js->len = js->cap = 0;
}

void json_stream_next(struct json_stream *js)
{
    js->len = 0;
    js->depth = 0;
    js->quote = 0;
    js->escape = false;
    js->scalar = false;
    if (js->buf)
        js->buf[0] = 0;
}

bool json_stream_pending(const struct json_stream *js)
{
    return js->len > 0;
}

static int stream_put(struct json_stream *js, char c)
{
    if (js->len + 1 > js->max)
        return -EMSGSIZE;
    if (js->len + 2 > js->cap) {
        size_t ncap = js->cap ? js->cap * 2 : 256;
        if (ncap > js->max + 1)
            ncap = js->max + 1;
        if (ncap < js->len + 2)
            ncap = js->len + 2;
        char *nb = realloc(js->buf, ncap);
        if (!nb)
            return -ENOMEM;
        js->buf = nb;
        js->cap = ncap;
    }
    js->buf[js->len++] = c;
    js->buf[js->len] = 0;
    return 0;
}

static bool stream_bad_byte(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0xc0 || c == 0xc1 || c >= 0xf5;
}

static bool stream_is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool stream_is_quote(const struct json_stream *js, unsigned char c)
{
    return c == '"' || (c == '\'' && (js->flags & JSON_PARSE_SQUOTE));
}

enum json_stream_status json_stream_feed(struct json_stream *js, const char *data, size_t len,
                                         size_t *used)
{
    size_t i = 0;
    enum json_stream_status st = JSON_STREAM_MORE;

    while (i < len) {
        unsigned char c = (unsigned char)data[i];
        bool in_msg = js->len > 0;

        if (stream_bad_byte(c)) {
            snprintf(js->err, sizeof(js->err), "invalid byte 0x%02x at byte %" PRIu64, c, js->offset);
            json_stream_next(js);
            i++;
            js->offset++;
            st = JSON_STREAM_ERROR;
            break;
        }
        if (in_msg && js->scalar && !js->quote && js->depth == 0 &&
            (stream_is_ws(c) || strchr("{}[],:\"'", c))) {
            /* a bare top-level token ends before this byte */
            st = JSON_STREAM_MESSAGE;
            break;
        }
        i++;
        js->offset++;
        if (!in_msg) {
            if (stream_is_ws(c))
                continue;
            if (c == '}' || c == ']' || c == ',' || c == ':') {
                snprintf(js->err, sizeof(js->err), "unexpected '%c' at byte %" PRIu64, c,
                         js->offset - 1);
                st = JSON_STREAM_ERROR;
                break;
            }
            if (c == '{' || c == '[')
                js->depth = 1;
            else if (stream_is_quote(js, c)) {
                js->scalar = true;
                js->quote = (char)c;
            } else {
                js->scalar = true;
            }
        } else if (js->quote) {
            if (js->escape)
                js->escape = false;
            else if (c == '\\')
                js->escape = true;
            else if (c == (unsigned char)js->quote)
                js->quote = 0;
        } else if (!js->scalar) {
            if (stream_is_quote(js, c))
                js->quote = (char)c;
            else if (c == '{' || c == '[')
                js->depth++;
            else if (c == '}' || c == ']')
                js->depth--;
        }
        if (stream_put(js, (char)c) < 0) {
            snprintf(js->err, sizeof(js->err), "message larger than %zu bytes", js->max);
            st = JSON_STREAM_TOO_BIG;
            break;
        }
        if ((js->scalar && js->depth == 0 && !js->quote && stream_is_quote(js, c)) ||
            (!js->scalar && js->depth == 0)) {
            st = JSON_STREAM_MESSAGE;   /* closing quote of a top-level string, or bracket */
            break;
        }
    }
    *used = i;
    return st;
}

/* ---- writer ---- */

void json_buf_init(struct json_buf *b, unsigned flags)
{
    memset(b, 0, sizeof(*b));
    b->flags = flags;
}

void json_buf_free(struct json_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void json_buf_reset(struct json_buf *b)
{
    unsigned flags = b->flags;
    char *data = b->data;
    size_t cap = b->cap;

    memset(b, 0, sizeof(*b));
    b->flags = flags;
    b->data = data;
    b->cap = cap;
    if (data)
        data[0] = 0;
}

const char *json_buf_str(const struct json_buf *b)
{
    return b->data ? b->data : "";
}

static void put(struct json_buf *b, const char *s, size_t n)
{
    if (b->err)
        return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->err = -ENOMEM;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *nd = realloc(b->data, ncap);
        if (!nd) {
            b->err = -ENOMEM;
            return;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static void puts_(struct json_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

void json_buf_append(struct json_buf *b, const void *data, size_t len)
{
    put(b, data, len);
}

static bool bit(const uint8_t *a, unsigned i)
{
    return a[i / 8] & (1u << (i % 8));
}

static void set_bit(uint8_t *a, unsigned i, bool on)
{
    if (on)
        a[i / 8] |= (uint8_t)(1u << (i % 8));
    else
        a[i / 8] &= (uint8_t)~(1u << (i % 8));
}

static void newline_indent(struct json_buf *b, unsigned depth)
{
    static const char spaces[] = "                                ";

    put(b, "\n", 1);
    for (unsigned n = depth * 4; n > 0;) {
        unsigned k = n < sizeof(spaces) - 1 ? n : (unsigned)sizeof(spaces) - 1;
        put(b, spaces, k);
        n -= k;
    }
}

static void element_prefix(struct json_buf *b)
{
    if (bit(b->nonempty, b->depth))
        put(b, (b->flags & JSON_BUF_PRETTY) ? "," : ", ", (b->flags & JSON_BUF_PRETTY) ? 1 : 2);
    set_bit(b->nonempty, b->depth, true);
    if (b->flags & JSON_BUF_PRETTY)
        newline_indent(b, b->depth);
}

/* Before any value: separators, or an error for a value where a key belongs. */
static bool value_prefix(struct json_buf *b)
{
    if (b->err)
        return false;
    if (b->after_key) {
        b->after_key = false;
        return true;
    }
    if (b->depth == 0)
        return true;
    if (bit(b->is_obj, b->depth)) {
        b->err = -EINVAL;
        return false;
    }
    element_prefix(b);
    return !b->err;
}

static void write_string(struct json_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    char esc[16];
    size_t i = 0;

    put(b, "\"", 1);
    while (i < n && !b->err) {
        unsigned char c = s[i];
        size_t run = 0;

        while (i + run < n && s[i + run] >= 0x20 && s[i + run] < 0x7f && s[i + run] != '"' &&
               s[i + run] != '\\')
            run++;
        if (run) {
            put(b, str + i, run);
            i += run;
            continue;
        }
        switch (c) {
        case '"': puts_(b, "\\\""); i++; continue;
        case '\\': puts_(b, "\\\\"); i++; continue;
        case '\b': puts_(b, "\\b"); i++; continue;
        case '\f': puts_(b, "\\f"); i++; continue;
        case '\n': puts_(b, "\\n"); i++; continue;
        case '\r': puts_(b, "\\r"); i++; continue;
        case '\t': puts_(b, "\\t"); i++; continue;
        default:
            break;
        }
        if (c < 0x80) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            puts_(b, esc);
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (!len) {
            cp = 0xfffd;
            len = 1;
        }
        if (b->flags & JSON_BUF_UTF8) {
            char enc[4];
            put(b, enc, utf8_encode(cp, enc));
        } else if (cp < 0x10000) {
            snprintf(esc, sizeof(esc), "\\u%04x", cp);
            puts_(b, esc);
        } else {
            uint32_t v = cp - 0x10000;
            snprintf(esc, sizeof(esc), "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            puts_(b, esc);
        }
        i += len;
    }
    put(b, "\"", 1);
}

static void begin_container(struct json_buf *b, bool obj)
{
    if (!value_prefix(b))
        return;
    if (b->depth + 1 >= JSON_BUF_MAX_DEPTH) {
        b->err = -EINVAL;
        return;
    }
    b->depth++;
    set_bit(b->is_obj, b->depth, obj);
    set_bit(b->nonempty, b->depth, false);
    put(b, obj ? "{" : "[", 1);
}

static void end_container(struct json_buf *b, bool obj)
{
    if (b->err)
        return;
    if (b->depth == 0 || bit(b->is_obj, b->depth) != obj || b->after_key) {
        b->err = -EINVAL;
        return;
    }
    if ((b->flags & JSON_BUF_PRETTY) && bit(b->nonempty, b->depth))
        newline_indent(b, b->depth - 1);
    put(b, obj ? "}" : "]", 1);
    b->depth--;
}

void json_buf_begin_object(struct json_buf *b) { begin_container(b, true); }
void json_buf_end_object(struct json_buf *b) { end_container(b, true); }
void json_buf_begin_array(struct json_buf *b) { begin_container(b, false); }
void json_buf_end_array(struct json_buf *b) { end_container(b, false); }

void json_buf_add_key(struct json_buf *b, const char *key)
{
    if (b->err)
        return;
    if (b->depth == 0 || !bit(b->is_obj, b->depth) || b->after_key) {
        b->err = -EINVAL;
        return;
    }
    element_prefix(b);
    write_string(b, key, strlen(key));
    put(b, ": ", 2);
    b->after_key = true;
}

void json_buf_add_strn(struct json_buf *b, const char *s, size_t len)
{
    if (value_prefix(b))
        write_string(b, s, len);
}

void json_buf_add_str(struct json_buf *b, const char *s)
{
    json_buf_add_strn(b, s, strlen(s));
}

void json_buf_add_int(struct json_buf *b, int64_t v)
{
    char tmp[32];

    if (value_prefix(b))
        put(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%" PRId64, v));
}

void json_buf_add_uint(struct json_buf *b, uint64_t v)
{
    char tmp[32];

    if (value_prefix(b))
        put(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%" PRIu64, v));
}

void json_buf_add_double(struct json_buf *b, double v)
{
    char tmp[40];
    int n;

    if (!value_prefix(b))
        return;
    if (!isfinite(v)) {
        puts_(b, "null");
        return;
    }
    n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    /* keep it a non-integer on re-parse */
    if (!strpbrk(tmp, ".eE") && n + 2 < (int)sizeof(tmp)) {
        memcpy(tmp + n, ".0", 3);
        n += 2;
    }
    put(b, tmp, (size_t)n);
}

void json_buf_add_bool(struct json_buf *b, bool v)
{
    if (value_prefix(b))
        puts_(b, v ? "true" : "false");
}

void json_buf_add_null(struct json_buf *b)
{
    if (value_prefix(b))
        puts_(b, "null");
}

void json_buf_add_raw(struct json_buf *b, const char *json, size_t len)
{
    if (value_prefix(b))
        put(b, json, len);
}

static void add_value(struct json_buf *b, const struct json_value *v, unsigned depth)
{
    if (b->err)
        return;
    if (!v || depth > JSON_BUF_MAX_DEPTH) {
        b->err = -EINVAL;
        return;
    }
    switch (v->type) {
    case JSON_NULL: json_buf_add_null(b); break;
    case JSON_BOOL: json_buf_add_bool(b, v->u.b); break;
    case JSON_INT: json_buf_add_int(b, v->u.i); break;
    case JSON_DOUBLE: json_buf_add_double(b, v->u.d); break;
    case JSON_STRING: json_buf_add_strn(b, v->u.str.s, v->u.str.len); break;
    case JSON_ARRAY:
        json_buf_begin_array(b);
        for (size_t i = 0; i < v->u.arr.n; i++)
            add_value(b, v->u.arr.items[i], depth + 1);
        json_buf_end_array(b);
        break;
    case JSON_OBJECT:
        json_buf_begin_object(b);
        for (size_t i = 0; i < v->u.obj.n; i++) {
            json_buf_add_key(b, v->u.obj.members[i].key);
            add_value(b, v->u.obj.members[i].value, depth + 1);
        }
        json_buf_end_object(b);
        break;
    }
}

void json_buf_add_value(struct json_buf *b, const struct json_value *v)
{
    add_value(b, v, 0);
}
