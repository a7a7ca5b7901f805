/* virtio-scsi device: turns virtqueue elements into SCSI commands and TMFs
 * for the scsi/ layer, and bus events into virtio-scsi events. One struct
 * vscsi_ctrl per vhost-user socket (an initiator port / I_T nexus). */
#ifndef VSCSI_VIRTIO_SCSI_VSCSI_H
#define VSCSI_VIRTIO_SCSI_VSCSI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct blk_ctx;
struct scsi_bus;
struct vscsi_ctrl;

#define VSCSI_MAX_REQUEST_QUEUES 64

/* A thread that serves request queues: its loop and block context. */
struct vscsi_iothread {
    struct ev_loop *loop;
    struct blk_ctx *blk_ctx;
};

/* --coalesce-us auto: the hold tried */
#define VSCSI_COALESCE_AUTO_US 50

struct vscsi_ctrl_config {
    const char *socket_path;
    unsigned num_queues;        /* request queues; virtqueues = 2 + num_queues */
    uint32_t nexus;             /* initiator port id given to the SCSI layer */
    bool polling;               /* the loops poll request queues (vscsi_ctrl_poll) */
    /* Interrupt coalescing: a request queue's guest signal waits up to this
     * many microseconds after the first completion it would announce, and
     * then covers all completed meanwhile (0: signal at once) */
    unsigned coalesce_us;
    /* Adaptive coalescing: each request queue holds its signals (for
     * coalesce_us, or VSCSI_COALESCE_AUTO_US when 0) only while that measures
     * faster than not holding (coalesce.h) */
    bool coalesce_auto;
    /* Request queue i goes to iothreads[i % num_iothreads]; none: every
     * queue on the controller's loop. The control and event queues and the
     * vhost-user session always stay on the controller's loop. An iothread's
     * loop runs on its own thread, and its block context is bound to it
     * (blk_ctx_bind_thread); the controller's thread holds the SCSI lock
     * whenever it is not waiting for events (ev_loop_set_wait_hooks). */
    const struct vscsi_iothread *iothreads;
    unsigned num_iothreads;
};

/* Decode a virtio-scsi LUN field (5.6.6.1). Returns 0 and sets target/lun,
 * *wlun for the REPORT LUNS well-known LUN; -EINVAL when lun[0] != 1 (no such
 * target). A malformed LUN on a valid target yields lun = VSCSI_LUN_INVALID. */
#define VSCSI_LUN_INVALID 0xffff
int vscsi_decode_lun(const uint8_t lun[8], uint8_t *target, uint16_t *lun_out, bool *wlun);
/* Encode like REPORT LUNS: lun[2] = 0x40 | lun >> 8 only for lun >= 256. */
void vscsi_encode_lun(uint8_t target, uint16_t lun, uint8_t out[8]);

struct vscsi_ctrl *vscsi_ctrl_new(struct ev_loop *loop, struct blk_ctx *blk_ctx,
                                  struct scsi_bus *bus, const struct vscsi_ctrl_config *cfg,
                                  char *err, size_t errlen);
/* After vscsi_ctrl_quiesce and with every iothread stopped (joined). */
void vscsi_ctrl_free(struct vscsi_ctrl *ctrl);
/* Stop taking requests from the guest (shutdown): kicks are no longer watched
 * and queues are not popped, even if the frontend starts them again; commands
 * already taken still complete. */
void vscsi_ctrl_quiesce(struct vscsi_ctrl *ctrl);
/* Pause or resume taking requests from the guest (the daemon's run state:
 * QMP stop/cont, an I/O error with werror/rerror=stop). While paused the
 * request and control queues are not popped (what the guest adds waits in
 * the rings; a TMF cannot overtake the commands queued before it), commands
 * already taken complete normally, events are still delivered. */
/* Take every command the request queues hold now (whichever thread serves
 * them), so that what comes next (a TMF, a LUN's removal) finds them started:
 * what the guest queued before it is not left behind in a ring. Nothing while
 * paused. Control thread, SCSI lock held. */
void vscsi_ctrl_take_queued(struct vscsi_ctrl *ctrl);
void vscsi_ctrl_pause(struct vscsi_ctrl *ctrl, bool paused);
bool vscsi_ctrl_paused(const struct vscsi_ctrl *ctrl);
/* Adaptive polling (see ev_loop_set_poller), from the thread of loop: handle
 * what the request queues served by loop hold without waiting for kicks;
 * true when something was handled. */
bool vscsi_ctrl_poll(struct vscsi_ctrl *ctrl, struct ev_loop *loop);
/* Before loop sleeps: re-enable guest notifications on its queues; true when
 * buffers arrived meanwhile (keep polling). */
bool vscsi_ctrl_poll_idle(struct vscsi_ctrl *ctrl, struct ev_loop *loop);
/* Commands popped from the guest and not yet completed. */
unsigned vscsi_ctrl_inflight(const struct vscsi_ctrl *ctrl);

/* Bus events for this controller's guest (also the scsi_bus listener). */
void vscsi_ctrl_bus_event(struct vscsi_ctrl *ctrl, int ev, uint8_t target, uint16_t lun);

#endif
