/* JSON parser, framer and writer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "util/json.h"

static char err[256];

static struct json_value *parse(const char *s)
{
    return json_parse(s, strlen(s), 0, err, sizeof(err));
}

/* The parse must fail and the message must mention `what` and "at byte N". */
static int parse_fails(const char *s, const char *what, size_t at)
{
    struct json_value *v = parse(s);
    char want[32];

    if (v) {
        json_free(v);
        fprintf(stderr, "  unexpectedly parsed: %s\n", s);
        return 0;
    }
    snprintf(want, sizeof(want), "at byte %zu", at);
    if (!strstr(err, what) || !strstr(err, want)) {
        fprintf(stderr, "  input %s: error '%s', expected '%s' ... '%s'\n", s, err, what, want);
        return 0;
    }
    return 1;
}

static void test_scalars(void)
{
    struct json_value *v;
    int64_t i;
    bool b;

    v = parse(" 42 ");
    CHECK(json_is(v, JSON_INT) && v->u.i == 42);
    json_free(v);
    v = parse("-0");
    CHECK(json_is(v, JSON_INT) && v->u.i == 0);
    json_free(v);
    v = parse("9223372036854775807");
    CHECK(json_is(v, JSON_INT) && v->u.i == INT64_MAX);
    json_free(v);
    v = parse("-9223372036854775808");
    CHECK(json_is(v, JSON_INT) && v->u.i == INT64_MIN);
    json_free(v);
    /* beyond int64: double */
    v = parse("9223372036854775808");
    CHECK(json_is(v, JSON_DOUBLE) && v->u.d == 9223372036854775808.0);
    json_free(v);
    v = parse("-9223372036854775809");
    CHECK(json_is(v, JSON_DOUBLE));
    json_free(v);
    v = parse("18446744073709551616123");
    CHECK(json_is(v, JSON_DOUBLE) && v->u.d > 1.8e22);
    json_free(v);
    v = parse("1.5e3");
    CHECK(json_is(v, JSON_DOUBLE) && v->u.d == 1500.0);
    json_free(v);
    v = parse("1E-2");
    CHECK(json_is(v, JSON_DOUBLE) && v->u.d == 0.01);
    json_free(v);
    v = parse("2.0");
    CHECK(json_is(v, JSON_DOUBLE));         /* a fraction makes it a double even when integral */
    json_free(v);
    v = parse("true");
    CHECK(json_get_bool(v, &b) == 0 && b);
    json_free(v);
    v = parse("false");
    CHECK(json_get_bool(v, &b) == 0 && !b);
    json_free(v);
    v = parse("null");
    CHECK(json_is(v, JSON_NULL));
    CHECK(json_get_int(v, 0, 1, &i) == -EINVAL);
    json_free(v);

    CHECK(parse_fails("1e999", "out of range", 0));
    CHECK(parse_fails("01", "invalid number", 0));
    CHECK(parse_fails("-", "invalid number", 0));
    CHECK(parse_fails("1.", "invalid number", 0));
    CHECK(parse_fails(".5", "unexpected '.'", 0));
    CHECK(parse_fails("1.2.3", "invalid number", 0));
    CHECK(parse_fails("+1", "unexpected '+'", 0));
    CHECK(parse_fails("0x10", "invalid number", 0));
    CHECK(parse_fails("tru", "invalid literal 'tru'", 0));
    CHECK(parse_fails("truex", "invalid literal", 0));
    CHECK(parse_fails("NaN", "unexpected 'N'", 0));
    CHECK(parse_fails("", "unexpected end of input", 0));
    CHECK(parse_fails("   ", "unexpected end of input", 3));
}

static void test_strings(void)
{
    struct json_value *v;

    v = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    CHECK(v && !strcmp(json_get_str(v), "a\"b\\c/d\b\f\n\r\t"));
    json_free(v);
    v = parse("\"\\u0041\\u00e9\\u20AC\"");
    CHECK(v && !strcmp(json_get_str(v), "A\xc3\xa9\xe2\x82\xac"));
    json_free(v);
    /* surrogate pair -> U+1F600 */
    v = parse("\"\\ud83d\\ude00\"");
    CHECK(v && !strcmp(json_get_str(v), "\xf0\x9f\x98\x80") && v->u.str.len == 4);
    json_free(v);
    /* raw UTF-8 passes through */
    v = parse("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    CHECK(v && !strcmp(json_get_str(v), "caf\xc3\xa9 \xf0\x9f\x98\x80"));
    json_free(v);
    v = parse("\"\"");
    CHECK(v && json_get_str(v) && !json_get_str(v)[0]);
    json_free(v);

    CHECK(parse_fails("\"\\ud83d\"", "not followed by a low surrogate", 1));
    CHECK(parse_fails("\"\\ud83dx\"", "not followed by a low surrogate", 1));
    CHECK(parse_fails("\"\\ud83d\\u0041\"", "not followed by a low surrogate", 1));
    CHECK(parse_fails("\"ab\\ude00\"", "lone low surrogate", 3));
    CHECK(parse_fails("\"\\u0000\"", "\\u0000", 1));
    CHECK(parse_fails("\"\\u12\"", "4 hex digits", 1));
    CHECK(parse_fails("\"\\x\"", "invalid escape", 1));
    CHECK(parse_fails("\"a\tb\"", "control character 0x09", 2));
    CHECK(parse_fails("\"abc", "unterminated string", 0));
    CHECK(parse_fails("\"abc\\", "unterminated string", 0));
    CHECK(parse_fails("\"\xc3\"", "invalid UTF-8", 1));
    CHECK(parse_fails("\"\xc0\x80\"", "invalid UTF-8", 1));         /* overlong NUL */
    CHECK(parse_fails("\"\xed\xa0\x80\"", "invalid UTF-8", 1));     /* encoded surrogate */
    CHECK(parse_fails("\"\xf4\x90\x80\x80\"", "invalid UTF-8", 1)); /* > U+10FFFF */
    CHECK(parse_fails("'single'", "unexpected '''", 0));

    /* raw NUL inside a string */
    v = json_parse("\"a\0b\"", 5, 0, err, sizeof(err));
    CHECK(!v && strstr(err, "NUL byte") && strstr(err, "at byte 2"));
    /* QEMU's single-quote extension */
    v = json_parse("{'a': 'it\\'s \"x\"'}", 18, JSON_PARSE_SQUOTE, err, sizeof(err));
    CHECK(v && !strcmp(json_get_str(json_obj_get(v, "a")), "it's \"x\""));
    json_free(v);
}

static void test_containers(void)
{
    struct json_value *v;
    int64_t i;

    v = parse("{\"a\": [1, 2, {\"b\": null}], \"c\": {}, \"d\": []}");
    CHECK(json_is(v, JSON_OBJECT) && v->u.obj.n == 3);
    CHECK(json_array_len(json_obj_get(v, "a")) == 3);
    CHECK(json_is(json_obj_get(json_array_at(json_obj_get(v, "a"), 2), "b"), JSON_NULL));
    CHECK(json_get_int(json_array_at(json_obj_get(v, "a"), 1), 0, 10, &i) == 0 && i == 2);
    CHECK(json_get_int(json_array_at(json_obj_get(v, "a"), 1), 3, 10, &i) == -ERANGE);
    CHECK(json_array_at(json_obj_get(v, "a"), 3) == NULL);
    CHECK(json_obj_get(v, "zz") == NULL);
    CHECK(json_obj_get(json_obj_get(v, "a"), "x") == NULL);
    /* member order is input order */
    CHECK(!strcmp(v->u.obj.members[0].key, "a") && !strcmp(v->u.obj.members[2].key, "d"));
    json_free(v);

    CHECK(parse_fails("{\"a\": 1, \"a\": 2}", "duplicate key 'a'", 9));
    CHECK(parse_fails("{\"a\": 1,}", "expected a string key", 8));
    CHECK(parse_fails("[1, 2,]", "unexpected ']'", 6));
    CHECK(parse_fails("[1 2]", "expected ',' or ']'", 3));
    CHECK(parse_fails("{\"a\" 1}", "expected ':'", 5));
    CHECK(parse_fails("{1: 2}", "expected a string key", 1));
    CHECK(parse_fails("{\"a\": 1", "unexpected end of input", 7));
    CHECK(parse_fails("[", "unexpected end of input", 1));
    CHECK(parse_fails("{\"a\": 1]", "expected ',' or '}'", 7));
    CHECK(parse_fails("{} x", "trailing characters", 3));
    CHECK(parse_fails("{}{}", "trailing characters", 2));
    CHECK(parse_fails("1 2", "trailing characters", 2));

    /* duplicate detection in a large object (sorted check) */
    {
        struct json_buf b;
        json_buf_init(&b, 0);
        json_buf_begin_object(&b);
        for (int k = 0; k < 200; k++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", k);
            json_buf_kv_int(&b, key, k);
        }
        json_buf_kv_int(&b, "k7", 0);
        json_buf_end_object(&b);
        CHECK(b.err == 0);
        v = json_parse(b.data, b.len, 0, err, sizeof(err));
        CHECK(!v && strstr(err, "duplicate key 'k7'"));
        /* without the duplicate it parses */
        json_buf_reset(&b);
        json_buf_begin_object(&b);
        for (int k = 0; k < 200; k++) {
            char key[16];
            snprintf(key, sizeof(key), "k%d", k);
            json_buf_kv_int(&b, key, k);
        }
        json_buf_end_object(&b);
        v = json_parse(b.data, b.len, 0, err, sizeof(err));
        CHECK(v && v->u.obj.n == 200);
        json_free(v);
        json_buf_free(&b);
    }
}

static void test_depth(void)
{
    char buf[512];
    struct json_value *v;
    int n;

    /* 64 levels are fine */
    n = 0;
    for (int i = 0; i < 64; i++)
        buf[n++] = '[';
    for (int i = 0; i < 64; i++)
        buf[n++] = ']';
    v = json_parse(buf, (size_t)n, 0, err, sizeof(err));
    CHECK(v != NULL);
    json_free(v);
    /* 65 are not, and the error points at the 65th bracket */
    n = 0;
    for (int i = 0; i < 65; i++)
        buf[n++] = '[';
    for (int i = 0; i < 65; i++)
        buf[n++] = ']';
    v = json_parse(buf, (size_t)n, 0, err, sizeof(err));
    CHECK(!v && strstr(err, "nesting deeper than 64") && strstr(err, "at byte 64"));
    /* mixed objects, and a huge unbalanced run does not recurse past the limit */
    {
        size_t big = 1 << 20;
        char *p = malloc(big);
        memset(p, '[', big);
        v = json_parse(p, big, 0, err, sizeof(err));
        CHECK(!v && strstr(err, "nesting"));
        for (size_t i = 0; i + 5 < big; i += 5)
            memcpy(p + i, "{\"a\":", 5);
        v = json_parse(p, big - big % 5, 0, err, sizeof(err));
        CHECK(!v && strstr(err, "nesting"));
        free(p);
    }
}

static void test_writer(void)
{
    struct json_buf b;
    struct json_value *v, *w;
    const char *nasty = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xf0\x9f\x98\x80 bad\xff end";

    json_buf_init(&b, 0);
    json_buf_begin_object(&b);
    json_buf_kv_str(&b, "s", nasty);
    json_buf_kv_int(&b, "i", INT64_MIN);
    json_buf_kv_uint(&b, "u", UINT64_MAX);
    json_buf_kv_bool(&b, "t", true);
    json_buf_add_key(&b, "n");
    json_buf_add_null(&b);
    json_buf_add_key(&b, "d");
    json_buf_add_double(&b, 2.0);
    json_buf_add_key(&b, "a");
    json_buf_begin_array(&b);
    json_buf_add_int(&b, 1);
    json_buf_begin_object(&b);
    json_buf_end_object(&b);
    json_buf_begin_array(&b);
    json_buf_end_array(&b);
    json_buf_end_array(&b);
    json_buf_end_object(&b);
    CHECK(b.err == 0);
    /* ASCII only */
    for (size_t i = 0; i < b.len; i++)
        CHECK((unsigned char)b.data[i] < 0x80 && (unsigned char)b.data[i] >= 0x20);
    CHECK(strstr(b.data, "\"i\": -9223372036854775808, \"u\": 18446744073709551615"));
    CHECK(strstr(b.data, "\"d\": 2.0, \"a\": [1, {}, []]}"));
    CHECK(strstr(b.data, "\\ud83d\\ude00"));
    CHECK(strstr(b.data, "bad\\ufffd end"));

    /* round trip: everything but the invalid byte survives */
    v = json_parse(b.data, b.len, 0, err, sizeof(err));
    CHECK(v != NULL);
    if (v) {
        CHECK(!strcmp(json_get_str(json_obj_get(v, "s")),
                      "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f caf\xc3\xa9 \xf0\x9f\x98\x80 bad\xef\xbf\xbd end"));
        CHECK(json_is(json_obj_get(v, "u"), JSON_DOUBLE));
        CHECK(json_is(json_obj_get(v, "d"), JSON_DOUBLE));
        /* DOM -> text -> DOM -> text is stable */
        struct json_buf b2, b3;
        json_buf_init(&b2, 0);
        json_buf_add_value(&b2, v);
        w = json_parse(b2.data, b2.len, 0, err, sizeof(err));
        CHECK(w != NULL);
        json_buf_init(&b3, 0);
        json_buf_add_value(&b3, w);
        CHECK(b2.len == b3.len && !strcmp(b2.data, b3.data));
        json_free(w);
        json_buf_free(&b2);
        json_buf_free(&b3);
        /* UTF-8 mode keeps characters */
        json_buf_init(&b2, JSON_BUF_UTF8);
        json_buf_add_value(&b2, json_obj_get(v, "s"));
        CHECK(strstr(b2.data, "caf\xc3\xa9 \xf0\x9f\x98\x80"));
        json_buf_free(&b2);
    }
    json_free(v);

    /* pretty printing */
    json_buf_reset(&b);
    b.flags = JSON_BUF_PRETTY;
    v = parse("{\"a\": [1, {}], \"b\": {\"c\": true}}");
    json_buf_add_value(&b, v);
    CHECK(b.err == 0 && !strcmp(b.data, "{\n    \"a\": [\n        1,\n        {}\n    ],\n"
                                        "    \"b\": {\n        \"c\": true\n    }\n}"));
    json_free(v);

    /* misuse is reported, never crashes */
    json_buf_reset(&b);
    b.flags = 0;
    json_buf_begin_object(&b);
    json_buf_add_int(&b, 1);            /* value without a key */
    CHECK(b.err == -EINVAL);
    json_buf_reset(&b);
    json_buf_end_array(&b);
    CHECK(b.err == -EINVAL);
    json_buf_reset(&b);
    for (int i = 0; i < JSON_BUF_MAX_DEPTH + 2; i++)
        json_buf_begin_array(&b);
    CHECK(b.err == -EINVAL);
    json_buf_free(&b);

    /* DOM building */
    v = json_new_object();
    CHECK(json_obj_add(v, "x", json_new_int(1)) == 0);
    CHECK(json_obj_add(v, "x", json_new_int(2)) == -EEXIST);
    CHECK(json_obj_add(v, "y", json_new_array()) == 0);
    CHECK(json_array_append((struct json_value *)json_obj_get(v, "y"), json_new_str("s")) == 0);
    CHECK(json_array_append(v, json_new_null()) == -EINVAL);
    json_buf_init(&b, 0);
    json_buf_add_value(&b, v);
    CHECK(!strcmp(json_buf_str(&b), "{\"x\": 1, \"y\": [\"s\"]}"));
    json_buf_free(&b);
    json_free(v);
}

/* Feed text in pieces of `step` bytes; collect messages joined by '|'. */
static void frame(const char *text, size_t len, size_t step, char *out, size_t outlen, int *errors,
                  size_t max)
{
    struct json_stream js;
    size_t off = 0;

    json_stream_init(&js, max, 0);
    out[0] = 0;
    *errors = 0;
    while (off < len) {
        size_t chunk = len - off < step ? len - off : step, pos = 0;
        while (pos < chunk) {
            size_t used;
            enum json_stream_status st = json_stream_feed(&js, text + off + pos, chunk - pos, &used);
            pos += used;
            if (st == JSON_STREAM_MESSAGE) {
                if (out[0])
                    strncat(out, "|", outlen - strlen(out) - 1);
                strncat(out, js.buf, outlen - strlen(out) - 1);
                json_stream_next(&js);
            } else if (st == JSON_STREAM_ERROR) {
                (*errors)++;
            } else if (st == JSON_STREAM_TOO_BIG) {
                strncat(out, "|TOO_BIG", outlen - strlen(out) - 1);
                json_stream_free(&js);
                return;
            }
        }
        off += chunk;
    }
    if (json_stream_pending(&js))
        strncat(out, "|PENDING", outlen - strlen(out) - 1);
    json_stream_free(&js);
}

static void test_stream(void)
{
    static const char text[] =
        "{\"execute\": \"a\"}\r\n  {\"s\": \"}{\\\"]\", \"x\": [{}]}[1] \"str}\" 42 true\n{\"b\":\n1}";
    static const char expect[] =
        "{\"execute\": \"a\"}|{\"s\": \"}{\\\"]\", \"x\": [{}]}|[1]|\"str}\"|42|true|{\"b\":\n1}";
    char out[512];
    int errors;

    /* any split gives the same messages */
    for (size_t step = 1; step <= sizeof(text); step++) {
        frame(text, sizeof(text) - 1, step, out, sizeof(out), &errors, 1024);
        CHECK(!strcmp(out, expect) && errors == 0);
    }
    /* a bare token waits for its delimiter */
    frame("{}123", 5, 100, out, sizeof(out), &errors, 1024);
    CHECK(!strcmp(out, "{}|PENDING"));
    /* stray closers and control bytes are lexical errors; the stream recovers */
    frame("}{\"a\":1}", 8, 3, out, sizeof(out), &errors, 1024);
    CHECK(!strcmp(out, "{\"a\":1}") && errors == 1);
    frame("{\"a\": \"unterminated\xff{\"b\":2}", 27, 4, out, sizeof(out), &errors, 1024);
    CHECK(!strcmp(out, "{\"b\":2}") && errors == 1);
    /* after a NUL the rest looks like an open string until the next reset byte */
    frame("{\"a\x00\":1}\x01{}", 11, 100, out, sizeof(out), &errors, 1024);
    CHECK(!strcmp(out, "{}") && errors == 2);
    /* size limit */
    frame("{\"a\": \"0123456789\"}", 19, 5, out, sizeof(out), &errors, 10);
    CHECK(!strcmp(out, "|TOO_BIG"));
    frame("{\"a\": 1}", 8, 5, out, sizeof(out), &errors, 8);
    CHECK(!strcmp(out, "{\"a\": 1}"));
}

int main(void)
{
    RUN_TEST(test_scalars);
    RUN_TEST(test_strings);
    RUN_TEST(test_containers);
    RUN_TEST(test_depth);
    RUN_TEST(test_writer);
    RUN_TEST(test_stream);
    return test_exit();
}
