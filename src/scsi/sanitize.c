/* SBC-4 5.30 SANITIZE: OVERWRITE, BLOCK ERASE, CRYPTO ERASE and EXIT
 * FAILURE MODE, with IMMED (the operation then runs on in the background
 * while the LU answers NOT READY, SANITIZE IN PROGRESS with a progress
 * indication, SBC-4 4.11.4).
 *
 * OVERWRITE writes the initialization pattern to every LBA, OWCOUNT times,
 * through one bounded buffer. BLOCK ERASE deallocates every LBA (thin LUs
 * only: it needs LBPME, and LBPRZ makes the blocks read back as zeroes).
 * There is no encryption layer to re-key, so CRYPTO ERASE is offered where
 * BLOCK ERASE is and does the same: afterwards no data written before can be
 * read through the LU, which is what the initiator can observe (WACEREQ 01b).
 *
 * A failed operation leaves the LU in the sanitize failure mode: medium
 * access answers MEDIUM ERROR, SANITIZE COMMAND FAILED until a sanitize
 * completes, or, when the failed one had AUSE=1, until EXIT FAILURE MODE. */
#include "scsi/scsi_int.h"

#include <stdlib.h>
#include <string.h>

#include "util/iov.h"
#include "util/log.h"

#define SAN_CHUNK_BYTES     (1u << 20)      /* OVERWRITE buffer */
#define SAN_ERASE_BYTES     (1ull << 30)    /* one BLOCK ERASE request */

enum { SAN_OVERWRITE = 0x01, SAN_BLOCK_ERASE = 0x02, SAN_CRYPTO_ERASE = 0x03, SAN_EXIT_FAILURE = 0x1f };

struct scsi_sanitize {
    struct scsi_lun *lu;
    struct blk_drive *drive;        /* the medium it works on (a counted user) */
    struct blk_ctx *ctx;
    struct blk_req req;
    struct iovec iov;
    struct scsi_cmd *cmd;           /* IMMED=0: completes at the end */
    uint8_t sa;
    bool ause;
    bool invert;
    unsigned passes, pass;
    uint64_t cap, next;             /* blocks: capacity, next to do in this pass */
    uint8_t *buf;                   /* OVERWRITE: whole blocks of the pattern */
    size_t buf_len;
};

bool scsi_sanitize_erase_supported(const struct scsi_lun *lu)
{
    /* LBPME (SBC-4 5.30.1); with no medium in the tray SANITIZE is NOT READY */
    return !lu->drive || blk_can_discard(lu->drive);
}

uint16_t scsi_sanitize_progress(const struct scsi_lun *lu)
{
    const struct scsi_sanitize *s = lu->sanitize;
    uint64_t total, done;

    if (!s || !s->cap)
        return 0;
    total = s->cap * s->passes;
    done = s->cap * s->pass + s->next;
    /* SPC-4 4.5.2.4.4: PROGRESS INDICATION, a fraction of 65536 */
    return (uint16_t)(done >= total ? 0xffff : (done << 16) / total);
}

int scsi_sanitize_parse(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    unsigned sa = cmd->cdb[1] & 0x1f;
    size_t len = get_be16(&cmd->cdb[7]);

    /* SBC-4 5.30.2: OVERWRITE takes 5 .. block size + 4 bytes, the others none */
    if (sa == SAN_OVERWRITE ? (len < 5 || len > lu->block_size + 4u) : len != 0)
        return scsi_invalid_cdb(cmd, 7, 7);
    p->data_len = len;
    return SENSE_OK;
}

static void san_finish(struct scsi_sanitize *s, int reason)
{
    struct scsi_lun *lu = s->lu;
    struct scsi_cmd *cmd = s->cmd;

    lu->sanitize = NULL;
    scsi_lun_medium_put(lu, &lu->io0);
    if (reason) {
        lu->sanitize_failed = true;
        lu->sanitize_ause = s->ause;
        log_warn("scsi %u:%u: SANITIZE failed; the LU is in the sanitize failure mode",
                 lu->tgt->id, lu->lun);
    } else {
        lu->sanitize_failed = false;
    }
    free(s->buf);
    free(s);
    if (cmd)
        scsi_cmd_complete(cmd, reason ? SENSE_SANITIZE_FAILED : SENSE_OK);
    scsi_lun_release(lu);
}

static int san_next(struct scsi_sanitize *s);

static void san_done(struct blk_req *req, int ret)
{
    struct scsi_sanitize *s = req->opaque;
    int r;

    if (ret) {
        san_finish(s, SENSE_SANITIZE_FAILED);
        return;
    }
    s->next += req->len >> s->lu->block_shift;
    r = san_next(s);
    if (r != SCSI_ASYNC)
        san_finish(s, r);
}

static void san_fill(struct scsi_sanitize *s, bool inverted)
{
    for (size_t i = 0; i < s->buf_len; i++)
        s->buf[i] ^= inverted ? 0xff : 0;
}

static int san_next(struct scsi_sanitize *s)
{
    struct scsi_lun *lu = s->lu;
    uint64_t left;
    int ret;

    if (s->next == s->cap) {
        if (++s->pass == s->passes)
            return SENSE_OK;
        s->next = 0;
        /* SBC-4 5.30.2.2: INVERT flips the pattern between passes */
        if (s->invert)
            san_fill(s, true);
    }
    left = s->cap - s->next;
    memset(&s->req, 0, sizeof(s->req));
    s->req.offset = s->next << lu->block_shift;
    if (s->sa == SAN_OVERWRITE) {
        uint64_t n = s->buf_len >> lu->block_shift;

        if (n > left)
            n = left;
        s->iov.iov_base = s->buf;
        s->iov.iov_len = (size_t)n << lu->block_shift;
        s->req.op = BLK_OP_WRITE;
        s->req.iov = &s->iov;
        s->req.iovcnt = 1;
        s->req.len = s->iov.iov_len;
    } else {
        uint64_t n = SAN_ERASE_BYTES >> lu->block_shift;

        if (n > left)
            n = left;
        s->req.op = BLK_OP_WRITE_ZEROES;
        s->req.flags = BLK_F_MAY_UNMAP;
        s->req.len = n << lu->block_shift;
    }
    s->req.done_cb = san_done;
    s->req.opaque = s;
    ret = blk_submit(s->ctx, s->drive, &s->req);
    return ret < 0 ? SENSE_SANITIZE_FAILED : SCSI_ASYNC;
}

int scsi_sanitize(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    unsigned sa = cmd->cdb[1] & 0x1f;
    bool immed = cmd->cdb[1] & 0x80;
    struct scsi_sanitize *s;
    uint8_t hdr[4];
    int r;

    if (sa == SAN_EXIT_FAILURE) {
        /* SBC-4 5.30.2.5: leaves the failure mode only after AUSE=1 */
        if (lu->sanitize_failed && !lu->sanitize_ause)
            return scsi_invalid_cdb(cmd, 1, 4);
        lu->sanitize_failed = false;
        return SENSE_OK;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        return SENSE_BUSY;
    s->lu = lu;
    s->ctx = cmd->blk_ctx;
    s->sa = (uint8_t)sa;
    s->ause = cmd->cdb[1] & 0x20;
    s->cap = scsi_lun_capacity(lu);
    s->passes = 1;
    if (sa == SAN_OVERWRITE) {
        uint8_t pat[4096];
        size_t plen, len = p->data_len;

        /* SBC-4 5.30.2.2 parameter list, copied once */
        if (scsi_dataout(cmd, hdr, 4) != 4 || len - 4 > sizeof(pat)) {
            free(s);
            return SENSE_PARAM_LIST_LENGTH;
        }
        plen = get_be16(&hdr[2]);
        r = SENSE_OK;
        if (hdr[0] & 0x60)
            r = scsi_invalid_param(cmd, 0, 6);      /* TEST: vendor specific */
        else if (!(hdr[0] & 0x1f))
            r = scsi_invalid_param(cmd, 0, 4);      /* OVERWRITE COUNT 0 */
        else if (!plen || plen > lu->block_size || plen > len - 4)
            r = scsi_invalid_param(cmd, 2, 7);
        if (r) {
            free(s);
            return r;
        }
        iov_to_buf(cmd->iov, cmd->iovcnt, 4, pat, plen);
        s->invert = hdr[0] & 0x80;
        s->passes = hdr[0] & 0x1f;
        s->buf_len = (size_t)(s->cap << lu->block_shift < SAN_CHUNK_BYTES ? s->cap << lu->block_shift
                                                                           : SAN_CHUNK_BYTES);
        if (s->buf_len < lu->block_size)
            s->buf_len = lu->block_size;
        s->buf = malloc(s->buf_len);
        if (!s->buf) {
            free(s);
            return SENSE_BUSY;
        }
        /* the pattern repeated through each block */
        for (size_t o = 0; o < s->buf_len; o += lu->block_size)
            for (size_t i = 0; i < lu->block_size; i += plen)
                memcpy(&s->buf[o + i], pat, plen < lu->block_size - i ? plen : lu->block_size - i);
        cmd->xfer_len = len;
    }
    /* IMMED=1 goes on after the command: it holds the medium itself */
    s->drive = scsi_lun_medium_get(lu, &lu->io0);
    if (!s->drive) {
        free(s->buf);
        free(s);
        return scsi_lun_no_medium(lu);
    }
    lu->sanitize = s;
    scsi_lun_hold(lu);
    if (!immed)
        s->cmd = cmd;
    r = s->cap ? san_next(s) : SENSE_OK;
    if (r != SCSI_ASYNC) {
        s->cmd = NULL;
        san_finish(s, r);
        return r ? SENSE_SANITIZE_FAILED : SENSE_OK;
    }
    /* IMMED=1: GOOD now, the operation goes on (SBC-4 5.30.1) */
    return immed ? SENSE_OK : SCSI_ASYNC;
}
