#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum log_level g_log_level = LOG_INFO;

void log_set_level(enum log_level level) { g_log_level = level; }
enum log_level log_get_level(void) { return g_log_level; }

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    static const char *const names[] = { "error", "warning", "info", "debug" };
    char buf[1024];

    vsnprintf(buf, sizeof(buf), fmt, ap);
    fprintf(stderr, "vscsid: %s: %s\n", names[level], buf);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    if (level > g_log_level)
        return;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

/* At most 10 messages per second; the rest are counted and summarised. */
void log_msg_limited(const char *fmt, ...)
{
    static __thread time_t window;
    static __thread unsigned count, dropped;
    time_t now = time(NULL);
    va_list ap;

    if (now != window) {
        if (dropped)
            log_msg(LOG_WARN, "%u guest-triggered messages suppressed", dropped);
        window = now;
        count = dropped = 0;
    }
    if (++count > 10) {
        dropped++;
        return;
    }
    va_start(ap, fmt);
    log_vmsg(LOG_WARN, fmt, ap);
    va_end(ap);
}
