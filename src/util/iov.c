#include "util/iov.h"

#include <stdint.h>
#include <string.h>

size_t iov_size(const struct iovec *iov, unsigned cnt)
{
    size_t total = 0;

    for (unsigned i = 0; i < cnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - total)
            return SIZE_MAX;
        total += iov[i].iov_len;
    }
    return total;
}

/* Walk the iov from byte offset off, calling fn on each contiguous piece. */
static size_t iov_walk(const struct iovec *iov, unsigned cnt, size_t off, size_t len,
                       void (*fn)(void *iov_base, size_t done, size_t n, void *arg), void *arg)
{
    size_t done = 0;

    for (unsigned i = 0; i < cnt && done < len; i++) {
        size_t l = iov[i].iov_len;

        if (off >= l) {
            off -= l;
            continue;
        }
        size_t n = l - off;
        if (n > len - done)
            n = len - done;
        fn((char *)iov[i].iov_base + off, done, n, arg);
        done += n;
        off = 0;
    }
    return done;
}

static void to_buf_fn(void *base, size_t done, size_t n, void *arg)
{
    memcpy((char *)arg + done, base, n);
}

static void from_buf_fn(void *base, size_t done, size_t n, void *arg)
{
    memcpy(base, (const char *)arg + done, n);
}

static void memset_fn(void *base, size_t done, size_t n, void *arg)
{
    (void)done;
    memset(base, *(int *)arg, n);
}

size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t off, void *buf, size_t len)
{
    return iov_walk(iov, cnt, off, len, to_buf_fn, buf);
}

size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t off, const void *buf, size_t len)
{
    return iov_walk(iov, cnt, off, len, from_buf_fn, (void *)buf);
}

size_t iov_memset(const struct iovec *iov, unsigned cnt, size_t off, int c, size_t len)
{
    return iov_walk(iov, cnt, off, len, memset_fn, &c);
}

int iov_slice(const struct iovec *src, unsigned src_cnt, size_t off, size_t len,
              struct iovec *dst, unsigned dst_cap)
{
    unsigned n = 0;

    for (unsigned i = 0; i < src_cnt && len > 0; i++) {
        size_t l = src[i].iov_len;

        if (off >= l) {
            off -= l;
            continue;
        }
        if (n == dst_cap)
            return -1;
        size_t take = l - off;
        if (take > len)
            take = len;
        dst[n].iov_base = (char *)src[i].iov_base + off;
        dst[n].iov_len = take;
        n++;
        len -= take;
        off = 0;
    }
    return (int)n;
}

int iov_is_aligned(const struct iovec *iov, unsigned cnt, size_t align)
{
    for (unsigned i = 0; i < cnt; i++)
        if (((uintptr_t)iov[i].iov_base | iov[i].iov_len) & (align - 1))
            return 0;
    return 1;
}
