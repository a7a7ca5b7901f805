/* MMC-6 multimedia commands for SCSI_DEV_CD: a read-only CD-ROM/DVD-ROM
 * drive with a tray (the tray and medium state machine is lun.c's). The
 * medium is an image file of 2048-byte blocks holding one data track in one
 * complete session; an image larger than an 80-minute CD is a DVD-ROM (as
 * QEMU decides). What a guest's CD driver and udev's cdrom_id use is here:
 * READ TOC/PMA/ATIP, READ DISC/TRACK INFORMATION, GET CONFIGURATION, GET
 * EVENT STATUS NOTIFICATION (polled), MECHANISM STATUS, READ DVD STRUCTURE,
 * GET PERFORMANCE and the CD capabilities mode page.
 *
 * Nothing writes: the drive offers no write feature (GET CONFIGURATION,
 * mode page 2Ah), so WRITE(10/12), WRITE AND VERIFY and the other writing
 * commands are not implemented and answer INVALID COMMAND OPERATION CODE
 * (MMC-6 4.1.2: a Drive without the Random Writable/Write Once features
 * has no write commands; DATA PROTECT is for a writer with protected media).
 * MMC has no READ(6). */
#include "scsi/scsi_int.h"

#include <string.h>

#define CD_MAX_BYTES        (80ull * 60 * 75 * 2048)    /* 80-minute CD-ROM */
#define PROFILE_NONE        0x0000
#define PROFILE_CD_ROM      0x0008
#define PROFILE_DVD_ROM     0x0010
#define TRACK_LEADOUT       0xaa
#define ADR_CTL_DATA        0x14    /* ADR 1 (Q mode 1), CONTROL 4: data track, no copy */
#define READ_SPEED_KBS      8800    /* reported read speed (50x CD) */
#define DVD_PSN_START       0x030000u   /* first physical sector of a DVD data zone */

/* MMC-6 6.7: event classes (notification class request bits) */
#define GESN_OPCHANGE       1
#define GESN_POWER          2
#define GESN_MEDIA          4
#define GESN_SUPPORTED      ((1u << GESN_OPCHANGE) | (1u << GESN_POWER) | (1u << GESN_MEDIA))

/* MMC-6 5.3.1: the current profile follows the medium */
static uint16_t current_profile(const struct scsi_lun *lu)
{
    const struct blk_drive *d = scsi_lun_medium(lu);

    if (!d)
        return PROFILE_NONE;
    return blk_size(d) > CD_MAX_BYTES ? PROFILE_DVD_ROM : PROFILE_CD_ROM;
}

/* MMC-6 Table 18: MSF = LBA + 150 frames (2 s of pregap), 75 frames a
 * second; an address past 255:59:74 (DVD sizes) is reported as that. */
static void put_msf(uint8_t *b, uint64_t lba)
{
    uint64_t f = lba + 150;

    if (f >= 256ull * 60 * 75) {
        b[0] = 0xff;
        b[1] = 59;
        b[2] = 74;
        return;
    }
    b[0] = (uint8_t)(f / (60 * 75));
    b[1] = (uint8_t)(f / 75 % 60);
    b[2] = (uint8_t)(f % 75);
}

/* A 4-byte address field: LBA, or 0 + M S F. */
static void put_addr(uint8_t *b, uint64_t lba, bool msf)
{
    if (msf) {
        b[0] = 0;
        put_msf(&b[1], lba);
    } else {
        put_be32(b, lba > 0xffffffffu ? 0xffffffffu : (uint32_t)lba);
    }
}

static int parse_alloc7(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be16(&cmd->cdb[7]);
    return SENSE_OK;
}

static int parse_alloc8(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be16(&cmd->cdb[8]);
    return SENSE_OK;
}

static int exec_good(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    (void)cmd;
    (void)p;
    return SENSE_OK;
}

/* ------------------------------------------------- READ TOC/PMA/ATIP */

/* MMC-6 6.26. Formats 0 (TOC) and 1 (session information) in LBA or MSF;
 * format 2 (full TOC: raw Q sub-channel, MSF by nature) on CD media only.
 * The disc has one session with one data track starting at LBA 0. */
static int exec_read_toc(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    bool msf = cmd->cdb[1] & 0x02;
    unsigned fmt = cmd->cdb[2] & 0x0f, fmt_byte = 2;
    uint8_t track = cmd->cdb[6];
    uint64_t cap = scsi_lun_capacity(cmd->lu);
    uint8_t b[64];
    size_t n = 4;

    /* SFF-8020i: older initiators (Linux sr's multisession probe) put the
     * format in bits 7-6 of the CONTROL byte */
    if (!fmt && (cmd->cdb[9] & 0xc0)) {
        fmt = cmd->cdb[9] >> 6;
        fmt_byte = 9;
    }
    memset(b, 0, sizeof(b));
    switch (fmt) {
    case 0x0:
        /* descriptors from track N on, then the lead-out; 0 means 1 */
        if (track > 1 && track != TRACK_LEADOUT)
            return scsi_invalid_cdb(cmd, 6, 7);
        if (track <= 1) {
            b[n + 1] = ADR_CTL_DATA;
            b[n + 2] = 1;
            put_addr(&b[n + 4], 0, msf);
            n += 8;
        }
        b[n + 1] = ADR_CTL_DATA;
        b[n + 2] = TRACK_LEADOUT;
        put_addr(&b[n + 4], cap, msf);
        n += 8;
        b[2] = 1;                               /* first track */
        b[3] = 1;                               /* last track */
        break;
    case 0x1:
        /* the first track of the last complete session */
        b[2] = 1;                               /* first complete session */
        b[3] = 1;                               /* last complete session */
        b[n + 1] = ADR_CTL_DATA;
        b[n + 2] = 1;
        put_addr(&b[n + 4], 0, msf);
        n += 8;
        break;
    case 0x2: {
        /* points A0 (first track, disc type), A1 (last track), A2 (lead-out), 1 */
        static const uint8_t points[] = { 0xa0, 0xa1, 0xa2, 0x01 };

        if (current_profile(cmd->lu) != PROFILE_CD_ROM)
            return scsi_invalid_cdb(cmd, fmt_byte, fmt_byte == 2 ? 3 : 7);
        if (track > 1)
            return scsi_invalid_cdb(cmd, 6, 7);  /* sessions from N on: only 1 */
        b[2] = 1;
        b[3] = 1;
        for (size_t i = 0; i < sizeof(points); i++) {
            uint8_t *d = &b[n];

            d[0] = 1;                           /* session */
            d[1] = ADR_CTL_DATA;
            d[3] = points[i];
            if (points[i] == 0xa0 || points[i] == 0xa1)
                d[8] = 1;                       /* PMIN: track 1; PSEC (A0) 00h: CD-ROM disc */
            else
                put_msf(&d[8], points[i] == 0xa2 ? cap : 0);
            n += 11;
        }
        break;
    }
    default:
        /* 3-5 (PMA, ATIP, CD-TEXT) are not on a pressed CD-ROM image */
        return scsi_invalid_cdb(cmd, fmt_byte, fmt_byte == 2 ? 3 : 7);
    }
    put_be16(b, (uint16_t)(n - 2));
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* ---------------------------------------- READ DISC / TRACK INFORMATION */

/* MMC-6 6.22: standard disc information of a finalized one-session disc */
static int exec_read_disc_info(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    uint8_t b[34];

    /* DATA TYPE 001b/010b (track resources, POW resources) are for writers */
    if (cmd->cdb[1] & 0x07)
        return scsi_invalid_cdb(cmd, 1, 2);
    memset(b, 0, sizeof(b));
    put_be16(b, sizeof(b) - 2);
    b[2] = 0x0e;                    /* last session complete, disc finalized; not erasable */
    b[3] = 1;                       /* first track on the disc */
    b[4] = 1;                       /* sessions */
    b[5] = 1;                       /* first track in the last session */
    b[6] = 1;                       /* last track in the last session */
    b[7] = 0x20;                    /* URU: unrestricted use */
    b[8] = 0x00;                    /* disc type: CD-DA or CD-ROM */
    put_be32(&b[16], 0xffffffffu);  /* last session lead-in start: complete disc */
    put_be32(&b[20], 0xffffffffu);  /* last possible lead-out start: complete disc */
    scsi_datain(cmd, b, sizeof(b), p->data_len);
    return SENSE_OK;
}

/* MMC-6 6.27: the one track, addressed by an LBA in it, by number (1) or by
 * session (1); anything else names no track. */
static int exec_read_track_info(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    uint32_t v = get_be32(&cmd->cdb[2]);
    uint64_t cap = scsi_lun_capacity(cmd->lu);
    bool dvd = current_profile(cmd->lu) == PROFILE_DVD_ROM;
    uint8_t b[48];

    switch (cmd->cdb[1] & 0x03) {
    case 0:         /* LBA */
        if (v >= cap)
            return scsi_invalid_cdb(cmd, 2, 7);
        break;
    case 1:         /* track number; 0 (lead-in) and FFh (invisible track) do not exist here */
    case 2:         /* session number */
        if (v != 1)
            return scsi_invalid_cdb(cmd, 2, 7);
        break;
    default:
        return scsi_invalid_cdb(cmd, 1, 1);
    }
    memset(b, 0, sizeof(b));
    put_be16(b, sizeof(b) - 2);
    b[2] = 1;                       /* track number (LSB) */
    b[3] = 1;                       /* session number (LSB) */
    b[5] = 0x04;                    /* track mode: data, recorded uninterrupted */
    b[6] = 0x01;                    /* data mode 1; not blank, not packet */
    /* start 0, no next writable address, no free blocks */
    if (dvd)
        put_be32(&b[20], 16);       /* blocking factor: an ECC block holds 16 */
    put_be32(&b[24], cap > 0xffffffffu ? 0xffffffffu : (uint32_t)cap);   /* track size */
    scsi_datain(cmd, b, sizeof(b), p->data_len);
    return SENSE_OK;
}

/* --------------------------------------------------- GET CONFIGURATION */

static const uint16_t feature_codes[] = { 0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001e, 0x001f,
                                          0x0100, 0x0105 };

/* One feature descriptor (MMC-6 5.3) into b: its length. Byte 2 holds
 * VERSION, PERSISTENT and CURRENT. */
static size_t feature(const struct scsi_lun *lu, uint16_t profile, uint16_t code, uint8_t *b)
{
    size_t n;

    memset(b, 0, 16);
    put_be16(b, code);
    switch (code) {
    case 0x0000:    /* Profile List: every profile, the current one marked */
        b[2] = 0x03;
        put_be16(&b[4], PROFILE_DVD_ROM);
        b[6] = profile == PROFILE_DVD_ROM;
        put_be16(&b[8], PROFILE_CD_ROM);
        b[10] = profile == PROFILE_CD_ROM;
        n = 12;
        break;
    case 0x0001:    /* Core, version 2 */
        b[2] = 0x08 | 0x03;
        put_be32(&b[4], 0x00000001);        /* physical interface: SCSI family */
        b[8] = 0x01;                        /* DBE */
        n = 12;
        break;
    case 0x0002:    /* Morphing, version 1: polled operational change events */
        b[2] = 0x04 | 0x03;
        b[4] = 0x02;                        /* OCEvent; ASYNC=0 */
        n = 8;
        break;
    case 0x0003:    /* Removable Medium, version 2 */
        b[2] = 0x08 | 0x03;
        b[4] = 0x20 | 0x10 | 0x08 | 0x01;   /* tray; Load, Eject, Lock */
        n = 8;
        break;
    case 0x0010:    /* Random Readable: current with a medium */
        b[2] = profile != PROFILE_NONE;
        put_be32(&b[4], lu->block_size);
        put_be16(&b[8], profile == PROFILE_DVD_ROM ? 16 : 1);   /* blocking */
        b[10] = 0x01;                       /* PP: mode page 01h is there */
        n = 12;
        break;
    case 0x001e:    /* CD Read, version 2: no C2, CD-TEXT or DAP */
        b[2] = 0x08 | (profile == PROFILE_CD_ROM);
        n = 8;
        break;
    case 0x001f:    /* DVD Read, version 1 */
        b[2] = 0x04 | (profile == PROFILE_DVD_ROM);
        n = 8;
        break;
    case 0x0100:    /* Power Management */
        b[2] = 0x03;
        n = 4;
        break;
    case 0x0105:    /* Timeout, version 1: no group 3 timeouts */
        b[2] = 0x04 | 0x03;
        n = 8;
        break;
    default:
        return 0;
    }
    b[3] = (uint8_t)(n - 4);
    return n;
}

/* MMC-6 6.6: RT 00b every feature from STARTING FEATURE NUMBER on, 01b the
 * current ones among them, 10b that one feature; the header in any case. */
static int exec_get_configuration(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    unsigned rt = cmd->cdb[1] & 0x03;
    uint16_t start = get_be16(&cmd->cdb[2]);
    uint16_t profile = current_profile(lu);
    uint8_t b[8 + 9 * 16];
    size_t n = 8;

    if (rt == 3)
        return scsi_invalid_cdb(cmd, 1, 1);
    memset(b, 0, 8);
    for (size_t i = 0; i < sizeof(feature_codes) / sizeof(feature_codes[0]); i++) {
        uint16_t code = feature_codes[i];
        size_t len;

        if (rt == 2 ? code != start : code < start)
            continue;
        len = feature(lu, profile, code, &b[n]);
        if (rt == 1 && !(b[n + 2] & 0x01))
            continue;
        n += len;
    }
    put_be32(b, (uint32_t)(n - 4));
    put_be16(&b[6], profile);
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* ------------------------------------ GET EVENT STATUS NOTIFICATION */

/* MMC-6 6.7, polled only. Of the requested classes we support, the lowest
 * numbered one with an event pending is reported (only media events ever
 * are), else the lowest requested with NoChg. One event is reported and
 * cleared per command, and only when its descriptor reaches the initiator. */
static int parse_gesn(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    /* POLLED=0 asks for asynchronous notification, which we don't do */
    if (!(cmd->cdb[1] & 0x01))
        return scsi_invalid_cdb(cmd, 1, 0);
    p->data_len = get_be16(&cmd->cdb[7]);
    return SENSE_OK;
}

static int exec_gesn(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    unsigned req = cmd->cdb[4] & GESN_SUPPORTED;
    size_t room = p->data_len < cmd->buf_len ? p->data_len : cmd->buf_len;
    unsigned cls;
    uint8_t b[8];

    memset(b, 0, sizeof(b));
    b[3] = GESN_SUPPORTED;
    if (!req) {
        b[2] = 0x80;                        /* NEA: no requested class is supported */
        scsi_datain(cmd, b, 4, p->data_len);
        return SENSE_OK;
    }
    if ((req & (1u << GESN_MEDIA)) && lu->n_media_ev)
        cls = GESN_MEDIA;
    else
        cls = (unsigned)__builtin_ctz(req);
    b[2] = (uint8_t)cls;
    put_be16(b, 4);
    switch (cls) {
    case GESN_OPCHANGE:
        /* NoChg; PERSISTENT PREVENTED, operational status 0: available */
        b[5] = scsi_lun_persistent_prevented(lu) ? 0x80 : 0;
        break;
    case GESN_POWER:
        b[5] = 0x01;                        /* NoChg, power status: active */
        break;
    case GESN_MEDIA:
        if (room >= sizeof(b) && cmd->dir == SCSI_DIR_FROM_DEV)
            b[4] = scsi_lun_media_event_take(lu);
        b[5] = (lu->tray_open ? 0x01 : 0) | (scsi_lun_medium(lu) ? 0x02 : 0);   /* door open, media present */
        break;
    }
    scsi_datain(cmd, b, sizeof(b), p->data_len);
    return SENSE_OK;
}

/* ---------------------------------------------------- MECHANISM STATUS */

/* MMC-6 6.11: not a changer: the header only, no slot tables */
static int exec_mechanism_status(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    uint8_t b[8];

    memset(b, 0, sizeof(b));
    b[1] = cmd->lu->tray_open ? 0x10 : 0;  /* mechanism idle; door open */
    scsi_datain(cmd, b, sizeof(b), p->data_len);
    return SENSE_OK;
}

/* ------------------------------------------------- READ DVD STRUCTURE */

/* MMC-6 6.23: format 00h (physical format information) of a one-layer
 * DVD-ROM, and FFh (the list of structures). Every DVD structure of a CD
 * medium is CANNOT READ MEDIUM - INCOMPATIBLE FORMAT. */
static int exec_read_dvd_structure(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_lun *lu = cmd->lu;
    uint8_t fmt = cmd->cdb[7];
    uint8_t b[4 + 2048];
    uint64_t cap;
    size_t n;

    if (cmd->cdb[1] & 0x0f)
        return scsi_invalid_cdb(cmd, 1, 3);     /* MEDIA TYPE: only DVD (0000b) */
    memset(b, 0, sizeof(b));
    if (fmt == 0xff) {
        /* two entries: format, RDS (readable), structure length */
        b[4] = 0x00;
        b[5] = 0x40;
        put_be16(&b[6], 4 + 2048);
        b[8] = 0xff;
        b[9] = 0x40;
        put_be16(&b[10], 12);
        n = 12;
        goto out;
    }
    if (!cmd->medium)
        return scsi_lun_no_medium(lu);
    if (current_profile(lu) != PROFILE_DVD_ROM)
        return SENSE_INCOMPATIBLE_FORMAT;
    if (fmt != 0x00)
        return scsi_invalid_cdb(cmd, 7, 7);
    if (cmd->cdb[6])
        return scsi_invalid_cdb(cmd, 6, 7);     /* one layer */
    cap = scsi_lun_capacity(lu);
    b[4] = 0x01;                    /* DVD-ROM, part version 1 */
    b[5] = 0x0f;                    /* 120 mm, maximum rate not specified */
    b[6] = 0x01;                    /* one layer, parallel track path, embossed */
    put_be32(&b[8], DVD_PSN_START);
    put_be32(&b[12], (uint32_t)(DVD_PSN_START + (cap ? cap - 1 : 0)));
    n = 4 + 2048;
out:
    put_be16(b, (uint16_t)(n - 2));
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* ---------------------------------------------------- GET PERFORMANCE */

/* MMC-6 6.8. Type 00h: nominal read performance over the whole medium as
 * one descriptor (no exceptions exist; no write performance); type 03h:
 * write speeds, none. MAXIMUM NUMBER OF DESCRIPTORS sizes the data-in. */
static int parse_get_performance(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = 8 + 16 * (size_t)get_be16(&cmd->cdb[8]);
    return SENSE_OK;
}

static int exec_get_performance(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    unsigned except = cmd->cdb[1] & 0x03;
    bool write = cmd->cdb[1] & 0x04;
    uint32_t start = get_be32(&cmd->cdb[2]);
    uint16_t maxd = get_be16(&cmd->cdb[8]);
    uint64_t cap;
    uint8_t b[8 + 16];
    size_t n = 8;

    memset(b, 0, sizeof(b));
    switch (cmd->cdb[10]) {
    case 0x00:
        if (except == 3)
            return scsi_invalid_cdb(cmd, 1, 1);
        if (!cmd->medium)
            return scsi_lun_no_medium(cmd->lu);
        cap = scsi_lun_capacity(cmd->lu);
        if (start >= cap)
            return SENSE_LBA_OUT_OF_RANGE;
        b[4] = (uint8_t)((write ? 0x02 : 0) | (except ? 0x01 : 0));
        if (!except && !write && maxd) {
            put_be32(&b[8], start);
            put_be32(&b[12], READ_SPEED_KBS);
            put_be32(&b[16], (uint32_t)(cap - 1 > 0xffffffffu ? 0xffffffffu : cap - 1));
            put_be32(&b[20], READ_SPEED_KBS);
            n += 16;
        }
        break;
    case 0x03:
        break;
    default:
        return scsi_invalid_cdb(cmd, 10, 7);
    }
    put_be32(b, (uint32_t)(n - 4));
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* ------------------------------------------------------------- SEEK(10) */

static int parse_seek(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    /* the LBA must address a block (nblocks 1 makes the central check say so) */
    p->lba = get_be32(&cmd->cdb[2]);
    p->nblocks = 1;
    return SENSE_OK;
}

/* ---------------------------------------------------------- mode pages */

const uint8_t mmc_mode_pages[] = { 0x01, 0x1a, 0x1d, 0x2a };
const size_t mmc_n_mode_pages = sizeof(mmc_mode_pages);

/* MMC-6 7: read/write error recovery (7.3), power condition (SPC-4 layout
 * of MMC-6 7.4, timers off), time-out and protect (7.7, no group 3), and the
 * legacy CD/DVD capabilities and mechanical status page 2Ah (MMC-3 6.3.11),
 * which Linux sr reads for the drive's abilities and lock state. Nothing is
 * changeable: MODE SELECT takes the current values back. */
size_t mmc_mode_page(const struct scsi_lun *lu, uint8_t code, int pc, uint8_t *b)
{
    bool chg = pc == MODE_PC_CHANGEABLE;
    size_t n;

    switch (code) {
    case 0x01:
    case 0x1a:
    case 0x1d:
        n = 12;
        memset(b, 0, n);
        break;
    case 0x2a:
        n = 22;
        memset(b, 0, n);
        if (chg)
            break;
        b[2] = 0x08;                            /* reads DVD-ROM (and CD-ROM) */
        b[6] = 0x20 | 0x08 | 0x01;              /* tray; eject; lock */
        if (scsi_lun_prevented(lu))
            b[6] |= 0x02;                       /* lock state: locked */
        put_be16(&b[8], READ_SPEED_KBS);        /* maximum read speed (obsolete) */
        put_be16(&b[14], READ_SPEED_KBS);       /* current read speed (obsolete) */
        break;
    default:
        return 0;
    }
    b[0] = code;
    b[1] = (uint8_t)(n - 2);
    return n;
}

/* --------------------------------------------------------------- table */

/* CDB usage data (SPC-4 6.35.3): the bits each command looks at */
static const uint8_t u_read10[10] = { 0x28, 0x18, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0 };   /* DPO FUA */
static const uint8_t u_read12[12] = { 0xa8, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0 };
static const uint8_t u_rc10[10] = { 0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0 };
static const uint8_t u_seek10[10] = { 0x2b, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0 };
static const uint8_t u_sync10[10] = { 0x35, 0x02, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0 };
/* START STOP UNIT: IMMED; FORMAT-LAYER NUMBER; POWER CONDITIONS, FL, LOEJ, START */
static const uint8_t u_start_stop[6] = { 0x1b, 0x01, 0, 0x03, 0xf7, 0 };
static const uint8_t u_prevent_allow[6] = { 0x1e, 0, 0, 0, 0x03, 0 };  /* PERSISTENT, PREVENT */
static const uint8_t u_read_toc[10] = { 0x43, 0x02, 0x0f, 0, 0, 0, 0xff, 0xff, 0xff, 0 };
static const uint8_t u_get_config[10] = { 0x46, 0x03, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0 };
static const uint8_t u_gesn[10] = { 0x4a, 0x01, 0, 0, 0xff, 0, 0, 0xff, 0xff, 0 };
static const uint8_t u_disc_info[10] = { 0x51, 0x07, 0, 0, 0, 0, 0, 0xff, 0xff, 0 };
static const uint8_t u_track_info[10] = { 0x52, 0x03, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0 };
static const uint8_t u_get_perf[12] = { 0xac, 0x1f, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0 };
static const uint8_t u_dvd_struct[12] = { 0xad, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc0, 0 };
static const uint8_t u_set_speed[12] = { 0xbb, 0x03, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0 };
static const uint8_t u_mech_status[12] = { 0xbd, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0 };

#define F_IN    (SCSI_OPF_DATA_IN | SCSI_OPF_ALLOC)
#define F_ANY   (SCSI_OPF_PR_ALLOW | SCSI_OPF_RES2_OK)
#define F_MED   (SCSI_OPF_MEDIUM | SCSI_OPF_PR_READ)

#define OP(nm, pa, ex, fl, len, us) { nm, pa, ex, fl, len, 0, us, NULL, NULL, 0 }

const struct scsi_optable mmc_optable = {
    .name = "mmc",
    .unsupported_reason = SENSE_INVALID_OPCODE,
    .op = {
        [0x00] = OP("TEST UNIT READY", NULL, spc_test_unit_ready, SCSI_OPF_MEDIUM | SCSI_OPF_PR_ALLOW, 6,
                    spc_usage_tur),
        [0x03] = OP("REQUEST SENSE", spc_parse_alloc6, spc_request_sense, F_IN | SCSI_OPF_UA_OK | F_ANY, 6,
                    spc_usage_request_sense),
        [0x12] = OP("INQUIRY", spc_parse_inquiry, spc_inquiry, F_IN | SCSI_OPF_UA_OK | F_ANY, 6,
                    spc_usage_inquiry),
        [0x15] = OP("MODE SELECT(6)", spc_parse_mode_select6, spc_mode_select, SCSI_OPF_DATA_OUT, 6,
                    spc_usage_mode_select6),
        [0x1a] = OP("MODE SENSE(6)", spc_parse_alloc6, spc_mode_sense, F_IN | SCSI_OPF_PR_READ, 6,
                    spc_usage_mode_sense6),
        [0x1b] = OP("START STOP UNIT", NULL, spc_start_stop, 0, 6, u_start_stop),
        [0x1e] = OP("PREVENT ALLOW MEDIUM REMOVAL", NULL, spc_prevent_allow, 0, 6, u_prevent_allow),
        [0x25] = OP("READ CAPACITY", sbc_parse_read_capacity10, sbc_exec_read_capacity10,
                    F_IN | SCSI_OPF_MEDIUM | SCSI_OPF_PR_ALLOW, 10, u_rc10),
        [0x28] = OP("READ(10)", sbc_parse_rw, sbc_exec_rw,
                    SCSI_OPF_DATA_IN | SCSI_OPF_LBA | SCSI_OPF_RW | SCSI_OPF_MT | F_MED, 10, u_read10),
        [0x2b] = OP("SEEK(10)", parse_seek, exec_good, SCSI_OPF_LBA | F_MED, 10, u_seek10),
        [0x35] = OP("SYNCHRONIZE CACHE", NULL, exec_good, F_MED, 10, u_sync10),
        [0x43] = OP("READ TOC/PMA/ATIP", parse_alloc7, exec_read_toc, F_IN | F_MED, 10, u_read_toc),
        /* MMC-6 4.1.6.1: these two are answered despite a pending UA */
        [0x46] = OP("GET CONFIGURATION", parse_alloc7, exec_get_configuration,
                    F_IN | SCSI_OPF_UA_OK | F_ANY, 10, u_get_config),
        [0x4a] = OP("GET EVENT STATUS NOTIFICATION", parse_gesn, exec_gesn, F_IN | SCSI_OPF_UA_OK | F_ANY, 10,
                    u_gesn),
        [0x51] = OP("READ DISC INFORMATION", parse_alloc7, exec_read_disc_info, F_IN | F_MED, 10, u_disc_info),
        [0x52] = OP("READ TRACK INFORMATION", parse_alloc7, exec_read_track_info, F_IN | F_MED, 10,
                    u_track_info),
        [0x55] = OP("MODE SELECT(10)", spc_parse_mode_select10, spc_mode_select, SCSI_OPF_DATA_OUT, 10,
                    spc_usage_mode_select10),
        [0x5a] = OP("MODE SENSE(10)", spc_parse_alloc10, spc_mode_sense, F_IN | SCSI_OPF_PR_READ, 10,
                    spc_usage_mode_sense10),
        [0xa0] = OP("REPORT LUNS", spc_parse_report_luns, spc_report_luns, F_IN | SCSI_OPF_UA_OK | F_ANY, 12,
                    spc_usage_report_luns),
        /* SPC MAINTENANCE IN: MMC's SEND KEY (A3h, CSS) is not implemented */
        [0xa3] = { "MAINTENANCE IN", NULL, NULL, 0, 12, 0, NULL, NULL, spc_maint_in_ops, SPC_N_MAINT_IN_OPS },
        [0xa8] = OP("READ(12)", sbc_parse_rw, sbc_exec_rw,
                    SCSI_OPF_DATA_IN | SCSI_OPF_LBA | SCSI_OPF_RW | SCSI_OPF_MT | F_MED, 12, u_read12),
        [0xac] = OP("GET PERFORMANCE", parse_get_performance, exec_get_performance, F_IN | SCSI_OPF_PR_READ, 12,
                    u_get_perf),
        [0xad] = OP("READ DVD STRUCTURE", parse_alloc8, exec_read_dvd_structure, F_IN | SCSI_OPF_PR_READ, 12,
                    u_dvd_struct),
        [0xbb] = OP("SET CD SPEED", NULL, exec_good, 0, 12, u_set_speed),
        [0xbd] = OP("MECHANISM STATUS", parse_alloc8, exec_mechanism_status, F_IN | F_ANY, 12, u_mech_status),
    },
};
