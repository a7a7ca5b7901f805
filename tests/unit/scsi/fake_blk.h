/* In-memory fake of the blk.h functions the SCSI layer uses. Requests queue
 * up in the context and run when the test drains it (fake_ctx_run), so
 * completions never run inside blk_submit, as with the real block layer. */
#ifndef VSCSI_TESTS_FAKE_BLK_H
#define VSCSI_TESTS_FAKE_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "block/blk.h"

#define FAKE_SECTOR 512

struct blk_drive {
    char id[32];
    uint8_t *data;
    uint64_t size;
    uint8_t *mapped;            /* one byte per 512-byte sector */
    bool readonly, discard, discard_zeroes, wce;
    unsigned set_wc_calls;
    /* error injection: the next requests of op (or any op when -1) fail with fail_errno */
    int fail_errno;
    int fail_op;
    unsigned fail_count;        /* 0 = until cleared */
    int submit_errno;           /* blk_submit itself refuses with this */
    /* last request seen, and counts per op */
    enum blk_op last_op;
    uint32_t last_flags;
    uint64_t last_offset, last_len;
    unsigned nops[5];
    uint64_t max_len_seen;
};

struct blk_ctx {
    struct blk_req *q[4096];
    unsigned head, tail;
    unsigned submitted, completed;
    bool in_submit;
};

struct blk_drive *fake_drive_new(uint64_t size);
void fake_drive_free(struct blk_drive *d);
struct blk_ctx *fake_ctx_new(void);
void fake_ctx_free(struct blk_ctx *c);
unsigned fake_ctx_pending(const struct blk_ctx *c);
/* Complete queued requests (and those queued meanwhile) in order; max 0 = all.
 * Returns how many completed. */
unsigned fake_ctx_run(struct blk_ctx *c, unsigned max);
/* Requests submitted by this thread go to c, whatever context they name
 * (NULL: the named one). */
void fake_ctx_bind_thread(struct blk_ctx *c);

#endif
