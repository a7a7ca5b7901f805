/* Fault injection for tests: rules that make matching requests of one drive
 * fail with an errno instead of being done (syntax in blk.h and
 * docs/robustness.md). A filter in blk_submit, ahead of every driver. */
#include "block/blk_int.h"

#include <inttypes.h>
#include <stdio.h>

#include "util/opts.h"

#define RULES_MAX_LEN 4096
#define SECTOR 512u

static const struct {
    const char *name;
    int err;
} errnos[] = {
    { "eio", EIO }, { "enospc", ENOSPC }, { "edquot", EDQUOT }, { "enodata", ENODATA },
    { "eremoteio", EREMOTEIO }, { "enomedium", ENOMEDIUM }, { "enomem", ENOMEM },
    { "einval", EINVAL }, { "eagain", EAGAIN }, { "ebusy", EBUSY }, { "erofs", EROFS },
    { "eacces", EACCES }, { "eperm", EPERM }, { "etimedout", ETIMEDOUT }, { "edom", EDOM },
    { "ebade", EBADE }, { "enodev", ENODEV },
};

#define OPS_ALL ((1u << BLK_OP_READ) | (1u << BLK_OP_WRITE) | (1u << BLK_OP_FLUSH) | \
                 (1u << BLK_OP_DISCARD) | (1u << BLK_OP_WRITE_ZEROES))

static const struct {
    const char *name;
    uint32_t ops;
} op_names[] = {
    { "read", 1u << BLK_OP_READ }, { "write", 1u << BLK_OP_WRITE },
    { "flush", 1u << BLK_OP_FLUSH }, { "discard", 1u << BLK_OP_DISCARD },
    { "write-zeroes", 1u << BLK_OP_WRITE_ZEROES }, { "any", OPS_ALL },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *errno_name(int err)
{
    for (unsigned i = 0; i < N(errnos); i++)
        if (errnos[i].err == err)
            return errnos[i].name;
    return "?";
}

static const char *ops_name(uint32_t ops)
{
    for (unsigned i = 0; i < N(op_names); i++)
        if (op_names[i].ops == ops)
            return op_names[i].name;
    return "?";
}

/* "A[+B]": a start and an optional length (size suffixes when bytes). */
static int parse_range(char *v, bool bytes, uint64_t *start, uint64_t *len)
{
    char *plus = strchr(v, '+');
    int ret;

    *len = 1;
    if (plus) {
        *plus = 0;
        ret = bytes ? parse_size(plus + 1, len) : parse_u64(plus + 1, len);
        if (ret < 0 || !*len)
            return -EINVAL;
    }
    ret = bytes ? parse_size(v, start) : parse_u64(v, start);
    if (ret < 0)
        return -EINVAL;
    if (!bytes) {
        if (*start > UINT64_MAX / SECTOR || *len > UINT64_MAX / SECTOR)
            return -ERANGE;
        *start *= SECTOR;
        *len *= SECTOR;
    }
    return *len > UINT64_MAX - *start ? -ERANGE : 0;
}

/* One rule (a writable copy); the message names the rule as `what`. */
static int parse_rule(char *s, const char *what, struct blk_inject_rule *r, char *err, size_t errlen)
{
    char *save = NULL, *f;
    bool have_range = false, have_count = false;
    unsigned i;

    memset(r, 0, sizeof(*r));
    r->remaining = 1;
    f = strtok_r(s, ":", &save);
    for (i = 0; f && i < N(op_names); i++)
        if (!strcmp(f, op_names[i].name))
            break;
    if (!f || i == N(op_names)) {
        snprintf(err, errlen, "%s: '%s' is not an operation (read, write, flush, discard, "
                 "write-zeroes or any)", what, f ? f : "");
        return -EINVAL;
    }
    r->ops = op_names[i].ops;
    f = strtok_r(NULL, ":", &save);
    for (i = 0; f && i < N(errnos); i++)
        if (!strcmp(f, errnos[i].name))
            break;
    if (!f) {
        snprintf(err, errlen, "%s: no error after the operation (e.g. write:enospc)", what);
        return -EINVAL;
    }
    if (i == N(errnos)) {
        snprintf(err, errlen, "%s: '%s' is not an error to inject (eio, enospc, edquot, enodata, "
                 "eremoteio, enomedium, enomem, einval, eagain, ebusy, erofs, eacces, eperm, "
                 "etimedout, edom, ebade or enodev)", what, f);
        return -EINVAL;
    }
    r->err = errnos[i].err;
    while ((f = strtok_r(NULL, ":", &save))) {
        char *v = strchr(f, '=');
        int ret;

        if (!v) {
            snprintf(err, errlen, "%s: '%s' is not of the form key=value", what, f);
            return -EINVAL;
        }
        *v++ = 0;
        if (!strcmp(f, "sector") || !strcmp(f, "offset")) {
            bool bytes = f[0] == 'o';
            char shown[80];

            snprintf(shown, sizeof(shown), "%s", v);    /* parse_range cuts v at '+' */

            if (have_range) {
                snprintf(err, errlen, "%s: give one sector= or offset=", what);
                return -EINVAL;
            }
            have_range = true;
            ret = parse_range(v, bytes, &r->start, &r->len);
            if (ret < 0) {
                snprintf(err, errlen, "%s: %s=%s: %s", what, f, shown,
                         ret == -ERANGE ? "beyond 2^64 bytes"
                         : bytes ? "expected BYTES[+LEN] (e.g. 1M+4k), LEN > 0"
                                 : "expected SECTOR[+COUNT] in 512-byte sectors, COUNT > 0");
                return -EINVAL;
            }
        } else if (!strcmp(f, "count")) {
            if (have_count) {
                snprintf(err, errlen, "%s: count= given twice", what);
                return -EINVAL;
            }
            have_count = true;
            if (!strcmp(v, "inf")) {
                r->remaining = UINT64_MAX;
            } else if (parse_u64(v, &r->remaining) < 0 || !r->remaining ||
                       r->remaining == UINT64_MAX) {
                snprintf(err, errlen, "%s: count=%s: expected a number >= 1, or inf", what, v);
                return -EINVAL;
            }
        } else {
            snprintf(err, errlen, "%s: unknown key '%s' (valid keys: sector, offset, count)", what, f);
            return -EINVAL;
        }
    }
    if (have_range && r->ops == (1u << BLK_OP_FLUSH)) {
        snprintf(err, errlen, "%s: a flush has no range: drop sector=/offset=", what);
        return -EINVAL;
    }
    return 0;
}

static int parse_rules(const char *rules, struct blk_inject_rule *out, unsigned *n, char *err,
                       size_t errlen)
{
    char *copy, *rule, *save = NULL;
    size_t len;
    int ret = 0;

    *n = 0;
    if (!rules || !rules[0])
        return 0;
    len = strlen(rules);
    if (len > RULES_MAX_LEN) {
        snprintf(err, errlen, "inject: rules too long (%zu characters, at most %u)", len, RULES_MAX_LEN);
        return -EINVAL;
    }
    copy = strdup(rules);
    if (!copy) {
        snprintf(err, errlen, "inject: out of memory");
        return -ENOMEM;
    }
    if (rules[0] == ';' || rules[len - 1] == ';' || strstr(rules, ";;")) {
        snprintf(err, errlen, "inject: empty rule in '%.64s' (rules are separated by one ';')", rules);
        ret = -EINVAL;
        goto out;
    }
    for (rule = strtok_r(copy, ";", &save); rule; rule = strtok_r(NULL, ";", &save)) {
        char what[112];

        if (*n == BLK_INJECT_MAX) {
            snprintf(err, errlen, "inject: more than %d rules", BLK_INJECT_MAX);
            ret = -EINVAL;
            goto out;
        }
        snprintf(what, sizeof(what), "inject: rule %u '%.64s'", *n + 1, rule);
        ret = parse_rule(rule, what, &out[*n], err, errlen);
        if (ret < 0)
            goto out;
        (*n)++;
    }
out:
    free(copy);
    return ret;
}

int blk_inject_check(const char *rules, char *err, size_t errlen)
{
    struct blk_inject_rule tmp[BLK_INJECT_MAX];
    unsigned n;

    return parse_rules(rules, tmp, &n, err, errlen);
}

int blk_set_inject(struct blk_drive *d, const char *rules, char *err, size_t errlen)
{
    struct blk_inject_rule tmp[BLK_INJECT_MAX];
    unsigned n;
    int ret = parse_rules(rules, tmp, &n, err, errlen);

    if (ret < 0)
        return ret;
    pthread_mutex_lock(&d->inject_lock);
    memcpy(d->inject, tmp, n * sizeof(tmp[0]));
    __atomic_store_n(&d->ninject, n, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&d->inject_lock);
    return 0;
}

unsigned blk_get_inject(struct blk_drive *d, struct blk_inject_info *out, unsigned max)
{
    unsigned n;

    pthread_mutex_lock(&d->inject_lock);
    n = d->ninject;
    for (unsigned i = 0; i < n && i < max; i++) {
        const struct blk_inject_rule *r = &d->inject[i];
        char range[64] = "", count[32];

        if (r->len)
            snprintf(range, sizeof(range), ":offset=%llu+%llu", (unsigned long long)r->start,
                     (unsigned long long)r->len);
        if (r->remaining == UINT64_MAX)
            snprintf(count, sizeof(count), "inf");
        else    /* the count given: what is left plus what was spent */
            snprintf(count, sizeof(count), "%" PRIu64, r->remaining + r->hits);
        snprintf(out[i].rule, sizeof(out[i].rule), "%s:%s%s:count=%s", ops_name(r->ops),
                 errno_name(r->err), range, count);
        out[i].hits = r->hits;
        out[i].remaining = r->remaining;
    }
    pthread_mutex_unlock(&d->inject_lock);
    return n;
}

static bool rule_matches(const struct blk_inject_rule *r, const struct blk_req *req)
{
    if (!(r->ops & (1u << req->op)) || !r->remaining)
        return false;
    if (!r->len)
        return true;
    if (req->op == BLK_OP_FLUSH || !req->len)
        return false;
    /* overlap; start + len cannot wrap (checked when parsed, and by blk_submit) */
    return req->offset < r->start + r->len && r->start < req->offset + req->len;
}

int blk_inject_match(struct blk_drive *d, const struct blk_req *req)
{
    int err = 0;

    if (!__atomic_load_n(&d->ninject, __ATOMIC_ACQUIRE))
        return 0;
    pthread_mutex_lock(&d->inject_lock);
    for (unsigned i = 0; i < d->ninject; i++) {
        struct blk_inject_rule *r = &d->inject[i];

        if (!rule_matches(r, req))
            continue;
        if (r->remaining != UINT64_MAX)
            r->remaining--;
        r->hits++;
        err = r->err;
        break;
    }
    pthread_mutex_unlock(&d->inject_lock);
    return err;
}
