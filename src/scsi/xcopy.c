/* The copy manager: EXTENDED COPY (LID1, SPC-4 6.4) with identification
 * descriptor target descriptors (E4h, 6.4.5.x) and block device to block
 * device segment descriptors (02h, 6.4.6.5), and RECEIVE COPY RESULTS
 * (SPC-4 6.18: COPY STATUS, RECEIVE DATA, OPERATING PARAMETERS, FAILED
 * SEGMENT DETAILS).
 *
 * Copy targets are found by their LU designator (VPD 83) among the LUs of
 * the same bus, i.e. what the initiator can see through this controller;
 * copying to itself is the common case. The whole parameter list is
 * checked before any data moves; an EXTENDED COPY rejected then holds no
 * results. The data goes through one bounded buffer, a chunk at a time:
 * read from the source LU, write to the destination LU.
 *
 * Results are held per LU for LIST ID USAGE 00b, keyed by I_T nexus and
 * list identifier (SPC-4 6.4.3.2), at most XCOPY_HELD of them (the oldest
 * go first); another EXTENDED COPY with the same list identifier from the
 * same nexus replaces them. */
#include "scsi/scsi_int.h"

#include <stdlib.h>
#include <string.h>

#include "util/iov.h"

#define XCOPY_MAX_TGT       16
#define XCOPY_MAX_SEG       16
#define XCOPY_MAX_DESC_LEN  1024    /* MAXIMUM DESCRIPTOR LIST LENGTH */
#define XCOPY_PARAM_MAX     (16 + XCOPY_MAX_DESC_LEN + 4096)
#define XCOPY_CHUNK         (1u << 20)
#define XCOPY_HELD          16

#define TD_IDENT            0xe4    /* identification descriptor target descriptor */
#define SD_B2B              0x02    /* block device to block device */
#define TD_LEN              32
#define SD_B2B_LEN          28

enum { CM_IN_PROGRESS = 0x00, CM_DONE_OK = 0x01, CM_DONE_ERROR = 0x02 };

struct xcopy_held {
    bool used;
    uint32_t nexus;
    uint8_t list_id;
    uint8_t cm_status;              /* COPY MANAGER STATUS */
    uint16_t segs;                  /* SEGMENTS PROCESSED */
    uint64_t bytes;                 /* TRANSFER COUNT in bytes */
    uint32_t stamp;                 /* age, for replacement */
    uint8_t sense_len;              /* failed copies: their sense data */
    uint8_t sense[18];
};

struct xcopy_state {
    struct xcopy_held held[XCOPY_HELD];
    uint32_t stamp;
};

struct xcopy_seg {
    struct scsi_lun *src, *dst;
    struct blk_drive *src_drive, *dst_drive;   /* their media, held to the end */
    uint64_t src_lba, dst_lba;
    uint32_t nblocks;
    bool backwards;                 /* overlapping, destination after source */
};

struct xcopy_work {
    unsigned nseg, cur, held;       /* held: index + 1, 0 = none */
    uint32_t done;                  /* blocks of the current segment */
    uint32_t n;                     /* blocks of the request in flight */
    size_t buf_bytes;
    struct scsi_lun *holds[XCOPY_MAX_TGT];
    struct blk_drive *media[XCOPY_MAX_TGT];     /* holds[i]'s medium (counted), or NULL */
    unsigned nholds;
    struct xcopy_seg seg[XCOPY_MAX_SEG];
    uint8_t buf[];
};

/* ----------------------------------------------------------- helpers */

static int copy_aborted(struct scsi_cmd *cmd, int reason, unsigned param_off)
{
    /* SPC-4 4.5.2.4.6 segment pointer: SD=1, the descriptor's offset */
    cmd->sense_sks = SENSE_SKS_VALID | 0x200000u | (param_off & 0xffffu);
    return reason;
}

static struct xcopy_state *state(struct scsi_lun *lu, bool create)
{
    if (!lu->xcopy && create)
        lu->xcopy = calloc(1, sizeof(struct xcopy_state));
    return lu->xcopy;
}

void scsi_xcopy_free(struct scsi_lun *lu)
{
    free(lu->xcopy);
    lu->xcopy = NULL;
}

static struct xcopy_held *held_find(struct scsi_lun *lu, uint32_t nexus, uint8_t list_id)
{
    struct xcopy_state *s = state(lu, false);

    if (!s)
        return NULL;
    for (unsigned i = 0; i < XCOPY_HELD; i++)
        if (s->held[i].used && s->held[i].nexus == nexus && s->held[i].list_id == list_id)
            return &s->held[i];
    return NULL;
}

static struct xcopy_held *held_new(struct scsi_lun *lu, uint32_t nexus, uint8_t list_id)
{
    struct xcopy_state *s = state(lu, true);
    struct xcopy_held *h = NULL;

    if (!s)
        return NULL;
    for (unsigned i = 0; i < XCOPY_HELD; i++) {
        struct xcopy_held *c = &s->held[i];

        if (!c->used) {
            h = c;
            break;
        }
        /* the oldest finished one makes room (SPC-4 6.18.1: held data may be
         * discarded when the copy manager needs the resources) */
        if (c->cm_status != CM_IN_PROGRESS && (!h || c->stamp < h->stamp))
            h = c;
    }
    if (!h)
        return NULL;
    memset(h, 0, sizeof(*h));
    h->used = true;
    h->nexus = nexus;
    h->list_id = list_id;
    h->stamp = ++s->stamp;
    return h;
}

/* ------------------------------------------------------ EXTENDED COPY */

int scsi_xcopy_parse(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be32(&cmd->cdb[10]);
    /* longer than any list we accept: 05/1A/00 without reading it */
    if (p->data_len > XCOPY_PARAM_MAX)
        return SENSE_PARAM_LIST_LENGTH;
    return SENSE_OK;
}

/* A copy target the initiator named: an LU of this bus, or NULL. */
static struct scsi_lun *find_target(struct scsi_cmd *cmd, const uint8_t *d)
{
    unsigned code_set = d[0] & 0x0f, assoc = (d[1] >> 4) & 3, type = d[1] & 0x0f, len = d[3];

    /* the designation descriptor must fit the 24 bytes (SPC-4 6.4.5.x) */
    if (assoc != 0 || len > 20)
        return NULL;
    return scsi_bus_find_lun_by_designator(cmd->tgt->bus, code_set, type, &d[4], len);
}

static void xcopy_release(struct xcopy_work *w)
{
    for (unsigned i = 0; i < w->nholds; i++) {
        if (w->media[i])
            scsi_lun_medium_put(w->holds[i], &w->holds[i]->io0);
        scsi_lun_release(w->holds[i]);
    }
    w->nholds = 0;
}

static void xcopy_finish(struct scsi_cmd *cmd, int reason)
{
    struct xcopy_work *w = cmd->priv;
    struct xcopy_held *h = NULL;

    if (w->held) {
        struct xcopy_state *s = state(cmd->lu, false);

        h = s ? &s->held[w->held - 1] : NULL;
    }
    if (h) {
        h->cm_status = reason ? CM_DONE_ERROR : CM_DONE_OK;
        if (reason) {
            bool info = cmd->flags & SCSI_CMDF_INFO;

            h->sense_len = (uint8_t)sense_build(h->sense, sizeof(h->sense), false, reason, cmd->sense_sks,
                                                info, cmd->sense_info);
        }
    }
    xcopy_release(w);
    scsi_cmd_complete(cmd, reason);
}

static int xcopy_next(struct scsi_cmd *cmd);

static void xcopy_io_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    struct xcopy_work *w = cmd->priv;
    struct xcopy_seg *s = &w->seg[w->cur];
    int r;

    if (ret || (cmd->flags & SCSI_CMDF_ABORTED)) {
        /* SPC-4 6.4.4: a copy target's error ends the copy with COPY ABORTED */
        xcopy_finish(cmd, ret ? SENSE_COPY_ABORTED : SENSE_OK);
        return;
    }
    if (req->op == BLK_OP_READ) {
        uint64_t lba = s->backwards ? s->dst_lba + s->nblocks - w->done - w->n : s->dst_lba + w->done;

        cmd->breq.op = BLK_OP_WRITE;
        cmd->breq.offset = lba << s->dst->block_shift;
        cmd->breq.done_cb = xcopy_io_done;
        r = blk_submit(cmd->blk_ctx, s->dst_drive, &cmd->breq);
        if (r < 0)
            xcopy_finish(cmd, SENSE_COPY_ABORTED);
        return;
    }
    w->done += w->n;
    if (w->held) {
        struct xcopy_held *h = &((struct xcopy_state *)cmd->lu->xcopy)->held[w->held - 1];

        h->bytes += (uint64_t)w->n << s->dst->block_shift;
    }
    r = xcopy_next(cmd);
    if (r != SCSI_ASYNC)
        xcopy_finish(cmd, r);
}

static int xcopy_next(struct scsi_cmd *cmd)
{
    struct xcopy_work *w = cmd->priv;
    struct xcopy_seg *s;
    uint64_t lba;
    int r;

    for (;;) {
        if (w->cur == w->nseg)
            return SENSE_OK;
        s = &w->seg[w->cur];
        if (w->done < s->nblocks)
            break;
        w->cur++;
        w->done = 0;
        if (w->held)
            ((struct xcopy_state *)cmd->lu->xcopy)->held[w->held - 1].segs = (uint16_t)w->cur;
    }
    w->n = (uint32_t)(w->buf_bytes >> s->src->block_shift);
    if (w->n > s->nblocks - w->done)
        w->n = s->nblocks - w->done;
    lba = s->backwards ? s->src_lba + s->nblocks - w->done - w->n : s->src_lba + w->done;
    cmd->sub_iov[0].iov_base = w->buf;
    cmd->sub_iov[0].iov_len = (size_t)w->n << s->src->block_shift;
    memset(&cmd->breq, 0, sizeof(cmd->breq));
    cmd->breq.op = BLK_OP_READ;
    cmd->breq.offset = lba << s->src->block_shift;
    cmd->breq.len = cmd->sub_iov[0].iov_len;
    cmd->breq.iov = cmd->sub_iov;
    cmd->breq.iovcnt = 1;
    cmd->breq.done_cb = xcopy_io_done;
    cmd->breq.opaque = cmd;
    r = blk_submit(cmd->blk_ctx, s->src_drive, &cmd->breq);
    return r < 0 ? SENSE_COPY_ABORTED : SCSI_ASYNC;
}

static bool hold_lu(struct xcopy_work *w, struct scsi_lun *lu)
{
    for (unsigned i = 0; i < w->nholds; i++)
        if (w->holds[i] == lu)
            return true;
    if (w->nholds == XCOPY_MAX_TGT)
        return false;
    scsi_lun_hold(lu);
    w->media[w->nholds] = scsi_lun_medium_get(lu, &lu->io0);
    w->holds[w->nholds++] = lu;
    return true;
}

/* The medium the copy uses on lu: the command's own, or the one held. */
static struct blk_drive *held_medium(const struct scsi_cmd *cmd, const struct xcopy_work *w,
                                     const struct scsi_lun *lu)
{
    if (lu == cmd->lu)
        return cmd->medium;
    for (unsigned i = 0; i < w->nholds; i++)
        if (w->holds[i] == lu)
            return w->media[i];
    return NULL;
}

int scsi_xcopy(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    size_t len = p->data_len;
    uint8_t *b, hdr[16];
    uint32_t tdl, sdl, inl, ntd, usage;
    struct scsi_lun *tgt[XCOPY_MAX_TGT];
    struct xcopy_work *w;
    struct xcopy_held *old;
    size_t need;
    unsigned nseg = 0;
    int r;

    /* SPC-4 6.4.1: a zero-length parameter list is not an error */
    if (len == 0)
        return SENSE_OK;
    if (len < 16)
        return SENSE_PARAM_LIST_LENGTH;
    if (scsi_dataout(cmd, hdr, 16) != 16)
        return SENSE_PARAM_LIST_LENGTH;
    tdl = get_be16(&hdr[2]);
    sdl = get_be32(&hdr[8]);
    inl = get_be32(&hdr[12]);
    usage = (hdr[1] >> 3) & 3;
    /* SPC-4 6.4.3.2 parameter list header */
    if ((uint64_t)16 + tdl + sdl + inl > len)
        return SENSE_PARAM_LIST_LENGTH;
    if ((uint64_t)tdl + sdl > XCOPY_MAX_DESC_LEN)
        return SENSE_PARAM_LIST_LENGTH;
    if (usage == 1)
        return scsi_invalid_param(cmd, 1, 4);
    if (usage == 3 && hdr[0])
        return scsi_invalid_param(cmd, 0, 7);   /* no list identifier: must be 0 */
    if (tdl % TD_LEN)
        return scsi_invalid_param(cmd, 2, 7);
    ntd = tdl / TD_LEN;
    if (ntd > XCOPY_MAX_TGT)
        return SENSE_TOO_MANY_TARGET_DESC;
    /* a list identifier in use by a copy of this nexus still running */
    old = usage != 3 ? held_find(lu, cmd->nexus, hdr[0]) : NULL;
    if (old && old->cm_status == CM_IN_PROGRESS)
        return SENSE_OPERATION_IN_PROGRESS;
    if (old)
        old->used = false;      /* replaced, or gone if this one is rejected */

    /* the descriptors, copied once: bounded by XCOPY_MAX_DESC_LEN */
    b = malloc(tdl + sdl + 1);
    if (!b)
        return SENSE_BUSY;
    iov_to_buf(cmd->iov, cmd->iovcnt, 16, b, tdl + sdl);
    cmd->xfer_len = len;

    /* target descriptors (SPC-4 6.4.5) */
    for (uint32_t i = 0; i < ntd; i++) {
        const uint8_t *d = &b[i * TD_LEN];
        unsigned off = 16 + i * TD_LEN;

        if (d[0] != TD_IDENT) {
            r = SENSE_UNSUPPORTED_TARGET_DESC;
            cmd->sense_sks = sense_sks_field(false, off, 7);
            goto out;
        }
        /* LU ID TYPE is ignored and NUL obsolete in SPC-4; block devices only */
        if ((d[1] & 0x1f) != 0x00) {
            r = scsi_invalid_param(cmd, off + 1, 4);
            goto out;
        }
        tgt[i] = find_target(cmd, &d[4]);
        if (!tgt[i]) {
            r = copy_aborted(cmd, SENSE_UNREACHABLE_COPY_TARGET, off);
            goto out;
        }
        /* the disk block length must be the target's; a CD-ROM is no
         * block device target (device type 00h) */
        if (tgt[i]->type != SCSI_DEV_HD || get_be24(&d[29]) != tgt[i]->block_size) {
            r = copy_aborted(cmd, SENSE_INCORRECT_COPY_TARGET, off);
            goto out;
        }
    }
    /* segment descriptors (SPC-4 6.4.6) */
    for (uint32_t o = tdl; o < tdl + sdl;) {
        const uint8_t *d = &b[o];
        unsigned off = 16 + o;
        uint16_t si, di;
        uint32_t n;
        uint64_t sl, dl;
        struct scsi_lun *src, *dst;

        if (tdl + sdl - o < 4) {
            r = SENSE_PARAM_LIST_LENGTH;
            goto out;
        }
        if (d[0] != SD_B2B) {
            r = SENSE_UNSUPPORTED_SEGMENT_DESC;
            cmd->sense_sks = sense_sks_field(false, off, 7);
            goto out;
        }
        if (get_be16(&d[2]) != SD_B2B_LEN - 4) {
            r = scsi_invalid_param(cmd, off + 2, 7);
            goto out;
        }
        if (tdl + sdl - o < SD_B2B_LEN) {
            r = SENSE_PARAM_LIST_LENGTH;
            goto out;
        }
        if (nseg == XCOPY_MAX_SEG) {
            r = SENSE_TOO_MANY_SEGMENT_DESC;
            goto out;
        }
        si = get_be16(&d[4]);
        di = get_be16(&d[6]);
        n = get_be16(&d[10]);
        sl = get_be64(&d[12]);
        dl = get_be64(&d[20]);
        /* SPC-4 6.4.6.1: an index beyond the target descriptors */
        if (si >= ntd || di >= ntd) {
            r = copy_aborted(cmd, SENSE_UNREACHABLE_COPY_TARGET, off);
            goto out;
        }
        src = tgt[si];
        dst = tgt[di];
        if (src->block_size != dst->block_size) {
            r = copy_aborted(cmd, SENSE_INCORRECT_COPY_TARGET, off);
            goto out;
        }
        /* a copy target without an accessible medium (tray open or empty) */
        if (n && (!scsi_lun_medium(src) || !scsi_lun_medium(dst))) {
            r = copy_aborted(cmd, SENSE_COPY_TARGET_NOT_REACHABLE, off);
            goto out;
        }
        /* both ranges inside their LUs, checked before any data moves */
        if (sl > scsi_lun_capacity(src) || n > scsi_lun_capacity(src) - sl ||
            dl > scsi_lun_capacity(dst) || n > scsi_lun_capacity(dst) - dl) {
            r = copy_aborted(cmd, SENSE_COPY_ABORTED, off);
            goto out;
        }
        /* the copy manager acts for this nexus: protection and reservations
         * of the copy targets apply (SPC-4 6.4.1) */
        if (n && scsi_lun_write_protected(dst)) {
            r = copy_aborted(cmd, SENSE_COPY_ABORTED_WRITE_PROTECTED, off);
            goto out;
        }
        if (n && (scsi_pr_access(src, cmd->nexus, false) || scsi_pr_access(dst, cmd->nexus, true))) {
            r = SENSE_RESERVATION_CONFLICT;
            goto out;
        }
        nseg++;
        o += SD_B2B_LEN;
    }
    r = SENSE_OK;
out:
    if (r) {
        free(b);
        return r;
    }
    if (!nseg) {
        free(b);
        return SENSE_OK;
    }
    /* work state and one data buffer (at least a block of every segment),
     * under the LU's buffer budget */
    need = sizeof(*w) + XCOPY_CHUNK;
    w = scsi_cmd_alloc(cmd, need, need, NULL);
    if (!w) {
        free(b);
        return SENSE_BUSY;
    }
    memset(w, 0, sizeof(*w));
    w->buf_bytes = XCOPY_CHUNK;
    for (uint32_t o = tdl; o < tdl + sdl; o += SD_B2B_LEN) {
        const uint8_t *d = &b[o];
        struct xcopy_seg *s = &w->seg[w->nseg++];

        s->src = tgt[get_be16(&d[4])];
        s->dst = tgt[get_be16(&d[6])];
        s->nblocks = get_be16(&d[10]);
        s->src_lba = get_be64(&d[12]);
        s->dst_lba = get_be64(&d[20]);
        /* overlapping ranges of one LU, destination later: copy from the end */
        s->backwards = s->src == s->dst && s->dst_lba > s->src_lba && s->dst_lba < s->src_lba + s->nblocks;
    }
    free(b);
    /* the other LUs stay until the copy is done (a removal waits) */
    for (uint32_t i = 0; i < ntd; i++) {
        if (tgt[i] != lu && !hold_lu(w, tgt[i])) {
            xcopy_release(w);
            return SENSE_BUSY;
        }
    }
    for (unsigned i = 0; i < w->nseg; i++) {
        w->seg[i].src_drive = held_medium(cmd, w, w->seg[i].src);
        w->seg[i].dst_drive = held_medium(cmd, w, w->seg[i].dst);
    }
    if (usage == 0) {
        struct xcopy_held *h = held_new(lu, cmd->nexus, hdr[0]);

        if (h)
            w->held = (unsigned)(h - ((struct xcopy_state *)lu->xcopy)->held) + 1;
    }
    r = xcopy_next(cmd);
    if (r != SCSI_ASYNC)
        xcopy_finish(cmd, r);
    return SCSI_ASYNC;
}

/* ---------------------------------------------- RECEIVE COPY RESULTS */

int scsi_rcr_parse(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be32(&cmd->cdb[10]);
    return SENSE_OK;
}

static size_t op_params(uint8_t *b)
{
    static const uint8_t codes[] = { SD_B2B, TD_IDENT };

    /* SPC-4 6.18.4 */
    memset(b, 0, 44 + sizeof(codes));
    put_be32(b, 40 + sizeof(codes));
    b[4] = 0x01;                                /* SNLID: LIST ID USAGE 11b supported */
    put_be16(&b[8], XCOPY_MAX_TGT);
    put_be16(&b[10], XCOPY_MAX_SEG);
    put_be32(&b[12], XCOPY_MAX_DESC_LEN);
    put_be32(&b[16], 0xffffu * 4096u);          /* MAXIMUM SEGMENT LENGTH: the 16-bit block count */
    put_be32(&b[20], 0);                        /* no inline data */
    put_be32(&b[24], 0);                        /* HELD DATA LIMIT: no held data segments */
    put_be16(&b[34], XCOPY_HELD);               /* TOTAL CONCURRENT COPIES */
    b[36] = XCOPY_HELD;                         /* MAXIMUM CONCURRENT COPIES */
    b[37] = 9;                                  /* DATA SEGMENT GRANULARITY: 2^9 */
    b[43] = sizeof(codes);
    memcpy(&b[44], codes, sizeof(codes));
    return 44 + sizeof(codes);
}

int scsi_rcr(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    unsigned sa = cmd->cdb[1] & 0x1f;
    struct xcopy_held *h;
    uint8_t b[96];
    size_t n;

    memset(b, 0, sizeof(b));
    if (sa == 0x03) {
        n = op_params(b);
        scsi_datain(cmd, b, n, p->data_len);
        return SENSE_OK;
    }
    /* the other service actions name a copy by its list identifier */
    h = held_find(lu, cmd->nexus, cmd->cdb[2]);
    if (!h)
        return scsi_invalid_cdb(cmd, 2, 7);
    switch (sa) {
    case 0x00:      /* COPY STATUS (SPC-4 6.18.2) */
        put_be32(b, 8);
        b[4] = h->cm_status;                    /* HDD=0 */
        put_be16(&b[5], h->segs);
        b[7] = 0x00;                            /* TRANSFER COUNT UNITS: bytes */
        put_be32(&b[8], h->bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)h->bytes);
        n = 12;
        break;
    case 0x01:      /* RECEIVE DATA (6.18.3): no held data segments */
        n = 4;
        break;
    default:        /* FAILED SEGMENT DETAILS (6.18.5) */
        if (h->cm_status == CM_IN_PROGRESS) {
            n = 4;
            break;
        }
        put_be32(b, h->cm_status == CM_DONE_ERROR ? 56u + h->sense_len : 0);
        if (h->cm_status != CM_DONE_ERROR) {
            n = 4;
            break;
        }
        b[56] = SCSI_STATUS_CHECK_CONDITION;
        put_be16(&b[58], h->sense_len);
        memcpy(&b[60], h->sense, h->sense_len);
        n = 60 + h->sense_len;
        break;
    }
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}
