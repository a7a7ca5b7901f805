/* Logging: one global sink (stderr by default, or a file), level filter.
 * Thread-safe: each message is one write(2). */
#ifndef VSCSI_UTIL_LOG_H
#define VSCSI_UTIL_LOG_H

#include <stddef.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Send messages to the file at path from now on (created 0640, appended to;
 * each line gets a UTC timestamp). 0, or -errno with a message in err. */
int log_open_file(const char *path, char *err, size_t errlen);
/* Open the log file again under its name (after logrotate moved it away; on
 * SIGHUP). Messages keep going to the old file when that fails. 0 (also when
 * logging to stderr), or -errno with a message in err. */
int log_reopen(char *err, size_t errlen);
/* Back to stderr, closing the file (tests, shutdown). */
void log_close_file(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

/* Rate-limited warning for guest-triggerable conditions: a hostile guest must not
 * be able to flood the host log. */
#define log_guest(...) log_msg_limited(__VA_ARGS__)
void log_msg_limited(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
