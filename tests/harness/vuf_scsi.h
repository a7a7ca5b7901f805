/* virtio-scsi driver helpers over vuf (virtio 1.x 5.6 "SCSI Host Device").
 * The wire structures are defined here independently of the daemon's
 * headers, so a layout mistake on either side shows up as a test failure. */
#ifndef VUF_SCSI_H
#define VUF_SCSI_H

#include "vuf.h"

#define VUF_SCSI_CTRLQ   0
#define VUF_SCSI_EVENTQ  1
#define VUF_SCSI_REQQ    2       /* first request queue */

/* device feature bits */
#define VUF_SCSI_F_INOUT    0
#define VUF_SCSI_F_HOTPLUG  1
#define VUF_SCSI_F_CHANGE   2
#define VUF_SCSI_F_T10_PI   3

#define VUF_SCSI_CDB_SIZE   32
#define VUF_SCSI_SENSE_SIZE 96

/* response codes (5.6.6.1); FUNCTION_COMPLETE is 0 like OK */
enum {
    VUF_SCSI_S_OK = 0, VUF_SCSI_S_OVERRUN = 1, VUF_SCSI_S_ABORTED = 2,
    VUF_SCSI_S_BAD_TARGET = 3, VUF_SCSI_S_RESET = 4, VUF_SCSI_S_BUSY = 5,
    VUF_SCSI_S_TRANSPORT_FAILURE = 6, VUF_SCSI_S_TARGET_FAILURE = 7,
    VUF_SCSI_S_NEXUS_FAILURE = 8, VUF_SCSI_S_FAILURE = 9,
    VUF_SCSI_S_FUNCTION_SUCCEEDED = 10, VUF_SCSI_S_FUNCTION_REJECTED = 11,
    VUF_SCSI_S_INCORRECT_LUN = 12,
};
#define VUF_SCSI_S_FUNCTION_COMPLETE 0

/* control queue (5.6.6.2) */
#define VUF_SCSI_T_TMF           0
#define VUF_SCSI_T_AN_QUERY      1
#define VUF_SCSI_T_AN_SUBSCRIBE  2
enum {
    VUF_TMF_ABORT_TASK = 0, VUF_TMF_ABORT_TASK_SET = 1, VUF_TMF_CLEAR_ACA = 2,
    VUF_TMF_CLEAR_TASK_SET = 3, VUF_TMF_I_T_NEXUS_RESET = 4, VUF_TMF_LOGICAL_UNIT_RESET = 5,
    VUF_TMF_QUERY_TASK = 6, VUF_TMF_QUERY_TASK_SET = 7,
};

/* events (5.6.6.3) */
#define VUF_SCSI_T_NO_EVENT        0
#define VUF_SCSI_T_TRANSPORT_RESET 1
#define VUF_SCSI_T_ASYNC_NOTIFY    2
#define VUF_SCSI_T_PARAM_CHANGE    3
#define VUF_SCSI_T_EVENTS_MISSED   0x80000000u

/* SCSI status */
#define VUF_SAM_GOOD             0x00
#define VUF_SAM_CHECK_CONDITION  0x02
#define VUF_SAM_BUSY             0x08
#define VUF_SAM_RESERVATION_CONFLICT 0x18
#define VUF_SAM_TASK_SET_FULL    0x28

struct vuf_scsi_cmd_req {
    uint8_t lun[8];
    uint64_t tag;
    uint8_t task_attr;
    uint8_t prio;
    uint8_t crn;
    uint8_t cdb[VUF_SCSI_CDB_SIZE];
} __attribute__((packed));

struct vuf_scsi_cmd_resp {
    uint32_t sense_len;
    uint32_t resid;
    uint16_t status_qualifier;
    uint8_t status;
    uint8_t response;
    uint8_t sense[VUF_SCSI_SENSE_SIZE];
} __attribute__((packed));

struct vuf_scsi_tmf_req {
    uint32_t type;
    uint32_t subtype;
    uint8_t lun[8];
    uint64_t tag;
} __attribute__((packed));

struct vuf_scsi_an_req {
    uint32_t type;
    uint8_t lun[8];
    uint32_t event_requested;
} __attribute__((packed));

struct vuf_scsi_an_resp {
    uint32_t event_actual;
    uint8_t response;
} __attribute__((packed));

struct vuf_scsi_event {
    uint32_t event;
    uint8_t lun[8];
    uint32_t reason;
} __attribute__((packed));

_Static_assert(sizeof(struct vuf_scsi_cmd_req) == 51, "cmd_req");
_Static_assert(sizeof(struct vuf_scsi_cmd_resp) == 108, "cmd_resp");
_Static_assert(sizeof(struct vuf_scsi_tmf_req) == 24, "tmf_req");
_Static_assert(sizeof(struct vuf_scsi_an_req) == 16, "an_req");
_Static_assert(sizeof(struct vuf_scsi_an_resp) == 5, "an_resp");
_Static_assert(sizeof(struct vuf_scsi_event) == 16, "event");

/* LUN field as Linux builds it: {1, target, 0x40 | lun >> 8, lun & 0xff, 0...}. */
void vuf_scsi_lun(uint8_t out[8], unsigned target, unsigned lun);
/* Peripheral addressing for lun < 256: {1, target, 0, lun, 0...} (also valid). */
void vuf_scsi_lun_periph(uint8_t out[8], unsigned target, unsigned lun);
/* Fill a request header (tag and attributes as given, CDB zero-padded). */
void vuf_scsi_fill_req(struct vuf_scsi_cmd_req *req, const uint8_t lun[8], uint64_t tag,
                       const uint8_t *cdb, unsigned cdb_len);

/* A command as the guest driver sends it, with knobs for odd layouts. */
#define VUF_IO_INDIRECT    0x1u   /* whole chain in an indirect table */
#define VUF_IO_SPLIT_HDR   0x2u   /* request header and response each in 2 descriptors */
#define VUF_IO_COMBINED    0x4u   /* header+data-out in one buffer, response+data-in in one */
#define VUF_IO_NO_KICK     0x8u   /* do not notify (caller kicks) */

struct vuf_scsi_io {
    unsigned vq;                /* virtqueue; 0 = VUF_SCSI_REQQ */
    unsigned target, lun;
    const uint8_t *lun_raw;     /* 8 bytes overriding target/lun */
    const uint8_t *cdb;
    unsigned cdb_len;           /* <= 32 */
    uint64_t tag;               /* 0 = a running counter */
    uint8_t task_attr, prio, crn;
    const void *data_out;
    uint32_t out_len;
    void *data_in;              /* receives the whole data-in buffer */
    uint32_t in_len;
    unsigned segs;              /* split each data buffer into this many descriptors */
    unsigned flags;             /* VUF_IO_* */
    uint32_t req_len;           /* request header bytes sent (0 = 51; less = truncated) */
    uint32_t resp_len;          /* response buffer bytes (0 = 108) */
    int timeout_ms;             /* 0 = the harness default */
};

struct vuf_scsi_result {
    uint32_t used_len;          /* bytes the device says it wrote */
    uint8_t response;
    uint8_t status;
    uint16_t status_qualifier;
    uint32_t sense_len;
    uint32_t resid;
    uint8_t sense[VUF_SCSI_SENSE_SIZE];
    bool canary_hit;            /* the device wrote past a buffer it was given */
};

/* Submit, kick, wait, copy the response (and data-in) out. Returns 0 when the
 * device completed the request, -ETIMEDOUT (no completion), -ECONNRESET
 * (backend closed the session), -EPROTO (bad used entry), -ENOSPC, -ENOMEM.
 * After a timeout the guest buffers stay allocated (the device may still
 * write them). */
int vuf_scsi_do(struct vuf *h, const struct vuf_scsi_io *io, struct vuf_scsi_result *res);

/* The same in two steps, for several commands in flight (any queues). Every
 * chain on a queue used this way must come from vuf_scsi_submit. */
struct vuf_scsi_req;
/* Build and add the chain (and kick unless VUF_IO_NO_KICK). NULL on error (errno). */
struct vuf_scsi_req *vuf_scsi_submit(struct vuf *h, const struct vuf_scsi_io *io);
/* Wait for req (collecting other completions of its queue meanwhile); fills
 * res and frees req. Returns as vuf_scsi_do; on failure req stays valid:
 * wait again, or hand it to vuf_adopt() (the device may still complete it). */
int vuf_scsi_complete(struct vuf *h, struct vuf_scsi_req *req, struct vuf_scsi_result *res,
                      int timeout_ms);
/* Polling: take every completion on vq without waiting (no syscall); returns
 * how many, or -EPROTO. vuf_scsi_req_done tells whether req has completed. */
int vuf_scsi_reap(struct vuf *h, unsigned vq);
bool vuf_scsi_req_done(const struct vuf_scsi_req *req);

/* The plain synchronous command on the first request queue. */
int vuf_scsi_cmd(struct vuf *h, unsigned target, unsigned lun, const uint8_t *cdb,
                 unsigned cdb_len, const void *data_out, uint32_t out_len, void *data_in,
                 uint32_t in_len, struct vuf_scsi_result *res);

/* Sense data (fixed or descriptor format): key/asc/ascq, -1 when absent. */
int vuf_sense_key(const struct vuf_scsi_result *r);
int vuf_sense_asc(const struct vuf_scsi_result *r);
int vuf_sense_ascq(const struct vuf_scsi_result *r);
/* CHECK CONDITION with this key/asc/ascq? */
bool vuf_sense_is(const struct vuf_scsi_result *r, int key, int asc, int ascq);
/* "resp 0 status 0x02 sense 6/29/00 resid 0" for messages. */
const char *vuf_scsi_result_str(const struct vuf_scsi_result *r, char *buf, size_t len);

/* Task management function on the control queue. 0 with *response set, or -errno. */
int vuf_scsi_tmf(struct vuf *h, uint32_t subtype, unsigned target, unsigned lun, uint64_t tag,
                 uint8_t *response);
/* Asynchronous notification query/subscribe (type VUF_SCSI_T_AN_*). */
int vuf_scsi_an(struct vuf *h, uint32_t type, unsigned target, unsigned lun,
                uint32_t event_requested, uint32_t *event_actual, uint8_t *response);
/* Any bytes on the control queue: req (out) and a resp_len-byte in buffer. */
int vuf_scsi_ctrl_raw(struct vuf *h, const void *req, uint32_t req_len, void *resp,
                      uint32_t resp_len, uint32_t *used_len);

/* Post n event buffers on the event queue (and kick). */
int vuf_scsi_event_post(struct vuf *h, unsigned n);
/* Next event: 1 (buffer re-posted), 0 on timeout, -errno. */
int vuf_scsi_event_get(struct vuf *h, struct vuf_scsi_event *ev, int timeout_ms);

/* CDB builders; return the CDB length. */
unsigned vuf_cdb_tur(uint8_t *cdb);
unsigned vuf_cdb_inquiry(uint8_t *cdb, bool evpd, uint8_t page, uint16_t alloc);
unsigned vuf_cdb_read_capacity16(uint8_t *cdb, uint32_t alloc);
unsigned vuf_cdb_rw10(uint8_t *cdb, bool write, uint32_t lba, uint16_t blocks);
unsigned vuf_cdb_rw16(uint8_t *cdb, bool write, uint64_t lba, uint32_t blocks);
unsigned vuf_cdb_sync_cache10(uint8_t *cdb);
unsigned vuf_cdb_report_luns(uint8_t *cdb, uint32_t alloc);
unsigned vuf_cdb_request_sense(uint8_t *cdb, uint8_t alloc);

/* TEST UNIT READY until GOOD (at most 4 tries): clears pending unit attentions.
 * Returns 0 when GOOD was reached. */
int vuf_scsi_clear_ua(struct vuf *h, unsigned target, unsigned lun);

#endif
