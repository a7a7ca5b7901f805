/* SCSI target layer: a bus of targets and logical units, command execution,
 * task management, unit attentions. Knows nothing of virtio: it gets a CDB
 * copy with its length and a data buffer described by an iovec array, and
 * completes through a callback. Uses block/ through blk.h only.
 *
 * Threading: every bus, LU, command and TMF is used under the SCSI lock
 * (scsi_lock(); process-wide, because an LU may be a path on several buses).
 * Every call into this layer is made with it held, and every callback out of
 * it (command and TMF completions, bus events, tray_cb, io_error_cb) runs
 * with it held. The lock is a big-reader lock:
 *  - A thread that entered an I/O slot (scsi_io_thread_enter: an iothread
 *    serving request queues) holds it *shared*: I/O threads run at the same
 *    time and never wait for each other. In shared mode the layer runs only
 *    READ and WRITE commands (SCSI_OPF_MT) of an LU in a plain state (no unit
 *    attention, no COMPARE AND WRITE or atomic write waiting, medium present,
 *    no sanitize), counting them in the thread's own share of the LU; their
 *    completions run there too. Everything else (other commands, errors,
 *    aborted commands, a completion that must wake others) it sends to the
 *    control thread (scsi_io_slot_new's loop), which runs it exclusively.
 *  - Any other thread holds it *exclusively*: no I/O thread is inside the
 *    layer meanwhile. Management, TMFs, hot-plug and media changes run so.
 * A command's block requests go to the block context of the thread that
 * issues them (blk_submit redirects), so a command completes on the thread
 * that ran it. */
#ifndef VSCSI_SCSI_SCSI_H
#define VSCSI_SCSI_SCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/blk.h"
#include "util/loop.h"

#define SCSI_CDB_MAX      32
#define SCSI_SENSE_MAX    96
#define SCSI_MAX_TARGET   255   /* target ids 0..255 */
#define SCSI_MAX_LUN      16383 /* flat space addressing, SAM-5 */

/* SAM status codes */
#define SCSI_STATUS_GOOD                 0x00
#define SCSI_STATUS_CHECK_CONDITION      0x02
#define SCSI_STATUS_CONDITION_MET        0x04
#define SCSI_STATUS_BUSY                 0x08
#define SCSI_STATUS_RESERVATION_CONFLICT 0x18
#define SCSI_STATUS_TASK_SET_FULL        0x28
#define SCSI_STATUS_TASK_ABORTED         0x40

enum scsi_dir {
    SCSI_DIR_NONE,
    SCSI_DIR_TO_DEV,    /* data-out (write) */
    SCSI_DIR_FROM_DEV,  /* data-in (read) */
};

/* Outcome at the transport level (maps to virtio-scsi response codes). */
enum scsi_host_status {
    SCSI_HOST_OK,           /* status/sense are valid */
    SCSI_HOST_OVERRUN,      /* command needs more buffer than given, or wrong direction */
    SCSI_HOST_BAD_TARGET,   /* no such target */
    SCSI_HOST_ABORTED,      /* aborted by a TMF */
    SCSI_HOST_RESET,        /* aborted by a reset */
    SCSI_HOST_FAILURE,      /* internal failure */
};

struct scsi_bus;
struct scsi_target;
struct scsi_lun;
struct scsi_lun_io;
struct scsi_cmd;
struct scsi_op;

typedef void scsi_cmd_done_cb(struct scsi_cmd *cmd);

struct scsi_cmd {
    /* --- in: filled by the transport before scsi_bus_submit() --- */
    uint8_t target;
    uint16_t lun;               /* decoded LUN number 0..16383 */
    bool lun_wlun_report;       /* REPORT LUNS well-known LUN (0xc101) */
    uint8_t cdb[SCSI_CDB_MAX];  /* copied out of guest memory */
    uint8_t cdb_len;
    enum scsi_dir dir;          /* from the descriptor layout */
    const struct iovec *iov;    /* data buffer in guest memory (data-in or data-out) */
    unsigned iovcnt;
    size_t buf_len;             /* iov_size(iov, iovcnt) */
    uint64_t tag;
    uint8_t task_attr;
    uint32_t nexus;             /* initiator port (I_T nexus) id, for reservations */
    struct blk_ctx *blk_ctx;    /* I/O context of the submitting thread */
    scsi_cmd_done_cb *done_cb;
    void *opaque;

    /* --- out: valid when done_cb runs --- */
    enum scsi_host_status host_status;
    uint8_t status;
    uint8_t sense_len;
    uint8_t sense[SCSI_SENSE_MAX];
    size_t xfer_len;            /* bytes moved; residual = buf_len - xfer_len */

    /* --- private to the SCSI layer --- */
    struct scsi_lun *lu;
    /* Threads (see Threading): the LU's share that counts the command, the
     * I/O slot of that share (-1: the exclusive one, io0), the bus it came in on */
    struct scsi_lun_io *share;
    int io_slot;
    struct scsi_bus *bus;
    struct scsi_cmd *next_inflight, **pprev_inflight;
    struct blk_req breq;
    struct iovec sub_iov[4];
    uint64_t lba;
    uint32_t nblocks;
    uint32_t done_blocks;
    int state;
    uint32_t flags;
    void *priv;
    const struct scsi_op *op;   /* opcode table entry being executed */
    struct scsi_target *tgt;
    uint32_t sense_sks;         /* sense-key specific bytes (SKSV set), 0 = none */
    uint64_t sense_info;        /* INFORMATION field when SCSI_CMDF_INFO is set */
    size_t priv_len;            /* bytes of priv charged to the LUN's buffer budget */
    struct scsi_cmd *next_deferred;     /* waiting behind COMPARE AND WRITE */
    struct blk_drive *medium;   /* the medium the command started with (counted), or NULL */
    /* I/O error policy (ioerr.c): the step's own completion, the order of
     * arrival on the LU, the LU's list of held commands */
    blk_done_cb *io_cb;
    uint64_t seq;
    struct scsi_cmd *next_held;
    /* Threads (see Threading): what an I/O thread sends to the control
     * thread (cold: kept apart from the fields every command touches) */
    struct ev_call xcall;
    int xret;
};

/* I/O errors (QEMU's werror/rerror, carried out by whoever owns the LU): when
 * a block request of READ, WRITE, VERIFY, WRITE SAME, UNMAP, SYNCHRONIZE
 * CACHE, COMPARE AND WRITE or ORWRITE fails (and the command was not
 * aborted), the LU's io_error_cb says what happens to the command. */
enum scsi_io_error_action {
    SCSI_IOERR_REPORT,  /* CHECK CONDITION with the sense for the errno */
    SCSI_IOERR_IGNORE,  /* the failed request counts as done; the command goes on */
    SCSI_IOERR_HOLD,    /* keep the command, unanswered, until scsi_bus_retry_held */
};
struct scsi_io_error {
    bool is_read;       /* a read of the medium; else a write, flush, discard or zeroing */
    int err;            /* positive errno */
    uint64_t offset, len;   /* the failed block request, bytes */
};

/* Device configuration, from --device or QMP device_add. */
enum scsi_dev_type { SCSI_DEV_HD, SCSI_DEV_CD };

struct scsi_dev_config {
    enum scsi_dev_type type;
    const char *id;             /* user-visible name (may be NULL: generated) */
    const char *serial;         /* VPD 80 (NULL: generated from id) */
    uint64_t wwn;               /* NAA for VPD 83 (0: generated, stable per id) */
    const char *vendor;         /* INQUIRY, 8 chars max (default "VSCSI") */
    const char *product;        /* 16 chars max (default "VSCSI HARDDISK") */
    const char *version;        /* 4 chars max (default from VSCSI_VERSION) */
    uint32_t logical_block_size;   /* 512 or 4096 */
    uint32_t physical_block_size;  /* >= logical, power of two multiple */
    bool removable;             /* RMB; always true for SCSI_DEV_CD */
    /* Called on every tray movement, whoever caused it (the guest's START STOP
     * UNIT LOEJ, or scsi_lun_open_tray/close_tray from the host), on the bus
     * owner's thread, after the state changed. NULL: nobody listens. */
    void (*tray_cb)(void *opaque, bool tray_open);
    void *tray_opaque;
    /* An I/O error on this LU (see enum scsi_io_error_action), on the bus
     * owner's thread, from the block completion. NULL: report every error. */
    enum scsi_io_error_action (*io_error_cb)(void *opaque, const struct scsi_io_error *e);
    void *io_error_opaque;
    /* File that keeps persistent reservations made with APTPL=1 across
     * restarts (SPC-4 5.13.5); empty: APTPL is not supported (PTPL_C=0). */
    char pr_state[1024];
};

/* Notifications to the transport (virtio events). Called on the bus owner's thread. */
enum scsi_bus_event {
    SCSI_EV_LUN_ADDED,
    SCSI_EV_LUN_REMOVED,
    SCSI_EV_CAPACITY_CHANGED,   /* asc 0x2a ascq 0x09 */
    SCSI_EV_MEDIA_CHANGED,
};

struct scsi_bus_listener_ops {
    void (*event_cb)(void *opaque, enum scsi_bus_event ev, uint8_t target, uint16_t lun);
};

/* The SCSI lock (see Threading above). Recursive; shared on a thread that
 * entered an I/O slot, exclusive on any other. */
void scsi_lock(void);
void scsi_unlock(void);
#define SCSI_IO_SLOTS 64
/* Called by the exclusive holder (the control thread, whose loop runs what
 * I/O threads send it): a slot number for a new I/O thread, or -ENOSPC. */
int scsi_io_slot_new(struct ev_loop *control);
void scsi_io_slot_free(int slot);       /* after its thread has ended */
/* On the I/O thread itself, before it first takes the lock. */
void scsi_io_thread_enter(int slot);
bool scsi_in_io_thread(void);
unsigned scsi_io_slots(void);

struct scsi_bus *scsi_bus_new(void);
void scsi_bus_free(struct scsi_bus *bus);   /* all LUNs removed, no commands in flight */
void scsi_bus_set_listener(struct scsi_bus *bus, const struct scsi_bus_listener_ops *ops, void *opaque);

/* Attach a drive as a logical unit. The bus does not own the drive.
 * drive may be NULL for a removable LU (SCSI_DEV_CD, or removable=true): an
 * empty, closed tray. SCSI_DEV_CD LUs are read-only MMC devices with 2048-byte
 * blocks (logical_block_size and physical_block_size must be 0 or 2048).
 * Returns 0, -EEXIST (address taken), -EINVAL (bad config, message in err). */
int scsi_bus_add_lun(struct scsi_bus *bus, uint8_t target, uint16_t lun,
                     const struct scsi_dev_config *cfg, struct blk_drive *drive,
                     char *err, size_t errlen);
/* Expose the logical unit at first_bus first_target:first_lun on bus (another
 * controller) as target:lun too: a second path to the same LU (identity,
 * reservations, unit attentions per I_T nexus and all other state shared).
 * Removing one path with scsi_bus_remove_lun leaves the others.
 * Returns 0, -ENOENT, -EEXIST, -EINVAL (same bus), -ENOSPC (too many paths). */
int scsi_bus_add_path(struct scsi_bus *bus, uint8_t target, uint16_t lun, struct scsi_bus *first_bus,
                      uint8_t first_target, uint16_t first_lun, char *err, size_t errlen);
/* Detach. Commands in flight complete first: done_cb runs when the LUN is gone
 * (may be synchronous if idle). Returns -ENOENT when absent. */
int scsi_bus_remove_lun(struct scsi_bus *bus, uint8_t target, uint16_t lun,
                        void (*done_cb)(void *opaque), void *opaque);
bool scsi_bus_has_target(const struct scsi_bus *bus, uint8_t target);
struct scsi_lun *scsi_bus_find_lun(const struct scsi_bus *bus, uint8_t target, uint16_t lun);
/* The drive size changed (after blk_resize): queue UA 2A/09 and notify
 * (SCSI_DEV_HD; nothing for a CD-ROM). */
void scsi_bus_capacity_changed(struct scsi_bus *bus, uint8_t target, uint16_t lun);

/* Removable media (SCSI_DEV_CD, or removable=true). The LU has a tray that is
 * open or closed, and a medium (a drive) or none; the medium is accessible
 * only when the tray is closed. The guest locks the tray with PREVENT ALLOW
 * MEDIUM REMOVAL (any nexus) and moves it with START STOP UNIT LOEJ. These act
 * on the LU (every path) and run on the bus owner's thread. */
struct scsi_medium_state {
    bool removable;
    bool tray_open;
    bool locked;                /* a nexus prevents medium removal (PREVENT, or MMC's persistent prevent) */
    bool has_medium;            /* a drive is in the tray (open or closed) */
    struct blk_drive *drive;    /* the medium, or NULL */
};
void scsi_lun_get_medium(const struct scsi_lun *lu, struct scsi_medium_state *out);
/* Open the tray. When the guest has locked it and !force, the tray stays
 * closed, the guest gets an eject request (GET EVENT STATUS NOTIFICATION
 * media class, EJECT REQUEST) and -EBUSY is returned. Otherwise the tray
 * opens (the medium stays in it but becomes inaccessible: NOT READY 3A/02
 * and a MEDIA REMOVAL event; commands in flight finish on it), every
 * nexus' prevention is dropped when forced, and tray_cb runs. 0 when it was
 * already open. -ENOTSUP: not removable. */
int scsi_lun_open_tray(struct scsi_lun *lu, bool force);
/* Close the tray; tray_cb runs. With a medium in it the guest sees a new
 * medium: UA 28/00 NOT READY TO READY CHANGE for every nexus, a NEW MEDIA
 * event and SCSI_EV_MEDIA_CHANGED to the listeners; an empty tray answers
 * NOT READY 3A/01. 0 when it was already closed. -ENOTSUP: not removable. */
int scsi_lun_close_tray(struct scsi_lun *lu);
/* Take the medium out of the open tray. New commands no longer see it at once
 * (commands held after an I/O error end aborted);
 * done_cb(opaque, drive) runs once no command uses it any more (possibly
 * before this returns), and the caller may close the drive then.
 * -ENOTSUP not removable, -EINVAL tray closed, -ENOENT no medium,
 * -EBUSY an earlier removal is still draining. */
int scsi_lun_remove_medium(struct scsi_lun *lu, void (*done_cb)(void *opaque, struct blk_drive *drive),
                           void *opaque);
/* Put drive into the open, empty tray (it becomes accessible when the tray
 * closes). -ENOTSUP not removable, -EINVAL tray closed (message in err),
 * -EEXIST a medium is in the tray, -EBUSY an earlier removal is still
 * draining. A writable drive in a SCSI_DEV_CD LU is still served read-only. */
int scsi_lun_insert_medium(struct scsi_lun *lu, struct blk_drive *drive, char *err, size_t errlen);

/* Execute a command. Always completes through cmd->done_cb, possibly before
 * returning (GOOD/CHECK CONDITION answered from memory) or later (I/O). */
void scsi_bus_submit(struct scsi_bus *bus, struct scsi_cmd *cmd);

/* Held commands (SCSI_IOERR_HOLD). They stay in flight: a TMF that aborts
 * one, or removing its LU, completes it at once (TASK ABORTED / host
 * ABORTED). */
/* Resubmit the failed block request of every command held on the bus' LUs,
 * each LU's in the order the commands arrived. A retry that fails goes
 * through io_error_cb again. */
void scsi_bus_retry_held(struct scsi_bus *bus);
/* Complete, with host status RESET, the commands held that came through this
 * bus and for which match(opaque, cmd) is true (match NULL: all): the
 * transport is going away (queue stopped, device reset, shutdown). The
 * initiator retries them. */
void scsi_bus_reset_held(struct scsi_bus *bus, bool (*match)(void *opaque, const struct scsi_cmd *cmd),
                         void *opaque);
/* Commands held that came through this bus. */
unsigned scsi_bus_held_count(const struct scsi_bus *bus);

/* Task management (SAM-5 7). */
enum scsi_tmf_type {
    SCSI_TMF_ABORT_TASK,
    SCSI_TMF_ABORT_TASK_SET,
    SCSI_TMF_CLEAR_ACA,
    SCSI_TMF_CLEAR_TASK_SET,
    SCSI_TMF_I_T_NEXUS_RESET,
    SCSI_TMF_LOGICAL_UNIT_RESET,
    SCSI_TMF_QUERY_TASK,
    SCSI_TMF_QUERY_TASK_SET,
};

enum scsi_tmf_response {
    SCSI_TMF_COMPLETE,          /* function complete */
    SCSI_TMF_SUCCEEDED,         /* QUERY TASK (SET): a task exists */
    SCSI_TMF_REJECTED,          /* function rejected / not supported */
    SCSI_TMF_INCORRECT_LUN,
    SCSI_TMF_BAD_TARGET,
};

struct scsi_tmf;
typedef void scsi_tmf_done_cb(struct scsi_tmf *tmf);

struct scsi_tmf {
    enum scsi_tmf_type type;
    uint8_t target;
    uint16_t lun;
    uint64_t tag;               /* ABORT TASK / QUERY TASK */
    uint32_t nexus;
    scsi_tmf_done_cb *done_cb;  /* runs after every affected command has completed */
    void *opaque;
    enum scsi_tmf_response response;
    /* private */
    unsigned pending;
    struct scsi_tmf *next;
    struct scsi_lun *wait_lu;   /* NULL: waits for the whole target */
};

/* Runs the TMF; affected commands complete (TASK ABORTED / host ABORTED|RESET)
 * before tmf->done_cb. May complete synchronously. */
void scsi_bus_tmf(struct scsi_bus *bus, struct scsi_tmf *tmf);

/* Number of LUNs, and iteration for management/listing. */
unsigned scsi_bus_lun_count(const struct scsi_bus *bus);
struct scsi_lun_info {
    uint8_t target;
    uint16_t lun;
    enum scsi_dev_type type;
    const char *id;
    struct blk_drive *drive;    /* the medium in the tray; NULL: none (removable LUs) */
};
/* Calls fn for each LUN in (target, lun) order; stops when fn returns non-zero. */
int scsi_bus_foreach_lun(const struct scsi_bus *bus,
                         int (*fn)(void *opaque, const struct scsi_lun_info *info), void *opaque);

#endif
