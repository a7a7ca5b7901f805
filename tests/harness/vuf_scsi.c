/* virtio-scsi driver helpers over vuf. */
#include "vuf_scsi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANARY_LEN  64
#define CANARY_BYTE 0xa5
#define FILL_BYTE   0xcc

static uint64_t g_tag = 0x1000;

static uint64_t al(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

void vuf_scsi_lun(uint8_t out[8], unsigned target, unsigned lun)
{
    memset(out, 0, 8);
    out[0] = 1;
    out[1] = (uint8_t)target;
    out[2] = (uint8_t)(0x40 | ((lun >> 8) & 0x3f));
    out[3] = (uint8_t)lun;
}

void vuf_scsi_lun_periph(uint8_t out[8], unsigned target, unsigned lun)
{
    memset(out, 0, 8);
    out[0] = 1;
    out[1] = (uint8_t)target;
    out[3] = (uint8_t)lun;
}

void vuf_scsi_fill_req(struct vuf_scsi_cmd_req *req, const uint8_t lun[8], uint64_t tag,
                       const uint8_t *cdb, unsigned cdb_len)
{
    memset(req, 0, sizeof(*req));
    memcpy(req->lun, lun, 8);
    req->tag = tag;
    if (cdb_len > VUF_SCSI_CDB_SIZE)
        cdb_len = VUF_SCSI_CDB_SIZE;
    memcpy(req->cdb, cdb, cdb_len);
}

static bool canary_ok(const uint8_t *p)
{
    for (unsigned i = 0; i < CANARY_LEN; i++)
        if (p[i] != CANARY_BYTE)
            return false;
    return true;
}

/* Split [gpa, gpa+len) into segs descriptors. */
static unsigned add_segs(struct vuf_sg *sg, unsigned n, uint64_t gpa, uint32_t len,
                         unsigned segs, bool write)
{
    if (!len)
        return n;
    if (segs < 1)
        segs = 1;
    if (segs > len)
        segs = len;
    uint32_t off = 0;
    for (unsigned i = 0; i < segs; i++) {
        uint32_t l = i + 1 < segs ? len / segs : len - off;
        sg[n++] = (struct vuf_sg){ gpa + off, l, write };
        off += l;
    }
    return n;
}

struct vuf_scsi_req {
    struct vuf_scsi_req *self;      /* token check */
    uint64_t gpa, total;
    uint8_t *p;
    unsigned vq;
    uint64_t o_resp, o_rcan, o_data_in, o_ican;
    uint32_t resp_len;
    void *data_in;
    uint32_t in_len;
    uint32_t used_len;
    bool done;
};

struct vuf_scsi_req *vuf_scsi_submit(struct vuf *h, const struct vuf_scsi_io *io)
{
    unsigned vq = io->vq ? io->vq : VUF_SCSI_REQQ;
    uint32_t req_len = io->req_len ? io->req_len : sizeof(struct vuf_scsi_cmd_req);
    uint32_t resp_len = io->resp_len ? io->resp_len : sizeof(struct vuf_scsi_cmd_resp);
    bool comb = io->flags & VUF_IO_COMBINED;
    unsigned segs = io->segs ? io->segs : 1;
    if (io->cdb_len > VUF_SCSI_CDB_SIZE || segs > 256 || req_len > 4096 || resp_len > 4096) {
        errno = EINVAL;
        return NULL;
    }
    struct vuf_scsi_req *rq = calloc(1, sizeof(*rq));
    if (!rq)
        return NULL;

    /* layout: req [+out] | resp [+in] canary | out | in canary */
    uint64_t o_req = 0;
    uint64_t o_resp = al(req_len + (comb ? io->out_len : 0), 64);
    uint64_t o_rcan = o_resp + resp_len + (comb ? io->in_len : 0);
    uint64_t o_out = al(o_rcan + CANARY_LEN, 512);
    uint64_t o_in = al(o_out + (comb ? 0 : io->out_len), 512);
    uint64_t o_ican = o_in + (comb ? 0 : io->in_len);
    uint64_t total = o_ican + CANARY_LEN;
    uint64_t gpa = vuf_alloc(h, total, 4096);
    if (gpa == VUF_GPA_NONE) {
        free(rq);
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *p = vuf_ptr(h, gpa, total);
    *rq = (struct vuf_scsi_req){ rq, gpa, total, p, vq, o_resp, o_rcan,
                                 comb ? o_resp + resp_len : o_in, o_ican, resp_len,
                                 io->data_in, io->in_len, 0, false };

    struct vuf_scsi_cmd_req req;
    uint8_t lun[8];
    if (io->lun_raw)
        memcpy(lun, io->lun_raw, 8);
    else
        vuf_scsi_lun(lun, io->target, io->lun);
    uint64_t tag = io->tag ? io->tag : __atomic_fetch_add(&g_tag, 1, __ATOMIC_RELAXED);
    vuf_scsi_fill_req(&req, lun, tag, io->cdb, io->cdb_len);
    req.task_attr = io->task_attr;
    req.prio = io->prio;
    req.crn = io->crn;
    memset(p, 0, o_resp);
    memcpy(p + o_req, &req, req_len < sizeof(req) ? req_len : sizeof(req));
    memset(p + o_resp, FILL_BYTE, o_rcan - o_resp);
    memset(p + o_rcan, CANARY_BYTE, CANARY_LEN);
    if (io->out_len)
        memcpy(p + (comb ? o_req + req_len : o_out), io->data_out, io->out_len);
    if (!comb && io->in_len)
        memset(p + o_in, FILL_BYTE, io->in_len);
    memset(p + o_ican, CANARY_BYTE, CANARY_LEN);

    struct vuf_sg sg[2 * 256 + 4];
    unsigned n = 0;
    if (comb) {
        sg[n++] = (struct vuf_sg){ gpa + o_req, req_len + io->out_len, false };
        sg[n++] = (struct vuf_sg){ gpa + o_resp, resp_len + io->in_len, true };
    } else {
        if ((io->flags & VUF_IO_SPLIT_HDR) && req_len > 21) {
            /* split inside the CDB: a device must gather the header first */
            sg[n++] = (struct vuf_sg){ gpa + o_req, 21, false };
            sg[n++] = (struct vuf_sg){ gpa + o_req + 21, req_len - 21, false };
        } else {
            sg[n++] = (struct vuf_sg){ gpa + o_req, req_len, false };
        }
        n = add_segs(sg, n, gpa + o_out, io->out_len, segs, false);
        if ((io->flags & VUF_IO_SPLIT_HDR) && resp_len > 11) {
            /* status in the first piece, response byte in the second */
            sg[n++] = (struct vuf_sg){ gpa + o_resp, 11, true };
            sg[n++] = (struct vuf_sg){ gpa + o_resp + 11, resp_len - 11, true };
        } else {
            sg[n++] = (struct vuf_sg){ gpa + o_resp, resp_len, true };
        }
        n = add_segs(sg, n, gpa + o_in, io->in_len, segs, true);
    }

    int rc = vuf_vq_add(h, vq, sg, n, rq, (io->flags & VUF_IO_INDIRECT) ? VUF_ADD_INDIRECT : 0);
    if (rc < 0) {
        vuf_free_gpa(h, gpa, total);
        free(rq);
        errno = -rc;
        return NULL;
    }
    if (!(io->flags & VUF_IO_NO_KICK))
        vuf_vq_kick(h, vq);
    return rq;
}

int vuf_scsi_reap(struct vuf *h, unsigned vq)
{
    int n = 0;
    for (;;) {
        void *tok;
        uint32_t len;
        int rc = vuf_vq_get_used(h, vq, &tok, &len);
        if (rc <= 0)
            return rc < 0 ? rc : n;
        struct vuf_scsi_req *o = tok;
        if (o && o->self == o) {
            o->done = true;
            o->used_len = len;
        }
        n++;
    }
}

bool vuf_scsi_req_done(const struct vuf_scsi_req *rq)
{
    return rq->done;
}

int vuf_scsi_complete(struct vuf *h, struct vuf_scsi_req *rq, struct vuf_scsi_result *res,
                      int timeout_ms)
{
    memset(res, 0, sizeof(*res));
    int64_t deadline = vuf_now_ms() + (timeout_ms ? timeout_ms : vuf_opts(h)->timeout_ms);
    while (!rq->done) {
        int rc = vuf_scsi_reap(h, rq->vq);
        if (rc < 0)
            return rc;
        if (rq->done)
            break;
        int64_t left = deadline - vuf_now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        rc = vuf_vq_wait(h, rq->vq, (int)left);
        if (rc == 0)
            return -ETIMEDOUT;
        if (rc < 0)
            return rc;
    }
    struct vuf_scsi_cmd_resp r;
    memset(&r, FILL_BYTE, sizeof(r));
    memcpy(&r, rq->p + rq->o_resp, rq->resp_len < sizeof(r) ? rq->resp_len : sizeof(r));
    res->used_len = rq->used_len;
    res->sense_len = r.sense_len;
    res->resid = r.resid;
    res->status_qualifier = r.status_qualifier;
    res->status = r.status;
    res->response = r.response;
    memcpy(res->sense, r.sense, sizeof(res->sense));
    res->canary_hit = !canary_ok(rq->p + rq->o_rcan) || !canary_ok(rq->p + rq->o_ican);
    if (rq->in_len && rq->data_in)
        memcpy(rq->data_in, rq->p + rq->o_data_in, rq->in_len);
    vuf_free_gpa(h, rq->gpa, rq->total);
    rq->self = NULL;
    free(rq);
    return 0;
}

int vuf_scsi_do(struct vuf *h, const struct vuf_scsi_io *io, struct vuf_scsi_result *res)
{
    memset(res, 0, sizeof(*res));
    struct vuf_scsi_req *rq = vuf_scsi_submit(h, io);
    if (!rq)
        return -errno;
    int rc = vuf_scsi_complete(h, rq, res, io->timeout_ms);
    /* on failure rq and its guest buffers stay: the device may still complete it */
    if (rc < 0)
        vuf_adopt(h, rq);
    return rc;
}

int vuf_scsi_cmd(struct vuf *h, unsigned target, unsigned lun, const uint8_t *cdb,
                 unsigned cdb_len, const void *data_out, uint32_t out_len, void *data_in,
                 uint32_t in_len, struct vuf_scsi_result *res)
{
    struct vuf_scsi_io io = {
        .target = target, .lun = lun, .cdb = cdb, .cdb_len = cdb_len,
        .data_out = data_out, .out_len = out_len, .data_in = data_in, .in_len = in_len,
    };
    return vuf_scsi_do(h, &io, res);
}

/* ---- sense ---------------------------------------------------------------- */

static int sense_field(const struct vuf_scsi_result *r, int which)
{
    uint32_t n = r->sense_len < VUF_SCSI_SENSE_SIZE ? r->sense_len : VUF_SCSI_SENSE_SIZE;
    if (n < 1)
        return -1;
    uint8_t code = r->sense[0] & 0x7f;
    if (code == 0x70 || code == 0x71) {
        static const unsigned off[] = { 2, 12, 13 };
        if (n <= off[which])
            return -1;
        return which == 0 ? r->sense[2] & 0xf : r->sense[off[which]];
    }
    if (code == 0x72 || code == 0x73) {
        if (n <= (uint32_t)which + 1)
            return -1;
        return which == 0 ? r->sense[1] & 0xf : r->sense[which + 1];
    }
    return -1;
}

int vuf_sense_key(const struct vuf_scsi_result *r) { return sense_field(r, 0); }
int vuf_sense_asc(const struct vuf_scsi_result *r) { return sense_field(r, 1); }
int vuf_sense_ascq(const struct vuf_scsi_result *r) { return sense_field(r, 2); }

bool vuf_sense_is(const struct vuf_scsi_result *r, int key, int asc, int ascq)
{
    return r->response == VUF_SCSI_S_OK && r->status == VUF_SAM_CHECK_CONDITION &&
           vuf_sense_key(r) == key && vuf_sense_asc(r) == asc && vuf_sense_ascq(r) == ascq;
}

const char *vuf_scsi_result_str(const struct vuf_scsi_result *r, char *buf, size_t len)
{
    snprintf(buf, len, "response %u status 0x%02x sense %d/%02x/%02x (len %u) resid %u used %u%s",
             r->response, r->status, vuf_sense_key(r), vuf_sense_asc(r) & 0xff,
             vuf_sense_ascq(r) & 0xff, r->sense_len, r->resid, r->used_len,
             r->canary_hit ? " CANARY HIT" : "");
    return buf;
}

/* ---- control and event queues -------------------------------------------- */

int vuf_scsi_ctrl_raw(struct vuf *h, const void *req, uint32_t req_len, void *resp,
                      uint32_t resp_len, uint32_t *used_len)
{
    uint64_t o_resp = al(req_len, 64), total = o_resp + resp_len + CANARY_LEN;
    uint64_t gpa = vuf_alloc(h, total, 64);
    if (gpa == VUF_GPA_NONE)
        return -ENOMEM;
    uint8_t *p = vuf_ptr(h, gpa, total);
    memcpy(p, req, req_len);
    memset(p + o_resp, FILL_BYTE, resp_len);
    memset(p + o_resp + resp_len, CANARY_BYTE, CANARY_LEN);
    struct vuf_sg sg[2] = { { gpa, req_len, false }, { gpa + o_resp, resp_len, true } };
    int rc = vuf_vq_add(h, VUF_SCSI_CTRLQ, sg, 2, p, 0);
    if (rc < 0) {
        vuf_free_gpa(h, gpa, total);
        return rc;
    }
    vuf_vq_kick(h, VUF_SCSI_CTRLQ);
    uint32_t len = 0;
    rc = vuf_vq_wait_token(h, VUF_SCSI_CTRLQ, p, &len, vuf_opts(h)->timeout_ms);
    if (rc <= 0)
        return rc ? rc : -ETIMEDOUT;
    memcpy(resp, p + o_resp, resp_len);
    if (used_len)
        *used_len = len;
    rc = canary_ok(p + o_resp + resp_len) ? 0 : -EOVERFLOW;
    vuf_free_gpa(h, gpa, total);
    return rc;
}

int vuf_scsi_tmf(struct vuf *h, uint32_t subtype, unsigned target, unsigned lun, uint64_t tag,
                 uint8_t *response)
{
    struct vuf_scsi_tmf_req req = { VUF_SCSI_T_TMF, subtype, {0}, tag };
    vuf_scsi_lun(req.lun, target, lun);
    return vuf_scsi_ctrl_raw(h, &req, sizeof(req), response, 1, NULL);
}

int vuf_scsi_an(struct vuf *h, uint32_t type, unsigned target, unsigned lun,
                uint32_t event_requested, uint32_t *event_actual, uint8_t *response)
{
    struct vuf_scsi_an_req req = { type, {0}, event_requested };
    struct vuf_scsi_an_resp resp;
    vuf_scsi_lun(req.lun, target, lun);
    int rc = vuf_scsi_ctrl_raw(h, &req, sizeof(req), &resp, sizeof(resp), NULL);
    if (rc < 0)
        return rc;
    if (event_actual)
        *event_actual = resp.event_actual;
    *response = resp.response;
    return 0;
}

int vuf_scsi_event_post(struct vuf *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t gpa = vuf_alloc(h, sizeof(struct vuf_scsi_event), 16);
        if (gpa == VUF_GPA_NONE)
            return -ENOMEM;
        memset(vuf_ptr(h, gpa, 16), FILL_BYTE, 16);
        struct vuf_sg sg = { gpa, sizeof(struct vuf_scsi_event), true };
        int rc = vuf_vq_add(h, VUF_SCSI_EVENTQ, &sg, 1, (void *)(uintptr_t)gpa, 0);
        if (rc < 0)
            return rc;
    }
    vuf_vq_kick(h, VUF_SCSI_EVENTQ);
    return 0;
}

int vuf_scsi_event_get(struct vuf *h, struct vuf_scsi_event *ev, int timeout_ms)
{
    int64_t deadline = vuf_now_ms() + timeout_ms;
    for (;;) {
        void *tok;
        uint32_t len;
        int rc = vuf_vq_get_used(h, VUF_SCSI_EVENTQ, &tok, &len);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            uint64_t gpa = (uintptr_t)tok;
            uint8_t *p = vuf_ptr(h, gpa, 16);
            memcpy(ev, p, sizeof(*ev));
            memset(p, FILL_BYTE, 16);
            struct vuf_sg sg = { gpa, sizeof(struct vuf_scsi_event), true };
            if (vuf_vq_add(h, VUF_SCSI_EVENTQ, &sg, 1, tok, 0) >= 0)
                vuf_vq_kick(h, VUF_SCSI_EVENTQ);
            return 1;
        }
        int64_t left = deadline - vuf_now_ms();
        if (left <= 0)
            return 0;
        rc = vuf_vq_wait(h, VUF_SCSI_EVENTQ, (int)left);
        if (rc <= 0)
            return rc;
    }
}

/* ---- CDBs ------------------------------------------------------------------ */

static void be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void be32(uint8_t *p, uint32_t v) { be16(p, (uint16_t)(v >> 16)); be16(p + 2, (uint16_t)v); }
static void be64(uint8_t *p, uint64_t v) { be32(p, (uint32_t)(v >> 32)); be32(p + 4, (uint32_t)v); }

unsigned vuf_cdb_tur(uint8_t *cdb)
{
    memset(cdb, 0, 6);
    return 6;
}

unsigned vuf_cdb_inquiry(uint8_t *cdb, bool evpd, uint8_t page, uint16_t alloc)
{
    memset(cdb, 0, 6);
    cdb[0] = 0x12;
    cdb[1] = evpd ? 1 : 0;
    cdb[2] = page;
    be16(cdb + 3, alloc);
    return 6;
}

unsigned vuf_cdb_read_capacity16(uint8_t *cdb, uint32_t alloc)
{
    memset(cdb, 0, 16);
    cdb[0] = 0x9e;
    cdb[1] = 0x10;
    be32(cdb + 10, alloc);
    return 16;
}

unsigned vuf_cdb_rw10(uint8_t *cdb, bool write, uint32_t lba, uint16_t blocks)
{
    memset(cdb, 0, 10);
    cdb[0] = write ? 0x2a : 0x28;
    be32(cdb + 2, lba);
    be16(cdb + 7, blocks);
    return 10;
}

unsigned vuf_cdb_rw16(uint8_t *cdb, bool write, uint64_t lba, uint32_t blocks)
{
    memset(cdb, 0, 16);
    cdb[0] = write ? 0x8a : 0x88;
    be64(cdb + 2, lba);
    be32(cdb + 10, blocks);
    return 16;
}

unsigned vuf_cdb_sync_cache10(uint8_t *cdb)
{
    memset(cdb, 0, 10);
    cdb[0] = 0x35;
    return 10;
}

unsigned vuf_cdb_report_luns(uint8_t *cdb, uint32_t alloc)
{
    memset(cdb, 0, 12);
    cdb[0] = 0xa0;
    be32(cdb + 6, alloc);
    return 12;
}

unsigned vuf_cdb_request_sense(uint8_t *cdb, uint8_t alloc)
{
    memset(cdb, 0, 6);
    cdb[0] = 0x03;
    cdb[4] = alloc;
    return 6;
}

int vuf_scsi_clear_ua(struct vuf *h, unsigned target, unsigned lun)
{
    uint8_t cdb[6];
    vuf_cdb_tur(cdb);
    for (int i = 0; i < 4; i++) {
        struct vuf_scsi_result r;
        int rc = vuf_scsi_cmd(h, target, lun, cdb, 6, NULL, 0, NULL, 0, &r);
        if (rc < 0)
            return rc;
        if (r.response == VUF_SCSI_S_OK && r.status == VUF_SAM_GOOD)
            return 0;
    }
    return -EIO;
}
