#include "util/opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void opts_free(struct opts *o)
{
    for (unsigned i = 0; i < o->n; i++) {
        free(o->kv[i].key);
        free(o->kv[i].value);
    }
    o->n = 0;
}

/* Read one element up to an unescaped ',' into a fresh string; ",," -> ','. */
static char *read_elem(const char **p)
{
    const char *s = *p;
    size_t len = strlen(s);
    char *out = malloc(len + 1), *d = out;

    if (!out)
        return NULL;
    while (*s) {
        if (*s == ',') {
            if (s[1] == ',') {
                *d++ = ',';
                s += 2;
                continue;
            }
            s++;
            break;
        }
        *d++ = *s++;
    }
    *d = 0;
    *p = s;
    return out;
}

int opts_parse(struct opts *o, const char *str, const char *implied_key, char *err, size_t errlen)
{
    const char *p = str;
    bool first = true;

    memset(o, 0, sizeof(*o));
    if (!str || !*str) {
        seterr(err, errlen, "empty option string");
        return -EINVAL;
    }
    while (*p || first) {
        char *elem = read_elem(&p), *eq, *key, *val;

        if (!elem)
            goto nomem;
        eq = strchr(elem, '=');
        if (!eq) {
            if (!first || !implied_key) {
                seterr(err, errlen, "'%s' is not of the form key=value", elem);
                free(elem);
                goto fail;
            }
            key = strdup(implied_key);
            val = elem;
        } else {
            *eq = 0;
            key = strdup(elem);
            val = strdup(eq + 1);
            free(elem);
        }
        if (!key || !val) {
            free(key);
            free(val);
            goto nomem;
        }
        if (!*key) {
            seterr(err, errlen, "empty key before '=%s'", val);
            free(key);
            free(val);
            goto fail;
        }
        for (unsigned i = 0; i < o->n; i++) {
            if (!strcmp(o->kv[i].key, key)) {
                seterr(err, errlen, "'%s' given twice", key);
                free(key);
                free(val);
                goto fail;
            }
        }
        if (o->n == OPTS_MAX) {
            seterr(err, errlen, "too many keys (at most %d)", OPTS_MAX);
            free(key);
            free(val);
            goto fail;
        }
        o->kv[o->n++] = (struct opt_kv){ .key = key, .value = val };
        first = false;
    }
    return 0;
nomem:
    seterr(err, errlen, "out of memory");
fail:
    opts_free(o);
    return -EINVAL;
}

int opts_add(struct opts *o, const char *key, const char *value, char *err, size_t errlen)
{
    char *k, *v;

    for (unsigned i = 0; i < o->n; i++) {
        if (!strcmp(o->kv[i].key, key)) {
            seterr(err, errlen, "'%s' given twice", key);
            return -EINVAL;
        }
    }
    if (o->n == OPTS_MAX) {
        seterr(err, errlen, "too many keys (at most %d)", OPTS_MAX);
        return -EINVAL;
    }
    k = strdup(key);
    v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    o->kv[o->n++] = (struct opt_kv){ .key = k, .value = v };
    return 0;
}

const char *opts_get(struct opts *o, const char *key)
{
    for (unsigned i = 0; i < o->n; i++) {
        if (!strcmp(o->kv[i].key, key)) {
            o->kv[i].used = true;
            return o->kv[i].value;
        }
    }
    return NULL;
}

const char *opts_first_unused(const struct opts *o)
{
    for (unsigned i = 0; i < o->n; i++)
        if (!o->kv[i].used)
            return o->kv[i].key;
    return NULL;
}

int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "1" };
    static const char *const no[] = { "off", "no", "false", "0" };

    for (unsigned i = 0; i < 4; i++) {
        if (!strcmp(s, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(s, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!*s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    if (!*s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: return -EINVAL;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

int opts_get_bool(struct opts *o, const char *key, bool *out, const char *what, char *err, size_t errlen)
{
    const char *v = opts_get(o, key);

    if (!v)
        return 0;
    if (parse_bool(v, out) < 0) {
        seterr(err, errlen, "%s: %s=%s: expected on or off", what, key, v);
        return -EINVAL;
    }
    return 1;
}

int opts_get_u64(struct opts *o, const char *key, uint64_t min, uint64_t max, uint64_t *out,
                 const char *what, char *err, size_t errlen)
{
    const char *v = opts_get(o, key);
    uint64_t x;

    if (!v)
        return 0;
    if (parse_u64(v, &x) < 0 || x < min || x > max) {
        seterr(err, errlen, "%s: %s=%s: expected a number from %llu to %llu", what, key, v,
               (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = x;
    return 1;
}

int opts_get_size(struct opts *o, const char *key, uint64_t *out, const char *what, char *err, size_t errlen)
{
    const char *v = opts_get(o, key);

    if (!v)
        return 0;
    if (parse_size(v, out) < 0) {
        seterr(err, errlen, "%s: %s=%s: expected a size such as 1073741824, 512M or 1G", what, key, v);
        return -EINVAL;
    }
    return 1;
}

int opts_get_enum(struct opts *o, const char *key, const char *const *choices, int *out,
                  const char *what, char *err, size_t errlen)
{
    const char *v = opts_get(o, key);
    char list[256] = "";

    if (!v)
        return 0;
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(v, choices[i])) {
            *out = i;
            return 1;
        }
        if (i)
            strncat(list, "|", sizeof(list) - strlen(list) - 1);
        strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
    }
    seterr(err, errlen, "%s: %s=%s: expected one of %s", what, key, v, list);
    return -EINVAL;
}
