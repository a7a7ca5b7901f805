/* Block layer: drives (an open image or device) and per-thread I/O contexts.
 * Knows nothing of SCSI or virtio. All offsets and lengths are in bytes.
 *
 * Threading: a struct blk_ctx belongs to one thread (one event loop) and owns
 * that thread's io_uring and completion eventfds. A drive may be used from
 * several contexts at once; drive state changed at run time (write cache,
 * size) is read with relaxed atomics on the I/O path. */
#ifndef VSCSI_BLOCK_BLK_H
#define VSCSI_BLOCK_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ev_loop;
struct blk_drive;
struct blk_ctx;

enum blk_cache_mode {
    /* QEMU semantics (docs "cache" option):   O_DIRECT  flush honoured  WCE shown */
    BLK_CACHE_WRITEBACK,    /*                  no        yes             on (default) */
    BLK_CACHE_NONE,         /*                  yes       yes             on */
    BLK_CACHE_WRITETHROUGH, /*                  no        every write     off */
    BLK_CACHE_DIRECTSYNC,   /*                  yes       every write     off */
    BLK_CACHE_UNSAFE,       /*                  no        ignored         on */
};

enum blk_aio { BLK_AIO_IO_URING, BLK_AIO_THREADS };

/* FILE: an image file or block device. NULL: no storage (reads return
 * zeroes, writes are dropped). MEMORY: size bytes of anonymous memory (a
 * memfd, so it is sparse, can be resized, discarded and searched for data
 * like a file on tmpfs); the data lives as long as the drive. */
enum blk_driver_kind { BLK_DRIVER_FILE, BLK_DRIVER_NULL, BLK_DRIVER_MEMORY };

/* What to do when a request fails (QEMU's werror/rerror, BlockdevOnError).
 * The policy belongs to whoever owns the drive, as QEMU's belongs to the
 * BlockBackend (it stays when the medium changes); the block layer parses
 * it and decides the action (blk_error_action); the device model above
 * carries it out. */
enum blk_error_policy {
    BLK_ERR_AUTO,       /* the default: enospc for writes, report for reads */
    BLK_ERR_REPORT,     /* the guest gets the error */
    BLK_ERR_IGNORE,     /* the request counts as done */
    BLK_ERR_STOP,       /* hold the request, stop the VM until `cont` */
    BLK_ERR_ENOSPC,     /* stop on ENOSPC, report anything else (writes only) */
};
/* QEMU's BlockErrorAction */
enum blk_error_action { BLK_ACTION_REPORT, BLK_ACTION_IGNORE, BLK_ACTION_STOP };
/* QEMU's BlockDeviceIoStatus (kept by the drive's owner): failed/nospace
 * after an error that stopped, ok again after cont. */
enum blk_io_status { BLK_IOSTATUS_OK, BLK_IOSTATUS_FAILED, BLK_IOSTATUS_NOSPACE };

struct blk_opts {
    const char *id;             /* name used in messages */
    enum blk_driver_kind driver;
    const char *filename;       /* file or block device (BLK_DRIVER_FILE) */
    const char *format;         /* "raw" (NULL = raw) */
    enum blk_cache_mode cache;
    bool readonly;
    bool discard_unmap;         /* discard=unmap: pass discards to the file */
    enum blk_aio aio;
    uint64_t size;              /* BLK_DRIVER_NULL, _MEMORY: size in bytes */
    bool null_no_read_zeroes;   /* BLK_DRIVER_NULL: leave read buffers untouched
                                 * (benchmarks of the device path; QEMU's
                                 * null-co read-zeroes=off) */
    enum blk_error_policy werror, rerror;   /* checked by blk_open; kept by the owner */
    const char *inject;         /* fault injection rules (blk_set_inject), NULL = none */
};

/* Open a drive. Returns 0, or -errno with a one-line human message in err. */
int blk_open(const struct blk_opts *opts, struct blk_drive **out, char *err, size_t errlen);
/* Close; all requests must have completed. A writable drive (but cache=unsafe)
 * is flushed first (fdatasync), as QEMU flushes an image it closes. */
void blk_close(struct blk_drive *d);

const char *blk_id(const struct blk_drive *d);
uint64_t blk_size(const struct blk_drive *d);          /* bytes */
bool blk_is_readonly(const struct blk_drive *d);
bool blk_can_discard(const struct blk_drive *d);       /* discard=unmap and supported */
/* Discarded ranges read back as zeroes (true for files with hole punching). */
bool blk_discard_zeroes(const struct blk_drive *d);
/* Minimum alignment of buffers/offsets for this drive's I/O (1 when not O_DIRECT). */
uint32_t blk_dio_align(const struct blk_drive *d);
/* Logical block size of the underlying storage (512 for regular files). */
uint32_t blk_host_block_size(const struct blk_drive *d);
/* Volatile write cache as seen by the guest (WCE). */
bool blk_write_cache(const struct blk_drive *d);
void blk_set_write_cache(struct blk_drive *d, bool on);
/* Re-read the size (after an external resize) or truncate to new_size (0 = just re-read).
 * Returns 0 or -errno. */
int blk_resize(struct blk_drive *d, uint64_t new_size);

/* Error policy (src/block/policy.c). The action for a failed request: a read
 * (is_read) follows rerror, everything else (write, flush, discard, write
 * zeroes) werror; err is a positive errno. */
enum blk_error_action blk_error_action(enum blk_error_policy werror, enum blk_error_policy rerror,
                                       bool is_read, int err);
/* AUTO resolved: enospc for writes, report for reads. */
enum blk_error_policy blk_error_policy_resolve(enum blk_error_policy p, bool is_read);
/* Names as on the command line and in QMP ("report", "stop", ...); parse: 0
 * or -EINVAL (enospc is a write policy only). */
const char *blk_error_policy_name(enum blk_error_policy p);
const char *blk_error_action_name(enum blk_error_action a);
const char *blk_io_status_name(enum blk_io_status s);
int blk_error_policy_parse(const char *s, bool is_read, enum blk_error_policy *out);
/* Fault injection (src/block/inject.c), for tests: requests matching a rule
 * fail with its errno instead of being done, `count` times. Syntax (also in
 * docs/robustness.md):
 *   RULES := RULE[;RULE...]      RULE := OP:ERRNO[:KEY=VALUE...]
 *   OP    := read|write|flush|discard|write-zeroes|any
 *   ERRNO := eio|enospc|edquot|enodata|eremoteio|enomedium|enomem|einval|
 *            eagain|ebusy|erofs|eacces|eperm|etimedout|edom|ebade|enodev
 *   sector=S[+N]       only requests overlapping 512-byte sectors S..S+N-1 (N 1)
 *   offset=B[+LEN]     the same in bytes (suffixes k, M, G, T; LEN default 1)
 *   count=N|inf        how many requests fail before the rule is spent (1)
 * A request is checked against the rules in order; the first live rule that
 * matches fails it. */
#define BLK_INJECT_MAX 16
/* Check rules without applying them. 0 or -EINVAL with a message. */
int blk_inject_check(const char *rules, char *err, size_t errlen);
/* Replace the drive's rules (NULL or "" clears them). 0 or -EINVAL. */
int blk_set_inject(struct blk_drive *d, const char *rules, char *err, size_t errlen);
struct blk_inject_info {
    char rule[128];             /* canonical form: OP:ERRNO[:offset=B+LEN][:count=N|inf] */
    uint64_t hits;              /* requests failed so far */
    uint64_t remaining;         /* UINT64_MAX: no limit */
};
/* The current rules (at most max); returns how many there are. */
unsigned blk_get_inject(struct blk_drive *d, struct blk_inject_info *out, unsigned max);

/* Per-drive counters, summed over all contexts. Operations are counted when
 * they complete (errors included); bytes only for successful reads/writes. */
struct blk_stats {
    uint64_t reads, writes, flushes, discards, write_zeroes;
    uint64_t read_bytes, write_bytes;
    uint64_t errors;            /* requests completed with ret < 0 */
    uint64_t bounces;           /* requests copied through an aligned buffer (O_DIRECT) */
    uint64_t inline_ops;        /* requests done inline in the loop (memory-backed files) */
    /* Sum of latencies, blk_submit to completion (CLOCK_MONOTONIC), in ns. */
    uint64_t read_ns, write_ns, flush_ns, discard_ns, write_zeroes_ns;
};
void blk_get_stats(const struct blk_drive *d, struct blk_stats *out);

/* Worker threads of the shared pool used by aio=threads and for what io_uring
 * cannot do (default 4). Takes effect the next time the pool starts. */
void blk_set_pool_size(unsigned nthreads);

/* Report whether [offset, offset+len) is allocated: *mapped = true when the
 * first byte is data; *run = length of the run of the same kind (>= 1 byte,
 * <= len). Uses SEEK_DATA/SEEK_HOLE; drives without holes report mapped. 0 or -errno. */
int blk_get_status(struct blk_drive *d, uint64_t offset, uint64_t len, bool *mapped, uint64_t *run);

enum blk_op {
    BLK_OP_READ,
    BLK_OP_WRITE,
    BLK_OP_FLUSH,           /* offset/len ignored */
    BLK_OP_DISCARD,         /* advisory: may do nothing when discard is off */
    BLK_OP_WRITE_ZEROES,    /* must leave zeroes; BLK_F_MAY_UNMAP allows deallocation */
};

#define BLK_F_FUA        (1u << 0)  /* write reaches stable storage before completion */
#define BLK_F_MAY_UNMAP  (1u << 1)

struct blk_req;
typedef void blk_done_cb(struct blk_req *req, int ret);

struct blk_req {
    enum blk_op op;
    uint32_t flags;
    uint64_t offset;
    uint64_t len;               /* READ/WRITE: must equal iov_size(iov, iovcnt) */
    const struct iovec *iov;    /* guest memory; read/written in place */
    unsigned iovcnt;
    blk_done_cb *done_cb;       /* ret: 0, or -errno (a short transfer is -EIO) */
    void *opaque;
    /* private to the block layer */
    struct blk_drive *drive;
    void *priv;
    uint64_t done_bytes;
    uint64_t start_ns;          /* for the latency totals in blk_stats */
    int stage;
};

/* Per-thread I/O context: registers its completion fds on loop. */
struct blk_ctx *blk_ctx_new(struct ev_loop *loop, char *err, size_t errlen);
/* All requests must have completed. May be called from a completion callback. */
void blk_ctx_free(struct blk_ctx *ctx);
/* Number of requests submitted and not yet completed (any thread may ask). */
unsigned blk_ctx_inflight(const struct blk_ctx *ctx);
/* Drives whose file ctx's io_uring holds registered (requests name a slot of
 * the ring's file table, not the fd); for statistics and tests. */
unsigned blk_ctx_fixed_files(const struct blk_ctx *ctx);
/* io_uring_submit calls of ctx that handed SQEs to the kernel; for
 * statistics and tests (how requests were batched). */
uint64_t blk_ctx_submit_calls(const struct blk_ctx *ctx);
/* The calling thread issues its requests through ctx: blk_submit with a
 * context that belongs to another thread uses this one instead, so that the
 * completion runs on the thread that issued the request. */
void blk_ctx_bind_thread(struct blk_ctx *ctx);
/* enter(opaque) before and leave(opaque) after each batch of completion
 * callbacks of ctx (e.g. to take a lock that the callbacks need once per
 * batch rather than once per request). */
void blk_ctx_set_guard(struct blk_ctx *ctx, void (*enter)(void *opaque), void (*leave)(void *opaque),
                       void *opaque);

/* Submit. The completion callback always runs later from ctx's loop (or from
 * the calling thread's context, see blk_ctx_bind_thread), never from
 * inside blk_submit. Returns 0, or -errno when the request was not accepted
 * (done_cb is then not called): -EINVAL for a range beyond the drive size or
 * len != iov_size, -EROFS for a write-type op on a readonly drive (callers
 * should check first; the block layer re-checks). */
int blk_submit(struct blk_ctx *ctx, struct blk_drive *d, struct blk_req *req);

/* Submit everything queued so far (batching: blk_submit may delay the
 * io_uring_submit until blk_ctx_flush or the end of the loop round). */
void blk_ctx_flush(struct blk_ctx *ctx);

#endif
