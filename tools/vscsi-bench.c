/* vscsi-bench: a vhost-user frontend that plays the guest driver and drives
 * fio-like workloads against a vhost-user-scsi backend (vscsid) or a
 * vhost-user-blk backend (qemu-storage-daemon), so both are measured by the
 * same code on the same file. Built on the test harness (tests/harness/vuf*.h):
 * memfd guest RAM, split rings, EVENT_IDX, indirect descriptors.
 *
 * Per request queue the bench keeps `iodepth` requests in flight. A bench
 * thread owns a set of queues: it takes every used entry of a queue,
 * resubmits each at once and kicks once per batch (the kick is an eventfd
 * write only when the device asked for one). In poll mode the thread spins on
 * the used rings with completion interrupts suppressed; in event mode it
 * sleeps in poll(2) on the call eventfds, like a guest driver taking
 * interrupts. Latency is measured from submission to the loop iteration that
 * sees the completion (one clock read per iteration that found work).
 *
 * Everything printed is a measurement: nothing here asserts on timing. See
 * docs/performance.md for the method and `vscsi-bench --help` for usage. */
#include "vuf.h"
#include "vuf_blk.h"
#include "vuf_proc.h"
#include "vuf_scsi.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS   64
#define MAX_CPUS      64
#define HDR_STRIDE    256     /* per request: request header @0, response @128 */
#define RESP_OFF      128

/* ---- latency histogram: exact below 64 ns, then 32 linear sub-buckets per
 * power of two (at most ~3% error), like HdrHistogram with 5 bits. */
#define H_SUB_BITS 5
#define H_SUB      (1u << H_SUB_BITS)
#define H_LINEAR   (2 * H_SUB)
#define H_BUCKETS  (H_LINEAR + (64 - H_SUB_BITS - 1) * H_SUB)

static unsigned hist_idx(uint64_t v)
{
    if (v < H_LINEAR)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - H_SUB_BITS;
    return H_LINEAR + (msb - H_SUB_BITS - 1) * H_SUB + (unsigned)((v >> shift) - H_SUB);
}

static double hist_value(unsigned idx)
{
    if (idx < H_LINEAR)
        return idx;
    unsigned k = (idx - H_LINEAR) / H_SUB, s = (idx - H_LINEAR) % H_SUB;
    unsigned shift = k + 1;
    double lo = (double)((uint64_t)(H_SUB + s) << shift);
    double hi = (double)((uint64_t)(H_SUB + s + 1) << shift);
    return (lo + hi) / 2;
}

enum rw_kind { RW_READ, RW_WRITE, RW_RANDREAD, RW_RANDWRITE, RW_RANDRW, RW_RW };
static const char *const rw_names[] = {
    [RW_READ] = "read", [RW_WRITE] = "write", [RW_RANDREAD] = "randread",
    [RW_RANDWRITE] = "randwrite", [RW_RANDRW] = "randrw", [RW_RW] = "rw",
};

struct cfg {
    const char *socket;
    const char *spawn;
    pid_t pid;                  /* daemon to account (spawned or --pid) */
    bool blk;
    enum rw_kind rw;
    unsigned rwmix;             /* % reads */
    uint32_t bs;
    unsigned iodepth;
    unsigned queues;
    unsigned threads;
    unsigned qsize;
    double runtime, ramp;
    uint64_t ios;
    unsigned target, lun;
    uint64_t size, offset;      /* bytes of the device used */
    bool poll;
    bool event_idx;
    bool indirect;
    unsigned batch;             /* submissions per kick (0 = whole batch) */
    int cpus[MAX_CPUS];
    unsigned ncpus;
    bool json;
    bool quiet;
    const char *label;
    int timeout_ms;
};

struct breq {
    uint64_t t_submit;
    uint64_t hdr_gpa, data_gpa;
    uint8_t *hdr;               /* hva of the request header; response at +RESP_OFF */
    bool write;
    unsigned qi;                /* index into the thread's queue array */
};

struct bqueue {
    unsigned vq;                /* virtqueue index */
    struct breq *reqs;
    uint64_t seq_off;           /* sequential cursor */
    uint64_t tag;
    uint64_t ios_done;
};

struct dir_stats {
    uint64_t ios, bytes;
    uint64_t lat_sum, lat_max;
    uint64_t hist[H_BUCKETS];
};

struct bthread {
    struct bench *b;
    unsigned id;
    pthread_t th;
    struct bqueue q[VUF_MAX_QUEUES];
    unsigned nq;
    uint64_t rng;
    struct dir_stats st[2];
    uint64_t errors;
    uint64_t kicks0, calls, wakeups;
    uint64_t cpu_ns0, cpu_ns;
    uint64_t t_start, t_end;    /* measured window of this thread */
    uint64_t ios_quota;
    int err;                    /* fatal: -errno */
    char errmsg[160];
};

struct bench {
    struct cfg c;
    struct vuf *h;
    struct vuf_proc proc;
    bool spawned;
    uint64_t dev_bytes;         /* device size */
    uint32_t lbs;               /* logical block size */
    uint8_t lun[8];
    struct bthread t[MAX_THREADS];
    _Atomic int phase;          /* 0 ramp, 1 measure, 2 stop */
    _Atomic unsigned ready;
    _Atomic unsigned finished;
};

enum { PH_RAMP, PH_MEASURE, PH_STOP };

static volatile sig_atomic_t g_interrupted;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- daemon accounting through /proc ------------------------------------ */

struct proc_sample {
    uint64_t run_ns;            /* sum of schedstat run time over threads */
    uint64_t ctxsw;             /* voluntary + involuntary, all threads */
    uint64_t rss_kib;
    unsigned nthreads;
    bool ok;
};

/* A number after "name" at the start of line (/proc status files: "Name:   123 kB"). */
static bool proc_field(const char *line, const char *name, unsigned long long *v)
{
    size_t n = strlen(name);
    char *end;

    if (strncmp(line, name, n))
        return false;
    errno = 0;
    *v = strtoull(line + n, &end, 10);
    return !errno && end != line + n;
}

static void proc_sample(pid_t pid, struct proc_sample *s)
{
    char path[320], line[256];
    memset(s, 0, sizeof(*s));
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            unsigned long long run = 0;
            if (fgets(line, sizeof(line), f) && proc_field(line, "", &run))
                s->run_ns += run;
            fclose(f);
        }
        snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)pid, de->d_name);
        f = fopen(path, "r");
        if (f) {
            while (fgets(line, sizeof(line), f)) {
                unsigned long long v;
                if (proc_field(line, "voluntary_ctxt_switches:", &v) ||
                    proc_field(line, "nonvoluntary_ctxt_switches:", &v))
                    s->ctxsw += v;
            }
            fclose(f);
        }
        s->nthreads++;
    }
    closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof(line), f)) {
            unsigned long long v;
            if (proc_field(line, "VmRSS:", &v))
                s->rss_kib = v;
        }
        fclose(f);
    }
    s->ok = s->nthreads > 0;
}

/* ---- requests ------------------------------------------------------------ */

static bool pick_write(struct bthread *t)
{
    const struct cfg *c = &t->b->c;
    switch (c->rw) {
    case RW_READ:
    case RW_RANDREAD:
        return false;
    case RW_WRITE:
    case RW_RANDWRITE:
        return true;
    case RW_RANDRW:
    case RW_RW:
        break;
    }
    return rng_next(&t->rng) % 100 >= c->rwmix;
}

static uint64_t pick_offset(struct bthread *t, struct bqueue *q)
{
    const struct cfg *c = &t->b->c;
    uint64_t nblk = c->size / c->bs;
    if (c->rw == RW_RANDREAD || c->rw == RW_RANDWRITE || c->rw == RW_RANDRW)
        return c->offset + (rng_next(&t->rng) % nblk) * c->bs;
    uint64_t off = q->seq_off;
    q->seq_off += c->bs;
    if (q->seq_off + c->bs > c->size)
        q->seq_off = 0;
    return c->offset + off;
}

/* Build the chain for r and add it (no kick). Linux puts header, data and
 * response in separate buffers and uses an indirect table when it can. */
static int submit(struct bthread *t, struct bqueue *q, struct breq *r, uint64_t now)
{
    struct bench *b = t->b;
    const struct cfg *c = &b->c;
    uint64_t off = pick_offset(t, q);
    struct vuf_sg sg[3];

    r->write = pick_write(t);
    if (!c->blk) {
        uint8_t cdb[16];
        unsigned len;
        uint64_t lba = off / b->lbs;
        uint32_t blocks = c->bs / b->lbs;
        if (lba + blocks <= 0xffffffffull && blocks <= 0xffff)
            len = vuf_cdb_rw10(cdb, r->write, (uint32_t)lba, (uint16_t)blocks);
        else
            len = vuf_cdb_rw16(cdb, r->write, lba, blocks);
        vuf_scsi_fill_req((struct vuf_scsi_cmd_req *)r->hdr, b->lun, q->tag++, cdb, len);
        sg[0] = (struct vuf_sg){ r->hdr_gpa, sizeof(struct vuf_scsi_cmd_req), false };
        if (r->write) {
            sg[1] = (struct vuf_sg){ r->data_gpa, c->bs, false };
            sg[2] = (struct vuf_sg){ r->hdr_gpa + RESP_OFF, sizeof(struct vuf_scsi_cmd_resp), true };
        } else {
            sg[1] = (struct vuf_sg){ r->hdr_gpa + RESP_OFF, sizeof(struct vuf_scsi_cmd_resp), true };
            sg[2] = (struct vuf_sg){ r->data_gpa, c->bs, true };
        }
        r->hdr[RESP_OFF + offsetof(struct vuf_scsi_cmd_resp, response)] = 0xff;
    } else {
        struct vuf_blk_req_hdr *hdr = (struct vuf_blk_req_hdr *)r->hdr;
        hdr->type = r->write ? VUF_BLK_T_OUT : VUF_BLK_T_IN;
        hdr->reserved = 0;
        hdr->sector = off / 512;
        sg[0] = (struct vuf_sg){ r->hdr_gpa, sizeof(*hdr), false };
        sg[1] = (struct vuf_sg){ r->data_gpa, c->bs, !r->write };
        sg[2] = (struct vuf_sg){ r->hdr_gpa + RESP_OFF, 1, true };
        r->hdr[RESP_OFF] = 0xff;
    }
    r->t_submit = now;
    int rc = vuf_vq_add(b->h, q->vq, sg, 3, r, c->indirect ? VUF_ADD_INDIRECT : 0);
    return rc < 0 ? rc : 0;
}

/* 0 when the device reports success. */
static int req_status(struct bench *b, const struct breq *r)
{
    if (b->c.blk)
        return r->hdr[RESP_OFF] == VUF_BLK_S_OK ? 0 : -1;
    const struct vuf_scsi_cmd_resp *resp = (const void *)(r->hdr + RESP_OFF);
    return resp->response == VUF_SCSI_S_OK && resp->status == VUF_SAM_GOOD ? 0 : -1;
}

static void report_error(struct bthread *t, const struct breq *r)
{
    if (t->errors++ || t->b->c.quiet)
        return;
    if (t->b->c.blk) {
        fprintf(stderr, "vscsi-bench: %s failed: virtio-blk status %u\n",
                r->write ? "write" : "read", r->hdr[RESP_OFF]);
        return;
    }
    const struct vuf_scsi_cmd_resp *resp = (const void *)(r->hdr + RESP_OFF);
    struct vuf_scsi_result res = { .response = resp->response, .status = resp->status,
                                   .sense_len = resp->sense_len, .resid = resp->resid };
    memcpy(res.sense, resp->sense, sizeof(res.sense));
    char buf[128];
    fprintf(stderr, "vscsi-bench: %s failed: %s\n", r->write ? "write" : "read",
            vuf_scsi_result_str(&res, buf, sizeof(buf)));
}

static void account(struct bthread *t, const struct breq *r, uint64_t now)
{
    struct dir_stats *s = &t->st[r->write];
    uint64_t lat = now - r->t_submit;
    s->ios++;
    s->bytes += t->b->c.bs;
    s->lat_sum += lat;
    if (lat > s->lat_max)
        s->lat_max = lat;
    s->hist[hist_idx(lat)]++;
}

static void stats_reset(struct bthread *t)
{
    memset(t->st, 0, sizeof(t->st));
    t->errors = 0;
    t->calls = 0;
    t->wakeups = 0;
    t->kicks0 = 0;
    for (unsigned i = 0; i < t->nq; i++) {
        t->kicks0 += vuf_vq_kicks(t->b->h, t->q[i].vq);
        t->q[i].ios_done = 0;
    }
    t->cpu_ns0 = thread_cpu_ns();
}

static uint64_t drain_calls(struct bench *b, unsigned vq)
{
    uint64_t v = 0;
    if (read(vuf_vq_ring(b->h, vq)->call_fd, &v, sizeof(v)) != sizeof(v))
        return 0;
    return v;
}

static void set_err(struct bthread *t, int err, const char *what)
{
    if (!t->err) {
        t->err = err;
        snprintf(t->errmsg, sizeof(t->errmsg), "%s: %s", what, strerror(-err));
    }
}

static void *thread_main(void *arg)
{
    struct bthread *t = arg;
    struct bench *b = t->b;
    const struct cfg *c = &b->c;
    unsigned inflight = 0;
    int phase = PH_RAMP;
    bool stopping = false, quota_hit = false;
    uint64_t drain_deadline = 0;

    if (c->ncpus) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(c->cpus[t->id % c->ncpus], &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (rc)
            fprintf(stderr, "vscsi-bench: thread %u: cannot pin to CPU %d: %s\n", t->id,
                    c->cpus[t->id % c->ncpus], strerror(rc));
    }
    for (unsigned i = 0; i < t->nq; i++) {
        vuf_vq_set_interrupts(b->h, t->q[i].vq, !c->poll);
        drain_calls(b, t->q[i].vq);
    }
    atomic_fetch_add(&b->ready, 1);
    while (atomic_load(&b->phase) == PH_RAMP && c->ramp > 0 && atomic_load(&b->ready) < c->threads)
        cpu_relax();

    if (c->ramp <= 0) {
        phase = PH_MEASURE;
        stats_reset(t);
        t->t_start = now_ns();
    }
    /* Fill every queue to the depth, one kick per queue. */
    uint64_t now = now_ns();
    for (unsigned i = 0; i < t->nq; i++) {
        struct bqueue *q = &t->q[i];
        for (unsigned k = 0; k < c->iodepth; k++) {
            int rc = submit(t, q, &q->reqs[k], now);
            if (rc < 0) {
                set_err(t, rc, "initial submit");
                goto out;
            }
            inflight++;
            if (c->batch && (k + 1) % c->batch == 0)
                vuf_vq_kick(b->h, q->vq);
        }
        vuf_vq_kick(b->h, q->vq);
    }

    unsigned idle = 0;
    while (inflight) {
        bool progress = false;

        int ph = atomic_load_explicit(&b->phase, memory_order_relaxed);
        if (ph != phase) {
            if (phase == PH_RAMP && ph >= PH_MEASURE) {
                stats_reset(t);
                t->t_start = now_ns();
            }
            if (ph == PH_STOP && !stopping) {
                stopping = true;
                if (!t->t_end)
                    t->t_end = now_ns();
                drain_deadline = now_ns() + (uint64_t)c->timeout_ms * 1000000ull;
            }
            phase = ph;
        }
        for (unsigned i = 0; i < t->nq; i++) {
            struct bqueue *q = &t->q[i];
            unsigned added = 0;
            uint64_t tnow = 0;
            for (;;) {
                void *tok;
                uint32_t len;
                int rc = vuf_vq_get_used(b->h, q->vq, &tok, &len);
                if (rc == 0)
                    break;
                if (rc < 0) {
                    set_err(t, rc, "used ring");
                    goto out;
                }
                struct breq *r = tok;
                /* One clock read per pass, again if this request was (re)submitted
                 * in this very pass (a polling device, or a kick mid-pass). */
                if (!tnow || r->t_submit >= tnow)
                    tnow = now_ns();
                inflight--;
                if (req_status(b, r))
                    report_error(t, r);
                if (phase == PH_MEASURE && !stopping) {
                    account(t, r, tnow);
                    q->ios_done++;
                }
                if (stopping || quota_hit)
                    continue;
                if (c->ios && phase == PH_MEASURE &&
                    t->st[0].ios + t->st[1].ios >= t->ios_quota) {
                    quota_hit = true;
                    t->t_end = tnow;
                    continue;
                }
                rc = submit(t, q, r, tnow);
                if (rc < 0) {
                    set_err(t, rc, "submit");
                    goto out;
                }
                inflight++;
                if (c->batch && ++added % c->batch == 0)
                    vuf_vq_kick(b->h, q->vq);
            }
            if (tnow) {
                progress = true;
                vuf_vq_kick(b->h, q->vq);
            }
        }
        if (progress) {
            idle = 0;
            continue;
        }
        if (stopping && now_ns() > drain_deadline) {
            set_err(t, -ETIMEDOUT, "drain");
            break;
        }
        if (c->poll) {
            /* Spin, but notice a dead backend (or a time limit) now and then. */
            if (++idle % (1u << 20) == 0 && t->id == 0) {   /* one reader of the socket */
                if (!vuf_is_connected(b->h) || vuf_peer_closed(b->h, 0) == 1) {
                    set_err(t, -ECONNRESET, "backend");
                    break;
                }
            }
            cpu_relax();
            continue;
        }
        /* Event mode: sleep on the call eventfds (the "interrupts"). */
        struct pollfd pfd[VUF_MAX_QUEUES];
        for (unsigned i = 0; i < t->nq; i++)
            pfd[i] = (struct pollfd){ vuf_vq_ring(b->h, t->q[i].vq)->call_fd, POLLIN, 0 };
        int pr = poll(pfd, t->nq, 200);
        if (pr < 0 && errno != EINTR) {
            set_err(t, -errno, "poll");
            break;
        }
        if (pr == 0 && t->id == 0 && vuf_peer_closed(b->h, 0) == 1) {
            set_err(t, -ECONNRESET, "backend");
            break;
        }
        t->wakeups++;
        for (unsigned i = 0; i < t->nq; i++)
            if (pfd[i].revents & POLLIN)
                t->calls += drain_calls(b, t->q[i].vq);
    }
out:
    if (!t->t_end)
        t->t_end = now_ns();
    t->cpu_ns = thread_cpu_ns() - t->cpu_ns0;
    if (c->poll)
        for (unsigned i = 0; i < t->nq; i++)
            t->calls += drain_calls(b, t->q[i].vq);
    atomic_fetch_add(&b->finished, 1);
    return NULL;
}

/* ---- device setup ------------------------------------------------------- */

static int scsi_probe(struct bench *b)
{
    const struct cfg *c = &b->c;
    struct vuf_scsi_result r;
    uint8_t cdb[16], cap[32];

    vuf_scsi_lun(b->lun, c->target, c->lun);
    vuf_scsi_clear_ua(b->h, c->target, c->lun);
    unsigned len = vuf_cdb_read_capacity16(cdb, sizeof(cap));
    int rc = vuf_scsi_cmd(b->h, c->target, c->lun, cdb, len, NULL, 0, cap, sizeof(cap), &r);
    if (rc < 0 || r.response != VUF_SCSI_S_OK || r.status != VUF_SAM_GOOD) {
        char buf[128];
        fprintf(stderr, "vscsi-bench: READ CAPACITY(16) on target %u LUN %u failed: %s\n",
                c->target, c->lun, rc < 0 ? strerror(-rc) : vuf_scsi_result_str(&r, buf, sizeof(buf)));
        return rc < 0 ? rc : -EIO;
    }
    uint64_t last = 0;
    for (int i = 0; i < 8; i++)
        last = last << 8 | cap[i];
    b->lbs = (uint32_t)cap[8] << 24 | (uint32_t)cap[9] << 16 | (uint32_t)cap[10] << 8 | cap[11];
    if (!b->lbs)
        return -EIO;
    b->dev_bytes = (last + 1) * b->lbs;
    return 0;
}

/* vhost-user GET_CONFIG: virtio_blk_config.capacity (512-byte sectors) at offset 0. */
static int blk_probe(struct bench *b)
{
    struct { uint32_t offset, size, flags; uint8_t region[60]; } req = { 0, 60, 0, { 0 } }, rep;
    b->lbs = 512;
    if (!vuf_has_protocol_feature(b->h, VUF_PF_CONFIG)) {
        if (!b->c.size) {
            fprintf(stderr, "vscsi-bench: backend has no GET_CONFIG; give --size\n");
            return -ENOTSUP;
        }
        b->dev_bytes = b->c.offset + b->c.size;
        return 0;
    }
    int rc = vuf_msg_call(b->h, VUF_GET_CONFIG, &req, sizeof(req), NULL, 0, &rep, sizeof(rep));
    if (rc < 20) {
        fprintf(stderr, "vscsi-bench: GET_CONFIG failed (%d)\n", rc);
        return rc < 0 ? rc : -EPROTO;
    }
    uint64_t cap;
    memcpy(&cap, rep.region, 8);
    b->dev_bytes = cap * 512;
    return 0;
}

static int setup_queues(struct bench *b)
{
    const struct cfg *c = &b->c;
    unsigned first = c->blk ? 0 : VUF_SCSI_REQQ;
    uint64_t data_stride = ((uint64_t)c->bs + 4095) & ~4095ull;

    if (!c->bs || !c->queues || !c->threads)
        return -EINVAL;         /* the option checks rule these out; the divisions below need it */

    for (unsigned i = 0; i < c->threads; i++) {
        b->t[i].b = b;
        b->t[i].id = i;
        b->t[i].rng = 0x9E3779B97F4A7C15ull * (i + 1) ^ (uint64_t)now_ns();
        if (!b->t[i].rng)
            b->t[i].rng = 1;
    }
    for (unsigned qn = 0; qn < c->queues; qn++) {
        struct bthread *t = &b->t[qn % c->threads];
        struct bqueue *q = &t->q[t->nq];
        unsigned vq = first + qn;
        q->vq = vq;
        q->tag = ((uint64_t)vq << 48) + 1;
        q->seq_off = (c->size / c->queues / c->bs) * c->bs * qn;
        q->reqs = calloc(c->iodepth, sizeof(*q->reqs));
        if (!q->reqs)
            return -ENOMEM;
        uint64_t hdrs = vuf_alloc(b->h, (uint64_t)c->iodepth * HDR_STRIDE, 4096);
        uint64_t data = vuf_alloc(b->h, (uint64_t)c->iodepth * data_stride, 4096);
        if (hdrs == VUF_GPA_NONE || data == VUF_GPA_NONE)
            return -ENOMEM;
        uint8_t *dp = vuf_ptr(b->h, data, c->iodepth * data_stride);
        /* Touch every page now (the first touch must not be measured) with
         * non-zero content, so writes are not trivially compressible. */
        for (uint64_t k = 0; k < c->iodepth * data_stride; k += 8) {
            uint64_t v = 0x5a5a5a5a00000000ull | k;
            memcpy(dp + k, &v, 8);
        }
        for (unsigned k = 0; k < c->iodepth; k++) {
            struct breq *r = &q->reqs[k];
            r->hdr_gpa = hdrs + (uint64_t)k * HDR_STRIDE;
            r->data_gpa = data + (uint64_t)k * data_stride;
            r->hdr = vuf_ptr(b->h, r->hdr_gpa, HDR_STRIDE);
            r->qi = t->nq;
            memset(r->hdr, 0, HDR_STRIDE);
        }
        if (c->indirect) {
            int rc = vuf_vq_prealloc_indirect(b->h, vq, 3);
            if (rc < 0)
                return rc;
        }
        t->nq++;
    }
    return 0;
}

/* ---- output ------------------------------------------------------------- */

struct summary {
    double secs;
    uint64_t ios[2], bytes[2], errors;
    double lat_mean[3], lat_max[3];
    double p[3][5];             /* p50 p90 p99 p99.9 p99.99, per read/write/all (us) */
    uint64_t kicks, calls, wakeups;
    double bench_cpu_s;
    struct proc_sample d0, d1;
    double daemon_cpu_s;
};

static const double pcts[5] = { 50, 90, 99, 99.9, 99.99 };

static void percentiles(const uint64_t *hist, uint64_t total, double out[5])
{
    for (int k = 0; k < 5; k++) {
        out[k] = 0;
        if (!total)
            continue;
        uint64_t want = (uint64_t)ceil(pcts[k] / 100.0 * (double)total), acc = 0;
        if (!want)
            want = 1;
        for (unsigned i = 0; i < H_BUCKETS; i++) {
            acc += hist[i];
            if (acc >= want) {
                out[k] = hist_value(i) / 1000.0;
                break;
            }
        }
    }
}

static void summarize(struct bench *b, struct summary *s)
{
    static uint64_t hist[3][H_BUCKETS];
    uint64_t lat_sum[3] = { 0 }, lat_max[3] = { 0 }, t0 = UINT64_MAX, t1 = 0;
    memset(hist, 0, sizeof(hist));
    for (unsigned i = 0; i < b->c.threads; i++) {
        struct bthread *t = &b->t[i];
        for (int d = 0; d < 2; d++) {
            s->ios[d] += t->st[d].ios;
            s->bytes[d] += t->st[d].bytes;
            lat_sum[d] += t->st[d].lat_sum;
            lat_sum[2] += t->st[d].lat_sum;
            if (t->st[d].lat_max > lat_max[d])
                lat_max[d] = t->st[d].lat_max;
            if (t->st[d].lat_max > lat_max[2])
                lat_max[2] = t->st[d].lat_max;
            for (unsigned k = 0; k < H_BUCKETS; k++) {
                hist[d][k] += t->st[d].hist[k];
                hist[2][k] += t->st[d].hist[k];
            }
        }
        s->errors += t->errors;
        uint64_t kicks = 0;
        for (unsigned k = 0; k < t->nq; k++)
            kicks += vuf_vq_kicks(b->h, t->q[k].vq);
        s->kicks += kicks - t->kicks0;
        s->calls += t->calls;
        s->wakeups += t->wakeups;
        s->bench_cpu_s += (double)t->cpu_ns / 1e9;
        if (t->t_start < t0)
            t0 = t->t_start;
        if (t->t_end > t1)
            t1 = t->t_end;
    }
    s->secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    uint64_t n[3] = { s->ios[0], s->ios[1], s->ios[0] + s->ios[1] };
    for (int d = 0; d < 3; d++) {
        s->lat_mean[d] = n[d] ? (double)lat_sum[d] / (double)n[d] / 1000.0 : 0;
        s->lat_max[d] = (double)lat_max[d] / 1000.0;
        percentiles(hist[d], n[d], s->p[d]);
    }
}

static void print_text(const struct bench *b, const struct summary *s)
{
    const struct cfg *c = &b->c;
    uint64_t all = s->ios[0] + s->ios[1];
    printf("vscsi-bench: %s%s%s proto=%s rw=%s bs=%u iodepth=%u queues=%u threads=%u mode=%s"
           " %.2fs\n", c->label ? "[" : "", c->label ? c->label : "", c->label ? "] " : "",
           c->blk ? "blk" : "scsi", rw_names[c->rw], c->bs, c->iodepth, c->queues, c->threads,
           c->poll ? "poll" : "event", s->secs);
    static const char *const dn[2] = { "read", "write" };
    for (int d = 0; d < 2; d++) {
        if (!s->ios[d])
            continue;
        printf("  %-5s: IOPS=%.0f BW=%.1fMiB/s lat(us) avg=%.2f p50=%.2f p90=%.2f p99=%.2f"
               " p99.9=%.2f max=%.1f\n", dn[d], (double)s->ios[d] / s->secs,
               (double)s->bytes[d] / s->secs / 1048576.0, s->lat_mean[d], s->p[d][0],
               s->p[d][1], s->p[d][2], s->p[d][3], s->lat_max[d]);
    }
    if (s->ios[0] && s->ios[1])
        printf("  total: IOPS=%.0f BW=%.1fMiB/s lat(us) avg=%.2f p50=%.2f p99=%.2f p99.9=%.2f\n",
               (double)all / s->secs, (double)(s->bytes[0] + s->bytes[1]) / s->secs / 1048576.0,
               s->lat_mean[2], s->p[2][0], s->p[2][2], s->p[2][3]);
    if (!all)
        return;
    printf("  notify: kicks/IO=%.4f calls/IO=%.4f", (double)s->kicks / (double)all,
           (double)s->calls / (double)all);
    if (!c->poll)
        printf(" wakeups/IO=%.4f", (double)s->wakeups / (double)all);
    printf("  bench CPU=%.0f%%", 100.0 * s->bench_cpu_s / s->secs);
    if (s->d0.ok && s->d1.ok) {
        printf("  daemon CPU=%.0f%% (%.2f us/IO) ctxsw/IO=%.4f threads=%u RSS=%.1fMiB",
               100.0 * s->daemon_cpu_s / s->secs, s->daemon_cpu_s * 1e6 / (double)all,
               (double)(s->d1.ctxsw - s->d0.ctxsw) / (double)all, s->d1.nthreads,
               (double)s->d1.rss_kib / 1024.0);
    }
    printf("\n");
    if (s->errors)
        printf("  errors: %" PRIu64 "\n", s->errors);
}

static void print_json_lat(const char *name, const struct summary *s, int d, bool comma)
{
    printf("\"%s\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99_9\":%.3f,"
           "\"p99_99\":%.3f,\"max\":%.3f}%s", name, s->lat_mean[d], s->p[d][0], s->p[d][1],
           s->p[d][2], s->p[d][3], s->p[d][4], s->lat_max[d], comma ? "," : "");
}

static void print_json(const struct bench *b, const struct summary *s)
{
    const struct cfg *c = &b->c;
    uint64_t all = s->ios[0] + s->ios[1];
    double dall = all ? (double)all : 1;
    printf("{\"label\":\"%s\",\"proto\":\"%s\",\"rw\":\"%s\",\"bs\":%u,\"iodepth\":%u,"
           "\"queues\":%u,\"threads\":%u,\"mode\":\"%s\",\"seconds\":%.4f,",
           c->label ? c->label : "", c->blk ? "blk" : "scsi", rw_names[c->rw], c->bs,
           c->iodepth, c->queues, c->threads, c->poll ? "poll" : "event", s->secs);
    printf("\"ios\":%" PRIu64 ",\"iops\":%.1f,\"read_iops\":%.1f,\"write_iops\":%.1f,"
           "\"mib_s\":%.2f,\"errors\":%" PRIu64 ",", all, (double)all / s->secs,
           (double)s->ios[0] / s->secs, (double)s->ios[1] / s->secs,
           (double)(s->bytes[0] + s->bytes[1]) / s->secs / 1048576.0, s->errors);
    printf("\"lat_us\":{");
    print_json_lat("all", s, 2, true);
    print_json_lat("read", s, 0, true);
    print_json_lat("write", s, 1, false);
    printf("},\"kicks_per_io\":%.5f,\"calls_per_io\":%.5f,\"wakeups_per_io\":%.5f,"
           "\"bench_cpu\":%.3f", (double)s->kicks / dall, (double)s->calls / dall,
           (double)s->wakeups / dall, s->bench_cpu_s / s->secs);
    if (s->d0.ok && s->d1.ok)
        printf(",\"daemon_cpu\":%.3f,\"daemon_us_per_io\":%.4f,\"daemon_ctxsw_per_io\":%.5f,"
               "\"daemon_threads\":%u,\"daemon_rss_kib\":%" PRIu64,
               s->daemon_cpu_s / s->secs, s->daemon_cpu_s * 1e6 / dall,
               (double)(s->d1.ctxsw - s->d0.ctxsw) / dall, s->d1.nthreads, s->d1.rss_kib);
    printf("}\n");
}

/* ---- options ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vscsi-bench --socket PATH [options]\n"
"A vhost-user frontend playing the guest: fio-like workloads against a\n"
"vhost-user-scsi (vscsid) or vhost-user-blk (qemu-storage-daemon) backend.\n"
"\n"
"  -s, --socket PATH     backend socket (the backend listens)\n"
"      --spawn CMD       start the backend with /bin/sh -c 'exec CMD', wait for\n"
"                        the socket, stop it (SIGTERM) afterwards\n"
"      --pid PID         account this backend process (CPU, context switches, RSS);\n"
"                        implied by --spawn\n"
"      --proto scsi|blk  virtio-scsi (default) or virtio-blk\n"
"      --rw KIND         randread (default), randwrite, read, write, randrw, rw\n"
"      --rwmix PCT       reads in %% for randrw/rw (50)\n"
"      --bs BYTES        block size, k/m suffixes (4k)\n"
"      --iodepth N       requests in flight per queue (32)\n"
"      --queues N        request queues (1)\n"
"      --threads N       bench threads; queues are spread over them (1)\n"
"      --qsize N         virtqueue size (256)\n"
"      --runtime SECS    measured time (5); --ramp SECS before it (1)\n"
"      --ios N           stop after N measured I/Os instead (no ramp)\n"
"      --target T --lun L  SCSI address (0 0)\n"
"      --size BYTES      span of the device used (whole device); --offset BYTES\n"
"      --poll            spin on the used rings, completion interrupts off (default)\n"
"      --event           sleep on the call eventfds (interrupt-driven guest)\n"
"      --batch N         kick after at most N submissions (0 = per reaped batch)\n"
"      --no-event-idx    do not negotiate VIRTIO_RING_F_EVENT_IDX\n"
"      --no-indirect     direct descriptor chains (default: indirect, like Linux)\n"
"      --cpu LIST        pin bench thread i to CPU LIST[i %% n] (e.g. 1 or 1,0)\n"
"      --label TEXT      name printed with the results\n"
"      --json            one JSON object per run on stdout\n"
"      --timeout MS      bound on setup waits and on draining (10000)\n"
"  -q, --quiet           no error details\n"
"  -h, --help\n"
"\n"
"Examples:\n"
"  vscsi-bench --spawn 'taskset -c 0 build/vscsid -s /tmp/s --drive driver=null,size=1G,id=n\n"
"      --device scsi-hd,drive=n,scsi-id=0,lun=0' -s /tmp/s --cpu 1 --iodepth 32\n"
"  vscsi-bench --proto blk --spawn 'qemu-storage-daemon --blockdev driver=file,node-name=f,\n"
"      filename=IMG,cache.direct=on --export type=vhost-user-blk,id=e,node-name=f,\n"
"      addr.type=unix,addr.path=/tmp/b,writable=on,num-queues=1' -s /tmp/b --rw randwrite\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -EINVAL;
    switch (*end) {
    case 'k': case 'K': v *= 1024; end++; break;
    case 'm': case 'M': v *= 1048576; end++; break;
    case 'g': case 'G': v *= 1073741824.0; end++; break;
    case 't': case 'T': v *= 1099511627776.0; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -EINVAL;
    *out = (uint64_t)v;
    return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || end == s || *end || v < min || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* Seconds: a finite number, more than 0 (or 0 as well with zero_ok). */
static int parse_seconds(const char *s, bool zero_ok, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0 || (v == 0 && !zero_ok))
        return -EINVAL;
    *out = v;
    return 0;
}

enum {
    O_SPAWN = 256, O_PID, O_PROTO, O_RW, O_RWMIX, O_BS, O_IODEPTH, O_QUEUES, O_THREADS,
    O_QSIZE, O_RUNTIME, O_RAMP, O_IOS, O_TARGET, O_LUN, O_SIZE, O_OFFSET, O_POLL, O_EVENT,
    O_BATCH, O_NO_EVENT_IDX, O_NO_INDIRECT, O_CPU, O_LABEL, O_JSON, O_TIMEOUT,
};

static const struct option long_opts[] = {
    { "socket", required_argument, NULL, 's' }, { "spawn", required_argument, NULL, O_SPAWN },
    { "pid", required_argument, NULL, O_PID }, { "proto", required_argument, NULL, O_PROTO },
    { "rw", required_argument, NULL, O_RW }, { "rwmix", required_argument, NULL, O_RWMIX },
    { "bs", required_argument, NULL, O_BS }, { "iodepth", required_argument, NULL, O_IODEPTH },
    { "queues", required_argument, NULL, O_QUEUES },
    { "threads", required_argument, NULL, O_THREADS },
    { "qsize", required_argument, NULL, O_QSIZE },
    { "runtime", required_argument, NULL, O_RUNTIME },
    { "ramp", required_argument, NULL, O_RAMP }, { "ios", required_argument, NULL, O_IOS },
    { "target", required_argument, NULL, O_TARGET }, { "lun", required_argument, NULL, O_LUN },
    { "size", required_argument, NULL, O_SIZE }, { "offset", required_argument, NULL, O_OFFSET },
    { "poll", no_argument, NULL, O_POLL }, { "event", no_argument, NULL, O_EVENT },
    { "batch", required_argument, NULL, O_BATCH },
    { "no-event-idx", no_argument, NULL, O_NO_EVENT_IDX },
    { "no-indirect", no_argument, NULL, O_NO_INDIRECT },
    { "cpu", required_argument, NULL, O_CPU }, { "label", required_argument, NULL, O_LABEL },
    { "json", no_argument, NULL, O_JSON }, { "timeout", required_argument, NULL, O_TIMEOUT },
    { "quiet", no_argument, NULL, 'q' }, { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int parse_args(struct cfg *c, int argc, char **argv)
{
    *c = (struct cfg){ .rw = RW_RANDREAD, .rwmix = 50, .bs = 4096, .iodepth = 32, .queues = 1,
                       .threads = 1, .qsize = 256, .runtime = 5, .ramp = 1, .poll = true,
                       .event_idx = true, .indirect = true, .timeout_ms = 10000 };
    bool ramp_set = false;
    int o;
    while ((o = getopt_long(argc, argv, "s:qh", long_opts, NULL)) != -1) {
        uint64_t v;
        int bad = 0;
        switch (o) {
        case 's': c->socket = optarg; break;
        case O_SPAWN: c->spawn = optarg; break;
        case O_PID: {
            unsigned pid;
            bad = parse_uint(optarg, 1, INT32_MAX, &pid) < 0;
            c->pid = bad ? 0 : (pid_t)pid;
            break;
        }
        case O_PROTO:
            if (!strcmp(optarg, "scsi"))
                c->blk = false;
            else if (!strcmp(optarg, "blk"))
                c->blk = true;
            else
                bad = 1;
            break;
        case O_RW: {
            bad = 1;
            for (unsigned i = 0; i < sizeof(rw_names) / sizeof(rw_names[0]); i++)
                if (!strcmp(optarg, rw_names[i])) {
                    c->rw = (enum rw_kind)i;
                    bad = 0;
                }
            break;
        }
        case O_RWMIX: bad = parse_uint(optarg, 0, 100, &c->rwmix) < 0; break;
        case O_BS:
            bad = parse_size(optarg, &v) < 0 || v < 512 || v > (64u << 20) || v % 512;
            if (!bad)
                c->bs = (uint32_t)v;
            break;
        case O_IODEPTH: bad = parse_uint(optarg, 1, 32768, &c->iodepth) < 0; break;
        case O_QUEUES: bad = parse_uint(optarg, 1, 128, &c->queues) < 0; break;
        case O_THREADS: bad = parse_uint(optarg, 1, MAX_THREADS, &c->threads) < 0; break;
        case O_QSIZE: bad = parse_uint(optarg, 2, 32768, &c->qsize) < 0; break;
        case O_RUNTIME: bad = parse_seconds(optarg, false, &c->runtime) < 0; break;
        case O_RAMP: bad = parse_seconds(optarg, true, &c->ramp) < 0; ramp_set = true; break;
        case O_IOS: bad = parse_size(optarg, &c->ios) < 0 || !c->ios; break;
        case O_TARGET: bad = parse_uint(optarg, 0, 255, &c->target) < 0; break;
        case O_LUN: bad = parse_uint(optarg, 0, 16383, &c->lun) < 0; break;
        case O_SIZE: bad = parse_size(optarg, &c->size) < 0; break;
        case O_OFFSET: bad = parse_size(optarg, &c->offset) < 0; break;
        case O_POLL: c->poll = true; break;
        case O_EVENT: c->poll = false; break;
        case O_BATCH: bad = parse_uint(optarg, 0, 32768, &c->batch) < 0; break;
        case O_NO_EVENT_IDX: c->event_idx = false; break;
        case O_NO_INDIRECT: c->indirect = false; break;
        case O_CPU: {
            char *s = optarg, *end;
            c->ncpus = 0;
            while (*s && c->ncpus < MAX_CPUS) {
                long v2 = strtol(s, &end, 10);
                if (end == s || v2 < 0 || v2 >= CPU_SETSIZE) {
                    bad = 1;
                    break;
                }
                c->cpus[c->ncpus++] = (int)v2;
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') {
                    bad = 1;
                    break;
                }
            }
            break;
        }
        case O_LABEL: c->label = optarg; break;
        case O_JSON: c->json = true; break;
        case O_TIMEOUT: {
            unsigned ms;
            bad = parse_uint(optarg, 1, INT32_MAX, &ms) < 0;
            c->timeout_ms = bad ? c->timeout_ms : (int)ms;
            break;
        }
        case 'q': c->quiet = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -EINVAL;
        }
        if (bad) {
            fprintf(stderr, "vscsi-bench: bad value for %s: %s\n", argv[optind - 1], optarg);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vscsi-bench: unexpected argument %s\n", argv[optind]);
        return -EINVAL;
    }
    if (!c->socket) {
        fprintf(stderr, "vscsi-bench: --socket is required\n");
        return -EINVAL;
    }
    if (c->threads > c->queues)
        c->threads = c->queues;
    if (c->qsize & (c->qsize - 1)) {
        fprintf(stderr, "vscsi-bench: --qsize must be a power of two\n");
        return -EINVAL;
    }
    if (c->iodepth > c->qsize / (c->indirect ? 1 : 3)) {
        fprintf(stderr, "vscsi-bench: --iodepth %u does not fit a ring of %u%s\n", c->iodepth,
                c->qsize, c->indirect ? "" : " (3 descriptors per request)");
        return -EINVAL;
    }
    if (c->ios && !ramp_set)
        c->ramp = 0;
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

/* Sleep up to secs, waking early when interrupted or when all threads ended. */
static void run_for(struct bench *b, double secs)
{
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    while (!g_interrupted && now_ns() < end && atomic_load(&b->finished) < b->c.threads) {
        struct timespec ts = { 0, 20 * 1000000 };
        nanosleep(&ts, NULL);
        if (b->spawned && !vuf_proc_alive(&b->proc))
            break;
    }
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    struct cfg *c = &b->c;
    int rc, ret = 1;

    if (parse_args(c, argc, argv) < 0)
        return 2;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    if (c->spawn) {
        size_t n = strlen(c->spawn) + 8;
        char *cmd = malloc(n);
        if (!cmd)
            return 1;
        snprintf(cmd, n, "exec %s", c->spawn);
        unlink(c->socket);
        char *av[] = { "/bin/sh", "-c", cmd, NULL };
        rc = vuf_proc_spawn(&b->proc, av);
        if (rc < 0) {
            fprintf(stderr, "vscsi-bench: spawn: %s\n", strerror(-rc));
            free(cmd);
            return 1;
        }
        b->spawned = true;
        c->pid = b->proc.pid;
        rc = vuf_proc_wait_socket(&b->proc, c->socket, c->timeout_ms);
        free(cmd);
        if (rc < 0) {
            fprintf(stderr, "vscsi-bench: backend did not create %s: %s\n", c->socket,
                    strerror(-rc));
            goto out_proc;
        }
    }

    /* Guest RAM: rings, headers and data buffers plus room for the probe. */
    uint64_t data_stride = ((uint64_t)c->bs + 4095) & ~4095ull;
    uint64_t need = (uint64_t)c->queues * c->iodepth * (data_stride + HDR_STRIDE) +
                    (uint64_t)(c->queues + 2) * (c->qsize * (16 + 16 * 3 + 16) + 3 * 4096);
    uint64_t mem = ((need + (need >> 3) + (32ull << 20)) + (2ull << 20) - 1) & ~((2ull << 20) - 1);
    struct vuf_opts vo = {
        .mem_size = mem,
        .num_queues = c->blk ? c->queues : 2 + c->queues,
        .queue_size = c->qsize,
        .features = VUF_FEATURES_DEFAULT | (c->event_idx ? VUF_BIT(VUF_F_EVENT_IDX) : 0),
        .protocol_features = VUF_PROTOCOL_FEATURES_DEFAULT | VUF_BIT(VUF_PF_CONFIG),
        .timeout_ms = c->timeout_ms,
    };
    b->h = vuf_new(&vo);
    if (!b->h) {
        fprintf(stderr, "vscsi-bench: guest memory: %s\n", strerror(errno));
        goto out_proc;
    }
    rc = vuf_open(b->h, c->socket);
    if (rc < 0) {
        fprintf(stderr, "vscsi-bench: cannot attach to %s: %s\n", c->socket, strerror(-rc));
        goto out_vuf;
    }
    rc = c->blk ? blk_probe(b) : scsi_probe(b);
    if (rc < 0)
        goto out_vuf;
    if (c->bs % b->lbs) {
        fprintf(stderr, "vscsi-bench: --bs %u is not a multiple of the block size %u\n", c->bs,
                b->lbs);
        goto out_vuf;
    }
    if (c->offset >= b->dev_bytes || c->offset % b->lbs) {
        fprintf(stderr, "vscsi-bench: --offset outside the device (%" PRIu64 " bytes)\n",
                b->dev_bytes);
        goto out_vuf;
    }
    if (!c->size || c->size > b->dev_bytes - c->offset)
        c->size = b->dev_bytes - c->offset;
    if (c->size < c->bs) {
        fprintf(stderr, "vscsi-bench: device smaller than one block\n");
        goto out_vuf;
    }
    rc = setup_queues(b);
    if (rc < 0) {
        fprintf(stderr, "vscsi-bench: queue setup: %s\n", strerror(-rc));
        goto out_vuf;
    }
    for (unsigned i = 0; i < c->threads; i++)
        b->t[i].ios_quota = c->ios ? (c->ios + c->threads - 1) / c->threads : 0;

    struct summary s;
    memset(&s, 0, sizeof(s));
    atomic_store(&b->phase, c->ramp > 0 ? PH_RAMP : PH_MEASURE);
    if (c->ramp <= 0)
        proc_sample(c->pid, &s.d0);
    for (unsigned i = 0; i < c->threads; i++) {
        rc = pthread_create(&b->t[i].th, NULL, thread_main, &b->t[i]);
        if (rc) {
            fprintf(stderr, "vscsi-bench: pthread_create: %s\n", strerror(rc));
            atomic_store(&b->phase, PH_STOP);
            for (unsigned k = 0; k < i; k++)
                pthread_join(b->t[k].th, NULL);
            goto out_vuf;
        }
    }
    if (c->ramp > 0) {
        run_for(b, c->ramp);
        proc_sample(c->pid, &s.d0);
        atomic_store(&b->phase, PH_MEASURE);
    }
    if (c->ios)
        run_for(b, 1e6);    /* until every thread reached its quota */
    else
        run_for(b, c->runtime);
    proc_sample(c->pid, &s.d1);
    atomic_store(&b->phase, PH_STOP);
    for (unsigned i = 0; i < c->threads; i++)
        pthread_join(b->t[i].th, NULL);

    ret = 0;
    for (unsigned i = 0; i < c->threads; i++)
        if (b->t[i].err) {
            fprintf(stderr, "vscsi-bench: thread %u: %s\n", i, b->t[i].errmsg);
            ret = 1;
        }
    summarize(b, &s);
    if (s.d0.ok && s.d1.ok)
        s.daemon_cpu_s = (double)(s.d1.run_ns - s.d0.run_ns) / 1e9;
    if (c->json)
        print_json(b, &s);
    else
        print_text(b, &s);
    fflush(stdout);
    if (s.errors || g_interrupted)
        ret = 1;

out_vuf:
    vuf_free(b->h);
out_proc:
    if (b->spawned && vuf_proc_stop(&b->proc, 5000) < 0)
        ret = 1;
    for (unsigned i = 0; i < MAX_THREADS; i++)
        for (unsigned k = 0; k < b->t[i].nq; k++)
            free(b->t[i].q[k].reqs);
    return ret;
}
