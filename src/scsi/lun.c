/* Logical unit state: configuration, identity, mode page state, unit attentions. */
#include "scsi/scsi_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vscsi-config.h"

/* Limits reported in VPD B0 (SBC-4 6.6.4) and enforced by sbc.c. A transfer
 * can't be larger than the transport carries: QEMU's virtio-scsi config says
 * max_sectors 0xffff (512-byte sectors), and the guest refuses larger ones.
 * WRITE SAME gets the same bound, which also bounds the work one command
 * (and an ABORT TASK waiting for it) can cause. */
#define SCSI_MAX_XFER_BYTES     (0xffffu * 512u)
#define SCSI_MAX_WS_BYTES       SCSI_MAX_XFER_BYTES
#define SCSI_MAX_UNMAP_DESC     1024u
#define SCSI_MAX_CAW_BLOCKS     255u            /* the field is one byte */
#define SCSI_MAX_ATOMIC_BYTES   (1u << 20)      /* WRITE ATOMIC: one block request */

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* Copy s into dst (width chars, space padded, NUL terminated). */
static int set_padded(char *dst, size_t width, const char *s, const char *what,
                      char *err, size_t errlen)
{
    size_t n = strlen(s);

    if (n > width || !printable(s)) {
        snprintf(err, errlen, "%s must be at most %zu printable ASCII characters", what, width);
        return -EINVAL;
    }
    memset(dst, ' ', width);
    memcpy(dst, s, n);
    dst[width] = '\0';
    return 0;
}

/* FNV-1a: a stable hash of the id for generated serials and WWNs. */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void default_revision(char *dst)
{
    const char *v = VSCSI_VERSION;
    size_t n = strlen(v);

    if (n > 4)
        n = 4;
    while (n > 0 && v[n - 1] == '.')
        n--;
    memset(dst, ' ', 4);
    memcpy(dst, v, n);
    dst[4] = '\0';
}

int scsi_lun_new(struct scsi_bus *bus, struct scsi_target *tgt, uint16_t lun,
                 const struct scsi_dev_config *cfg, struct blk_drive *drive,
                 struct scsi_lun **out, char *err, size_t errlen)
{
    bool cd = cfg->type == SCSI_DEV_CD;
    struct scsi_lun *lu;
    uint32_t lbs, pbs;
    int ret = -EINVAL;

    if (cfg->type != SCSI_DEV_HD && !cd) {
        snprintf(err, errlen, "unknown device type");
        return -EINVAL;
    }
    if (!drive && !cd && !cfg->removable) {
        snprintf(err, errlen, "no drive (only a removable device may start empty)");
        return -EINVAL;
    }
    if (cd) {
        /* MMC-6 4.2.2: CD and DVD logical blocks are 2048 bytes */
        lbs = 2048;
        if ((cfg->logical_block_size && cfg->logical_block_size != 2048) ||
            (cfg->physical_block_size && cfg->physical_block_size != 2048)) {
            snprintf(err, errlen, "a CD-ROM has 2048-byte blocks");
            return -EINVAL;
        }
    } else {
        lbs = cfg->logical_block_size ? cfg->logical_block_size : 512;
        if (lbs != 512 && lbs != 4096) {
            snprintf(err, errlen, "logical_block_size must be 512 or 4096");
            return -EINVAL;
        }
    }
    pbs = cfg->physical_block_size ? cfg->physical_block_size : lbs;
    if (pbs < lbs || (pbs & (pbs - 1)) || pbs / lbs > (1u << 15)) {
        snprintf(err, errlen, "physical_block_size must be a power-of-two multiple of logical_block_size");
        return -EINVAL;
    }

    lu = calloc(1, sizeof(*lu));
    if (!lu) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    lu->bus = bus;
    lu->tgt = tgt;
    lu->lun = lun;
    lu->paths[0].tgt = tgt;
    lu->paths[0].lun = lun;
    lu->npaths = 1;
    lu->type = cfg->type;
    lu->optable = cd ? &mmc_optable : &sbc_optable;
    lu->drive = drive;
    lu->removable = cd || cfg->removable;
    lu->tray_cb = cfg->tray_cb;
    lu->tray_opaque = cfg->tray_opaque;
    lu->io_error_cb = cfg->io_error_cb;
    lu->io_error_opaque = cfg->io_error_opaque;
    lu->block_size = lbs;
    lu->block_shift = (uint8_t)__builtin_ctz(lbs);
    lu->lbppbe = (uint8_t)__builtin_ctz(pbs / lbs);
    lu->max_xfer_blocks = SCSI_MAX_XFER_BYTES / lbs;
    lu->max_ws_blocks = SCSI_MAX_WS_BYTES / lbs;
    lu->max_unmap_desc = SCSI_MAX_UNMAP_DESC;
    lu->max_caw_blocks = SCSI_MAX_CAW_BLOCKS;
    lu->max_atomic_blocks = SCSI_MAX_ATOMIC_BYTES / lbs;
    lu->deferred_tail = &lu->deferred;

    if (cfg->id) {
        if (!*cfg->id || strlen(cfg->id) > SCSI_ID_MAX || !printable(cfg->id)) {
            snprintf(err, errlen, "id must be 1..%d printable ASCII characters", SCSI_ID_MAX);
            goto fail;
        }
        strcpy(lu->id, cfg->id);
    } else {
        snprintf(lu->id, sizeof(lu->id), "scsi0-%u-%u", tgt->id, lun);
    }

    if (cfg->serial) {
        if (!*cfg->serial || strlen(cfg->serial) > SCSI_SERIAL_MAX || !printable(cfg->serial)) {
            snprintf(err, errlen, "serial must be 1..%d printable ASCII characters", SCSI_SERIAL_MAX);
            goto fail;
        }
        strcpy(lu->serial, cfg->serial);
    } else if (strlen(lu->id) <= SCSI_SERIAL_MAX && !strchr(lu->id, ' ')) {
        strcpy(lu->serial, lu->id);
    } else {
        snprintf(lu->serial, sizeof(lu->serial), "%016llx", (unsigned long long)fnv1a64(lu->id));
    }

    ret = set_padded(lu->vendor, 8, cfg->vendor ? cfg->vendor : "VSCSI", "vendor", err, errlen);
    if (ret)
        goto fail;
    ret = set_padded(lu->product, 16, cfg->product ? cfg->product : cd ? "VSCSI CD-ROM" : "VSCSI HARDDISK",
                     "product", err, errlen);
    if (ret)
        goto fail;
    if (cfg->version) {
        ret = set_padded(lu->revision, 4, cfg->version, "version", err, errlen);
        if (ret)
            goto fail;
    } else {
        default_revision(lu->revision);
    }

    /* VPD 83 NAA: the configured WWN, else NAA 3 (locally assigned, SPC-4
     * 7.8.6.6.2) from a hash of the id: stable across restarts, needs no OUI. */
    if (cfg->wwn) {
        /* 8-byte designators: NAA 2 (IEEE extended), 3 (locally assigned),
         * 5 (IEEE registered); NAA 6 needs 16 bytes (SPC-4 7.8.6.6) */
        unsigned naa = (unsigned)(cfg->wwn >> 60);

        if (naa != 2 && naa != 3 && naa != 5) {
            snprintf(err, errlen, "wwn=0x%016llx: the NAA (top hex digit) must be 2, 3 or 5",
                     (unsigned long long)cfg->wwn);
            ret = -EINVAL;
            goto fail;
        }
        lu->wwn = cfg->wwn;
    } else {
        lu->wwn = 0x3ull << 60 | (fnv1a64(lu->id) & 0x0fffffffffffffffull);
    }

    ret = scsi_pr_init(lu, cfg, err, errlen);
    if (ret)
        goto fail;

    /* SAM-5 6.3.1: a new logical unit reports power on to every initiator */
    scsi_lun_ua_add(lu, SENSE_UA_POWER_ON);
    *out = lu;
    return 0;

fail:
    free(lu);
    return ret;
}

void scsi_lun_free(struct scsi_lun *lu)
{
    scsi_pr_free(lu);
    scsi_xcopy_free(lu);
    free(lu->nexus);
    free(lu->io);
    free(lu);
}

uint64_t scsi_lun_capacity(const struct scsi_lun *lu)
{
    const struct blk_drive *d = scsi_lun_medium(lu);

    return d ? blk_size(d) >> lu->block_shift : 0;
}

/* SAM-5 5.14: a power on / reset UA supersedes the others. */
static bool ua_is_reset(int reason)
{
    return reason == SENSE_UA_POWER_ON || reason == SENSE_UA_BUS_DEVICE_RESET ||
           reason == SENSE_UA_IT_NEXUS_LOSS;
}

static void ua_queue_add(struct scsi_ua_queue *q, int reason)
{
    if (ua_is_reset(reason))
        q->n = 0;
    for (unsigned i = 0; i < q->n; i++) {
        if (q->reason[i] == reason)
            return;
        /* a pending power on/reset already tells the initiator to rediscover
         * everything: lower-precedence UAs are not queued behind it */
        if (ua_is_reset(q->reason[i]))
            return;
    }
    if (q->n == SCSI_UA_MAX)
        return;     /* the oldest ones stay; the initiator rescans anyway */
    q->reason[q->n++] = (uint8_t)reason;
}

static int ua_queue_take(struct scsi_ua_queue *q)
{
    int r;

    if (!q->n)
        return SENSE_OK;
    r = q->reason[0];
    memmove(&q->reason[0], &q->reason[1], q->n - 1u);
    q->n--;
    return r;
}

static struct scsi_nexus_state *nexus_find(const struct scsi_lun *lu, uint32_t nexus)
{
    for (unsigned i = 0; i < lu->nnexus; i++)
        if (lu->nexus[i].id == nexus)
            return &lu->nexus[i];
    return NULL;
}

struct scsi_nexus_state *scsi_lun_nexus(struct scsi_lun *lu, uint32_t nexus)
{
    struct scsi_nexus_state *n = nexus_find(lu, nexus);

    if (n)
        return n;
    if (lu->nnexus == lu->nexus_cap) {
        unsigned cap = lu->nexus_cap ? lu->nexus_cap * 2 : 4;
        struct scsi_nexus_state *t;

        if (cap > SCSI_NEXUS_MAX)
            cap = SCSI_NEXUS_MAX;
        if (cap <= lu->nexus_cap)
            return NULL;
        t = realloc(lu->nexus, cap * sizeof(*t));
        if (!t)
            return NULL;
        lu->nexus = t;
        lu->nexus_cap = cap;
    }
    n = &lu->nexus[lu->nnexus++];
    memset(n, 0, sizeof(*n));
    n->id = nexus;
    n->ua = lu->ua_new;     /* what every nexus was told so far */
    return n;
}

void scsi_lun_ua_add(struct scsi_lun *lu, int reason)
{
    for (unsigned i = 0; i < lu->nnexus; i++)
        ua_queue_add(&lu->nexus[i].ua, reason);
    ua_queue_add(&lu->ua_new, reason);
}

void scsi_lun_ua_add_nexus(struct scsi_lun *lu, uint32_t nexus, int reason)
{
    struct scsi_nexus_state *n = scsi_lun_nexus(lu, nexus);

    /* table full: the nexus shares the template with every other one */
    ua_queue_add(n ? &n->ua : &lu->ua_new, reason);
}

void scsi_lun_ua_add_others(struct scsi_lun *lu, uint32_t nexus, int reason)
{
    for (unsigned i = 0; i < lu->nnexus; i++)
        if (lu->nexus[i].id != nexus)
            ua_queue_add(&lu->nexus[i].ua, reason);
    ua_queue_add(&lu->ua_new, reason);
}

void scsi_lun_ua_clear(struct scsi_lun *lu)
{
    for (unsigned i = 0; i < lu->nnexus; i++)
        lu->nexus[i].ua.n = 0;
    lu->ua_new.n = 0;
}

int scsi_lun_ua_peek(const struct scsi_lun *lu, uint32_t nexus)
{
    const struct scsi_nexus_state *n = nexus_find(lu, nexus);
    const struct scsi_ua_queue *q = n ? &n->ua : &lu->ua_new;

    return q->n ? q->reason[0] : SENSE_OK;
}

int scsi_lun_ua_take(struct scsi_lun *lu, uint32_t nexus)
{
    struct scsi_nexus_state *n = scsi_lun_nexus(lu, nexus);

    return ua_queue_take(n ? &n->ua : &lu->ua_new);
}

bool scsi_lun_prevented(const struct scsi_lun *lu)
{
    for (unsigned i = 0; i < lu->nnexus; i++)
        if (lu->nexus[i].prevent)
            return true;
    return false;
}

/* SAM-5 6.3.4: I_T NEXUS LOSS OCCURRED for that nexus; its medium removal
 * prevention (SBC-4 5.13) and SPC-2 reservation (SPC-2 5.5.1) end. */
void scsi_lun_nexus_loss(struct scsi_lun *lu, uint32_t nexus)
{
    struct scsi_nexus_state *n = scsi_lun_nexus(lu, nexus);

    if (n) {
        n->prevent = false;
        n->persistent = false;
        ua_queue_add(&n->ua, SENSE_UA_IT_NEXUS_LOSS);
    }
    scsi_pr_nexus_loss(lu, nexus);
}

/* SAM-5 6.3.3 / SBC-4 4.x: a LU reset clears medium removal prevention;
 * mode pages keep their current values (no saved pages to revert to). */
void scsi_lun_reset(struct scsi_lun *lu)
{
    for (unsigned i = 0; i < lu->nnexus; i++) {
        lu->nexus[i].prevent = false;
        lu->nexus[i].persistent = false;
    }
    scsi_pr_lun_reset(lu);
    scsi_lun_ua_add(lu, SENSE_UA_BUS_DEVICE_RESET);
}

/* ------------------------------------------------------ removable media */

struct blk_drive *scsi_lun_medium(const struct scsi_lun *lu)
{
    return lu->tray_open ? NULL : lu->drive;
}

struct blk_drive *scsi_lun_medium_get(struct scsi_lun *lu, struct scsi_lun_io *share)
{
    struct blk_drive *d = scsi_lun_medium(lu);

    if (d)
        share->medium_users++;
    return d;
}

/* The removal's callback runs once nothing uses the medium taken out. */
static void removal_check(struct scsi_lun *lu)
{
    void (*cb)(void *, struct blk_drive *) = lu->remove_medium_cb;
    struct blk_drive *d = lu->removing;

    if (!d || LUN_IO_SUM(lu, medium_users))
        return;
    lu->removing = NULL;
    lu->remove_medium_cb = NULL;
    if (cb)
        cb(lu->remove_medium_opaque, d);
}

/* On an I/O thread only while nothing is being removed (target.c sends the
 * completion to the control thread otherwise). */
void scsi_lun_medium_put(struct scsi_lun *lu, struct scsi_lun_io *share)
{
    share->medium_users--;
    if (lu->removing)
        removal_check(lu);
}

int scsi_lun_no_medium(const struct scsi_lun *lu)
{
    return lu->tray_open ? SENSE_NO_MEDIUM_TRAY_OPEN : SENSE_NO_MEDIUM_TRAY_CLOSED;
}

bool scsi_lun_set_prevent(struct scsi_lun *lu, uint32_t nexus, bool persistent, bool prevent)
{
    struct scsi_nexus_state *n = scsi_lun_nexus(lu, nexus);

    if (!n)
        return false;
    if (persistent)
        n->persistent = prevent;
    else
        n->prevent = prevent;
    return true;
}

bool scsi_lun_persistent_prevented(const struct scsi_lun *lu)
{
    for (unsigned i = 0; i < lu->nnexus; i++)
        if (lu->nexus[i].persistent)
            return true;
    return false;
}

/* Host-side lock: the guest keeps the medium with a prevention of either kind. */
static bool lun_locked(const struct scsi_lun *lu)
{
    return scsi_lun_prevented(lu) || scsi_lun_persistent_prevented(lu);
}

/* MMC-6 6.7.2.4: queue a media event; a repeat of the newest one adds nothing,
 * and when the queue is full the oldest goes. */
static void media_event(struct scsi_lun *lu, uint8_t code)
{
    if (lu->n_media_ev && lu->media_ev[lu->n_media_ev - 1] == code)
        return;
    if (lu->n_media_ev == SCSI_MEDIA_EVENTS) {
        memmove(&lu->media_ev[0], &lu->media_ev[1], SCSI_MEDIA_EVENTS - 1);
        lu->n_media_ev--;
    }
    lu->media_ev[lu->n_media_ev++] = code;
}

uint8_t scsi_lun_media_event_take(struct scsi_lun *lu)
{
    uint8_t code;

    if (!lu->n_media_ev)
        return MEC_NO_CHANGE;
    code = lu->media_ev[0];
    memmove(&lu->media_ev[0], &lu->media_ev[1], lu->n_media_ev - 1u);
    lu->n_media_ev--;
    return code;
}

/* Move the tray. A medium that becomes accessible is a new medium to every
 * nexus (UA 28/00, SPC-4 6.x / MMC-6 4.1.6.1; the nexus that loaded it
 * itself knows) and a NEW MEDIA event; one that becomes inaccessible is a
 * MEDIA REMOVAL event. by_guest: the nexus that moved it with START STOP
 * UNIT. tray_cb runs last, with the state already changed. */
static void tray_move(struct scsi_lun *lu, bool open, bool by_guest, uint32_t nexus)
{
    bool was = scsi_lun_medium(lu) != NULL, now;

    lu->tray_open = open;
    now = scsi_lun_medium(lu) != NULL;
    if (was && !now) {
        media_event(lu, MEC_MEDIA_REMOVAL);
    } else if (!was && now) {
        media_event(lu, MEC_NEW_MEDIA);
        if (by_guest)
            scsi_lun_ua_add_others(lu, nexus, SENSE_UA_MEDIUM_CHANGED);
        else
            scsi_lun_ua_add(lu, SENSE_UA_MEDIUM_CHANGED);
        scsi_lun_notify(lu, SCSI_EV_MEDIA_CHANGED);
    }
    if (lu->tray_cb)
        lu->tray_cb(lu->tray_opaque, open);
}

int scsi_lun_start_stop(struct scsi_cmd *cmd)
{
    struct scsi_lun *lu = cmd->lu;
    uint8_t b4 = cmd->cdb[4];
    bool load = b4 & 0x01;

    /* SBC-4 5.25 / MMC-6 6.40: a POWER CONDITION other than 0 ignores START
     * and LOEJ; power conditions are accepted and have no effect here. */
    if (b4 >> 4)
        return SENSE_OK;
    if (!(b4 & 0x02) || !lu->removable)
        return SENSE_OK;
    /* A prevention holds the tray closed (MMC-6 6.40: MEDIUM REMOVAL
     * PREVENTED for an eject; a persistent prevention alone does not stop
     * the host's own START STOP UNIT). A disk refuses any tray movement
     * while prevented, loading too (as tgt; libiscsi PreventAllow.Eject);
     * a CD-ROM closes its tray whatever the lock (MMC-6, and QEMU). */
    if (scsi_lun_prevented(lu) && (lu->type != SCSI_DEV_CD || (!load && !lu->tray_open)))
        return SENSE_REMOVAL_PREVENTED;
    if (lu->tray_open == load)
        tray_move(lu, !load, true, cmd->nexus);
    return SENSE_OK;
}

void scsi_lun_get_medium(const struct scsi_lun *lu, struct scsi_medium_state *out)
{
    out->removable = lu->removable;
    out->tray_open = lu->tray_open;
    out->locked = lun_locked(lu);
    out->has_medium = lu->drive != NULL;
    out->drive = lu->drive;
}

int scsi_lun_open_tray(struct scsi_lun *lu, bool force)
{
    if (!lu->removable)
        return -ENOTSUP;
    if (lu->tray_open)
        return 0;
    if (lun_locked(lu)) {
        /* MMC-6 6.7.2.4: the guest learns that someone wants the medium
         * (also when forced, as QEMU's scsi-cd reports it then too) */
        media_event(lu, MEC_EJECT_REQUEST);
        if (!force)
            return -EBUSY;
        for (unsigned i = 0; i < lu->nnexus; i++) {
            lu->nexus[i].prevent = false;
            lu->nexus[i].persistent = false;
        }
    }
    tray_move(lu, true, false, 0);
    return 0;
}

int scsi_lun_close_tray(struct scsi_lun *lu)
{
    if (!lu->removable)
        return -ENOTSUP;
    if (!lu->tray_open)
        return 0;
    tray_move(lu, false, false, 0);
    return 0;
}

int scsi_lun_remove_medium(struct scsi_lun *lu, void (*done_cb)(void *opaque, struct blk_drive *drive),
                           void *opaque)
{
    if (!lu->removable)
        return -ENOTSUP;
    if (!lu->tray_open)
        return -EINVAL;
    if (lu->removing)
        return -EBUSY;
    if (!lu->drive)
        return -ENOENT;
    /* the tray is open: no new command takes it; those in flight keep it */
    lu->removing = lu->drive;
    lu->remove_medium_cb = done_cb;
    lu->remove_medium_opaque = opaque;
    lu->drive = NULL;
    /* held after an I/O error, they would be retried on a medium that is
     * gone (and keep it): aborted instead */
    scsi_held_abort_all(lu);
    removal_check(lu);
    return 0;
}

int scsi_lun_insert_medium(struct scsi_lun *lu, struct blk_drive *drive, char *err, size_t errlen)
{
    if (!lu->removable) {
        snprintf(err, errlen, "device '%s' has no removable medium", lu->id);
        return -ENOTSUP;
    }
    if (!drive) {
        snprintf(err, errlen, "no drive to insert");
        return -EINVAL;
    }
    if (!lu->tray_open) {
        snprintf(err, errlen, "the tray of device '%s' is closed", lu->id);
        return -EINVAL;
    }
    if (lu->removing) {
        snprintf(err, errlen, "device '%s' is still finishing commands on the medium taken out", lu->id);
        return -EBUSY;
    }
    if (lu->drive) {
        snprintf(err, errlen, "the tray of device '%s' holds a medium already", lu->id);
        return -EEXIST;
    }
    lu->drive = drive;
    return 0;
}
