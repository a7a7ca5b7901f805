/* Internal interfaces of the SCSI target layer: bus/target/LUN structures,
 * the per-device-type opcode table, the one sense-reason enum, helpers shared
 * by target.c, lun.c, sense.c, spc.c and sbc.c. Not for use outside src/scsi/.
 *
 * How a command runs (target.c dispatch()): the LUN's struct scsi_optable is
 * indexed by cdb[0] (service actions through op->sa_ops), then, once and in
 * this order: pending unit attention (unless SCSI_OPF_UA_OK), unsupported
 * opcode, CDB bits outside op->usage (05/24/00 with field pointer), medium
 * accessible (cmd->medium, see "Removable media" below), write protection, parse() (decodes LBA/length/allocation length
 * into struct scsi_parsed), direction and buffer size (host status OVERRUN),
 * LBA range; then execute(), which returns a sense reason or SCSI_ASYNC and
 * later calls scsi_cmd_complete(). Sense bytes are built in exactly one
 * place (sense.c) from the reason plus cmd->sense_sks / cmd->sense_info.
 *
 * Multi-step commands keep their state in the private fields of struct
 * scsi_cmd and chain one blk_req at a time; their buffers come from
 * scsi_cmd_alloc() under a per-LU budget. COMPARE AND WRITE and ORWRITE
 * (SCSI_OPF_EXCL) pass a per-LU write gate in dispatch() that keeps other
 * writes out while they read-modify-write.
 *
 * A new device type (mmc.c, ssc.c, passthrough.c) adds its own
 * `const struct scsi_optable`, reusing the spc_* entries, and points
 * lu->optable at it in scsi_lun_new(). */
#ifndef VSCSI_SCSI_SCSI_INT_H
#define VSCSI_SCSI_SCSI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scsi/scsi.h"

/* ---- sense reasons: the one table lives in sense.c ---- */

/* Every outcome of a command that is not plain GOOD is one of these; sense.c
 * converts it to status + sense key/ASC/ASCQ. 0 is GOOD. */
enum scsi_sense_reason {
    SENSE_OK = 0,
    SENSE_NO_SENSE,                 /* 00/00/00 (REQUEST SENSE data only) */
    SENSE_INVALID_OPCODE,           /* 05/20/00 */
    SENSE_INVALID_FIELD_CDB,        /* 05/24/00 */
    SENSE_INVALID_FIELD_PARAM,      /* 05/26/00 */
    SENSE_PARAM_LIST_LENGTH,        /* 05/1A/00 */
    SENSE_LBA_OUT_OF_RANGE,         /* 05/21/00 */
    SENSE_LUN_NOT_SUPPORTED,        /* 05/25/00 */
    SENSE_SAVING_PARAMS_UNSUP,      /* 05/39/00 */
    SENSE_REMOVAL_PREVENTED,        /* 05/53/02 */
    SENSE_MEDIUM_NOT_PRESENT,       /* 02/3A/00 (the block layer's -ENOMEDIUM) */
    SENSE_NO_MEDIUM_TRAY_CLOSED,    /* 02/3A/01 MEDIUM NOT PRESENT - TRAY CLOSED */
    SENSE_NO_MEDIUM_TRAY_OPEN,      /* 02/3A/02 MEDIUM NOT PRESENT - TRAY OPEN */
    SENSE_INCOMPATIBLE_FORMAT,      /* 05/30/02 CANNOT READ MEDIUM - INCOMPATIBLE FORMAT */
    SENSE_WRITE_PROTECTED,          /* 07/27/00 */
    SENSE_SPACE_ALLOC_FAILED,       /* 07/27/07 */
    SENSE_READ_ERROR,               /* 03/11/00 */
    SENSE_WRITE_ERROR,              /* 03/0C/00 */
    SENSE_IO_ERROR,                 /* 0B/00/06 I/O PROCESS TERMINATED (QEMU's EIO) */
    SENSE_MISCOMPARE,               /* 0E/1D/00 */
    SENSE_INTERNAL_FAILURE,         /* 04/44/00 */
    SENSE_UA_POWER_ON,              /* 06/29/00 */
    SENSE_UA_BUS_DEVICE_RESET,      /* 06/29/03 */
    SENSE_UA_IT_NEXUS_LOSS,         /* 06/29/07 */
    SENSE_UA_MODE_PARAMS_CHANGED,   /* 06/2A/01 */
    SENSE_UA_CAPACITY_CHANGED,      /* 06/2A/09 */
    SENSE_UA_LUNS_CHANGED,          /* 06/3F/0E */
    SENSE_UA_MEDIUM_CHANGED,        /* 06/28/00 */
    SENSE_UA_RESERVATIONS_PREEMPTED,    /* 06/2A/03 */
    SENSE_UA_RESERVATIONS_RELEASED,     /* 06/2A/04 */
    SENSE_UA_REGISTRATIONS_PREEMPTED,   /* 06/2A/05 */
    SENSE_INVALID_RELEASE_PR,       /* 05/26/04 INVALID RELEASE OF PERSISTENT RESERVATION */
    SENSE_INSUFFICIENT_REG_RES,     /* 05/55/04 INSUFFICIENT REGISTRATION RESOURCES */
    SENSE_SANITIZE_IN_PROGRESS,     /* 02/04/1B with a progress indication */
    SENSE_SANITIZE_FAILED,          /* 03/31/03 SANITIZE COMMAND FAILED */
    SENSE_OPERATION_IN_PROGRESS,    /* 05/00/16 */
    SENSE_TOO_MANY_TARGET_DESC,     /* 05/26/06 */
    SENSE_UNSUPPORTED_TARGET_DESC,  /* 05/26/07 */
    SENSE_TOO_MANY_SEGMENT_DESC,    /* 05/26/08 */
    SENSE_UNSUPPORTED_SEGMENT_DESC, /* 05/26/09 */
    SENSE_COPY_ABORTED,             /* 0A/00/00 */
    SENSE_UNREACHABLE_COPY_TARGET,  /* 0A/08/04 */
    SENSE_COPY_TARGET_NOT_REACHABLE,    /* 0A/0D/02 */
    SENSE_INCORRECT_COPY_TARGET,    /* 0A/0D/03 INCORRECT COPY TARGET DEVICE TYPE */
    SENSE_COPY_ABORTED_WRITE_PROTECTED, /* 0A/27/00 */
    SENSE_BUSY,                     /* status BUSY, no sense */
    SENSE_TASK_SET_FULL,            /* status TASK SET FULL, no sense */
    SENSE_RESERVATION_CONFLICT,     /* status RESERVATION CONFLICT, no sense */
    SENSE__COUNT
};

/* execute() return value: the command completes later through scsi_cmd_complete. */
#define SCSI_ASYNC (-1)

struct sense_info {
    uint8_t status;
    uint8_t key, asc, ascq;
};
const struct sense_info *sense_reason_info(int reason);
bool sense_reason_is_ua(int reason);
/* Build sense data for reason into buf (cap bytes). desc selects descriptor
 * format (SPC-4 4.5.2) over fixed (4.5.3). sks: sense-key specific bytes
 * (0 = none). info: INFORMATION field when info_valid. Returns the length. */
size_t sense_build(uint8_t *buf, size_t cap, bool desc, int reason,
                   uint32_t sks, bool info_valid, uint64_t info);
/* Map a block-layer -errno to a reason, as QEMU's scsi-disk does where QEMU
 * has an answer (EIO and unknown errors: ABORTED COMMAND, which initiators
 * retry). is_write is not used by the mapping. */
int sense_from_errno(int err, bool is_write);

/* Sense-key specific field pointer (SPC-4 4.5.2.4.2). */
#define SENSE_SKS_VALID 0x800000u
static inline uint32_t sense_sks_field(bool cdb, unsigned byte, int bit)
{
    uint32_t v = SENSE_SKS_VALID | (cdb ? 0x400000u : 0) | (byte & 0xffffu);
    if (bit >= 0)
        v |= 0x080000u | ((uint32_t)(bit & 7) << 16);
    return v;
}

/* ---- opcode tables ---- */

/* Decoded CDB, filled by parse(). The central code then checks, once:
 * direction and buffer size, medium, write protection and the LBA range. */
struct scsi_parsed {
    uint64_t lba;
    uint64_t nblocks;       /* blocks addressed (checked when SCSI_OPF_LBA) */
    size_t data_len;        /* data-out bytes needed / data-in bytes (or allocation length) */
};

typedef int scsi_parse_fn(struct scsi_cmd *cmd, struct scsi_parsed *p);
/* Returns a sense reason (completes at once) or SCSI_ASYNC. */
typedef int scsi_exec_fn(struct scsi_cmd *cmd, const struct scsi_parsed *p);
typedef bool scsi_supported_fn(const struct scsi_lun *lu);

#define SCSI_OPF_DATA_IN    (1u << 0)   /* data-in phase */
#define SCSI_OPF_DATA_OUT   (1u << 1)   /* data-out phase */
#define SCSI_OPF_ALLOC      (1u << 2)   /* data_len is an allocation length: move min(data, alloc, buffer) */
#define SCSI_OPF_UA_OK      (1u << 3)   /* runs despite a pending UA (SAM-5 5.14: INQUIRY, REPORT LUNS, REQUEST SENSE) */
#define SCSI_OPF_MEDIUM     (1u << 4)   /* needs an accessible medium (02/3A/01, 02/3A/02) */
#define SCSI_OPF_WRITE      (1u << 5)   /* modifies the medium: write protection applies */
#define SCSI_OPF_LBA        (1u << 6)   /* lba/nblocks range-checked against the capacity */
#define SCSI_OPF_RW         (1u << 7)   /* READ/WRITE family (data_len exact: every non-ALLOC command
                                           with a shorter buffer gets OVERRUN) */
#define SCSI_OPF_EXCL       (1u << 8)   /* runs alone among the LU's writes (COMPARE AND WRITE) */
/* Reservations (pr.c): without either PR flag a command conflicts with a
 * persistent reservation another nexus holds (SPC-4 5.13.1) */
#define SCSI_OPF_PR_ALLOW   (1u << 9)   /* allowed whatever the reservation */
#define SCSI_OPF_PR_READ    (1u << 10)  /* a read: allowed through Write Exclusive types */
#define SCSI_OPF_RES2_OK    (1u << 11)  /* allowed despite another nexus' RESERVE (SPC-2 5.5.1) */
#define SCSI_OPF_ATOMIC     (1u << 12)  /* WRITE ATOMIC: runs alone among every medium access (READ too) */
/* May run on an I/O thread holding the lock shared (scsi.h, Threading):
 * parse and execute read only the LU's settings, and change only the command
 * and what target.c counts in the thread's share of the LU */
#define SCSI_OPF_MT         (1u << 13)

struct scsi_op {
    const char *name;
    scsi_parse_fn *parse;           /* NULL: no CDB fields beyond the usage mask */
    scsi_exec_fn *execute;          /* NULL (and no sa_ops): unsupported opcode */
    uint32_t flags;
    uint8_t cdb_len;
    uint8_t sa;                     /* service action (entries of a sa_ops list) */
    /* CDB usage data (SPC-4 6.35.3): bits the device server looks at. Byte 0
     * is the opcode, byte 1 of a service-action command holds the action.
     * The central check rejects any other bit set (05/24/00 with pointer). */
    const uint8_t *usage;
    scsi_supported_fn *supported;   /* NULL: always; false -> 05/20/00 */
    const struct scsi_op *sa_ops;   /* service actions in cdb[1] bits 4-0 */
    uint8_t n_sa;
};

/* One per device type (sbc, mmc; ssc, passthrough later). */
struct scsi_optable {
    const char *name;
    int unsupported_reason;         /* answer for an opcode without execute */
    struct scsi_op op[256];
};

extern const struct scsi_optable sbc_optable;
extern const struct scsi_optable mmc_optable;
extern const struct scsi_optable spc_nolun_optable;     /* target present, LUN absent */
extern const struct scsi_optable spc_wlun_optable;      /* REPORT LUNS well-known LUN */

/* ---- bus / target / LUN ---- */

#define SCSI_LUN_CHUNK      256
#define SCSI_LUN_NCHUNKS    ((SCSI_MAX_LUN + 1) / SCSI_LUN_CHUNK)

struct scsi_target {
    struct scsi_bus *bus;
    uint8_t id;
    unsigned nluns;                 /* LUNs in the map (target present when > 0) */
    unsigned naborted;              /* aborted commands still in flight, all LUNs */
    struct scsi_lun **chunk[SCSI_LUN_NCHUNKS];  /* two-level map: O(1) lookup, sparse */
    struct scsi_tmf *tmfs;          /* TMFs waiting for aborted commands */
};

#define SCSI_UA_MAX 8

struct scsi_ua_queue {
    uint8_t n;
    uint8_t reason[SCSI_UA_MAX];
};

/* LU state kept per I_T nexus (SAM-5 4.6: unit attentions and medium
 * removal prevention belong to the nexus). The nexus ids come from the
 * controllers' configuration, not from the guest; the table grows to
 * SCSI_NEXUS_MAX entries, later nexuses share the template. */
#define SCSI_NEXUS_MAX 64

struct scsi_nexus_state {
    uint32_t id;
    bool prevent;                   /* PREVENT ALLOW MEDIUM REMOVAL from this nexus */
    bool persistent;                /* MMC-6 6.14: persistent prevent (PERSISTENT=1) */
    struct scsi_ua_queue ua;
};

struct scsi_pr;                     /* pr.c: persistent and SPC-2 reservations */
struct scsi_sanitize;               /* sanitize.c */
struct xcopy_state;                 /* xcopy.c */

struct scsi_bus {
    struct scsi_target *targets[SCSI_MAX_TARGET + 1];
    const struct scsi_bus_listener_ops *listener;
    void *listener_opaque;
    unsigned nluns;
    unsigned nheld;                 /* commands held (ioerr.c) that came through this bus */
};

#define SCSI_SERIAL_MAX  36
#define SCSI_ID_MAX      128

/* Where a logical unit is mapped: its first path, and more when the same LU
 * is exposed on other buses (controllers) as further paths (SAM-5 4.7:
 * one LU, several I_T_L nexuses). Everything else in struct scsi_lun is
 * the LU's and shared by all paths: identity, reservations, UAs per nexus,
 * mode pages, the write gate. */
#define SCSI_LUN_MAX_PATHS 8

struct scsi_lun_path {
    struct scsi_target *tgt;        /* tgt->bus is the path's bus */
    uint16_t lun;
};

/* One thread's share of an LU's commands in execution (struct scsi_lun). */
struct scsi_lun_io {
    struct scsi_cmd *inflight;      /* list */
    unsigned ninflight;             /* including those whose done_cb is running */
    unsigned nrw, nwrites;          /* the write gate's counts (SCSI_CMDF_RWCOUNTED, WCOUNTED) */
    unsigned medium_users;          /* commands using the medium (cmd->medium) */
    size_t buf_bytes;               /* bounce/parameter buffers (scsi_cmd_alloc) */
    uint64_t next_seq;              /* arrival order (cmd->seq) */
};

struct scsi_lun {
    struct scsi_bus *bus;           /* the first path (paths[0]) */
    struct scsi_target *tgt;
    uint16_t lun;
    struct scsi_lun_path paths[SCSI_LUN_MAX_PATHS];
    unsigned npaths;
    enum scsi_dev_type type;
    const struct scsi_optable *optable;
    struct blk_drive *drive;

    char id[SCSI_ID_MAX + 1];
    char serial[SCSI_SERIAL_MAX + 1];
    char vendor[9], product[17], revision[5];   /* space padded, NUL terminated */
    uint64_t wwn;                   /* NAA designator (VPD 83) */
    bool removable;

    uint32_t block_size;            /* logical */
    uint8_t block_shift;
    uint8_t lbppbe;                 /* log2(physical / logical) */
    uint32_t max_xfer_blocks;       /* VPD B0 MAXIMUM TRANSFER LENGTH, enforced */
    uint32_t max_ws_blocks;         /* VPD B0 MAXIMUM WRITE SAME LENGTH */
    uint32_t max_unmap_desc;        /* VPD B0 MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT */
    uint32_t max_caw_blocks;        /* VPD B0 MAXIMUM COMPARE AND WRITE LENGTH */
    uint32_t max_atomic_blocks;     /* VPD B0 MAXIMUM ATOMIC TRANSFER LENGTH */

    /* mode page state (SPC-4 7.5); WCE lives in the block layer */
    bool d_sense;                   /* control page: descriptor format sense */
    bool swp;                       /* control page: software write protect */

    /* Removable media (lun.c): the tray and the medium in it (drive may be
     * NULL). The medium is accessible when the tray is closed and holds a
     * drive. Commands take the accessible medium when they start
     * (cmd->medium, counted in medium_users) and keep using it to the end;
     * a medium taken out while some still use it waits in `removing` until
     * the last one completes, then remove_cb runs. Users are counted in
     * the shares (struct scsi_lun_io). */
    bool tray_open;
    struct blk_drive *removing;
    void (*remove_medium_cb)(void *opaque, struct blk_drive *drive);
    void *remove_medium_opaque;
    void (*tray_cb)(void *opaque, bool tray_open);
    void *tray_opaque;
    /* MMC-6 6.7: media class events for GET EVENT STATUS NOTIFICATION, oldest first */
#define SCSI_MEDIA_EVENTS 4
    uint8_t media_ev[SCSI_MEDIA_EVENTS];
    uint8_t n_media_ev;

    /* Per I_T nexus state; ua_new is what a nexus not seen yet starts with
     * (every UA established for all nexuses goes there too). */
    struct scsi_nexus_state *nexus;
    unsigned nnexus, nexus_cap;
    struct scsi_ua_queue ua_new;

    struct scsi_pr *pr;             /* reservations (pr.c) */

    /* SANITIZE (sanitize.c): the running operation, the failure mode */
    struct scsi_sanitize *sanitize;
    bool sanitize_failed, sanitize_ause;

    struct xcopy_state *xcopy;      /* held EXTENDED COPY results (xcopy.c) */

    /* Commands in execution, in shares (scsi.h, Threading): io0 counts
     * those run exclusively, io[i] those run by the thread of I/O slot i.
     * Only that thread changes io[i], and only while it holds the lock
     * shared; an exclusive holder reads and changes them all (lun_io_sum). */
    struct scsi_lun_io io0, *io;
    unsigned nio;
    unsigned naborted;

    /* Write gate for COMPARE AND WRITE (SBC-4 5.3: no other write may change
     * the blocks between its read and its write): SCSI_OPF_WRITE commands
     * are counted; an SCSI_OPF_EXCL one waits for zero and then holds new
     * writes back. Waiting commands are in the inflight list too. */
    bool excl_active;
    /* WRITE ATOMIC (SBC-4 4.29): reads and writes (SCSI_OPF_RW and
     * SCSI_OPF_WRITE) are counted in nrw; an atomic write waits for zero and
     * then holds every one of them back, so none sees part of it. */
    unsigned natomic_wait;
    bool atomic_active;
    bool resuming;
    struct scsi_cmd *deferred, **deferred_tail;

    /* I/O error policy (ioerr.c): the owner's hook, commands held by it (in
     * arrival order, seq: within a thread's share) */
    enum scsi_io_error_action (*io_error_cb)(void *opaque, const struct scsi_io_error *e);
    void *io_error_opaque;
    struct scsi_cmd *held;

    bool removed;                   /* out of the map, draining */
    void (*remove_cb)(void *opaque);
    void *remove_opaque;
};

/* target.c: from an I/O thread (scsi.h, Threading), have the control thread
 * run cb(opaque) holding the lock exclusively; c is the caller's node
 * (a command's xcall), free again once cb has started. */
void scsi_run_exclusive(struct ev_call *c, ev_defer_cb *cb, void *opaque);
/* target.c: an exclusive holder's total of a count over an LU's shares */
unsigned scsi_lun_io_sum(const struct scsi_lun *lu, size_t offset);
#define LUN_IO_SUM(lu, field) scsi_lun_io_sum((lu), offsetof(struct scsi_lun_io, field))

/* lun.c */
int scsi_lun_new(struct scsi_bus *bus, struct scsi_target *tgt, uint16_t lun,
                 const struct scsi_dev_config *cfg, struct blk_drive *drive,
                 struct scsi_lun **out, char *err, size_t errlen);
void scsi_lun_free(struct scsi_lun *lu);
/* Unit attentions (SAM-5 5.14): for every I_T nexus, for one, or for every
 * nexus but one (e.g. 2A/01 after MODE SELECT, SPC-4 7.5.1). */
void scsi_lun_ua_add(struct scsi_lun *lu, int reason);
void scsi_lun_ua_add_nexus(struct scsi_lun *lu, uint32_t nexus, int reason);
void scsi_lun_ua_add_others(struct scsi_lun *lu, uint32_t nexus, int reason);
void scsi_lun_ua_clear(struct scsi_lun *lu);
int scsi_lun_ua_peek(const struct scsi_lun *lu, uint32_t nexus);
int scsi_lun_ua_take(struct scsi_lun *lu, uint32_t nexus);
/* The state of one nexus; NULL when the table is full or out of memory. */
struct scsi_nexus_state *scsi_lun_nexus(struct scsi_lun *lu, uint32_t nexus);
bool scsi_lun_prevented(const struct scsi_lun *lu);        /* by any nexus */
void scsi_lun_nexus_loss(struct scsi_lun *lu, uint32_t nexus);  /* I_T nexus reset/loss */
uint64_t scsi_lun_capacity(const struct scsi_lun *lu);     /* of the accessible medium, blocks; 0: none */
void scsi_lun_reset(struct scsi_lun *lu);                   /* LU reset state changes */

/* Removable media (lun.c). The accessible medium (tray closed, a drive in
 * it) or NULL; synchronous code may look at it (and at lu->drive, the
 * medium in the tray, for its properties); anything that keeps using a
 * drive after returning takes a reference with scsi_lun_medium_get and
 * drops it with scsi_lun_medium_put (commands do so in target.c). */
struct blk_drive *scsi_lun_medium(const struct scsi_lun *lu);
/* share: where the user is counted (&lu->io0 from exclusive code) */
struct blk_drive *scsi_lun_medium_get(struct scsi_lun *lu, struct scsi_lun_io *share);    /* NULL: none */
void scsi_lun_medium_put(struct scsi_lun *lu, struct scsi_lun_io *share);
/* The NOT READY reason while no medium is accessible: 3A/02 tray open, 3A/01 closed. */
int scsi_lun_no_medium(const struct scsi_lun *lu);
/* PREVENT ALLOW MEDIUM REMOVAL per nexus: persistent (MMC) or plain prevention;
 * false when the nexus table is full. */
bool scsi_lun_set_prevent(struct scsi_lun *lu, uint32_t nexus, bool persistent, bool prevent);
bool scsi_lun_persistent_prevented(const struct scsi_lun *lu);
/* START STOP UNIT with LOEJ for cmd's nexus (SBC-4 5.25, MMC-6 6.40). */
int scsi_lun_start_stop(struct scsi_cmd *cmd);
/* MMC-6 6.7.2.4 media event codes */
#define MEC_NO_CHANGE       0x0
#define MEC_EJECT_REQUEST   0x1
#define MEC_NEW_MEDIA       0x2
#define MEC_MEDIA_REMOVAL   0x3
/* The oldest pending media event (removed), MEC_NO_CHANGE when none. */
uint8_t scsi_lun_media_event_take(struct scsi_lun *lu);

/* pr.c: reservations. Nexus N is shown as SAS initiator port
 * PR_INIT_SAS_BASE | N (NAA 3, locally assigned) through target port
 * PR_TGT_SAS_BASE | N, relative target port identifier scsi_pr_rel_port(N). */
#define PR_INIT_SAS_BASE    0x3056534900000000ull   /* "VSI" */
#define PR_TGT_SAS_BASE     0x3056535400000000ull   /* "VST" */
int scsi_pr_init(struct scsi_lun *lu, const struct scsi_dev_config *cfg, char *err, size_t errlen);
void scsi_pr_free(struct scsi_lun *lu);
/* SENSE_OK or SENSE_RESERVATION_CONFLICT for cmd running op */
int scsi_pr_check(struct scsi_cmd *cmd, const struct scsi_op *op);
/* Whether nexus may read (or write) lu's medium: SENSE_OK or a conflict
 * (a copy manager acting for that nexus, SPC-4 6.4.1) */
int scsi_pr_access(const struct scsi_lun *lu, uint32_t nexus, bool write);
void scsi_pr_nexus_loss(struct scsi_lun *lu, uint32_t nexus);
void scsi_pr_lun_reset(struct scsi_lun *lu);
uint16_t scsi_pr_rel_port(uint32_t nexus);
uint64_t scsi_pr_init_port_addr(uint32_t nexus);
scsi_parse_fn scsi_pr_parse_in, scsi_pr_parse_out;
scsi_exec_fn scsi_pr_in, scsi_pr_out, scsi_pr_reserve, scsi_pr_release;

/* sanitize.c */
bool scsi_sanitize_erase_supported(const struct scsi_lun *lu);
uint16_t scsi_sanitize_progress(const struct scsi_lun *lu);
scsi_parse_fn scsi_sanitize_parse;
scsi_exec_fn scsi_sanitize;

/* xcopy.c */
scsi_parse_fn scsi_xcopy_parse, scsi_rcr_parse;
scsi_exec_fn scsi_xcopy, scsi_rcr;
void scsi_xcopy_free(struct scsi_lun *lu);

/* target.c */
/* The LU of bus whose VPD 83 logical unit designator is (code set, type,
 * designator): the copy manager's view of the LUs (SPC-4 6.4.5.x). Only the
 * bus' own LUs, what an initiator on it can address anyway. */
struct scsi_lun *scsi_bus_find_lun_by_designator(struct scsi_bus *bus, unsigned code_set, unsigned type,
                                                 const uint8_t *d, size_t len);
/* Keep the LU (and a removal waiting for it) alive across work that is not
 * a command in flight (a SANITIZE with IMMED=1). */
void scsi_lun_hold(struct scsi_lun *lu);
void scsi_lun_release(struct scsi_lun *lu);
/* Abort every command of one I_T nexus on the LU (PREEMPT AND ABORT); they
 * complete with TASK ABORTED when their I/O returns. */
void scsi_lun_abort_nexus(struct scsi_lun *lu, uint32_t nexus);
struct scsi_lun *scsi_target_find(const struct scsi_target *tgt, uint16_t lun);
/* The LUN number lu has on tgt (its path through that target). */
uint16_t scsi_lun_number(const struct scsi_lun *lu, const struct scsi_target *tgt);
/* Calls fn for every mapped LUN of tgt in LUN order; stops on non-zero. */
int scsi_target_foreach(const struct scsi_target *tgt,
                        int (*fn)(void *opaque, struct scsi_lun *lu), void *opaque);
void scsi_cmd_complete(struct scsi_cmd *cmd, int reason);
/* Tell the listener of every bus the LU has a path on. */
void scsi_lun_notify(struct scsi_lun *lu, enum scsi_bus_event ev);
/* SCSI_DEV_HD LU not writable now (SWP, or a read-only medium). */
bool scsi_lun_write_protected(const struct scsi_lun *lu);
/* Mark cmd aborted (reset: by a reset, host status RESET), counted until it completes. */
void scsi_cmd_mark_aborted(struct scsi_cmd *cmd, bool reset);

/* ioerr.c: a block request of cmd's through the I/O error policy: sets
 * breq.done_cb so that a failure asks the LU's io_error_cb, and cb runs with
 * the outcome (0 when ignored; not at all while held). */
void scsi_io_prepare(struct scsi_cmd *cmd, blk_done_cb *cb);
/* Complete held commands of lu that are aborted (after a TMF marked them). */
void scsi_held_flush_aborted(struct scsi_lun *lu);
/* Abort every held command of lu (its last path is being removed). */
void scsi_held_abort_all(struct scsi_lun *lu);

/* Command flags (cmd->flags) */
#define SCSI_CMDF_ABORTED   (1u << 0)
#define SCSI_CMDF_RESET     (1u << 1)   /* aborted by a reset: host status RESET */
#define SCSI_CMDF_INFO      (1u << 2)   /* sense_info valid */
#define SCSI_CMDF_FUA       (1u << 3)
#define SCSI_CMDF_UNMAP     (1u << 4)
#define SCSI_CMDF_INFLIGHT  (1u << 5)
#define SCSI_CMDF_BYTCHK    (1u << 6)
#define SCSI_CMDF_WCOUNTED  (1u << 7)   /* counted in a share's nwrites */
#define SCSI_CMDF_EXCL      (1u << 8)   /* holds lu->excl_active */
#define SCSI_CMDF_RWCOUNTED (1u << 9)   /* counted in a share's nrw */
#define SCSI_CMDF_ATOMIC    (1u << 10)  /* holds lu->atomic_active */
#define SCSI_CMDF_HELD      (1u << 11)  /* on lu->held (ioerr.c) */
#define SCSI_CMDF_GATE      (SCSI_CMDF_WCOUNTED | SCSI_CMDF_EXCL | SCSI_CMDF_RWCOUNTED | SCSI_CMDF_ATOMIC)

/* Helpers for execute functions */
static inline int scsi_invalid_cdb(struct scsi_cmd *cmd, unsigned byte, int bit)
{
    cmd->sense_sks = sense_sks_field(true, byte, bit);
    return SENSE_INVALID_FIELD_CDB;
}
static inline int scsi_invalid_param(struct scsi_cmd *cmd, unsigned byte, int bit)
{
    cmd->sense_sks = sense_sks_field(false, byte, bit);
    return SENSE_INVALID_FIELD_PARAM;
}
/* Per-command buffer (cmd->priv), freed at completion. Every LUN has a
 * budget (SCSI_LUN_BUF_BUDGET) so parallel commands can't add up to an
 * unbounded amount: returns between min and want bytes (a multiple of min;
 * *got says how many), or NULL when even min doesn't fit (answer BUSY). */
#define SCSI_LUN_BUF_BUDGET (16u << 20)
void *scsi_cmd_alloc(struct scsi_cmd *cmd, size_t want, size_t min, size_t *got);

/* Copy data-in (len bytes of buf, limited by alloc and the buffer): sets xfer_len. */
void scsi_datain(struct scsi_cmd *cmd, const void *buf, size_t len, size_t alloc);
/* Copy the data-out parameter list (first len bytes) into buf: returns bytes copied. */
size_t scsi_dataout(struct scsi_cmd *cmd, void *buf, size_t len);

/* spc.c */
int spc_inquiry(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_report_luns(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_request_sense(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_test_unit_ready(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_mode_sense(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_mode_select(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_report_opcodes(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_report_tmfs(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_prevent_allow(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_start_stop(struct scsi_cmd *cmd, const struct scsi_parsed *p);
int spc_send_diag(struct scsi_cmd *cmd, const struct scsi_parsed *p);
scsi_parse_fn spc_parse_send_diag, spc_parse_inquiry, spc_parse_alloc6, spc_parse_alloc10, spc_parse_report_luns,
    spc_parse_mode_select6, spc_parse_mode_select10, spc_parse_alloc_a3;

/* CDB usage data shared by tables */
extern const uint8_t spc_usage_tur[6], spc_usage_inquiry[6], spc_usage_request_sense[6],
    spc_usage_report_luns[12], spc_usage_mode_sense6[6], spc_usage_mode_sense10[10],
    spc_usage_mode_select6[6], spc_usage_mode_select10[10], spc_usage_rsoc[12],
    spc_usage_rstmf[12], spc_usage_prevent_allow[6], spc_usage_send_diag[6];
#define SPC_N_MAINT_IN_OPS 2
extern const struct scsi_op spc_maint_in_ops[SPC_N_MAINT_IN_OPS];
#define SPC_N_PR_IN_OPS 4
#define SPC_N_PR_OUT_OPS 8
extern const struct scsi_op spc_pr_in_ops[SPC_N_PR_IN_OPS], spc_pr_out_ops[SPC_N_PR_OUT_OPS];
extern const uint8_t spc_usage_reserve6[6], spc_usage_release6[6], spc_usage_reserve10[10],
    spc_usage_release10[10];

/* mode page control (SPC-4 6.11) */
enum { MODE_PC_CURRENT, MODE_PC_CHANGEABLE, MODE_PC_DEFAULT, MODE_PC_SAVED };
/* mmc.c: the MMC mode pages (MMC-6 7), for spc.c's MODE SENSE/SELECT: the
 * page's length, 0 when not supported; the supported codes in order. */
size_t mmc_mode_page(const struct scsi_lun *lu, uint8_t code, int pc, uint8_t *b);
extern const uint8_t mmc_mode_pages[];
extern const size_t mmc_n_mode_pages;

/* sbc.c: shared with mmc.c (READ(10/12), READ CAPACITY(10), the same checks) */
scsi_parse_fn sbc_parse_rw, sbc_parse_read_capacity10;
scsi_exec_fn sbc_exec_rw, sbc_exec_read_capacity10;

/* ---- big-endian helpers ---- */
static inline uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t get_be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2]; }
static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t get_be64(const uint8_t *p) { return (uint64_t)get_be32(p) << 32 | get_be32(p + 4); }
static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void put_be64(uint8_t *p, uint64_t v) { put_be32(p, (uint32_t)(v >> 32)); put_be32(p + 4, (uint32_t)v); }

#endif
