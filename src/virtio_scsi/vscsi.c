/* virtio-scsi device over the vhost layer (virtio 1.x, 5.6).
 *
 * Request path: kick -> vq_pop into a free request slot -> copy the header
 * and CDB out of guest memory -> decode LUN -> scsi_bus_submit with the data
 * buffers described in place (no copy) -> completion writes the response
 * header -> vq_push; the first completion of a loop round signals the guest
 * at once, the rest of the round once at its end (req_complete). */
#include "virtio_scsi/vscsi.h"
#include "virtio_scsi/coalesce.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "scsi/scsi.h"
#include "util/iov.h"
#include "util/log.h"
#include "util/loop.h"
#include "vhost/vhost.h"
#include "virtio_scsi/virtio_scsi.h"

#define VQ_CTRL  0
#define VQ_EVENT 1
#define VQ_REQ0  2

/* Events kept while the guest has posted no event buffer (5.6.6.3: the
 * device sets EVENTS_MISSED when it had to drop one). */
#define EVENT_BACKLOG 64
/* Requests taken from a queue before the loop runs what they started: those
 * that complete at once (memory-backed images, page-cache hits, the null
 * driver, errors) are then answered, and the guest signalled (req_complete),
 * while the rest of the ring is still being taken, so an interrupt-driven
 * guest refills the ring meanwhile instead of waiting for the whole batch.
 * 8 measured best of 4/8/16/256 (docs/performance.md, "Pipelining"); it also
 * bounds how long one queue keeps the others waiting. */
#define POP_BUDGET 8
/* iovecs needed to describe a response header split into 1-byte pieces. */
#define RESP_IOV_MAX (sizeof(struct virtio_scsi_cmd_resp))

struct vscsi_queue;

struct vscsi_req {
    struct vscsi_queue *q;
    struct vscsi_req *next_free;
    struct vq_elem elem;
    bool busy;
    unsigned resp_iovcnt;
    struct iovec resp_iov[RESP_IOV_MAX];
    union {
        struct scsi_cmd cmd;
        struct scsi_tmf tmf;
    } u;
    struct iovec iov[VQ_MAX_CHAIN];
};

struct vscsi_queue {
    struct vscsi_ctrl *ctrl;
    unsigned idx;
    struct ev_loop *loop;           /* the thread that serves the queue */
    struct blk_ctx *blk_ctx;        /* ... and its block context */
    struct vq *vq;                  /* NULL while stopped */
    struct ev_handler *kick_h;      /* on loop; touched only by loop's thread */
    int kick_fd;                    /* an iothread's own copy of the kick fd, or -1 */
    struct vscsi_req *reqs;         /* mmap'd: pages are touched only when used */
    size_t reqs_bytes;
    unsigned nreqs;
    unsigned busy;
    struct vscsi_req *free_list;
    bool notify_pending;
    bool starved;                   /* stopped popping for lack of free slots */
    bool process_pending;
    /* interrupt coalescing (coalesce_us): a timer on loop, armed while a
     * signal is held back; touched only by loop's thread */
    int sig_fd;
    struct ev_handler *sig_h;
    bool sig_armed;
    struct vscsi_ac ac;             /* adaptive coalescing (coalesce_auto) */
};

struct pending_event {
    struct virtio_scsi_event ev;
};

struct vscsi_ctrl {
    struct ev_loop *loop;
    struct blk_ctx *blk_ctx;
    struct scsi_bus *bus;
    struct vhost_dev *dev;
    uint32_t nexus;
    unsigned num_vqs;
    uint64_t features;
    struct vscsi_queue queues[2 + VSCSI_MAX_REQUEST_QUEUES];
    struct pending_event events[EVENT_BACKLOG];
    unsigned ev_head, ev_count;
    bool events_missed;
    bool quiesced;
    bool paused;                    /* vscsi_ctrl_pause: request and control queues not popped */
    bool polling;                   /* request queues are polled by the loop */
    unsigned coalesce_us;           /* request queue signals held up to this long (0: none) */
    bool coalesce_auto;             /* ... while holding measures faster (coalesce.h) */
};

static unsigned queue_process(struct vscsi_queue *q);

/* ---- LUN addressing (5.6.6.1, SAM-5 4.7) ---- */

int vscsi_decode_lun(const uint8_t lun[8], uint8_t *target, uint16_t *lun_out, bool *wlun)
{
    *wlun = false;
    if (lun[0] != 1)
        return -EINVAL;
    *target = lun[1];
    if (lun[4] | lun[5] | lun[6] | lun[7]) {
        *lun_out = VSCSI_LUN_INVALID;
        return 0;
    }
    if (lun[2] == 0) {
        *lun_out = lun[3];                              /* peripheral device addressing */
    } else if ((lun[2] & 0xc0) == 0x40) {
        *lun_out = (uint16_t)(((lun[2] & 0x3f) << 8) | lun[3]); /* flat space */
    } else if (lun[2] == 0xc1 && lun[3] == 0x01) {
        *lun_out = 0;                                   /* REPORT LUNS well-known LUN */
        *wlun = true;
    } else {
        *lun_out = VSCSI_LUN_INVALID;
    }
    return 0;
}

void vscsi_encode_lun(uint8_t target, uint16_t lun, uint8_t out[8])
{
    memset(out, 0, 8);
    out[0] = 1;
    out[1] = target;
    if (lun >= 256)
        out[2] = (uint8_t)(0x40 | (lun >> 8));
    out[3] = (uint8_t)lun;
}

/* ---- request slots ---- */

static int queue_alloc_slots(struct vscsi_queue *q, unsigned n)
{
    size_t bytes = (size_t)n * sizeof(struct vscsi_req);
    void *p;

    if (q->reqs && q->nreqs == n)
        return 0;
    if (q->busy)
        return -EBUSY;
    if (q->reqs)
        munmap(q->reqs, q->reqs_bytes);
    q->reqs = NULL;
    q->nreqs = 0;
    /* Anonymous mapping: only slots actually used become resident. */
    p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    q->reqs = p;
    q->reqs_bytes = bytes;
    q->nreqs = n;
    q->free_list = NULL;
    for (unsigned i = n; i-- > 0;) {
        q->reqs[i].q = q;
        q->reqs[i].next_free = q->free_list;
        q->free_list = &q->reqs[i];
    }
    return 0;
}

static struct vscsi_req *req_get(struct vscsi_queue *q)
{
    struct vscsi_req *r = q->free_list;

    if (!r)
        return NULL;
    q->free_list = r->next_free;
    r->busy = true;
    q->busy++;
    return r;
}

static void req_put(struct vscsi_req *r)
{
    struct vscsi_queue *q = r->q;

    r->busy = false;
    r->next_free = q->free_list;
    q->free_list = r;
    q->busy--;
}

/* Threads: a request queue is served by one loop (the controller's, or an
 * iothread's); the control and event queues by the controller's. Everything
 * here runs under the SCSI lock (scsi.h), which the loop callbacks below take:
 * shared on an iothread, which then touches only its own queues; exclusive on
 * the controller's thread, which may touch any queue (a TMF taking what the
 * rings hold, a command the SCSI layer ran there completing) and changes rings
 * and memory for the vhost layer. ev_loop_defer onto another thread's loop
 * posts the call there. */

/* Signal the guest about q's completions (EVENT_IDX or NO_INTERRUPT decide
 * whether it wants one): at once, or, with coalescing, when the queue's timer
 * fires. The timer starts at the first completion not yet signalled, so no
 * completion waits longer than coalesce_us, and the one signal covers every
 * completion pushed meanwhile. On the queue's own thread. */
static void queue_signal(struct vscsi_queue *q, struct vq *vq)
{
    unsigned us = q->ctrl->coalesce_us;
    struct itimerspec its = { 0 };

    if (q->sig_fd < 0) {
        vq_notify(vq);
        return;
    }
    if (q->sig_armed)
        return;
    if (q->ctrl->coalesce_auto && !vscsi_ac_holding(&q->ac)) {
        vq_notify(vq);
        return;
    }
    its.it_value.tv_sec = us / 1000000;
    its.it_value.tv_nsec = (long)(us % 1000000) * 1000;
    if (timerfd_settime(q->sig_fd, 0, &its, NULL) < 0) {
        vq_notify(vq);
        return;
    }
    q->sig_armed = true;
}

static void sig_cb(void *opaque, int fd, uint32_t events)
{
    struct vscsi_queue *q = opaque;
    uint64_t v;

    (void)events;
    /* a spurious wakeup (EAGAIN: the timer has not fired) changes nothing;
     * on any other outcome the held signal goes out (a spare one is harmless) */
    if (read(fd, &v, sizeof(v)) < 0 && errno == EAGAIN)
        return;
    scsi_lock();
    q->sig_armed = false;
    if (q->vq)
        vq_notify(q->vq);
    scsi_unlock();
}

static void notify_deferred(void *opaque)
{
    struct vscsi_queue *q = opaque;

    scsi_lock();
    q->notify_pending = false;
    queue_signal(q, vhost_dev_vq(q->ctrl->dev, q->idx));
    scsi_unlock();
}

static void process_deferred(void *opaque)
{
    struct vscsi_queue *q = opaque;

    scsi_lock();
    q->process_pending = false;
    if (q->vq)
        queue_process(q);
    scsi_unlock();
}

static void schedule_process(struct vscsi_queue *q)
{
    if (!q->process_pending && ev_loop_defer(q->loop, process_deferred, q) == 0)
        q->process_pending = true;
}

/* Push a finished element and release its slot, and signal the guest. */
static void req_complete(struct vscsi_req *r, uint32_t len)
{
    struct vscsi_queue *q = r->q;
    struct vq *vq = vhost_dev_vq(q->ctrl->dev, q->idx);

    vq_push(vq, &r->elem, len);
    req_put(r);
    if (q->ctrl->coalesce_auto && q->idx >= VQ_REQ0 && ev_loop_is_current(q->loop))
        vscsi_ac_completed(&q->ac, ev_loop_now(q->loop));
    if (!q->notify_pending) {
        /* The first completion of a round signals at once (if the guest
         * wants it: EVENT_IDX or NO_INTERRUPT decide), so the guest starts
         * reaping while the round goes on; the rest of the round is
         * signalled once, at its end. */
        if (ev_loop_is_current(q->loop))
            queue_signal(q, vq);
        if (ev_loop_defer(q->loop, notify_deferred, q) == 0)
            q->notify_pending = true;
    }
    if (q->starved && q->vq) {
        q->starved = false;
        schedule_process(q);
    }
}

/* Split elem into the header part (first hdr_len bytes of a direction) and the
 * rest, adjusting the iov array in place so the data part needs no copy.
 * Returns the index of the first data iovec. */
static unsigned iov_skip_in_place(struct iovec *iov, unsigned cnt, size_t skip)
{
    unsigned i = 0;

    while (i < cnt && skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        i++;
    }
    if (i < cnt && skip) {
        iov[i].iov_base = (char *)iov[i].iov_base + skip;
        iov[i].iov_len -= skip;
    }
    return i;
}

/* ---- request queues ---- */

static uint8_t host_status_to_response(enum scsi_host_status hs)
{
    switch (hs) {
    case SCSI_HOST_OK: return VIRTIO_SCSI_S_OK;
    case SCSI_HOST_OVERRUN: return VIRTIO_SCSI_S_OVERRUN;
    case SCSI_HOST_BAD_TARGET: return VIRTIO_SCSI_S_BAD_TARGET;
    case SCSI_HOST_ABORTED: return VIRTIO_SCSI_S_ABORTED;
    case SCSI_HOST_RESET: return VIRTIO_SCSI_S_RESET;
    case SCSI_HOST_FAILURE: break;
    }
    return VIRTIO_SCSI_S_FAILURE;
}

static void cmd_respond(struct vscsi_req *r, uint8_t response, uint8_t status,
                        const uint8_t *sense, unsigned sense_len, uint32_t resid, uint32_t data_in)
{
    struct virtio_scsi_cmd_resp resp;

    memset(&resp, 0, sizeof(resp));
    if (sense_len > VIRTIO_SCSI_SENSE_SIZE)
        sense_len = VIRTIO_SCSI_SENSE_SIZE;
    resp.sense_len = htole32(sense_len);
    resp.resid = htole32(resid);
    resp.status = status;
    resp.response = response;
    if (sense_len)
        memcpy(resp.sense, sense, sense_len);
    iov_from_buf(r->resp_iov, r->resp_iovcnt, 0, &resp, sizeof(resp));
    req_complete(r, (uint32_t)sizeof(resp) + data_in);
}

static void cmd_done_cb(struct scsi_cmd *cmd)
{
    struct vscsi_req *r = cmd->opaque;
    uint8_t response = host_status_to_response(cmd->host_status);
    size_t xfer = cmd->xfer_len <= cmd->buf_len ? cmd->xfer_len : cmd->buf_len;
    uint32_t resid = (uint32_t)(cmd->buf_len - xfer);
    uint32_t data_in = cmd->dir == SCSI_DIR_FROM_DEV ? (uint32_t)xfer : 0;

    if (response != VIRTIO_SCSI_S_OK) {
        /* 5.6.6.1: with a non-OK response, sense and status are not valid. */
        cmd_respond(r, response, 0, NULL, 0, (uint32_t)cmd->buf_len, 0);
        return;
    }
    cmd_respond(r, response, cmd->status, cmd->sense, cmd->sense_len, resid, data_in);
}

static void handle_cmd(struct vscsi_queue *q, struct vscsi_req *r)
{
    struct vscsi_ctrl *ctrl = q->ctrl;
    struct vq_elem *e = &r->elem;
    struct iovec *out = e->iov, *in = e->iov + e->out_num;
    struct virtio_scsi_cmd_req req;
    size_t out_len = iov_size(out, e->out_num), in_len = iov_size(in, e->in_num);
    struct scsi_cmd *cmd = &r->u.cmd;
    uint8_t target = 0;
    uint16_t lun = 0;
    bool wlun = false;
    int n;

    /* The response header is written at completion: describe it now, before
     * the in-place split below changes the array. */
    n = iov_slice(in, e->in_num, 0, sizeof(struct virtio_scsi_cmd_resp), r->resp_iov, RESP_IOV_MAX);
    r->resp_iovcnt = n < 0 ? 0 : (unsigned)n;

    if (in_len < sizeof(struct virtio_scsi_cmd_resp) || out_len < sizeof(req)) {
        /* No room for a header: the request cannot be understood or answered
         * in full. Answer what fits and move on (guest bug, not ours). */
        log_guest("queue %u: request with %zu/%zu header bytes, need %zu/%zu",
                  q->idx, out_len, in_len, sizeof(req), sizeof(struct virtio_scsi_cmd_resp));
        if (in_len >= sizeof(struct virtio_scsi_cmd_resp))
            cmd_respond(r, VIRTIO_SCSI_S_FAILURE, 0, NULL, 0, 0, 0);
        else
            req_complete(r, 0);
        return;
    }
    /* Copy the header and CDB out of guest memory once; validate the copy. */
    iov_to_buf(out, e->out_num, 0, &req, sizeof(req));

    if (out_len > sizeof(req) && in_len > sizeof(struct virtio_scsi_cmd_resp)) {
        /* Bidirectional commands need VIRTIO_SCSI_F_INOUT, which we do not offer. */
        log_guest("queue %u: request with both data-out and data-in buffers", q->idx);
        cmd_respond(r, VIRTIO_SCSI_S_FAILURE, 0, NULL, 0, 0, 0);
        return;
    }
    if (vscsi_decode_lun(req.lun, &target, &lun, &wlun) < 0) {
        cmd_respond(r, VIRTIO_SCSI_S_BAD_TARGET, 0, NULL, 0, 0, 0);
        return;
    }

    memset(cmd, 0, offsetof(struct scsi_cmd, lu));
    cmd->target = target;
    cmd->lun = lun;
    cmd->lun_wlun_report = wlun;
    memcpy(cmd->cdb, req.cdb, VIRTIO_SCSI_CDB_SIZE);
    cmd->cdb_len = VIRTIO_SCSI_CDB_SIZE;
    cmd->tag = le64toh(req.tag);
    cmd->task_attr = req.task_attr;
    cmd->nexus = ctrl->nexus;
    cmd->blk_ctx = q->blk_ctx;
    cmd->done_cb = cmd_done_cb;
    cmd->opaque = r;
    if (out_len > sizeof(req)) {
        unsigned i = iov_skip_in_place(out, e->out_num, sizeof(req));
        cmd->dir = SCSI_DIR_TO_DEV;
        cmd->iov = out + i;
        cmd->iovcnt = e->out_num - i;
        cmd->buf_len = out_len - sizeof(req);
    } else if (in_len > sizeof(struct virtio_scsi_cmd_resp)) {
        unsigned i = iov_skip_in_place(in, e->in_num, sizeof(struct virtio_scsi_cmd_resp));
        cmd->dir = SCSI_DIR_FROM_DEV;
        cmd->iov = in + i;
        cmd->iovcnt = e->in_num - i;
        cmd->buf_len = in_len - sizeof(struct virtio_scsi_cmd_resp);
    } else {
        cmd->dir = SCSI_DIR_NONE;
    }
    scsi_bus_submit(ctrl->bus, cmd);
}

/* ---- control queue (5.6.6.2) ---- */

static void tmf_done_cb(struct scsi_tmf *tmf)
{
    struct vscsi_req *r = tmf->opaque;
    struct vq_elem *e = &r->elem;
    uint8_t resp;

    switch (tmf->response) {
    case SCSI_TMF_COMPLETE: resp = VIRTIO_SCSI_S_FUNCTION_COMPLETE; break;
    case SCSI_TMF_SUCCEEDED: resp = VIRTIO_SCSI_S_FUNCTION_SUCCEEDED; break;
    case SCSI_TMF_REJECTED: resp = VIRTIO_SCSI_S_FUNCTION_REJECTED; break;
    case SCSI_TMF_INCORRECT_LUN: resp = VIRTIO_SCSI_S_INCORRECT_LUN; break;
    case SCSI_TMF_BAD_TARGET: resp = VIRTIO_SCSI_S_BAD_TARGET; break;
    default: resp = VIRTIO_SCSI_S_FAILURE; break;
    }
    iov_from_buf(e->iov + e->out_num, e->in_num, 0, &resp, 1);
    req_complete(r, 1);
}

static void ctrl_respond_byte(struct vscsi_req *r, uint8_t response)
{
    struct vq_elem *e = &r->elem;
    size_t n = iov_from_buf(e->iov + e->out_num, e->in_num, 0, &response, 1);

    req_complete(r, (uint32_t)n);
}

static const enum scsi_tmf_type tmf_map[] = {
    [VIRTIO_SCSI_T_TMF_ABORT_TASK] = SCSI_TMF_ABORT_TASK,
    [VIRTIO_SCSI_T_TMF_ABORT_TASK_SET] = SCSI_TMF_ABORT_TASK_SET,
    [VIRTIO_SCSI_T_TMF_CLEAR_ACA] = SCSI_TMF_CLEAR_ACA,
    [VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET] = SCSI_TMF_CLEAR_TASK_SET,
    [VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET] = SCSI_TMF_I_T_NEXUS_RESET,
    [VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET] = SCSI_TMF_LOGICAL_UNIT_RESET,
    [VIRTIO_SCSI_T_TMF_QUERY_TASK] = SCSI_TMF_QUERY_TASK,
    [VIRTIO_SCSI_T_TMF_QUERY_TASK_SET] = SCSI_TMF_QUERY_TASK_SET,
};

static void handle_ctrl(struct vscsi_queue *q, struct vscsi_req *r)
{
    struct vscsi_ctrl *ctrl = q->ctrl;
    struct vq_elem *e = &r->elem;
    size_t out_len = iov_size(e->iov, e->out_num);
    size_t in_len = iov_size(e->iov + e->out_num, e->in_num);
    uint32_t type;

    if (out_len < sizeof(type) || in_len < 1) {
        log_guest("control queue: request too short (%zu/%zu bytes)", out_len, in_len);
        req_complete(r, 0);
        return;
    }
    iov_to_buf(e->iov, e->out_num, 0, &type, sizeof(type));
    type = le32toh(type);

    if (type == VIRTIO_SCSI_T_TMF) {
        struct virtio_scsi_ctrl_tmf_req req;
        struct scsi_tmf *tmf = &r->u.tmf;
        uint8_t target;
        uint16_t lun;
        bool wlun;
        uint32_t subtype;

        if (out_len < sizeof(req)) {
            ctrl_respond_byte(r, VIRTIO_SCSI_S_FAILURE);
            return;
        }
        iov_to_buf(e->iov, e->out_num, 0, &req, sizeof(req));
        subtype = le32toh(req.subtype);
        if (subtype >= sizeof(tmf_map) / sizeof(tmf_map[0])) {
            ctrl_respond_byte(r, VIRTIO_SCSI_S_FUNCTION_REJECTED);
            return;
        }
        if (vscsi_decode_lun(req.lun, &target, &lun, &wlun) < 0) {
            ctrl_respond_byte(r, VIRTIO_SCSI_S_BAD_TARGET);
            return;
        }
        memset(tmf, 0, sizeof(*tmf));
        tmf->type = tmf_map[subtype];
        tmf->target = target;
        tmf->lun = lun;
        tmf->tag = le64toh(req.tag);
        tmf->nexus = ctrl->nexus;
        tmf->done_cb = tmf_done_cb;
        tmf->opaque = r;
        /* The guest queued its commands before this TMF: take them all, so
         * that the TMF covers them, whichever thread serves their queue
         * (virtio orders nothing across queues; SAM has the TMF act on the
         * tasks the device server has received). */
        vscsi_ctrl_take_queued(ctrl);
        scsi_bus_tmf(ctrl->bus, tmf);
        return;
    }
    if (type == VIRTIO_SCSI_T_AN_QUERY || type == VIRTIO_SCSI_T_AN_SUBSCRIBE) {
        /* No asynchronous notification classes are supported: event_actual = 0. */
        struct virtio_scsi_ctrl_an_resp resp = { .event_actual = 0, .response = VIRTIO_SCSI_S_OK };
        size_t n;

        if (out_len < sizeof(struct virtio_scsi_ctrl_an_req)) {
            ctrl_respond_byte(r, VIRTIO_SCSI_S_FAILURE);
            return;
        }
        n = iov_from_buf(e->iov + e->out_num, e->in_num, 0, &resp, sizeof(resp));
        req_complete(r, (uint32_t)n);
        return;
    }
    log_guest("control queue: unknown request type %u", type);
    ctrl_respond_byte(r, VIRTIO_SCSI_S_FAILURE);
}

/* ---- event queue (5.6.6.3) ---- */

static void events_flush(struct vscsi_ctrl *ctrl)
{
    struct vscsi_queue *q = &ctrl->queues[VQ_EVENT];

    while (q->vq && ctrl->ev_count) {
        struct vscsi_req *r = req_get(q);
        struct virtio_scsi_event ev;
        int ret;

        if (!r)
            return;
        ret = vq_pop(q->vq, &r->elem, r->iov, VQ_MAX_CHAIN);
        if (ret <= 0) {
            req_put(r);
            return;
        }
        ev = ctrl->events[ctrl->ev_head].ev;
        if (ctrl->events_missed) {
            ev.event |= htole32(VIRTIO_SCSI_T_EVENTS_MISSED);
            ctrl->events_missed = false;
        }
        ctrl->ev_head = (ctrl->ev_head + 1) % EVENT_BACKLOG;
        ctrl->ev_count--;
        size_t n = iov_from_buf(r->elem.iov + r->elem.out_num, r->elem.in_num, 0, &ev, sizeof(ev));
        if (n < sizeof(ev))
            log_guest("event queue: buffer of %zu bytes, need %zu", n, sizeof(ev));
        req_complete(r, (uint32_t)n);
    }
}

static void event_post(struct vscsi_ctrl *ctrl, uint32_t event, uint8_t target, uint16_t lun,
                       uint32_t reason)
{
    struct pending_event *pe;

    if (ctrl->ev_count == EVENT_BACKLOG) {
        /* Drop the oldest? No: keep order, drop the new one and tell the guest. */
        ctrl->events_missed = true;
        return;
    }
    pe = &ctrl->events[(ctrl->ev_head + ctrl->ev_count) % EVENT_BACKLOG];
    memset(pe, 0, sizeof(*pe));
    pe->ev.event = htole32(event);
    vscsi_encode_lun(target, lun, pe->ev.lun);
    pe->ev.reason = htole32(reason);
    ctrl->ev_count++;
    events_flush(ctrl);
}

void vscsi_ctrl_bus_event(struct vscsi_ctrl *ctrl, int ev, uint8_t target, uint16_t lun)
{
    bool hotplug = ctrl->features & (1ull << VIRTIO_SCSI_F_HOTPLUG);
    bool change = ctrl->features & (1ull << VIRTIO_SCSI_F_CHANGE);

    if (!vhost_dev_connected(ctrl->dev))
        return;
    switch ((enum scsi_bus_event)ev) {
    case SCSI_EV_LUN_ADDED:
        if (hotplug)
            event_post(ctrl, VIRTIO_SCSI_T_TRANSPORT_RESET, target, lun, VIRTIO_SCSI_EVT_RESET_RESCAN);
        break;
    case SCSI_EV_LUN_REMOVED:
        if (hotplug)
            event_post(ctrl, VIRTIO_SCSI_T_TRANSPORT_RESET, target, lun, VIRTIO_SCSI_EVT_RESET_REMOVED);
        break;
    case SCSI_EV_CAPACITY_CHANGED:
        /* reason = ASC | ASCQ << 8: 2A/09 CAPACITY DATA HAS CHANGED */
        if (change)
            event_post(ctrl, VIRTIO_SCSI_T_PARAM_CHANGE, target, lun, 0x2a | (0x09 << 8));
        break;
    case SCSI_EV_MEDIA_CHANGED:
        if (change)
            event_post(ctrl, VIRTIO_SCSI_T_PARAM_CHANGE, target, lun, 0x28);
        break;
    }
}

static void bus_event_cb(void *opaque, enum scsi_bus_event ev, uint8_t target, uint16_t lun)
{
    vscsi_ctrl_bus_event(opaque, ev, target, lun);
}

static const struct scsi_bus_listener_ops bus_listener = { .event_cb = bus_event_cb };

/* ---- queue processing ---- */

/* Pop and handle what the guest made available. Returns the number of chains
 * handled. With polling on, guest notifications stay disabled after the round
 * (the loop polls instead); vscsi_ctrl_poll_idle re-arms them before sleeping. */
static unsigned queue_process(struct vscsi_queue *q)
{
    unsigned budget = POP_BUDGET, handled = 0;
    /* Notifications stay off only for the loop that polls this queue: on
     * another thread (a TMF taking the request queues first) they go back
     * on, or the owner, asleep, would never hear of the next request. */
    bool polled = q->ctrl->polling && q->idx >= VQ_REQ0 && ev_loop_is_current(q->loop);

    if (q->idx == VQ_EVENT) {
        events_flush(q->ctrl);
        return 0;
    }
    if (q->ctrl->paused)
        return 0;       /* vscsi_ctrl_pause(false) schedules a round */
    vq_disable_notify(q->vq);
    for (;;) {
        struct vscsi_req *r;
        int ret;

        if (!q->vq || vq_is_broken(q->vq))
            return handled;
        if (!budget--) {
            schedule_process(q);
            if (q->process_pending)
                return handled;     /* the next round takes the rest: no kicks meanwhile */
            break;
        }
        r = req_get(q);
        if (!r) {
            q->starved = true;
            break;
        }
        ret = vq_pop(q->vq, &r->elem, r->iov, VQ_MAX_CHAIN);
        if (ret <= 0) {
            req_put(r);
            if (ret < 0) {
                log_guest("queue %u: malformed descriptor chain (%s); queue stopped",
                          q->idx, strerror(-ret));
                return handled;
            }
            if (polled)
                return handled;
            if (vq_enable_notify(q->vq)) {
                vq_disable_notify(q->vq);
                continue;
            }
            return handled;
        }
        handled++;
        if (q->idx == VQ_CTRL)
            handle_ctrl(q, r);
        else
            handle_cmd(q, r);
    }
    if (!polled)
        vq_enable_notify(q->vq);
    return handled;
}

bool vscsi_ctrl_poll(struct vscsi_ctrl *ctrl, struct ev_loop *loop)
{
    unsigned handled = 0;

    scsi_lock();
    for (unsigned i = VQ_REQ0; i < ctrl->num_vqs && !ctrl->paused; i++) {
        struct vscsi_queue *q = &ctrl->queues[i];

        if (q->loop == loop && q->vq && !q->starved && !vq_is_broken(q->vq))
            handled += queue_process(q);
    }
    scsi_unlock();
    return handled > 0;
}

bool vscsi_ctrl_poll_idle(struct vscsi_ctrl *ctrl, struct ev_loop *loop)
{
    bool work = false;

    scsi_lock();
    /* paused: buffers waiting in the rings are not work (no busy polling) */
    for (unsigned i = VQ_REQ0; i < ctrl->num_vqs && !ctrl->paused; i++) {
        struct vscsi_queue *q = &ctrl->queues[i];

        /* true: buffers arrived while notifications were off */
        if (q->loop == loop && q->vq && !vq_is_broken(q->vq) && vq_enable_notify(q->vq))
            work = true;
    }
    scsi_unlock();
    return work;
}

static void kick_cb(void *opaque, int fd, uint32_t events)
{
    struct vscsi_queue *q = opaque;
    uint64_t v;

    (void)events;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return;
    scsi_lock();
    if (q->vq)
        queue_process(q);
    scsi_unlock();
}

/* Stop watching *fd (if watched) and close it (if open). */
static void fd_unwatch(struct ev_loop *loop, struct ev_handler **h, int *fd)
{
    if (*h) {
        ev_loop_del_fd(loop, *h);
        *h = NULL;
    }
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* The coalescing timer follows the queue like its kick watch: a request queue
 * that runs has one (when coalescing is on), a stopped one none. A signal held
 * back when the queue starts again goes out at once. */
static void coalesce_sync(struct vscsi_queue *q)
{
    if (q->sig_armed && q->vq)
        vq_notify(q->vq);
    q->sig_armed = false;
    fd_unwatch(q->loop, &q->sig_h, &q->sig_fd);
    if (!q->vq || !q->ctrl->coalesce_us || q->idx < VQ_REQ0)
        return;
    q->sig_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (q->sig_fd >= 0 && (q->sig_h = ev_loop_add_fd(q->loop, q->sig_fd, EPOLLIN, sig_cb, q)))
        return;
    log_err("queue %u: cannot set up interrupt coalescing (%s); it signals the guest at once",
            q->idx, strerror(errno));
    fd_unwatch(q->loop, &q->sig_h, &q->sig_fd);
}

/* Make the queue's kick watch match its state (q->vq), on the queue's own
 * thread (kick_watch_update). An iothread watches its own copy of the kick fd:
 * the frontend replacing or closing the original on the control thread
 * cannot make the number point elsewhere before the posted call runs. */
static void kick_watch_sync(void *opaque)
{
    struct vscsi_queue *q = opaque;
    int fd;

    scsi_lock();
    /* kick_fd is -1 when the watch is on the frontend's own fd (not ours) */
    fd_unwatch(q->loop, &q->kick_h, &q->kick_fd);
    fd = q->vq ? vq_kick_fd(q->vq) : -1;
    if (fd >= 0 && q->loop != q->ctrl->loop) {
        fd = q->kick_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            log_err("queue %u: cannot copy its kick fd: %s", q->idx, strerror(errno));
    }
    if (fd >= 0 && !(q->kick_h = ev_loop_add_fd(q->loop, fd, EPOLLIN, kick_cb, q)))
        log_err("queue %u: cannot watch kick fd: %s", q->idx, strerror(errno));
    coalesce_sync(q);
    /* Buffers may already be waiting (e.g. after a reconnect or re-enable). */
    if (q->vq)
        schedule_process(q);
    scsi_unlock();
}

/* From the control thread (queue start and stop): at once for its own
 * queues, posted (in order) to an iothread's. */
static void kick_watch_update(struct vscsi_queue *q)
{
    if (ev_loop_is_current(q->loop))
        kick_watch_sync(q);
    else if (ev_loop_post(q->loop, kick_watch_sync, q) < 0)
        log_err("queue %u: out of memory; its kicks are not watched", q->idx);
}

static void queue_start_cb(void *opaque, unsigned qidx, struct vq *vq)
{
    struct vscsi_ctrl *ctrl = opaque;
    struct vscsi_queue *q;

    if (qidx >= ctrl->num_vqs)
        return;
    q = &ctrl->queues[qidx];
    if (ctrl->quiesced)
        return;
    if (queue_alloc_slots(q, vq_size(vq)) < 0) {
        log_err("queue %u: cannot allocate %u request slots", qidx, vq_size(vq));
        return;
    }
    q->vq = vq;
    if (vq_kick_fd(vq) < 0)
        log_warn("queue %u: the frontend asked for polling (no kick fd), which is not supported; "
                 "the queue is served only when another event wakes it", qidx);
    /* replaces the watch of a queue started again without a stop between,
     * and looks at the ring once: buffers may be waiting (reconnect) */
    kick_watch_update(q);
    log_debug("queue %u started (size %u)%s", qidx, vq_size(vq),
              q->loop != ctrl->loop ? " on an iothread" : "");
}

static bool held_on_queue(void *opaque, const struct scsi_cmd *cmd)
{
    const struct vscsi_req *r = cmd->opaque;

    return r->q == opaque;
}

static void queue_stop_cb(void *opaque, unsigned qidx, struct vq *vq)
{
    struct vscsi_ctrl *ctrl = opaque;
    struct vscsi_queue *q;

    (void)vq;
    if (qidx >= ctrl->num_vqs)
        return;
    q = &ctrl->queues[qidx];
    /* already stopped (quiesced): nothing to tell its thread, an iothread
     * may be gone by now (vscsi_ctrl_free after the threads stopped) */
    if (q->vq) {
        q->vq = NULL;
        kick_watch_update(q);
    }
    q->starved = false;
    log_debug("queue %u stopped (%u in flight)", qidx, q->busy);
    /* Commands held after an I/O error would keep the frontend waiting
     * (GET_VRING_BASE, reset, reconnect) until a `cont`: they end with
     * VIRTIO_SCSI_S_RESET now, and the guest sends them again. */
    if (qidx >= VQ_REQ0 && scsi_bus_held_count(ctrl->bus))
        scsi_bus_reset_held(ctrl->bus, held_on_queue, q);
}

static void features_set_cb(void *opaque, uint64_t features)
{
    struct vscsi_ctrl *ctrl = opaque;

    ctrl->features = features;
}

static void session_end_cb(void *opaque)
{
    struct vscsi_ctrl *ctrl = opaque;

    /* Events belong to the guest that went away; the next one rescans anyway. */
    ctrl->ev_count = 0;
    ctrl->ev_head = 0;
    ctrl->events_missed = false;
    ctrl->features = 0;
    log_debug("virtio-scsi: session ended");
}

static const struct vhost_dev_ops vscsi_vhost_ops = {
    .device_features = (1ull << VIRTIO_SCSI_F_HOTPLUG) | (1ull << VIRTIO_SCSI_F_CHANGE),
    .queue_start = queue_start_cb,
    .queue_stop = queue_stop_cb,
    .features_set = features_set_cb,
    .session_end = session_end_cb,
};

struct vscsi_ctrl *vscsi_ctrl_new(struct ev_loop *loop, struct blk_ctx *blk_ctx,
                                  struct scsi_bus *bus, const struct vscsi_ctrl_config *cfg,
                                  char *err, size_t errlen)
{
    struct vscsi_ctrl *ctrl;

    if (cfg->num_queues < 1 || cfg->num_queues > VSCSI_MAX_REQUEST_QUEUES) {
        snprintf(err, errlen, "num-queues must be between 1 and %d", VSCSI_MAX_REQUEST_QUEUES);
        return NULL;
    }
    ctrl = calloc(1, sizeof(*ctrl));
    if (!ctrl) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ctrl->loop = loop;
    ctrl->blk_ctx = blk_ctx;
    ctrl->bus = bus;
    ctrl->nexus = cfg->nexus;
    ctrl->polling = cfg->polling;
    ctrl->coalesce_us = cfg->coalesce_us;
    ctrl->coalesce_auto = cfg->coalesce_auto;
    if (cfg->coalesce_auto && !cfg->coalesce_us)
        ctrl->coalesce_us = VSCSI_COALESCE_AUTO_US;
    ctrl->num_vqs = 2 + cfg->num_queues;
    for (unsigned i = 0; i < ctrl->num_vqs; i++) {
        struct vscsi_queue *q = &ctrl->queues[i];

        q->ctrl = ctrl;
        q->idx = i;
        q->loop = loop;
        q->blk_ctx = blk_ctx;
        q->kick_fd = -1;
        q->sig_fd = -1;
        /* request queues spread over the iothreads, round robin */
        if (i >= VQ_REQ0 && cfg->num_iothreads) {
            const struct vscsi_iothread *it = &cfg->iothreads[(i - VQ_REQ0) % cfg->num_iothreads];

            q->loop = it->loop;
            q->blk_ctx = it->blk_ctx;
        }
    }
    ctrl->dev = vhost_dev_new(loop, cfg->socket_path, ctrl->num_vqs, &vscsi_vhost_ops, ctrl,
                              err, errlen);
    if (!ctrl->dev) {
        free(ctrl);
        return NULL;
    }
    scsi_bus_set_listener(bus, &bus_listener, ctrl);
    return ctrl;
}

void vscsi_ctrl_quiesce(struct vscsi_ctrl *ctrl)
{
    ctrl->quiesced = true;
    for (unsigned i = 0; i < ctrl->num_vqs; i++)
        if (ctrl->queues[i].vq)
            queue_stop_cb(ctrl, i, ctrl->queues[i].vq);
}

void vscsi_ctrl_take_queued(struct vscsi_ctrl *ctrl)
{
    for (unsigned i = VQ_REQ0; i < ctrl->num_vqs; i++)
        while (ctrl->queues[i].vq && !vq_is_broken(ctrl->queues[i].vq) &&
               queue_process(&ctrl->queues[i]) == POP_BUDGET)
            ;   /* all of it, not one budget's worth */
}

void vscsi_ctrl_pause(struct vscsi_ctrl *ctrl, bool paused)
{
    if (ctrl->paused == paused)
        return;
    ctrl->paused = paused;
    if (paused)
        return;
    /* kicks read while paused were dropped: look at every ring once */
    for (unsigned i = 0; i < ctrl->num_vqs; i++)
        if (i != VQ_EVENT && ctrl->queues[i].vq)
            schedule_process(&ctrl->queues[i]);
}

bool vscsi_ctrl_paused(const struct vscsi_ctrl *ctrl)
{
    return ctrl->paused;
}

unsigned vscsi_ctrl_inflight(const struct vscsi_ctrl *ctrl)
{
    unsigned n = 0;

    for (unsigned i = 0; i < ctrl->num_vqs; i++)
        n += ctrl->queues[i].busy;
    return n;
}

void vscsi_ctrl_free(struct vscsi_ctrl *ctrl)
{
    if (!ctrl)
        return;
    scsi_bus_set_listener(ctrl->bus, NULL, NULL);
    vhost_dev_free(ctrl->dev);
    for (unsigned i = 0; i < ctrl->num_vqs; i++) {
        struct vscsi_queue *q = &ctrl->queues[i];

        /* iothreads have stopped (vscsi_ctrl_free's contract), so their
         * loops may be touched from here */
        fd_unwatch(q->loop, &q->kick_h, &q->kick_fd);
        fd_unwatch(q->loop, &q->sig_h, &q->sig_fd);
        if (q->reqs)
            munmap(q->reqs, q->reqs_bytes);
    }
    free(ctrl);
}
