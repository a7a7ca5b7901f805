/* SBC-4 block commands for SCSI_DEV_HD and the disk opcode table.
 * READ/WRITE go straight between cmd->iov (guest memory) and the block
 * layer: no copy, no allocation. Multi-step commands (WRITE SAME with a
 * pattern, UNMAP, VERIFY with BYTCHK) chain one blk_req at a time from its
 * completion, with bounded buffers. */
#include "scsi/scsi_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/iov.h"
#include "util/log.h"

#define SBC_CHUNK_BYTES (1u << 20)  /* bounce/pattern buffer for WRITE SAME and VERIFY */

/* ------------------------------------------------------------- helpers */

static inline bool is_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* The data buffer for a transfer of len bytes: the whole iov when it fits
 * exactly (the usual case), else a prefix slice. */
static int cmd_data_iov(struct scsi_cmd *cmd, size_t len)
{
    struct iovec *h;
    int n;

    if (cmd->buf_len == len) {
        cmd->breq.iov = cmd->iov;
        cmd->breq.iovcnt = cmd->iovcnt;
        return 0;
    }
    n = iov_slice(cmd->iov, cmd->iovcnt, 0, len, cmd->sub_iov, 4);
    if (n >= 0) {
        cmd->breq.iov = cmd->sub_iov;
        cmd->breq.iovcnt = (unsigned)n;
        return 0;
    }
    /* rare: a longer buffer in many pieces; bounded by the transport's iovcnt */
    h = scsi_cmd_alloc(cmd, cmd->iovcnt * sizeof(*h), cmd->iovcnt * sizeof(*h), NULL);
    if (!h)
        return -ENOMEM;
    n = iov_slice(cmd->iov, cmd->iovcnt, 0, len, h, cmd->iovcnt);
    cmd->breq.iov = h;
    cmd->breq.iovcnt = (unsigned)n;
    return 0;
}

static int submit(struct scsi_cmd *cmd, blk_done_cb *cb, bool is_write)
{
    int ret;

    /* the medium the command started with, even if the tray opened since */
    if (!cmd->medium)
        return scsi_lun_no_medium(cmd->lu);
    scsi_io_prepare(cmd, cb);      /* I/O errors go through the LU's policy */
    ret = blk_submit(cmd->blk_ctx, cmd->medium, &cmd->breq);
    if (ret < 0)
        return sense_from_errno(ret, is_write);
    return SCSI_ASYNC;
}

/* Blocks for the next step of a command done in chunks through a private
 * buffer of buf_bytes: what is left, at most what fits. */
static uint32_t next_chunk(const struct scsi_cmd *cmd, size_t buf_bytes)
{
    uint32_t left = cmd->nblocks - cmd->done_blocks;
    uint32_t chunk = (uint32_t)(buf_bytes >> cmd->lu->block_shift);

    return left < chunk ? left : chunk;
}

/* Read or write nblocks at lba through the command's private buffer (patterns,
 * compare and OR-write data); completion continues in cb. */
static int submit_priv(struct scsi_cmd *cmd, enum blk_op op, uint64_t lba, uint32_t nblocks,
                       blk_done_cb *cb)
{
    const struct scsi_lun *lu = cmd->lu;

    cmd->sub_iov[0].iov_base = cmd->priv;
    cmd->sub_iov[0].iov_len = (size_t)nblocks << lu->block_shift;
    cmd->breq.op = op;
    cmd->breq.flags = 0;
    cmd->breq.offset = lba << lu->block_shift;
    cmd->breq.len = cmd->sub_iov[0].iov_len;
    cmd->breq.iov = cmd->sub_iov;
    cmd->breq.iovcnt = 1;
    return submit(cmd, cb, op == BLK_OP_WRITE);
}

/* Parse shared by commands with an LBA and a block count. */
static int lba_len(struct scsi_cmd *cmd, struct scsi_parsed *p, uint64_t lba, uint64_t n)
{
    p->lba = lba;
    p->nblocks = n;
    cmd->lba = lba;
    cmd->nblocks = (uint32_t)n;
    return SENSE_OK;
}

static void decode_lba_len(const struct scsi_cmd *cmd, uint64_t *lba, uint32_t *n, unsigned *len_byte)
{
    const uint8_t *c = cmd->cdb;

    switch (c[0] >> 5) {
    case 0:     /* 6-byte: SBC-4 5.13, 5.40: 21-bit LBA, 0 blocks means 256 */
        *lba = get_be24(&c[1]) & 0x1fffff;
        *n = c[4] ? c[4] : 256;
        *len_byte = 4;
        break;
    case 1:     /* 10-byte */
    case 2:
        *lba = get_be32(&c[2]);
        *n = get_be16(&c[7]);
        *len_byte = 7;
        break;
    case 5:     /* 12-byte */
        *lba = get_be32(&c[2]);
        *n = get_be32(&c[6]);
        *len_byte = 6;
        break;
    default:    /* 16-byte */
        *lba = get_be64(&c[2]);
        *n = get_be32(&c[10]);
        *len_byte = 10;
        break;
    }
}

/* ---------------------------------------------------------- READ / WRITE */

int sbc_parse_rw(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint64_t lba;
    uint32_t n;
    unsigned len_byte;

    decode_lba_len(cmd, &lba, &n, &len_byte);
    if (cmd->cdb_len && (cmd->cdb[0] >> 5) != 0) {
        /* SBC-4 5.16: RDPROTECT/WRPROTECT need protection information */
        if (cmd->cdb[1] & 0xe0)
            return scsi_invalid_cdb(cmd, 1, 7);
        if ((cmd->cdb[1] & 0x08) && (cmd->op->flags & SCSI_OPF_WRITE))
            cmd->flags |= SCSI_CMDF_FUA;
    }
    /* SBC-4 6.6.4: beyond MAXIMUM TRANSFER LENGTH is an invalid field */
    if (n > lu->max_xfer_blocks)
        return scsi_invalid_cdb(cmd, len_byte, 7);
    p->data_len = (size_t)n << lu->block_shift;
    return lba_len(cmd, p, lba, n);
}

static void rw_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;

    if (!ret)
        cmd->xfer_len = req->len;
    scsi_cmd_complete(cmd, sense_from_errno(ret, req->op == BLK_OP_WRITE));
}

int sbc_exec_rw(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    bool is_write = cmd->op->flags & SCSI_OPF_WRITE;

    if (!p->nblocks)
        return SENSE_OK;    /* SBC-4: a zero transfer length is not an error */
    if (cmd_data_iov(cmd, p->data_len))
        return SENSE_BUSY;
    cmd->breq.op = is_write ? BLK_OP_WRITE : BLK_OP_READ;
    cmd->breq.flags = (cmd->flags & SCSI_CMDF_FUA) ? BLK_F_FUA : 0;
    cmd->breq.offset = p->lba << cmd->lu->block_shift;
    cmd->breq.len = p->data_len;
    return submit(cmd, rw_done, is_write);
}

/* SBC-4 5.44 WRITE AND VERIFY: write through to the medium; what we wrote
 * is what a verify reads back, so BYTCHK=1 compares equal by construction. */
static int parse_write_verify(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    unsigned bytchk = (cmd->cdb[1] >> 1) & 3;
    int r;

    if (bytchk > 1)
        return scsi_invalid_cdb(cmd, 1, 2);
    r = sbc_parse_rw(cmd, p);
    cmd->flags |= SCSI_CMDF_FUA;
    return r;
}

/* SBC-4 5.48 WRITE ATOMIC(16): a write no other command of the LU sees in
 * part (SCSI_OPF_ATOMIC holds back reads and writes, sbc runs it as one
 * block request). ATOMIC ALIGNMENT and GRANULARITY are 0 (VPD B0): any LBA,
 * any length up to MAXIMUM ATOMIC TRANSFER LENGTH; no atomic boundary. */
static int parse_write_atomic(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint32_t n = get_be16(&cmd->cdb[12]);

    if (cmd->cdb[1] & 0xe0)
        return scsi_invalid_cdb(cmd, 1, 7);     /* WRPROTECT: no protection information */
    if (n > lu->max_atomic_blocks)
        return scsi_invalid_cdb(cmd, 12, 7);
    if (cmd->cdb[1] & 0x08)
        cmd->flags |= SCSI_CMDF_FUA;
    p->data_len = (size_t)n << lu->block_shift;
    return lba_len(cmd, p, get_be64(&cmd->cdb[2]), n);
}

/* --------------------------------------------------------------- VERIFY */

static int parse_verify(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    unsigned bytchk = (cmd->cdb[1] >> 1) & 3;
    uint64_t lba;
    uint32_t n;
    unsigned len_byte;

    decode_lba_len(cmd, &lba, &n, &len_byte);
    /* SBC-4 5.33: VRPROTECT needs protection information; BYTCHK 10b reserved */
    if (cmd->cdb[1] & 0xe0)
        return scsi_invalid_cdb(cmd, 1, 7);
    if (bytchk == 2)
        return scsi_invalid_cdb(cmd, 1, 2);
    if (n > lu->max_xfer_blocks)
        return scsi_invalid_cdb(cmd, len_byte, 7);
    if (bytchk == 1)
        p->data_len = (size_t)n << lu->block_shift;
    else if (bytchk == 3 && n)
        p->data_len = lu->block_size;   /* one block compared with each */
    if (bytchk)
        cmd->flags |= SCSI_CMDF_BYTCHK;
    cmd->state = (int)bytchk;
    return lba_len(cmd, p, lba, n);
}

static int verify_next(struct scsi_cmd *cmd);

/* First differing byte of b against the data-out buffer at off, or -1. */
static long compare_iov(const struct scsi_cmd *cmd, size_t off, const uint8_t *b, size_t len)
{
    uint8_t tmp[512];

    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(tmp) ? len - done : sizeof(tmp);

        iov_to_buf(cmd->iov, cmd->iovcnt, off + done, tmp, n);
        if (memcmp(tmp, b + done, n)) {
            for (size_t i = 0; i < n; i++)
                if (tmp[i] != b[done + i])
                    return (long)(done + i);
        }
        done += n;
    }
    return -1;
}

/* cmd->priv: [data-out block (BYTCHK 11b only)][read buffer] */
static size_t verify_pat_len(const struct scsi_cmd *cmd)
{
    return cmd->state == 3 ? cmd->lu->block_size : 0;
}

static uint8_t *verify_buf(const struct scsi_cmd *cmd)
{
    return (uint8_t *)cmd->priv + verify_pat_len(cmd);
}

static void verify_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    const struct scsi_lun *lu = cmd->lu;
    const uint8_t *b = verify_buf(cmd);
    size_t len = req->len;
    size_t base = (size_t)cmd->done_blocks << lu->block_shift;
    long miss = -1;
    int r;

    if (ret || (cmd->flags & SCSI_CMDF_ABORTED)) {
        scsi_cmd_complete(cmd, sense_from_errno(ret, false));
        return;
    }
    if (cmd->state == 1) {
        miss = compare_iov(cmd, base, b, len);
        if (miss >= 0)
            miss += (long)base;
    } else {
        /* BYTCHK 11b: the single data-out block, compared with each block */
        const uint8_t *pat = cmd->priv;

        for (size_t o = 0; o < len && miss < 0; o += lu->block_size)
            for (size_t i = 0; i < lu->block_size; i++)
                if (b[o + i] != pat[i]) {
                    miss = (long)i;
                    break;
                }
    }
    if (miss >= 0) {
        /* SBC-4 5.33: INFORMATION = offset of the first miscompare in the data-out buffer */
        cmd->flags |= SCSI_CMDF_INFO;
        cmd->sense_info = (uint64_t)miss;
        scsi_cmd_complete(cmd, SENSE_MISCOMPARE);
        return;
    }
    cmd->done_blocks += (uint32_t)(len >> lu->block_shift);
    r = verify_next(cmd);
    if (r != SCSI_ASYNC)
        scsi_cmd_complete(cmd, r);
}

static int verify_next(struct scsi_cmd *cmd)
{
    const struct scsi_lun *lu = cmd->lu;
    uint32_t n = next_chunk(cmd, cmd->priv_len - verify_pat_len(cmd));

    if (!n)
        return SENSE_OK;
    cmd->sub_iov[0].iov_base = verify_buf(cmd);
    cmd->sub_iov[0].iov_len = (size_t)n << lu->block_shift;
    cmd->breq.op = BLK_OP_READ;
    cmd->breq.flags = 0;
    cmd->breq.offset = (cmd->lba + cmd->done_blocks) << lu->block_shift;
    cmd->breq.len = cmd->sub_iov[0].iov_len;
    cmd->breq.iov = cmd->sub_iov;
    cmd->breq.iovcnt = 1;
    return submit(cmd, verify_done, false);
}

static int exec_verify(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    size_t chunk;

    /* BYTCHK=0: medium verification; the block layer reports errors on
     * access, there is nothing more to check here (SBC-4 5.33). */
    if (!(cmd->flags & SCSI_CMDF_BYTCHK) || !p->nblocks)
        return SENSE_OK;
    chunk = (size_t)p->nblocks << lu->block_shift;
    if (chunk > SBC_CHUNK_BYTES)
        chunk = SBC_CHUNK_BYTES;
    /* BYTCHK 11b keeps the data-out block in front: allocate in blocks */
    if (!scsi_cmd_alloc(cmd, chunk + verify_pat_len(cmd), lu->block_size + verify_pat_len(cmd), NULL))
        return SENSE_BUSY;
    if (cmd->state == 3)
        scsi_dataout(cmd, cmd->priv, lu->block_size);  /* read once */
    cmd->done_blocks = 0;
    cmd->xfer_len = p->data_len;
    return verify_next(cmd);
}

/* ------------------------------------------------------ READ CAPACITY */

int sbc_parse_read_capacity10(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    /* SBC-3 5.15: with PMI=0 the LBA must be zero */
    if (!(cmd->cdb[8] & 0x01) && get_be32(&cmd->cdb[2]))
        return scsi_invalid_cdb(cmd, 2, 7);
    p->data_len = 8;
    return SENSE_OK;
}

int sbc_exec_read_capacity10(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint64_t cap = scsi_lun_capacity(lu);
    uint64_t last = cap ? cap - 1 : 0;
    uint8_t b[8];

    /* SBC-4 5.20.2: FFFFFFFFh sends the initiator to READ CAPACITY(16) */
    put_be32(b, last > 0xfffffffeu ? 0xffffffffu : (uint32_t)last);
    put_be32(&b[4], lu->block_size);
    scsi_datain(cmd, b, sizeof(b), p->data_len);
    return SENSE_OK;
}

static int parse_read_capacity16(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    if (!(cmd->cdb[14] & 0x01) && get_be64(&cmd->cdb[2]))
        return scsi_invalid_cdb(cmd, 2, 7);
    p->data_len = get_be32(&cmd->cdb[10]);
    return SENSE_OK;
}

static int exec_read_capacity16(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint64_t cap = scsi_lun_capacity(lu);
    uint8_t b[32];

    /* SBC-4 5.21.2 */
    memset(b, 0, sizeof(b));
    put_be64(b, cap ? cap - 1 : 0);
    put_be32(&b[8], lu->block_size);
    b[12] = 0x10;                           /* RC BASIS 01b: last LBA; no protection */
    b[13] = lu->lbppbe & 0x0f;              /* LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT */
    if (blk_can_discard(cmd->medium)) {
        b[14] = 0x80;                       /* LBPME */
        if (blk_discard_zeroes(cmd->medium))
            b[14] |= 0x40;                  /* LBPRZ */
    }
    scsi_datain(cmd, b, sizeof(b), p->data_len);
    return SENSE_OK;
}

/* ----------------------------------------------------- GET LBA STATUS */

static int parse_get_lba_status(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    /* SBC-4 5.6: the starting LBA must address a block */
    p->lba = get_be64(&cmd->cdb[2]);
    p->nblocks = 1;
    p->data_len = get_be32(&cmd->cdb[10]);
    return SENSE_OK;
}

static int exec_get_lba_status(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint64_t cap = scsi_lun_capacity(lu), lba = p->lba;
    unsigned maxd = 1, nd = 0;
    uint8_t b[8 + 16 * 16];

    if (p->data_len > 8 + 16)
        maxd = (unsigned)((p->data_len - 8) / 16);
    if (maxd > 16)
        maxd = 16;
    memset(b, 0, sizeof(b));
    while (nd < maxd && lba < cap) {
        uint64_t left = cap - lba, run, blocks;
        bool mapped;
        int ret;
        uint8_t *d = &b[8 + 16 * nd];

        if (left > 0xffffffffu)
            left = 0xffffffffu;
        ret = blk_get_status(cmd->medium, lba << lu->block_shift, left << lu->block_shift, &mapped, &run);
        if (ret < 0)
            return sense_from_errno(ret, false);
        /* a block holding any data counts as mapped */
        if (mapped)
            blocks = (run + lu->block_size - 1) >> lu->block_shift;
        else
            blocks = run >> lu->block_shift;
        if (!blocks) {
            blocks = 1;
            mapped = true;
        }
        if (blocks > left)
            blocks = left;
        put_be64(d, lba);
        put_be32(&d[8], (uint32_t)blocks);
        d[12] = mapped ? 0x00 : 0x01;       /* mapped / deallocated */
        lba += blocks;
        nd++;
    }
    put_be32(b, 4 + 16 * nd);
    scsi_datain(cmd, b, 8 + 16 * nd, p->data_len);
    return SENSE_OK;
}

/* --------------------------------------------------- SYNCHRONIZE CACHE */

static int parse_sync_cache(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    uint64_t lba;
    uint32_t n;
    unsigned len_byte;

    decode_lba_len(cmd, &lba, &n, &len_byte);
    /* SBC-4 5.22: zero blocks means to the end of the medium */
    return lba_len(cmd, p, lba, n);
}

static void flush_done(struct blk_req *req, int ret)
{
    scsi_cmd_complete(req->opaque, sense_from_errno(ret, true));
}

static int exec_sync_cache(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)p;
    /* IMMED is accepted; we answer when the flush is done (always allowed). */
    memset(&cmd->breq, 0, sizeof(cmd->breq));
    cmd->breq.op = BLK_OP_FLUSH;
    return submit(cmd, flush_done, true);
}

/* ------------------------------------------------------------ PRE-FETCH */

static int exec_prefetch(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)cmd;
    (void)p;
    return SENSE_OK;    /* SBC-4 5.9: GOOD = no guarantee the blocks fit in cache */
}

/* ---------------------------------------------------------- WRITE SAME */

static int parse_write_same(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    bool sixteen = cmd->cdb[0] == 0x93;
    bool unmap = cmd->cdb[1] & 0x08, ndob = sixteen && (cmd->cdb[1] & 0x01);
    uint64_t lba, n, cap;
    unsigned len_byte = sixteen ? 10 : 7;

    lba = sixteen ? get_be64(&cmd->cdb[2]) : get_be32(&cmd->cdb[2]);
    n = sixteen ? get_be32(&cmd->cdb[10]) : get_be16(&cmd->cdb[7]);

    /* SBC-4 5.50: no protection information */
    if (cmd->cdb[1] & 0xe0)
        return scsi_invalid_cdb(cmd, 1, 7);
    /* ANCHOR: ANC_SUP=0 in VPD B2 */
    if (cmd->cdb[1] & 0x10)
        return scsi_invalid_cdb(cmd, 1, 4);
    /* UNMAP without LBPWS/LBPWS10 (VPD B2) is refused, to agree with the VPD */
    if (unmap && !blk_can_discard(cmd->medium))
        return scsi_invalid_cdb(cmd, 1, 3);
    /* WSNZ=0: zero blocks means up to the last LBA */
    if (n == 0) {
        cap = scsi_lun_capacity(lu);
        n = lba <= cap ? cap - lba : 0;
    }
    /* SBC-4 6.6.4: MAXIMUM WRITE SAME LENGTH */
    if (n > lu->max_ws_blocks)
        return scsi_invalid_cdb(cmd, len_byte, 7);
    /* The data-out buffer must hold exactly one block; a different size is
     * an invalid CDB (as LIO answers; libiscsi WriteSame*.InvalidDataOutSize).
     * No buffer or the wrong direction stays a transport overrun. */
    if (!ndob && cmd->dir == SCSI_DIR_TO_DEV && cmd->buf_len != lu->block_size)
        return scsi_invalid_cdb(cmd, len_byte, 7);
    if (unmap)
        cmd->flags |= SCSI_CMDF_UNMAP;
    cmd->state = ndob;
    p->data_len = ndob ? 0 : lu->block_size;
    return lba_len(cmd, p, lba, n);
}

static int ws_next(struct scsi_cmd *cmd);

static void ws_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    int r;

    if (ret || (cmd->flags & SCSI_CMDF_ABORTED) || req->op == BLK_OP_WRITE_ZEROES) {
        scsi_cmd_complete(cmd, sense_from_errno(ret, true));
        return;
    }
    cmd->done_blocks += (uint32_t)(req->len >> cmd->lu->block_shift);
    r = ws_next(cmd);
    if (r != SCSI_ASYNC)
        scsi_cmd_complete(cmd, r);
}

static int ws_next(struct scsi_cmd *cmd)
{
    uint32_t n = next_chunk(cmd, cmd->priv_len);

    if (!n)
        return SENSE_OK;
    return submit_priv(cmd, BLK_OP_WRITE, cmd->lba + cmd->done_blocks, n, ws_done);
}

static int exec_write_same(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint8_t block[4096];
    bool zero = true;
    size_t bytes;

    cmd->xfer_len = p->data_len;
    if (!p->nblocks)
        return SENSE_OK;
    /* read the pattern once: the guest may change its buffer meanwhile */
    if (cmd->state == 0) {
        scsi_dataout(cmd, block, lu->block_size);
        zero = is_zero(block, lu->block_size);
    }
    /* SBC-4 5.50, as LIO and libiscsi read it: with UNMAP=1 on a thin LU the
     * LBAs are deallocated whatever the data-out block holds, and LBPRZ=1
     * (blk_discard_zeroes) makes them read back as zeroes. */
    if ((cmd->flags & SCSI_CMDF_UNMAP) && blk_can_discard(cmd->medium) && blk_discard_zeroes(cmd->medium))
        zero = true;
    if (zero) {
        /* SBC-4 5.50: zeroes; with UNMAP=1 the blocks may be deallocated */
        memset(&cmd->breq, 0, sizeof(cmd->breq));
        cmd->breq.op = BLK_OP_WRITE_ZEROES;
        cmd->breq.flags = (cmd->flags & SCSI_CMDF_UNMAP) ? BLK_F_MAY_UNMAP : 0;
        cmd->breq.offset = p->lba << lu->block_shift;
        cmd->breq.len = p->nblocks << lu->block_shift;
        return submit(cmd, ws_done, true);
    }
    /* a pattern: expand into a bounded buffer, write it chunk by chunk */
    bytes = (size_t)p->nblocks << lu->block_shift;
    if (bytes > SBC_CHUNK_BYTES)
        bytes = SBC_CHUNK_BYTES;
    if (!scsi_cmd_alloc(cmd, bytes, lu->block_size, &bytes))
        return SENSE_BUSY;
    for (size_t o = 0; o < bytes; o += lu->block_size)
        memcpy((uint8_t *)cmd->priv + o, block, lu->block_size);
    cmd->done_blocks = 0;
    return ws_next(cmd);
}

/* ---------------------------------------------------------------- UNMAP */

static bool lu_can_unmap(const struct scsi_lun *lu)
{
    /* VPD B2 LBPU; with no medium in the tray UNMAP answers NOT READY */
    return !lu->drive || blk_can_discard(lu->drive);
}

static int parse_unmap(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    /* SBC-4 5.32: ANCHOR needs ANC_SUP */
    if (cmd->cdb[1] & 0x01)
        return scsi_invalid_cdb(cmd, 1, 0);
    p->data_len = get_be16(&cmd->cdb[7]);
    return SENSE_OK;
}

static int unmap_next(struct scsi_cmd *cmd);

static void unmap_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    int r;

    if (ret || (cmd->flags & SCSI_CMDF_ABORTED)) {
        scsi_cmd_complete(cmd, sense_from_errno(ret, true));
        return;
    }
    cmd->state++;
    r = unmap_next(cmd);
    if (r != SCSI_ASYNC)
        scsi_cmd_complete(cmd, r);
}

/* One descriptor at a time: cmd->priv holds the validated copy, state the index. */
static int unmap_next(struct scsi_cmd *cmd)
{
    const struct scsi_lun *lu = cmd->lu;
    const uint8_t *d = cmd->priv;

    for (; (uint32_t)cmd->state < cmd->nblocks; cmd->state++) {
        const uint8_t *e = d + 16 * cmd->state;
        uint64_t lba = get_be64(e);
        uint32_t n = get_be32(&e[8]);

        if (!n)
            continue;
        memset(&cmd->breq, 0, sizeof(cmd->breq));
        /* with LBPRZ=1 the blocks must read back as zeroes: ask for that */
        if (blk_discard_zeroes(cmd->medium)) {
            cmd->breq.op = BLK_OP_WRITE_ZEROES;
            cmd->breq.flags = BLK_F_MAY_UNMAP;
        } else {
            cmd->breq.op = BLK_OP_DISCARD;
        }
        cmd->breq.offset = lba << lu->block_shift;
        cmd->breq.len = (uint64_t)n << lu->block_shift;
        return submit(cmd, unmap_done, true);
    }
    return SENSE_OK;
}

static int exec_unmap(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    size_t len = p->data_len, bdl;
    uint64_t cap = scsi_lun_capacity(lu);
    uint8_t hdr[8];
    uint32_t count;
    uint8_t *d;

    /* SBC-4 5.32.1: zero length is not an error; 1..7 can't hold the header */
    if (len == 0)
        return SENSE_OK;
    if (len < 8)
        return SENSE_PARAM_LIST_LENGTH;
    if (scsi_dataout(cmd, hdr, 8) != 8)
        return SENSE_PARAM_LIST_LENGTH;
    cmd->xfer_len = len;
    /* SBC-4 5.32.2: descriptors beyond the list or a partial one are ignored */
    bdl = get_be16(&hdr[2]);
    if (bdl > len - 8)
        bdl = len - 8;
    count = (uint32_t)(bdl / 16);
    if (count > lu->max_unmap_desc)
        return scsi_invalid_param(cmd, 2, 7);
    if (!count)
        return SENSE_OK;
    /* copy the descriptors once (bounded by max_unmap_desc), then validate all */
    d = scsi_cmd_alloc(cmd, (size_t)count * 16, (size_t)count * 16, NULL);
    if (!d)
        return SENSE_BUSY;
    iov_to_buf(cmd->iov, cmd->iovcnt, 8, d, (size_t)count * 16);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t lba = get_be64(&d[16 * i]);
        uint32_t n = get_be32(&d[16 * i + 8]);

        if (lba > cap || n > cap - lba)
            return SENSE_LBA_OUT_OF_RANGE;
    }
    cmd->nblocks = count;
    cmd->state = 0;
    return unmap_next(cmd);
}

/* --------------------------------------------------- COMPARE AND WRITE */

/* SBC-4 5.3: read NUMBER OF LOGICAL BLOCKS, compare with the first half of
 * the data-out buffer, and only when equal write the second half. The write
 * gate (SCSI_OPF_EXCL) keeps every other write of the LU out meanwhile. */
static int parse_caw(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint32_t n = cmd->cdb[13];

    if (cmd->cdb[1] & 0xe0)
        return scsi_invalid_cdb(cmd, 1, 7);     /* WRPROTECT: no protection information */
    if (n > lu->max_caw_blocks)
        return scsi_invalid_cdb(cmd, 13, 7);
    if (cmd->cdb[1] & 0x08)
        cmd->flags |= SCSI_CMDF_FUA;
    p->data_len = (size_t)2 * n << lu->block_shift;
    return lba_len(cmd, p, get_be64(&cmd->cdb[2]), n);
}

/* cmd->priv: [read buffer: nblocks][iovec array for the write half] */
static void caw_write_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;

    if (!ret)
        cmd->xfer_len = 2 * req->len;
    scsi_cmd_complete(cmd, sense_from_errno(ret, true));
}

static void caw_read_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    const struct scsi_lun *lu = cmd->lu;
    size_t len = (size_t)cmd->nblocks << lu->block_shift;
    struct iovec *wiov = (struct iovec *)((uint8_t *)cmd->priv + len);
    long miss;
    int n, r;

    if (ret || (cmd->flags & SCSI_CMDF_ABORTED)) {
        scsi_cmd_complete(cmd, sense_from_errno(ret, false));
        return;
    }
    miss = compare_iov(cmd, 0, cmd->priv, len);
    if (miss >= 0) {
        /* SBC-4 5.3: INFORMATION = offset of the first differing byte */
        cmd->flags |= SCSI_CMDF_INFO;
        cmd->sense_info = (uint64_t)miss;
        scsi_cmd_complete(cmd, SENSE_MISCOMPARE);
        return;
    }
    n = iov_slice(cmd->iov, cmd->iovcnt, len, len, wiov, cmd->iovcnt);
    cmd->breq.op = BLK_OP_WRITE;
    cmd->breq.flags = (cmd->flags & SCSI_CMDF_FUA) ? BLK_F_FUA : 0;
    cmd->breq.offset = cmd->lba << lu->block_shift;
    cmd->breq.len = len;
    cmd->breq.iov = wiov;
    cmd->breq.iovcnt = n < 0 ? 0 : (unsigned)n;
    r = submit(cmd, caw_write_done, true);
    if (r != SCSI_ASYNC)
        scsi_cmd_complete(cmd, r);
}

static int exec_caw(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    size_t len = (size_t)p->nblocks << lu->block_shift;
    size_t need = len + cmd->iovcnt * sizeof(struct iovec);

    /* SBC-4 5.3: zero blocks is not an error */
    if (!p->nblocks)
        return SENSE_OK;
    if (!scsi_cmd_alloc(cmd, need, need, NULL))
        return SENSE_BUSY;
    return submit_priv(cmd, BLK_OP_READ, p->lba, p->nblocks, caw_read_done);
}

/* --------------------------------------------------------------- ORWRITE */

/* SBC-4 5.10 ORWRITE(16): each block becomes (medium OR data-out). Chunked
 * read-modify-write through a bounded buffer; the write gate (EXCL) keeps
 * other writes out so no update is lost. */
static int orwrite_next(struct scsi_cmd *cmd);

static void orwrite_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    const struct scsi_lun *lu = cmd->lu;
    uint8_t *b = cmd->priv;
    int r;

    if (ret || (cmd->flags & SCSI_CMDF_ABORTED)) {
        scsi_cmd_complete(cmd, sense_from_errno(ret, req->op == BLK_OP_WRITE));
        return;
    }
    if (req->op == BLK_OP_READ) {
        /* OR in the data-out bytes, read once, then write the chunk back */
        size_t base = (size_t)cmd->done_blocks << lu->block_shift;
        uint8_t tmp[512];

        for (size_t o = 0; o < req->len; o += sizeof(tmp)) {
            size_t n = req->len - o < sizeof(tmp) ? req->len - o : sizeof(tmp);

            iov_to_buf(cmd->iov, cmd->iovcnt, base + o, tmp, n);
            for (size_t i = 0; i < n; i++)
                b[o + i] |= tmp[i];
        }
        cmd->breq.op = BLK_OP_WRITE;
        cmd->breq.flags = (cmd->flags & SCSI_CMDF_FUA) ? BLK_F_FUA : 0;
        r = submit(cmd, orwrite_done, true);
    } else {
        cmd->done_blocks += (uint32_t)(req->len >> lu->block_shift);
        r = orwrite_next(cmd);
    }
    if (r != SCSI_ASYNC)
        scsi_cmd_complete(cmd, r);
}

static int orwrite_next(struct scsi_cmd *cmd)
{
    uint32_t n = next_chunk(cmd, cmd->priv_len);

    if (!n) {
        cmd->xfer_len = (size_t)cmd->nblocks << cmd->lu->block_shift;
        return SENSE_OK;
    }
    return submit_priv(cmd, BLK_OP_READ, cmd->lba + cmd->done_blocks, n, orwrite_done);
}

static int exec_orwrite(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    size_t bytes = p->data_len < SBC_CHUNK_BYTES ? p->data_len : SBC_CHUNK_BYTES;

    if (!p->nblocks)
        return SENSE_OK;
    if (!scsi_cmd_alloc(cmd, bytes, lu->block_size, NULL))
        return SENSE_BUSY;
    cmd->done_blocks = 0;
    return orwrite_next(cmd);
}

/* --------------------------------------------------- READ DEFECT DATA */

static int parse_read_defect(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = cmd->cdb[0] == 0x37 ? get_be16(&cmd->cdb[7]) : get_be32(&cmd->cdb[6]);
    return SENSE_OK;
}

/* SBC-4 5.17/5.18: a virtual disk has no defects; both lists are empty in
 * whichever address format was asked for. */
static int exec_read_defect(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    bool twelve = cmd->cdb[0] == 0xb7;
    uint8_t req = twelve ? cmd->cdb[1] : cmd->cdb[2];
    uint8_t fmt = req & 0x07;
    uint8_t b[8];

    /* defined formats: short/long block, bytes from index, physical sector, vendor */
    if (fmt == 1 || fmt == 2 || fmt == 7)
        return scsi_invalid_cdb(cmd, twelve ? 1 : 2, 2);
    memset(b, 0, sizeof(b));
    b[1] = (uint8_t)((req & 0x18) | fmt);      /* PLISTV GLISTV as requested, format */
    scsi_datain(cmd, b, twelve ? 8 : 4, p->data_len);
    return SENSE_OK;
}

/* --------------------------------------------------------------- table */

static const uint8_t u_read6[6] = { 0x08, 0x1f, 0xff, 0xff, 0xff, 0 };
static const uint8_t u_write6[6] = { 0x0a, 0x1f, 0xff, 0xff, 0xff, 0 };
/* byte 1: RDPROTECT DPO FUA RARC FUA_NV(obsolete, accepted) */
static const uint8_t u_read10[10] = { 0x28, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_write10[10] = { 0x2a, 0xfa, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_read12[12] = { 0xa8, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0 };
static const uint8_t u_write12[12] = { 0xaa, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0 };
static const uint8_t u_read16[16] = { 0x88, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
static const uint8_t u_write16[16] = { 0x8a, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
/* byte 1: VRPROTECT/WRPROTECT DPO BYTCHK */
static const uint8_t u_verify10[10] = { 0x2f, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_verify12[12] = { 0xaf, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0 };
static const uint8_t u_verify16[16] = { 0x8f, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
static const uint8_t u_wv10[10] = { 0x2e, 0xf6, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_wv12[12] = { 0xae, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0 };
static const uint8_t u_wv16[16] = { 0x8e, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
/* byte 1: SYNC_NV (obsolete, accepted) IMMED */
static const uint8_t u_sync10[10] = { 0x35, 0x06, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_sync16[16] = { 0x91, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
static const uint8_t u_prefetch10[10] = { 0x34, 0x02, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_prefetch16[16] = { 0x90, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
/* byte 1: WRPROTECT ANCHOR UNMAP (NDOB) */
static const uint8_t u_ws10[10] = { 0x41, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_ws16[16] = { 0x93, 0xf9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x3f, 0 };
static const uint8_t u_unmap[10] = { 0x42, 0x01, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0 };
static const uint8_t u_rc10[10] = { 0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0 };
static const uint8_t u_rc16[16] = { 0x9e, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0x01, 0 };
static const uint8_t u_get_lba_status[16] = { 0x9e, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                              0xff, 0xff, 0xff, 0xff, 0, 0 };
static const uint8_t u_start_stop[6] = { 0x1b, 0x01, 0, 0x0f, 0xf7, 0 };
/* byte 1: WRPROTECT DPO FUA FUA_NV(obsolete, accepted) */
static const uint8_t u_caw[16] = { 0x89, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0, 0, 0, 0xff, 0x3f, 0 };
/* byte 1: ORPROTECT DPO FUA FUA_NV(obsolete, accepted) */
static const uint8_t u_orwrite[16] = { 0x8b, 0xfa, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x1f, 0 };
/* byte 1: WRPROTECT DPO FUA; bytes 10-11 (ATOMIC BOUNDARY) must be 0 */
static const uint8_t u_write_atomic16[16] = { 0x9c, 0xf8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                              0, 0, 0xff, 0xff, 0x1f, 0 };
static const uint8_t u_read_defect10[10] = { 0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0 };
static const uint8_t u_read_defect12[12] = { 0xb7, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0 };

#define F_RD    (SCSI_OPF_DATA_IN | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_RW | SCSI_OPF_PR_READ | SCSI_OPF_MT)
#define F_WR    (SCSI_OPF_DATA_OUT | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_RW | SCSI_OPF_WRITE | SCSI_OPF_MT)
#define F_IN    (SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC)
#define F_VRFY  (SCSI_OPF_DATA_OUT | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_PR_READ)
#define F_ANY   (SCSI_OPF_PR_ALLOW | SCSI_OPF_RES2_OK)   /* whatever the reservations */

/* SBC-4 5.30: byte 1 IMMED AUSE (ZNR is for zoned devices) */
static const uint8_t u_sanitize[10] = { 0x48, 0xa0, 0, 0, 0, 0, 0, 0xff, 0xff, 0 };
#define F_SAN   (SCSI_OPF_DATA_OUT | SCSI_OPF_WRITE | SCSI_OPF_MEDIUM)
static const struct scsi_op sbc_sanitize_ops[] = {
    { "SANITIZE OVERWRITE", scsi_sanitize_parse, scsi_sanitize, F_SAN, 10, 0x01, u_sanitize, NULL, NULL, 0 },
    { "SANITIZE BLOCK ERASE", scsi_sanitize_parse, scsi_sanitize, F_SAN, 10, 0x02, u_sanitize,
      scsi_sanitize_erase_supported, NULL, 0 },
    { "SANITIZE CRYPTO ERASE", scsi_sanitize_parse, scsi_sanitize, F_SAN, 10, 0x03, u_sanitize,
      scsi_sanitize_erase_supported, NULL, 0 },
    { "SANITIZE EXIT FAILURE MODE", scsi_sanitize_parse, scsi_sanitize, SCSI_OPF_DATA_OUT, 10, 0x1f,
      u_sanitize, NULL, NULL, 0 },
};

/* SPC-4 6.4 EXTENDED COPY (LID1: service action 00h), 6.18 RECEIVE COPY RESULTS */
static const uint8_t u_xcopy[16] = { 0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
static const uint8_t u_rcr[16] = { 0x84, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
static const struct scsi_op sbc_xcopy_ops[] = {
    { "EXTENDED COPY(LID1)", scsi_xcopy_parse, scsi_xcopy, SCSI_OPF_DATA_OUT, 16, 0x00, u_xcopy, NULL, NULL, 0 },
};
#define RCR(n, sa) { n, scsi_rcr_parse, scsi_rcr, SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | SCSI_OPF_PR_READ, 16, sa, \
                     u_rcr, NULL, NULL, 0 }
static const struct scsi_op sbc_rcr_ops[] = {
    RCR("RECEIVE COPY RESULTS COPY STATUS", 0x00),
    RCR("RECEIVE COPY RESULTS RECEIVE DATA", 0x01),
    RCR("RECEIVE COPY RESULTS OPERATING PARAMETERS", 0x03),
    RCR("RECEIVE COPY RESULTS FAILED SEGMENT DETAILS", 0x04),
};

static const struct scsi_op sbc_sai_ops[] = {
    { "READ CAPACITY(16)", parse_read_capacity16, exec_read_capacity16,
      F_IN | SCSI_OPF_MEDIUM | SCSI_OPF_PR_ALLOW, 16, 0x10, u_rc16, NULL, NULL, 0 },
    { "GET LBA STATUS", parse_get_lba_status, exec_get_lba_status,
      F_IN | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_PR_READ, 16, 0x12, u_get_lba_status, NULL, NULL, 0 },
};

#define OP(nm, pa, ex, fl, len, us) { nm, pa, ex, fl, len, 0, us, NULL, NULL, 0 }

const struct scsi_optable sbc_optable = {
    .name = "sbc",
    .unsupported_reason = SENSE_INVALID_OPCODE,
    .op = {
        [0x00] = OP("TEST UNIT READY", NULL, spc_test_unit_ready, SCSI_OPF_MEDIUM | SCSI_OPF_PR_ALLOW, 6,
                    spc_usage_tur),
        [0x03] = OP("REQUEST SENSE", spc_parse_alloc6, spc_request_sense,
                    F_IN | SCSI_OPF_UA_OK | F_ANY, 6, spc_usage_request_sense),
        [0x08] = OP("READ(6)", sbc_parse_rw, sbc_exec_rw, F_RD, 6, u_read6),
        [0x0a] = OP("WRITE(6)", sbc_parse_rw, sbc_exec_rw, F_WR, 6, u_write6),
        [0x12] = OP("INQUIRY", spc_parse_inquiry, spc_inquiry, F_IN | SCSI_OPF_UA_OK | F_ANY, 6,
                    spc_usage_inquiry),
        [0x15] = OP("MODE SELECT(6)", spc_parse_mode_select6, spc_mode_select,
                    SCSI_OPF_DATA_OUT, 6, spc_usage_mode_select6),
        [0x16] = OP("RESERVE(6)", NULL, scsi_pr_reserve, SCSI_OPF_PR_ALLOW, 6, spc_usage_reserve6),
        [0x17] = OP("RELEASE(6)", NULL, scsi_pr_release, SCSI_OPF_PR_ALLOW | SCSI_OPF_RES2_OK, 6,
                    spc_usage_release6),
        [0x1a] = OP("MODE SENSE(6)", spc_parse_alloc6, spc_mode_sense, F_IN | SCSI_OPF_PR_READ, 6,
                    spc_usage_mode_sense6),
        [0x1b] = OP("START STOP UNIT", NULL, spc_start_stop, 0, 6, u_start_stop),
        [0x1d] = OP("SEND DIAGNOSTIC", spc_parse_send_diag, spc_send_diag, SCSI_OPF_DATA_OUT, 6,
                    spc_usage_send_diag),
        [0x1e] = OP("PREVENT ALLOW MEDIUM REMOVAL", NULL, spc_prevent_allow, 0, 6, spc_usage_prevent_allow),
        [0x25] = OP("READ CAPACITY(10)", sbc_parse_read_capacity10, sbc_exec_read_capacity10,
                    F_IN | SCSI_OPF_MEDIUM | SCSI_OPF_PR_ALLOW, 10, u_rc10),
        [0x28] = OP("READ(10)", sbc_parse_rw, sbc_exec_rw, F_RD, 10, u_read10),
        [0x2a] = OP("WRITE(10)", sbc_parse_rw, sbc_exec_rw, F_WR, 10, u_write10),
        [0x2e] = OP("WRITE AND VERIFY(10)", parse_write_verify, sbc_exec_rw, F_WR, 10, u_wv10),
        [0x2f] = OP("VERIFY(10)", parse_verify, exec_verify, F_VRFY, 10, u_verify10),
        [0x34] = OP("PRE-FETCH(10)", parse_sync_cache, exec_prefetch,
                    SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_PR_READ, 10, u_prefetch10),
        [0x35] = OP("SYNCHRONIZE CACHE(10)", parse_sync_cache, exec_sync_cache,
                    SCSI_OPF_MEDIUM | SCSI_OPF_LBA, 10, u_sync10),
        [0x37] = OP("READ DEFECT DATA(10)", parse_read_defect, exec_read_defect, F_IN | SCSI_OPF_PR_READ, 10,
                    u_read_defect10),
        [0x41] = OP("WRITE SAME(10)", parse_write_same, exec_write_same,
                    SCSI_OPF_DATA_OUT | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_WRITE, 10, u_ws10),
        [0x42] = { "UNMAP", parse_unmap, exec_unmap,
                   SCSI_OPF_DATA_OUT | SCSI_OPF_MEDIUM | SCSI_OPF_WRITE, 10, 0, u_unmap,
                   lu_can_unmap, NULL, 0 },
        [0x48] = { "SANITIZE", NULL, NULL, 0, 10, 0, NULL, NULL, sbc_sanitize_ops,
                   sizeof(sbc_sanitize_ops) / sizeof(sbc_sanitize_ops[0]) },
        [0x55] = OP("MODE SELECT(10)", spc_parse_mode_select10, spc_mode_select,
                    SCSI_OPF_DATA_OUT, 10, spc_usage_mode_select10),
        [0x56] = OP("RESERVE(10)", NULL, scsi_pr_reserve, SCSI_OPF_PR_ALLOW, 10, spc_usage_reserve10),
        [0x57] = OP("RELEASE(10)", NULL, scsi_pr_release, SCSI_OPF_PR_ALLOW | SCSI_OPF_RES2_OK, 10,
                    spc_usage_release10),
        [0x5a] = OP("MODE SENSE(10)", spc_parse_alloc10, spc_mode_sense, F_IN | SCSI_OPF_PR_READ, 10,
                    spc_usage_mode_sense10),
        [0x5e] = { "PERSISTENT RESERVE IN", NULL, NULL, 0, 10, 0, NULL, NULL, spc_pr_in_ops, SPC_N_PR_IN_OPS },
        [0x5f] = { "PERSISTENT RESERVE OUT", NULL, NULL, 0, 10, 0, NULL, NULL, spc_pr_out_ops,
                   SPC_N_PR_OUT_OPS },
        [0x83] = { "EXTENDED COPY", NULL, NULL, 0, 16, 0, NULL, NULL, sbc_xcopy_ops, 1 },
        [0x84] = { "RECEIVE COPY RESULTS", NULL, NULL, 0, 16, 0, NULL, NULL, sbc_rcr_ops,
                   sizeof(sbc_rcr_ops) / sizeof(sbc_rcr_ops[0]) },
        [0x88] = OP("READ(16)", sbc_parse_rw, sbc_exec_rw, F_RD, 16, u_read16),
        [0x89] = OP("COMPARE AND WRITE", parse_caw, exec_caw,
                    SCSI_OPF_DATA_OUT | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_WRITE | SCSI_OPF_EXCL,
                    16, u_caw),
        [0x8a] = OP("WRITE(16)", sbc_parse_rw, sbc_exec_rw, F_WR, 16, u_write16),
        [0x8b] = OP("ORWRITE(16)", sbc_parse_rw /* ORPROTECT is where WRPROTECT is */, exec_orwrite, F_WR | SCSI_OPF_EXCL, 16, u_orwrite),
        [0x8e] = OP("WRITE AND VERIFY(16)", parse_write_verify, sbc_exec_rw, F_WR, 16, u_wv16),
        [0x8f] = OP("VERIFY(16)", parse_verify, exec_verify, F_VRFY, 16, u_verify16),
        [0x90] = OP("PRE-FETCH(16)", parse_sync_cache, exec_prefetch,
                    SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_PR_READ, 16, u_prefetch16),
        [0x91] = OP("SYNCHRONIZE CACHE(16)", parse_sync_cache, exec_sync_cache,
                    SCSI_OPF_MEDIUM | SCSI_OPF_LBA, 16, u_sync16),
        [0x93] = OP("WRITE SAME(16)", parse_write_same, exec_write_same,
                    SCSI_OPF_DATA_OUT | SCSI_OPF_MEDIUM | SCSI_OPF_LBA | SCSI_OPF_WRITE, 16, u_ws16),
        [0x9c] = OP("WRITE ATOMIC(16)", parse_write_atomic, sbc_exec_rw, F_WR | SCSI_OPF_ATOMIC, 16, u_write_atomic16),
        [0x9e] = { "SERVICE ACTION IN(16)", NULL, NULL,
                   0, 16, 0, NULL, NULL, sbc_sai_ops, sizeof(sbc_sai_ops) / sizeof(sbc_sai_ops[0]) },
        [0xa0] = OP("REPORT LUNS", spc_parse_report_luns, spc_report_luns,
                    F_IN | SCSI_OPF_UA_OK | F_ANY, 12, spc_usage_report_luns),
        [0xa3] = { "MAINTENANCE IN", NULL, NULL, 0, 12, 0, NULL, NULL, spc_maint_in_ops, SPC_N_MAINT_IN_OPS },
        [0xa8] = OP("READ(12)", sbc_parse_rw, sbc_exec_rw, F_RD, 12, u_read12),
        [0xaa] = OP("WRITE(12)", sbc_parse_rw, sbc_exec_rw, F_WR, 12, u_write12),
        [0xae] = OP("WRITE AND VERIFY(12)", parse_write_verify, sbc_exec_rw, F_WR, 12, u_wv12),
        [0xaf] = OP("VERIFY(12)", parse_verify, exec_verify, F_VRFY, 12, u_verify12),
        [0xb7] = OP("READ DEFECT DATA(12)", parse_read_defect, exec_read_defect, F_IN | SCSI_OPF_PR_READ, 12,
                    u_read_defect12),
    },
};
