/* Raw file / block device: open-time probing and the blocking executor the
 * thread pool runs (also the fallback for what io_uring cannot do). */
#include "block/blk_int.h"

#include "util/iov.h"
#include "util/log.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>

#ifndef STATX_DIOALIGN
#define STATX_DIOALIGN 0x00002000U
#endif

/* Source of zeroes for WRITE_ZEROES fallbacks. Never written: it stays on the
 * shared zero page, so it costs no memory. */
static char zero_buf[BLK_BOUNCE_MAX] __attribute__((aligned(BLK_MAX_ALIGN)));

/* One bounce buffer per worker thread: no allocation per request. */
static __thread void *t_bounce;

/* ---- probing ---- */

/* Direct I/O alignment from statx (Linux 6.1+). Header versions disagree on
 * whether struct statx has the fields, so read the kernel's fixed layout from
 * a raw buffer: stx_mask at 0, stx_dio_mem_align at 0x98, stx_dio_offset_align
 * at 0x9c. Returns 0 and *align, or -errno. */
static int probe_dio_align(int fd, uint32_t *align, bool *unsupported)
{
    uint64_t raw[32];           /* struct statx is 256 bytes */
    uint32_t mask, mem, off;

    *unsupported = false;
    memset(raw, 0, sizeof(raw));
    if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, raw) < 0)
        return -errno;
    memcpy(&mask, (char *)raw, sizeof(mask));
    if (!(mask & STATX_DIOALIGN))
        return -EOPNOTSUPP;
    memcpy(&mem, (char *)raw + 0x98, sizeof(mem));
    memcpy(&off, (char *)raw + 0x9c, sizeof(off));
    if (!mem || !off) {
        *unsupported = true;
        return 0;
    }
    *align = mem > off ? mem : off;
    return 0;
}

int blk_probe_file(struct blk_drive *d, char *err, size_t errlen)
{
    struct stat st;
    int ret;

    if (fstat(d->fd, &st) < 0) {
        ret = -errno;
        snprintf(err, errlen, "drive %s: cannot stat '%s': %s", d->id, d->filename,
                 strerror(-ret));
        return ret;
    }
    if (S_ISREG(st.st_mode)) {
        struct statfs sfs;

        d->size = (uint64_t)st.st_size;
        d->host_bs = 512;
        /* Memory-backed files never wait for a device; with io_uring they
         * would still cost a thread hop per request (no RWF_NOWAIT). */
        d->mem_backed = !d->direct && d->aio == BLK_AIO_IO_URING && fstatfs(d->fd, &sfs) == 0 &&
                        (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC);
    } else if (S_ISBLK(st.st_mode)) {
        uint64_t size;
        int bs;

        d->is_bdev = true;
        if (ioctl(d->fd, BLKGETSIZE64, &size) < 0 || ioctl(d->fd, BLKSSZGET, &bs) < 0) {
            ret = -errno;
            snprintf(err, errlen, "drive %s: cannot get the size of '%s': %s", d->id,
                     d->filename, strerror(-ret));
            return ret;
        }
        if (bs < 512 || bs > (int)BLK_MAX_ALIGN || (bs & (bs - 1))) {
            snprintf(err, errlen, "drive %s: '%s' has an unsupported block size %d", d->id,
                     d->filename, bs);
            return -EINVAL;
        }
        d->size = size;
        d->host_bs = (uint32_t)bs;
    } else {
        snprintf(err, errlen, "drive %s: '%s' is not a regular file or block device", d->id,
                 d->filename);
        return -EINVAL;
    }

    if (d->direct) {
        uint32_t align = 0;
        bool unsupported;

        ret = probe_dio_align(d->fd, &align, &unsupported);
        if (ret == 0 && unsupported) {
            snprintf(err, errlen, "drive %s: cannot open '%s': O_DIRECT (cache=%s) is not "
                     "supported for this file", d->id, d->filename,
                     d->cache == BLK_CACHE_NONE ? "none" : "directsync");
            return -EINVAL;
        }
        if (ret < 0)    /* old kernel: assume the worst common case */
            align = d->is_bdev ? d->host_bs : 4096;
        if (align < d->host_bs && d->is_bdev)
            align = d->host_bs;
        if (align > BLK_MAX_ALIGN || (align & (align - 1))) {
            snprintf(err, errlen, "drive %s: '%s' needs an unsupported O_DIRECT alignment of %u",
                     d->id, d->filename, align);
            return -EINVAL;
        }
        d->dio_align = align;
    }

    /* Probe hole punching past the end of the file: no data is touched, and
     * the answer tells whether discarded ranges will read back as zeroes. */
    if (!d->is_bdev && !d->readonly) {
        if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      st.st_size, 4096) == 0)
            d->punch = BLK_FEAT_OK;
        else if (errno == EOPNOTSUPP || errno == ENOSYS)
            d->punch = BLK_FEAT_NO;
    }
    return 0;
}

/* ---- helpers shared with uring.c ---- */

bool blk_req_needs_sync(const struct blk_drive *d, const struct blk_req *req)
{
    if (d->cache == BLK_CACHE_UNSAFE)
        return false;
    return (req->flags & BLK_F_FUA) || !__atomic_load_n(&d->wce, __ATOMIC_RELAXED);
}

bool blk_req_bad_buffers(const struct blk_drive *d, const struct blk_req *req)
{
    return d->direct && !iov_is_aligned(req->iov, req->iovcnt, d->dio_align);
}

bool blk_req_bad_range(const struct blk_drive *d, const struct blk_req *req)
{
    return d->direct && ((req->offset | req->len) & (d->dio_align - 1));
}

void blk_iov_locate(const struct iovec *iov, unsigned cnt, uint64_t done,
                    unsigned *idx, size_t *off)
{
    unsigned i = 0;

    /* Skip whole elements (and empty ones) before byte done. */
    while (i < cnt && done >= iov[i].iov_len) {
        done -= iov[i].iov_len;
        i++;
    }
    *idx = i;
    *off = (size_t)done;
}

void *blk_bounce_alloc(size_t align, size_t len)
{
    void *p;

    if (align < 4096)
        align = 4096;
    if (posix_memalign(&p, align, len))
        return NULL;
    return p;
}

void blk_file_thread_cleanup(void)
{
    free(t_bounce);
    t_bounce = NULL;
}

/* ---- blocking primitives ---- */

/* Read up to len bytes at pos; fewer only at end of file. Bytes read or -errno. */
static ssize_t read_full(int fd, void *buf, size_t len, uint64_t pos)
{
    size_t got = 0;

    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(pos + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Write the whole buffer. *flags may hold RWF_DSYNC; when the kernel refuses
 * it, drop it and ask the caller for an fdatasync (*post_sync). */
static int write_full(int fd, const void *buf, size_t len, uint64_t pos, int *flags,
                      bool *post_sync)
{
    size_t done = 0;

    while (done < len) {
        struct iovec v = { .iov_base = (char *)buf + done, .iov_len = len - done };
        ssize_t r = pwritev2(fd, &v, 1, (off_t)(pos + done), *flags);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EOPNOTSUPP && *flags) {
                *flags = 0;
                *post_sync = true;
                continue;
            }
            return -errno;
        }
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

static void *thread_bounce(void)
{
    if (!t_bounce)
        t_bounce = blk_bounce_alloc(BLK_MAX_ALIGN, BLK_BOUNCE_MAX);
    return t_bounce;
}

/* Move bytes [pos, pos+n) between the file and iov (from byte ioff) through an
 * aligned buffer, in chunks of at most BLK_BOUNCE_MAX. The chunk covers the
 * aligned blocks around the range; partial head/tail blocks of a write are
 * read first (read-modify-write). RMWs are serialised per drive among
 * themselves; a plain write racing with an RMW of the same block is not (a
 * guest issuing overlapping writes concurrently gets no ordering anyway, but
 * the RMW may also restore the old bytes around its range: known limitation,
 * reachable only when the guest block size is below the O_DIRECT alignment).
 * iov == NULL on a write writes zeroes. */
static int bounce_rw(struct blk_drive *d, bool write, const struct iovec *iov, unsigned cnt,
                     uint64_t ioff, uint64_t pos, uint64_t n, int *flags, bool *post_sync)
{
    uint64_t a = d->dio_align;
    uint64_t end = pos + n;
    uint64_t a0 = pos & ~(a - 1);
    uint64_t a1 = (end + a - 1) & ~(a - 1);
    char *buf = thread_bounce();
    int ret = 0;

    if (!buf)
        return -ENOMEM;
    for (uint64_t c0 = a0; c0 < a1;) {
        size_t clen = a1 - c0 < BLK_BOUNCE_MAX ? (size_t)(a1 - c0) : BLK_BOUNCE_MAX;
        uint64_t lo = c0 > pos ? c0 : pos;
        uint64_t hi = c0 + clen < end ? c0 + clen : end;
        ssize_t got;

        if (!write) {
            got = read_full(d->fd, buf, clen, c0);
            if (got < 0)
                return (int)got;
            if ((uint64_t)got < hi - c0)
                return -EIO;        /* the file shrank under us */
            iov_from_buf(iov, cnt, ioff + (lo - pos), buf + (lo - c0), hi - lo);
        } else {
            bool head = lo > c0, tail = hi < c0 + clen;
            bool rmw = head || tail;
            struct stat st;
            off_t eof = 0;
            bool extends = false;

            if (rmw) {
                pthread_mutex_lock(&d->rmw_lock);
                /* A partial block past the end of the file must not grow it. */
                if (c0 + clen > blk_size_get(d)) {
                    if (fstat(d->fd, &st) < 0) {
                        ret = -errno;
                        goto unlock;
                    }
                    eof = st.st_size;
                    extends = c0 + clen > (uint64_t)eof;
                }
            }
            if (head) {
                got = read_full(d->fd, buf, a, c0);
                if (got < 0) {
                    ret = (int)got;
                    goto unlock;
                }
                memset(buf + got, 0, a - (size_t)got);
            }
            if (tail && !(head && clen == a)) {
                uint64_t tb = c0 + clen - a;
                got = read_full(d->fd, buf + (tb - c0), a, tb);
                if (got < 0) {
                    ret = (int)got;
                    goto unlock;
                }
                memset(buf + (tb - c0) + got, 0, a - (size_t)got);
            }
            if (iov)
                iov_to_buf(iov, cnt, ioff + (lo - pos), buf + (lo - c0), hi - lo);
            else
                memset(buf + (lo - c0), 0, hi - lo);
            ret = write_full(d->fd, buf, clen, c0, flags, post_sync);
            if (ret == 0 && extends && ftruncate(d->fd, eof) < 0)
                ret = -errno;
unlock:
            if (rmw)
                pthread_mutex_unlock(&d->rmw_lock);
            if (ret < 0)
                return ret;
        }
        c0 += clen;
    }
    return 0;
}

/* Straight to the file from the caller's buffers, from req->done_bytes on. */
static int plain_rw(struct blk_drive *d, struct blk_req *req, bool write, int *flags,
                    bool *post_sync)
{
    while (req->done_bytes < req->len) {
        unsigned i;
        size_t off;
        struct iovec one;
        const struct iovec *v;
        int n;
        ssize_t r;
        off_t pos = (off_t)(req->offset + req->done_bytes);

        blk_iov_locate(req->iov, req->iovcnt, req->done_bytes, &i, &off);
        if (i >= req->iovcnt)
            return -EIO;
        if (off) {
            one.iov_base = (char *)req->iov[i].iov_base + off;
            one.iov_len = req->iov[i].iov_len - off;
            v = &one;
            n = 1;
        } else {
            v = req->iov + i;
            n = req->iovcnt - i > IOV_MAX ? IOV_MAX : (int)(req->iovcnt - i);
        }
        r = write ? pwritev2(d->fd, v, n, pos, *flags) : preadv(d->fd, v, n, pos);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (write && errno == EOPNOTSUPP && *flags) {
                *flags = 0;
                *post_sync = true;
                continue;
            }
            return -errno;
        }
        if (r == 0)
            return -EIO;    /* end of file inside the drive: it shrank */
        req->done_bytes += (uint64_t)r;
    }
    return 0;
}

static int exec_rw(struct blk_drive *d, struct blk_req *req, bool write)
{
    int flags = write && blk_req_needs_sync(d, req) ? RWF_DSYNC : 0;
    bool post_sync = false;
    int ret;

    if (blk_req_bad_range(d, req) || blk_req_bad_buffers(d, req)) {
        if (!(req->stage & BLK_ST_BOUNCED)) {
            req->stage |= BLK_ST_BOUNCED;
            blk_stat_add(&d->stats.bounces, 1);
        }
        ret = bounce_rw(d, write, req->iov, req->iovcnt, req->done_bytes,
                        req->offset + req->done_bytes, req->len - req->done_bytes,
                        &flags, &post_sync);
        if (ret == 0)
            req->done_bytes = req->len;
    } else {
        ret = plain_rw(d, req, write, &flags, &post_sync);
    }
    if (ret == 0 && post_sync && fdatasync(d->fd) < 0)
        ret = -errno;
    return ret;
}

static int exec_flush(struct blk_drive *d)
{
    if (d->cache == BLK_CACHE_UNSAFE)
        return 0;
    return fdatasync(d->fd) < 0 ? -errno : 0;
}

static bool is_unsupported(int err)
{
    return err == EOPNOTSUPP || err == ENOSYS || err == ENOTTY;
}

/* Discard is advisory: "not supported" is success, and is remembered. */
static int exec_discard(struct blk_drive *d, const struct blk_req *req)
{
    if (!d->discard_unmap || blk_feat_get(&d->punch) == BLK_FEAT_NO || !req->len)
        return 0;
    if (!d->is_bdev) {
        if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)req->offset, (off_t)req->len) == 0) {
            blk_feat_set(&d->punch, BLK_FEAT_OK);
            return 0;
        }
    } else {
        /* BLKDISCARD wants whole logical blocks: discard only those fully inside. */
        uint64_t bs = d->host_bs;
        uint64_t s = (req->offset + bs - 1) & ~(bs - 1);
        uint64_t e = (req->offset + req->len) & ~(bs - 1);
        uint64_t range[2] = { s, e - s };

        if (s >= e)
            return 0;
        if (ioctl(d->fd, BLKDISCARD, range) == 0)
            return 0;
    }
    if (is_unsupported(errno)) {
        blk_feat_set(&d->punch, BLK_FEAT_NO);
        return 0;
    }
    return -errno;
}

/* Write zeroes by writing them, in chunks from the shared zero buffer. */
static int write_zero_data(struct blk_drive *d, uint64_t pos, uint64_t len)
{
    int flags = 0;
    bool post_sync = false;

    if (d->direct && ((pos | len) & (d->dio_align - 1)))
        return bounce_rw(d, true, NULL, 0, 0, pos, len, &flags, &post_sync);
    while (len) {
        size_t n = len < BLK_BOUNCE_MAX ? (size_t)len : BLK_BOUNCE_MAX;
        int ret = write_full(d->fd, zero_buf, n, pos, &flags, &post_sync);
        if (ret < 0)
            return ret;
        pos += n;
        len -= n;
    }
    return 0;
}

static int exec_write_zeroes(struct blk_drive *d, const struct blk_req *req)
{
    bool unmap = (req->flags & BLK_F_MAY_UNMAP) && d->discard_unmap;
    int ret;

    if (!d->is_bdev) {
        if (unmap && blk_feat_get(&d->punch) != BLK_FEAT_NO) {
            if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                          (off_t)req->offset, (off_t)req->len) == 0)
                goto done;
            if (!is_unsupported(errno))
                return -errno;
            blk_feat_set(&d->punch, BLK_FEAT_NO);
        }
        if (blk_feat_get(&d->zero_range) != BLK_FEAT_NO) {
            if (fallocate(d->fd, FALLOC_FL_ZERO_RANGE, (off_t)req->offset,
                          (off_t)req->len) == 0) {
                blk_feat_set(&d->zero_range, BLK_FEAT_OK);
                goto done;
            }
            if (!is_unsupported(errno))
                return -errno;
            blk_feat_set(&d->zero_range, BLK_FEAT_NO);
        }
    } else if (blk_feat_get(&d->zero_range) != BLK_FEAT_NO && !((req->offset | req->len) & 511)) {
        uint64_t range[2] = { req->offset, req->len };

        if (ioctl(d->fd, BLKZEROOUT, range) == 0)
            goto done;
        if (!is_unsupported(errno))
            return -errno;
        blk_feat_set(&d->zero_range, BLK_FEAT_NO);
    }
    ret = write_zero_data(d, req->offset, req->len);
    if (ret < 0)
        return ret;
done:
    if (blk_req_needs_sync(d, req) && fdatasync(d->fd) < 0)
        return -errno;
    return 0;
}

int blk_file_exec(struct blk_req *req)
{
    struct blk_drive *d = req->drive;

    switch (req->op) {
    case BLK_OP_READ:
        return exec_rw(d, req, false);
    case BLK_OP_WRITE:
        return exec_rw(d, req, true);
    case BLK_OP_FLUSH:
        return exec_flush(d);
    case BLK_OP_DISCARD:
        return exec_discard(d, req);
    case BLK_OP_WRITE_ZEROES:
        return exec_write_zeroes(d, req);
    }
    return -EINVAL;
}
