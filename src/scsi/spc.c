/* SPC-4 primary commands: INQUIRY and VPD pages, REPORT LUNS, REQUEST SENSE,
 * TEST UNIT READY, MODE SENSE/SELECT, REPORT SUPPORTED OPERATION CODES,
 * REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, PREVENT ALLOW MEDIUM REMOVAL;
 * and the opcode tables for an absent LUN and the REPORT LUNS well-known LUN. */
#include "scsi/scsi_int.h"

#include <stdio.h>
#include <string.h>

#include "util/iov.h"

#define PDT_DISK        0x00
#define PDT_MMC         0x05
#define PDT_WLUN        0x1e
#define PQ_NOT_CAPABLE  0x60    /* peripheral qualifier 011b, SPC-4 6.6.2 */
#define PDT_UNKNOWN     0x1f

#define MODE_SELECT_MAX 1024    /* longer than all our pages plus descriptors */

/* CDB usage data (SPC-4 6.35.3); the control byte is reported as 0. */
const uint8_t spc_usage_tur[6] = { 0x00, 0, 0, 0, 0, 0 };
const uint8_t spc_usage_inquiry[6] = { 0x12, 0x01, 0xff, 0xff, 0xff, 0 };
const uint8_t spc_usage_request_sense[6] = { 0x03, 0x01, 0, 0, 0xff, 0 };
const uint8_t spc_usage_report_luns[12] = { 0xa0, 0, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
const uint8_t spc_usage_mode_sense6[6] = { 0x1a, 0x08, 0xff, 0xff, 0xff, 0 };
const uint8_t spc_usage_mode_sense10[10] = { 0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0 };
const uint8_t spc_usage_mode_select6[6] = { 0x15, 0x11, 0, 0, 0xff, 0 };
const uint8_t spc_usage_mode_select10[10] = { 0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0 };
const uint8_t spc_usage_rsoc[12] = { 0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0 };
const uint8_t spc_usage_rstmf[12] = { 0xa3, 0x0d, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
const uint8_t spc_usage_prevent_allow[6] = { 0x1e, 0, 0, 0, 0x01, 0 };
const uint8_t spc_usage_send_diag[6] = { 0x1d, 0xf7, 0, 0xff, 0xff, 0 };
/* SPC-2 7.21/7.17: no third-party or extent reservations; the RESERVE(10)
 * parameter list length matters only with LONGID (unsupported) */
const uint8_t spc_usage_reserve6[6] = { 0x16, 0, 0, 0, 0, 0 };
const uint8_t spc_usage_release6[6] = { 0x17, 0, 0, 0, 0, 0 };
const uint8_t spc_usage_reserve10[10] = { 0x56, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0 };
const uint8_t spc_usage_release10[10] = { 0x57, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0 };
static const uint8_t u_pr_in[10] = { 0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0 };
static const uint8_t u_pr_out[10] = { 0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0 };

/* ------------------------------------------------------------ parse */

int spc_parse_inquiry(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    /* SPC-4 6.6.1: PAGE CODE must be zero when EVPD is zero */
    if (!(cmd->cdb[1] & 0x01) && cmd->cdb[2])
        return scsi_invalid_cdb(cmd, 2, 7);
    p->data_len = get_be16(&cmd->cdb[3]);
    return SENSE_OK;
}

int spc_parse_alloc6(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = cmd->cdb[4];
    return SENSE_OK;
}

int spc_parse_alloc10(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be16(&cmd->cdb[7]);
    return SENSE_OK;
}

int spc_parse_alloc_a3(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be32(&cmd->cdb[6]);
    return SENSE_OK;
}

int spc_parse_report_luns(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    uint8_t sel = cmd->cdb[2];

    /* SPC-4 6.33: SELECT REPORT 00h, 01h, 02h */
    if (sel > 0x02)
        return scsi_invalid_cdb(cmd, 2, 7);
    p->data_len = get_be32(&cmd->cdb[6]);
    /* SPC-4 6.33: an allocation length below 16 is an invalid field */
    if (p->data_len < 16)
        return scsi_invalid_cdb(cmd, 6, 7);
    return SENSE_OK;
}

int spc_parse_mode_select6(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = cmd->cdb[4];
    return SENSE_OK;
}

int spc_parse_mode_select10(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be16(&cmd->cdb[7]);
    return SENSE_OK;
}

/* ------------------------------------------------------------ INQUIRY */

static uint8_t lu_pdt(const struct scsi_cmd *cmd)
{
    if (cmd->lu)
        return cmd->lu->type == SCSI_DEV_CD ? PDT_MMC : PDT_DISK;
    return cmd->lun_wlun_report ? PDT_WLUN : (PQ_NOT_CAPABLE | PDT_UNKNOWN);
}

static size_t inquiry_standard(const struct scsi_cmd *cmd, uint8_t *b)
{
    const struct scsi_lun *lu = cmd->lu;

    /* SPC-4 6.6.2: 96 bytes with the version descriptors */
    memset(b, 0, 96);
    b[0] = lu_pdt(cmd);
    b[1] = lu && lu->removable ? 0x80 : 0;
    b[2] = 0x06;                /* SPC-4 */
    b[3] = 0x10 | 0x02;         /* HISUP, RESPONSE DATA FORMAT 2; NORMACA=0 */
    b[4] = 96 - 5;
    if (lu && lu->type == SCSI_DEV_HD)
        b[5] = 0x08;            /* 3PC: EXTENDED COPY (xcopy.c) */
    b[7] = 0x02;                /* CMDQUE */
    if (lu) {
        memcpy(&b[8], lu->vendor, 8);
        memcpy(&b[16], lu->product, 16);
        memcpy(&b[32], lu->revision, 4);
    } else {
        memcpy(&b[8], "VSCSI   ", 8);
        memset(&b[16], ' ', 20);
    }
    put_be16(&b[58], 0x00a0);   /* SAM-5 */
    put_be16(&b[60], 0x0460);   /* SPC-4 */
    if (lu && lu->type == SCSI_DEV_CD) {
        put_be16(&b[62], 0x04e0);   /* MMC-6 */
    } else if (lu) {
        put_be16(&b[62], 0x04c0);   /* SBC-3 (libiscsi and Linux look for it) */
        put_be16(&b[64], 0x0600);   /* SBC-4 */
    }
    return 96;
}

static const uint8_t sbc_vpd_pages[] = { 0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2 };
/* MMC-6 defines no VPD pages of its own: the SPC-4 mandatory ones */
static const uint8_t mmc_vpd_pages[] = { 0x00, 0x80, 0x83 };

/* Properties of the medium in the tray (none: as a fully provisioned disk). */
static bool lu_can_discard(const struct scsi_lun *lu)
{
    return lu->drive && blk_can_discard(lu->drive);
}

static size_t vpd_device_id(const struct scsi_cmd *cmd, uint8_t *b)
{
    const struct scsi_lun *lu = cmd->lu;
    size_t n = 4, slen = strlen(lu->serial);

    /* SPC-4 7.8.6: the target port the command came through (pr.c: each
     * I_T nexus has a port of its own): its name as a SCSI name string in
     * the "naa." format (7.8.6.11; not an NAA designator, so that the LU's
     * NAA is the only one: copy managers and tools pick "the" NAA) and its
     * relative target port identifier (7.8.6.7). PIV=0: virtio has no
     * SCSI transport protocol to name. */
    b[n++] = 0x03;                      /* UTF-8 */
    b[n++] = 0x10 | 0x08;               /* target port, SCSI name string */
    b[n++] = 0;
    b[n++] = 24;                        /* 20 characters, NUL padded to 4n */
    memset(&b[n], 0, 24);
    snprintf((char *)&b[n], 24, "naa.%016llX", (unsigned long long)(PR_TGT_SAS_BASE | cmd->nexus));
    n += 24;
    b[n++] = 0x01;
    b[n++] = 0x10 | 0x04;               /* target port, relative target port */
    b[n++] = 0;
    b[n++] = 4;
    b[n++] = 0;
    b[n++] = 0;
    put_be16(&b[n], scsi_pr_rel_port(cmd->nexus));
    n += 2;
    /* the LU: NAA designator (7.8.6.6), binary; the same on every path */
    b[n++] = 0x01;
    b[n++] = 0x03;
    b[n++] = 0;
    b[n++] = 8;
    put_be64(&b[n], lu->wwn);
    n += 8;
    /* T10 vendor ID designator (7.8.6.4): vendor + serial, ASCII */
    b[n++] = 0x02;
    b[n++] = 0x01;
    b[n++] = 0;
    b[n++] = (uint8_t)(8 + slen);
    memcpy(&b[n], lu->vendor, 8);
    memcpy(&b[n + 8], lu->serial, slen);
    n += 8 + slen;
    return n;
}

static size_t vpd_block_limits(const struct scsi_lun *lu, uint8_t *b)
{
    uint32_t gran = 1u << lu->lbppbe;

    /* SBC-4 6.6.4: page length 3Ch */
    memset(b + 4, 0, 60);
    b[4] = 0;                                   /* WSNZ=0: WRITE SAME 0 blocks = to the end */
    b[5] = (uint8_t)lu->max_caw_blocks;         /* MAXIMUM COMPARE AND WRITE LENGTH */
    put_be16(&b[6], (uint16_t)(gran > 0xffff ? 0xffff : gran));  /* OPTIMAL TRANSFER LENGTH GRANULARITY */
    put_be32(&b[8], lu->max_xfer_blocks);       /* MAXIMUM TRANSFER LENGTH */
    put_be32(&b[12], 0);                        /* OPTIMAL TRANSFER LENGTH: no preference */
    if (lu_can_discard(lu)) {
        put_be32(&b[20], 0xffffffff);           /* MAXIMUM UNMAP LBA COUNT: no limit */
        put_be32(&b[24], lu->max_unmap_desc);   /* MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
        put_be32(&b[28], gran);                 /* OPTIMAL UNMAP GRANULARITY; UGAVALID=0 */
    }
    put_be64(&b[36], lu->max_ws_blocks);        /* MAXIMUM WRITE SAME LENGTH */
    /* WRITE ATOMIC(16): MAXIMUM ATOMIC TRANSFER LENGTH; ATOMIC ALIGNMENT,
     * GRANULARITY, and the atomic boundary fields 0: no restriction, none */
    put_be32(&b[44], lu->max_atomic_blocks);
    return 64;
}

static size_t vpd_lbp(const struct scsi_lun *lu, uint8_t *b)
{
    /* SBC-4 6.6.6: no provisioning group descriptor (DP=0) */
    memset(b + 4, 0, 4);
    if (lu_can_discard(lu)) {
        b[5] = 0x80 | 0x40 | 0x20;              /* LBPU, LBPWS, LBPWS10 */
        if (blk_discard_zeroes(lu->drive))
            b[5] |= 0x04;                       /* LBPRZ=001b */
        b[6] = 0x02;                            /* thin provisioned */
    }
    return 8;
}

int spc_inquiry(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint8_t b[256];
    size_t n = 0;
    uint8_t page = cmd->cdb[2];

    if (!(cmd->cdb[1] & 0x01)) {
        n = inquiry_standard(cmd, b);
        goto out;
    }
    memset(b, 0, sizeof(b));
    b[0] = lu_pdt(cmd);
    b[1] = page;
    if (!lu) {
        /* well-known LU: supported pages list only; absent LU: empty page */
        if (cmd->lun_wlun_report) {
            if (page != 0x00)
                return scsi_invalid_cdb(cmd, 2, 7);
            b[3] = 1;
            b[4] = 0x00;
            n = 5;
        } else {
            n = 4;
        }
        goto out;
    }
    if (lu->type == SCSI_DEV_CD && !memchr(mmc_vpd_pages, page, sizeof(mmc_vpd_pages)))
        return scsi_invalid_cdb(cmd, 2, 7);
    switch (page) {
    case 0x00:      /* SPC-4 7.8.13, ascending order */
        if (lu->type == SCSI_DEV_CD) {
            memcpy(&b[4], mmc_vpd_pages, sizeof(mmc_vpd_pages));
            n = 4 + sizeof(mmc_vpd_pages);
        } else {
            memcpy(&b[4], sbc_vpd_pages, sizeof(sbc_vpd_pages));
            n = 4 + sizeof(sbc_vpd_pages);
        }
        break;
    case 0x80:      /* SPC-4 7.8.15 */
        n = strlen(lu->serial);
        memcpy(&b[4], lu->serial, n);
        n += 4;
        break;
    case 0x83:
        n = vpd_device_id(cmd, b);
        break;
    case 0x86:      /* SPC-4 7.8.7 extended INQUIRY data */
        b[5] = 0x04 | 0x02 | 0x01;              /* HEADSUP ORDSUP SIMPSUP */
        b[6] = 0x01;                            /* V_SUP: volatile cache */
        b[7] = 0x01;                            /* LUICLR */
        n = 64;
        break;
    case 0xb0:
        n = vpd_block_limits(lu, b);
        break;
    case 0xb1:      /* SBC-4 6.6.2 */
        put_be16(&b[4], 0x0001);                /* non-rotating medium */
        /* WABEREQ/WACEREQ 01b: reads after a BLOCK/CRYPTO ERASE succeed
         * (zeroes); nominal form factor 0: not reported */
        if (scsi_sanitize_erase_supported(lu))
            b[7] = 0x40 | 0x10;
        n = 64;
        break;
    case 0xb2:
        n = vpd_lbp(lu, b);
        break;
    default:
        return scsi_invalid_cdb(cmd, 2, 7);
    }
    put_be16(&b[2], (uint16_t)(n - 4));
out:
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* ---------------------------------------------------------- REPORT LUNS */

/* Streams data-in through a small buffer: answers of any size without
 * allocating (thousands of LUNs). */
struct datain_stream {
    struct scsi_cmd *cmd;
    size_t off;         /* bytes produced so far */
    size_t limit;       /* min(allocation length, buffer) */
    size_t fill;
    uint8_t buf[256];
};

static void ds_flush(struct datain_stream *s)
{
    size_t start = s->off - s->fill;

    if (start < s->limit) {
        size_t n = s->limit - start;

        if (n > s->fill)
            n = s->fill;
        iov_from_buf(s->cmd->iov, s->cmd->iovcnt, start, s->buf, n);
    }
    s->fill = 0;
}

static void ds_put(struct datain_stream *s, const uint8_t *data, size_t len)
{
    while (len) {
        size_t n = sizeof(s->buf) - s->fill;

        if (n > len)
            n = len;
        memcpy(&s->buf[s->fill], data, n);
        s->fill += n;
        s->off += n;
        data += n;
        len -= n;
        if (s->fill == sizeof(s->buf))
            ds_flush(s);
    }
}

static void ds_init(struct datain_stream *s, struct scsi_cmd *cmd, size_t alloc)
{
    s->cmd = cmd;
    s->off = 0;
    s->fill = 0;
    s->limit = alloc < cmd->buf_len ? alloc : cmd->buf_len;
    if (cmd->dir != SCSI_DIR_FROM_DEV)
        s->limit = 0;
}

static void ds_finish(struct datain_stream *s)
{
    ds_flush(s);
    s->cmd->xfer_len = s->off < s->limit ? s->off : s->limit;
}

/* SAM-5 4.7: peripheral device addressing below 256, flat space above;
 * the virtio transport encodes event LUNs the same way. */
static void encode_lun(uint8_t *e, uint16_t lun)
{
    memset(e, 0, 8);
    if (lun < 256) {
        e[1] = (uint8_t)lun;
    } else {
        e[0] = (uint8_t)(0x40 | lun >> 8);
        e[1] = (uint8_t)lun;
    }
}

static int report_one(void *opaque, struct scsi_lun *lu)
{
    struct datain_stream *s = opaque;
    uint8_t e[8];

    encode_lun(e, scsi_lun_number(lu, s->cmd->tgt));
    ds_put(s, e, 8);
    return 0;
}

int spc_report_luns(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_target *tgt = cmd->tgt;
    uint8_t sel = cmd->cdb[2];
    bool normal = sel == 0x00 || sel == 0x02;
    bool wlun = sel == 0x01 || sel == 0x02;
    uint32_t n = (normal ? tgt->nluns : 0) + (wlun ? 1 : 0);
    struct datain_stream s;
    uint8_t hdr[8] = { 0 };

    put_be32(hdr, n * 8u);
    ds_init(&s, cmd, p->data_len);
    ds_put(&s, hdr, 8);
    if (normal)
        scsi_target_foreach(tgt, report_one, &s);
    if (wlun) {
        /* SPC-4 8.2: REPORT LUNS well-known LUN, well-known addressing */
        static const uint8_t w[8] = { 0xc1, 0x01, 0, 0, 0, 0, 0, 0 };

        ds_put(&s, w, 8);
    }
    ds_finish(&s);
    return SENSE_OK;
}

/* --------------------------------------------------------- REQUEST SENSE */

int spc_request_sense(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    bool desc = cmd->cdb[1] & 0x01;
    uint8_t b[64];
    int reason;
    size_t n;

    /* SPC-4 6.39: sense data for the current state; a pending UA is
     * returned and cleared; an absent LUN reports 05/25/00 (SPC-4 6.39). */
    uint32_t sks = 0;

    if (!lu) {
        reason = cmd->lun_wlun_report ? SENSE_NO_SENSE : SENSE_LUN_NOT_SUPPORTED;
    } else if (lu->sanitize) {
        /* SBC-4 4.11.4: the progress of the sanitize operation */
        reason = SENSE_SANITIZE_IN_PROGRESS;
        sks = SENSE_SKS_VALID | scsi_sanitize_progress(lu);
    } else {
        reason = scsi_lun_ua_take(lu, cmd->nexus);
        if (!reason)
            reason = scsi_lun_medium(lu) ? SENSE_NO_SENSE : scsi_lun_no_medium(lu);
    }
    n = sense_build(b, sizeof(b), desc, reason, sks, false, 0);
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

int spc_test_unit_ready(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)cmd;
    (void)p;
    return SENSE_OK;    /* medium presence is checked centrally */
}

/* ----------------------------------------------------------- mode pages */

static const uint8_t sbc_mode_pages[] = { 0x01, 0x08, 0x0a, 0x1c };

/* Build one mode page (SPC-4 7.5, SBC-4 6.5) for page control pc into b.
 * Returns its length, 0 when not supported. */
static size_t mode_page(const struct scsi_lun *lu, uint8_t code, int pc, uint8_t *b)
{
    bool cur = pc == MODE_PC_CURRENT, chg = pc == MODE_PC_CHANGEABLE;
    size_t n;

    if (lu->type == SCSI_DEV_CD)
        return mmc_mode_page(lu, code, pc, b);
    switch (code) {
    case 0x01:      /* read-write error recovery, SBC-4 6.5.9 */
        n = 12;
        memset(b, 0, n);
        if (!chg)
            b[2] = 0x80;                        /* AWRE */
        break;
    case 0x08:      /* caching, SBC-4 6.5.5 */
        n = 20;
        memset(b, 0, n);
        if (chg)
            b[2] = 0x04;                        /* WCE changeable */
        else if (cur ? lu->drive && blk_write_cache(lu->drive) : true)
            b[2] = 0x04;                        /* WCE; RCD=0 */
        break;
    case 0x0a:      /* control, SPC-4 7.5.8 */
        n = 12;
        memset(b, 0, n);
        if (chg) {
            b[2] = 0x04;                        /* D_SENSE */
            b[4] = 0x08;                        /* SWP */
        } else {
            b[2] = cur && lu->d_sense ? 0x04 : 0;   /* TST=0 */
            b[3] = 0x10;                        /* QUEUE ALGORITHM MODIFIER 1: unrestricted; QERR=0 */
            b[4] = cur && lu->swp ? 0x08 : 0;
            put_be16(&b[8], 0xffff);            /* BUSY TIMEOUT PERIOD: unlimited */
        }
        break;
    case 0x1c:      /* informational exceptions control, SPC-4 7.5.12 */
        n = 12;
        memset(b, 0, n);
        if (!chg)
            b[2] = 0x08;                        /* DEXCPT: no failure prediction */
        break;
    default:
        return 0;
    }
    b[0] = code;
    b[1] = (uint8_t)(n - 2);
    return n;
}

int spc_mode_sense(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    bool ten = cmd->cdb[0] == 0x5a;
    bool dbd = cmd->cdb[1] & 0x08;
    bool llbaa = ten && (cmd->cdb[1] & 0x10);
    int pc = cmd->cdb[2] >> 6;
    uint8_t page = cmd->cdb[2] & 0x3f, subpage = cmd->cdb[3];
    uint8_t b[256];
    size_t hdr = ten ? 8 : 4, n = hdr, bdlen = 0;
    bool mmc = lu->type == SCSI_DEV_CD;
    const uint8_t *pages = mmc ? mmc_mode_pages : sbc_mode_pages;
    size_t npages = mmc ? mmc_n_mode_pages : sizeof(sbc_mode_pages);
    uint8_t dsp = 0;

    /* SPC-4 6.11: saved values are not implemented */
    if (pc == MODE_PC_SAVED)
        return SENSE_SAVING_PARAMS_UNSUP;
    memset(b, 0, sizeof(b));
    /* MMC-6 7.2.1: no block descriptors, no device-specific parameter */
    if (mmc)
        dbd = true;

    /* SBC-4 6.5.2 mode parameter block descriptor (short or long LBA) */
    if (!dbd) {
        /* nothing in it is changeable: all zero for PC=01b */
        uint64_t nb = pc != MODE_PC_CHANGEABLE ? scsi_lun_capacity(lu) : 0;
        uint32_t bl = pc != MODE_PC_CHANGEABLE ? lu->block_size : 0;

        if (llbaa) {
            put_be64(&b[n], nb);
            put_be32(&b[n + 12], bl);
            bdlen = 16;
        } else {
            put_be32(&b[n], nb > 0xffffffffu ? 0xffffffffu : (uint32_t)nb);
            put_be32(&b[n + 4], bl);                /* byte 4 reserved, 3-byte length */
            b[n + 4] = 0;
            bdlen = 8;
        }
        n += bdlen;
    }

    if (page == 0x3f) {
        /* all pages; subpage FFh = all pages and subpages (we have none) */
        if (subpage != 0x00 && subpage != 0xff)
            return scsi_invalid_cdb(cmd, 3, 7);
        for (size_t i = 0; i < npages; i++)
            n += mode_page(lu, pages[i], pc, &b[n]);
    } else {
        size_t len = mode_page(lu, page, pc, &b[n]);

        if (!len)
            return scsi_invalid_cdb(cmd, 2, 5);
        if (subpage)
            return scsi_invalid_cdb(cmd, 3, 7);
        n += len;
    }

    /* SBC-4 6.5.1: WP and DPOFUA in the device-specific parameter */
    if (!mmc) {
        dsp = 0x10;
        if (scsi_lun_write_protected(lu))
            dsp |= 0x80;
    }
    if (ten) {
        put_be16(&b[0], (uint16_t)(n - 2));
        b[3] = dsp;
        b[4] = bdlen == 16 ? 0x01 : 0;          /* LONGLBA */
        put_be16(&b[6], (uint16_t)bdlen);
    } else {
        b[0] = (uint8_t)(n - 1);
        b[2] = dsp;
        b[3] = (uint8_t)bdlen;
    }
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

struct mode_changes {
    int wce, d_sense, swp;      /* -1: not in the list */
};

static int mode_select_page(struct scsi_cmd *cmd, const uint8_t *pg, size_t off, size_t plen,
                            struct mode_changes *mc)
{
    const struct scsi_lun *lu = cmd->lu;
    uint8_t cur[64], chg[64];
    uint8_t code = pg[0] & 0x3f;
    size_t len;

    /* SPF=1 would be a subpage: we have none */
    if (pg[0] & 0x40)
        return scsi_invalid_param(cmd, (unsigned)off, 6);
    len = mode_page(lu, code, MODE_PC_CURRENT, cur);
    if (!len)
        return scsi_invalid_param(cmd, (unsigned)off, 5);
    mode_page(lu, code, MODE_PC_CHANGEABLE, chg);
    if (plen != len - 2)
        return scsi_invalid_param(cmd, (unsigned)off + 1, 7);
    /* SPC-4 6.9: a changed non-changeable bit is an invalid field */
    for (size_t i = 2; i < len; i++) {
        uint8_t bad = (uint8_t)((pg[i] ^ cur[i]) & ~chg[i]);

        if (bad)
            return scsi_invalid_param(cmd, (unsigned)(off + i), 31 - __builtin_clz(bad));
    }
    switch (code) {
    case 0x08:
        mc->wce = !!(pg[2] & 0x04);
        break;
    case 0x0a:
        mc->d_sense = !!(pg[2] & 0x04);
        mc->swp = !!(pg[4] & 0x08);
        break;
    }
    return SENSE_OK;
}

int spc_mode_select(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    bool ten = cmd->cdb[0] == 0x55;
    bool pf = cmd->cdb[1] & 0x10;
    size_t len = p->data_len, hdr = ten ? 8 : 4, bdlen, off;
    struct mode_changes mc = { -1, -1, -1 };
    bool changed = false;
    uint8_t b[MODE_SELECT_MAX];
    int r;

    /* SPC-4 6.9: we save nothing */
    if (cmd->cdb[1] & 0x01)
        return scsi_invalid_cdb(cmd, 1, 0);
    if (len == 0)
        return SENSE_OK;
    if (len > sizeof(b) || len < hdr)
        return SENSE_PARAM_LIST_LENGTH;
    /* copied once: the guest may change its buffer under us */
    if (scsi_dataout(cmd, b, len) != len)
        return SENSE_PARAM_LIST_LENGTH;

    /* SPC-4 7.5.5 header: medium type must be 0 for direct access */
    if (b[ten ? 2 : 1])
        return scsi_invalid_param(cmd, ten ? 2 : 1, 7);
    if (ten) {
        bdlen = get_be16(&b[6]);
        if (bdlen != 0 && bdlen != ((b[4] & 0x01) ? 16u : 8u))
            return scsi_invalid_param(cmd, 6, 7);
    } else {
        bdlen = b[3];
        if (bdlen != 0 && bdlen != 8)
            return scsi_invalid_param(cmd, 3, 7);
    }
    if (hdr + bdlen > len)
        return SENSE_PARAM_LIST_LENGTH;
    if (bdlen) {
        /* SBC-4 6.5.2: the block length can't change */
        const uint8_t *bd = &b[hdr];
        uint32_t blen = bdlen == 16 ? get_be32(&bd[12]) : get_be24(&bd[5]);

        if (blen != lu->block_size)
            return scsi_invalid_param(cmd, (unsigned)(hdr + (bdlen == 16 ? 12 : 5)), 7);
    }
    for (off = hdr + bdlen; off < len;) {
        size_t plen;

        if (len - off < 2)
            return SENSE_PARAM_LIST_LENGTH;
        if (!pf)
            return scsi_invalid_cdb(cmd, 1, 4);     /* pages need PF=1 (SPC-4 6.9) */
        plen = b[off + 1];
        if (plen > len - off - 2)
            return SENSE_PARAM_LIST_LENGTH;
        r = mode_select_page(cmd, &b[off], off, plen, &mc);
        if (r)
            return r;
        off += 2 + plen;
    }

    /* all validated: apply; the write cache is the medium's (block layer) */
    if (mc.wce >= 0 && !lu->drive)
        return scsi_lun_no_medium(lu);
    if (mc.wce >= 0 && (bool)mc.wce != blk_write_cache(lu->drive)) {
        blk_set_write_cache(lu->drive, mc.wce);
        changed = true;
    }
    if (mc.d_sense >= 0 && (bool)mc.d_sense != lu->d_sense) {
        lu->d_sense = mc.d_sense;
        changed = true;
    }
    if (mc.swp >= 0 && (bool)mc.swp != lu->swp) {
        lu->swp = mc.swp;
        changed = true;
    }
    /* SPC-4 7.5.1: other I_T nexuses learn through 2A/01 */
    if (changed)
        scsi_lun_ua_add_others(lu, cmd->nexus, SENSE_UA_MODE_PARAMS_CHANGED);
    return SENSE_OK;
}

/* ------------------------------------- REPORT SUPPORTED OPERATION CODES */

static bool op_supported(const struct scsi_cmd *cmd, const struct scsi_op *op)
{
    return op->execute && (!op->supported || !cmd->lu || op->supported(cmd->lu));
}

static size_t rsoc_timeouts(uint8_t *b)
{
    /* SPC-4 6.35.4 command timeouts descriptor: no values reported */
    memset(b, 0, 12);
    put_be16(b, 0x000a);
    return 12;
}

static size_t rsoc_one(const struct scsi_op *op, bool sup, bool rctd, uint8_t *b)
{
    size_t n = 4;

    memset(b, 0, 4);
    b[1] = rctd ? 0x80 : 0;
    if (!sup) {
        b[1] = 0x01;                /* SUPPORT 001b: not supported */
        return 4;
    }
    b[1] |= 0x03;                   /* SUPPORT 011b: as the standard says */
    put_be16(&b[2], op->cdb_len);
    memcpy(&b[4], op->usage, op->cdb_len);
    n += op->cdb_len;
    if (rctd)
        n += rsoc_timeouts(&b[n]);
    return n;
}

static void rsoc_desc(struct datain_stream *s, const struct scsi_op *op, uint8_t opcode, bool sa, bool rctd)
{
    uint8_t d[20];

    memset(d, 0, sizeof(d));
    d[0] = opcode;
    put_be16(&d[2], sa ? op->sa : 0);
    d[5] = (uint8_t)((rctd ? 0x02 : 0) | (sa ? 0x01 : 0));  /* CTDP, SERVACTV */
    put_be16(&d[6], op->cdb_len);
    if (rctd)
        rsoc_timeouts(&d[8]);
    ds_put(s, d, rctd ? 20 : 8);
}

int spc_report_opcodes(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_optable *t = cmd->lu ? cmd->lu->optable : &spc_wlun_optable;
    bool rctd = cmd->cdb[2] & 0x80;
    unsigned opts = cmd->cdb[2] & 0x07;
    uint8_t req_op = cmd->cdb[3];
    uint16_t req_sa = get_be16(&cmd->cdb[4]);
    const struct scsi_op *op = &t->op[req_op];
    uint8_t b[64];
    size_t n;

    if (opts == 0) {
        /* SPC-4 6.35.2: all commands, in opcode order */
        struct datain_stream s;
        uint32_t total = 0;

        ds_init(&s, cmd, p->data_len);
        for (int pass = 0; pass < 2; pass++) {
            uint8_t hdr[4];

            if (pass == 1) {
                put_be32(hdr, total);
                ds_put(&s, hdr, 4);
            }
            for (unsigned o = 0; o < 256; o++) {
                const struct scsi_op *e = &t->op[o];

                if (!e->execute && !e->n_sa)
                    continue;
                if (e->n_sa) {
                    for (unsigned i = 0; i < e->n_sa; i++) {
                        if (!op_supported(cmd, &e->sa_ops[i]))
                            continue;
                        if (pass == 0)
                            total += rctd ? 20 : 8;
                        else
                            rsoc_desc(&s, &e->sa_ops[i], (uint8_t)o, true, rctd);
                    }
                } else if (op_supported(cmd, e)) {
                    if (pass == 0)
                        total += rctd ? 20 : 8;
                    else
                        rsoc_desc(&s, e, (uint8_t)o, false, rctd);
                }
            }
        }
        ds_finish(&s);
        return SENSE_OK;
    }

    switch (opts) {
    case 1:     /* by opcode: invalid when it has service actions */
        if (op->n_sa)
            return scsi_invalid_cdb(cmd, 2, 2);
        n = rsoc_one(op, op_supported(cmd, op), rctd, b);
        break;
    case 2:     /* by opcode and service action */
        if (!op->n_sa)
            return scsi_invalid_cdb(cmd, 2, 2);
        /* fall through */
    case 3: {   /* SPC-4 r37: service action when the opcode has them */
        const struct scsi_op *sop = op;

        if (op->n_sa) {
            sop = NULL;
            for (unsigned i = 0; i < op->n_sa && req_sa <= 0x1f; i++)
                if (op->sa_ops[i].sa == req_sa)
                    sop = &op->sa_ops[i];
        }
        n = rsoc_one(sop, sop && op_supported(cmd, sop), rctd, b);
        break;
    }
    default:
        return scsi_invalid_cdb(cmd, 2, 2);
    }
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* SPC-4 6.36 REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS */
int spc_report_tmfs(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    uint8_t b[16];
    bool repd = cmd->cdb[2] & 0x80;

    memset(b, 0, sizeof(b));
    b[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x04;    /* ATS ATSS CTSS LURS QTS */
    b[1] = 0x02 | 0x01;                         /* QTSS ITNRS */
    if (repd)
        b[3] = 0x0c;
    scsi_datain(cmd, b, repd ? 16 : 4, p->data_len);
    return SENSE_OK;
}

/* SPC-4 6.42 SEND DIAGNOSTIC: there is nothing to test in a virtual LU, so
 * the default self-test and the short/extended self-tests pass at once;
 * diagnostic pages (a parameter list) are not supported. */
int spc_parse_send_diag(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    uint8_t code = cmd->cdb[1] >> 5;
    bool selftest = cmd->cdb[1] & 0x04;

    p->data_len = get_be16(&cmd->cdb[3]);
    if (p->data_len)
        return scsi_invalid_cdb(cmd, 3, 7);
    if (selftest ? code != 0 : (code == 3 || code == 7))
        return scsi_invalid_cdb(cmd, 1, 7);
    return SENSE_OK;
}

int spc_send_diag(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)cmd;
    (void)p;
    return SENSE_OK;
}

/* SPC-4 6.13 (SBC-4 5.13 for direct access, MMC-6 6.14 with PERSISTENT,
 * which only the MMC table's CDB usage lets through) */
int spc_prevent_allow(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)p;
    /* SBC-4 5.13: the prevention is held per I_T nexus; removal is allowed
     * when no nexus holds one */
    if (!scsi_lun_set_prevent(cmd->lu, cmd->nexus, cmd->cdb[4] & 0x02, cmd->cdb[4] & 0x01))
        return SENSE_BUSY;
    return SENSE_OK;
}

/* SBC-4 5.25 / MMC-6 6.40: the tray state machine is the LU's (lun.c) */
int spc_start_stop(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)p;
    return scsi_lun_start_stop(cmd);
}

/* --------------------------------------------------------------- tables */

#define F_ANY   (SCSI_OPF_PR_ALLOW | SCSI_OPF_RES2_OK)   /* whatever the reservations */

const struct scsi_op spc_maint_in_ops[SPC_N_MAINT_IN_OPS] = {
    { "REPORT SUPPORTED OPERATION CODES", spc_parse_alloc_a3, spc_report_opcodes,
      SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | F_ANY, 12, 0x0c, spc_usage_rsoc, NULL, NULL, 0 },
    { "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS", spc_parse_alloc_a3, spc_report_tmfs,
      SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | F_ANY, 12, 0x0d, spc_usage_rstmf, NULL, NULL, 0 },
};

/* SPC-4 6.15 / 6.16: service actions 00h-03h / 00h-07h */
#define PR_IN(n, sa) { n, scsi_pr_parse_in, scsi_pr_in, SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | SCSI_OPF_PR_ALLOW, \
                       10, sa, u_pr_in, NULL, NULL, 0 }
#define PR_OUT(n, sa) { n, scsi_pr_parse_out, scsi_pr_out, SCSI_OPF_DATA_OUT | SCSI_OPF_PR_ALLOW, \
                        10, sa, u_pr_out, NULL, NULL, 0 }
const struct scsi_op spc_pr_in_ops[SPC_N_PR_IN_OPS] = {
    PR_IN("PERSISTENT RESERVE IN READ KEYS", 0x00),
    PR_IN("PERSISTENT RESERVE IN READ RESERVATION", 0x01),
    PR_IN("PERSISTENT RESERVE IN REPORT CAPABILITIES", 0x02),
    PR_IN("PERSISTENT RESERVE IN READ FULL STATUS", 0x03),
};
const struct scsi_op spc_pr_out_ops[SPC_N_PR_OUT_OPS] = {
    PR_OUT("PERSISTENT RESERVE OUT REGISTER", 0x00),
    PR_OUT("PERSISTENT RESERVE OUT RESERVE", 0x01),
    PR_OUT("PERSISTENT RESERVE OUT RELEASE", 0x02),
    PR_OUT("PERSISTENT RESERVE OUT CLEAR", 0x03),
    PR_OUT("PERSISTENT RESERVE OUT PREEMPT", 0x04),
    PR_OUT("PERSISTENT RESERVE OUT PREEMPT AND ABORT", 0x05),
    PR_OUT("PERSISTENT RESERVE OUT REGISTER AND IGNORE EXISTING KEY", 0x06),
    PR_OUT("PERSISTENT RESERVE OUT REGISTER AND MOVE", 0x07),
};

#define OP_INQUIRY { "INQUIRY", spc_parse_inquiry, spc_inquiry, \
        SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | SCSI_OPF_UA_OK, 6, 0, spc_usage_inquiry, NULL, NULL, 0 }
#define OP_REQUEST_SENSE { "REQUEST SENSE", spc_parse_alloc6, spc_request_sense, \
        SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | SCSI_OPF_UA_OK, 6, 0, spc_usage_request_sense, NULL, NULL, 0 }
#define OP_REPORT_LUNS { "REPORT LUNS", spc_parse_report_luns, spc_report_luns, \
        SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC | SCSI_OPF_UA_OK, 12, 0, spc_usage_report_luns, NULL, NULL, 0 }

/* Target present, LUN absent (SPC-4 6.6.2, 6.33, 6.39; SAM-5 5.9). */
const struct scsi_optable spc_nolun_optable = {
    .name = "no-lun",
    .unsupported_reason = SENSE_LUN_NOT_SUPPORTED,
    .op = {
        [0x03] = OP_REQUEST_SENSE,
        [0x12] = OP_INQUIRY,
        [0xa0] = OP_REPORT_LUNS,
    },
};

/* SPC-4 8.2: the REPORT LUNS well-known LU */
const struct scsi_optable spc_wlun_optable = {
    .name = "report-luns-wlun",
    .unsupported_reason = SENSE_INVALID_OPCODE,
    .op = {
        [0x00] = { "TEST UNIT READY", NULL, spc_test_unit_ready, 0, 6, 0, spc_usage_tur, NULL, NULL, 0 },
        [0x03] = OP_REQUEST_SENSE,
        [0x12] = OP_INQUIRY,
        [0xa0] = OP_REPORT_LUNS,
    },
};
