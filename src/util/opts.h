/* QEMU-style "key=value,key=value" option strings (",," escapes a comma).
 * A first element without '=' is stored under the implied key given to
 * opts_parse() (e.g. "driver" for --device scsi-hd,...). */
#ifndef VSCSI_UTIL_OPTS_H
#define VSCSI_UTIL_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTS_MAX 32

struct opt_kv {
    char *key;
    char *value;
    bool used;          /* set by the opts_get* accessors, for unknown-key checks */
};

struct opts {
    unsigned n;
    struct opt_kv kv[OPTS_MAX];
};

/* Returns 0 or -EINVAL with a message in err. Duplicate keys are an error. */
int opts_parse(struct opts *o, const char *str, const char *implied_key, char *err, size_t errlen);
void opts_free(struct opts *o);
/* Append key=value (copies both) to o, which starts zeroed or from opts_parse:
 * for callers that build options from another syntax (QMP arguments). 0, or
 * -EINVAL (duplicate key, too many keys) / -ENOMEM with a message in err. */
int opts_add(struct opts *o, const char *key, const char *value, char *err, size_t errlen);

/* Lookup; marks the key used. NULL when absent. */
const char *opts_get(struct opts *o, const char *key);

/* Typed accessors: return 1 when present and valid, 0 when absent (out untouched),
 * -EINVAL when present but invalid (message in err, naming the option `what`). */
int opts_get_bool(struct opts *o, const char *key, bool *out, const char *what, char *err, size_t errlen);
int opts_get_u64(struct opts *o, const char *key, uint64_t min, uint64_t max, uint64_t *out,
                 const char *what, char *err, size_t errlen);
/* Sizes accept suffixes k, M, G, T (powers of 1024) and optional trailing 'B'. */
int opts_get_size(struct opts *o, const char *key, uint64_t *out, const char *what, char *err, size_t errlen);
/* value must be one of the NULL-terminated choices; *out is its index. */
int opts_get_enum(struct opts *o, const char *key, const char *const *choices, int *out,
                  const char *what, char *err, size_t errlen);

/* First key never looked up, or NULL. Call after all accessors to reject unknown keys. */
const char *opts_first_unused(const struct opts *o);

/* Standalone parsers used by opts and by QMP argument handling. 0 or -EINVAL. */
int parse_bool(const char *s, bool *out);
int parse_u64(const char *s, uint64_t *out);          /* decimal or 0x hex */
int parse_size(const char *s, uint64_t *out);

#endif
