/* Helpers for the SCSI unit tests: a bus with LUNs on fake drives, commands
 * run to completion, sense decoding (fixed and descriptor). */
#ifndef VSCSI_TESTS_SCSI_TEST_H
#define VSCSI_TESTS_SCSI_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fake_blk.h"
#include "scsi/scsi.h"

#define T_MAX_EVENTS 64

struct t_env {
    struct scsi_bus *bus;
    struct blk_ctx *ctx;
    struct blk_drive *drive;            /* drive of LUN 0:0 */
    struct blk_drive *extra[16];
    unsigned nextra;
    struct { enum scsi_bus_event ev; uint8_t target; uint16_t lun; } events[T_MAX_EVENTS];
    unsigned nevents;
};

struct tcmd {
    struct scsi_cmd c;
    struct iovec iov[8];
    int done;           /* times done_cb ran */
    unsigned order;     /* completion order stamp */
};

extern unsigned t_order;

/* A bus with target 0 LUN 0 (size bytes, logical block lbs, removable, discard)
 * whose power-on UA has been consumed. */
struct t_env *t_env_new(uint64_t size, uint32_t lbs, bool discard);
void t_env_free(struct t_env *e);
/* Add another LUN on a new fake drive; returns its drive. */
struct blk_drive *t_add_lun(struct t_env *e, uint8_t target, uint16_t lun, const struct scsi_dev_config *cfg,
                            uint64_t size);
void t_clear_ua(struct t_env *e, uint8_t target, uint16_t lun);    /* nexus 0 */
/* Unit attentions are per I_T nexus: a nexus seen for the first time has the
 * power-on UA pending. */
void t_clear_ua_nexus(struct t_env *e, uint8_t target, uint16_t lun, uint32_t nexus);

void tcmd_init(struct tcmd *t, uint8_t target, uint16_t lun, const uint8_t *cdb, unsigned cdb_len,
               enum scsi_dir dir, void *buf, size_t len);
/* Split the buffer into n pieces (exercises iov walks). */
void tcmd_split(struct tcmd *t, unsigned n);
void tcmd_submit(struct t_env *e, struct tcmd *t);
/* Submit and drain the fake block layer until the command is done. */
void tcmd_run(struct t_env *e, struct tcmd *t);
/* Convenience: run cdb on target 0 LUN lun with a data buffer. */
void t_run(struct t_env *e, struct tcmd *t, uint16_t lun, const uint8_t *cdb, unsigned cdb_len,
           enum scsi_dir dir, void *buf, size_t len);

/* Sense decoding: key/asc/ascq (-1 when no sense), SKS bytes (0 = none),
 * INFORMATION (valid flag). */
void t_sense(const struct scsi_cmd *c, int *key, int *asc, int *ascq);
uint32_t t_sks(const struct scsi_cmd *c);
bool t_info(const struct scsi_cmd *c, uint64_t *info);

#define MiB (1024 * 1024ull)

/* A 10-byte READ/WRITE-style CDB: opcode, LBA, transfer length. */
static inline void cdb_rw10(uint8_t *c, uint8_t op, uint32_t lba, uint16_t n)
{
    memset(c, 0, 10);
    c[0] = op;
    c[2] = (uint8_t)(lba >> 24);
    c[3] = (uint8_t)(lba >> 16);
    c[4] = (uint8_t)(lba >> 8);
    c[5] = (uint8_t)lba;
    c[7] = (uint8_t)(n >> 8);
    c[8] = (uint8_t)n;
}

/* Shared result checks (need test.h's CHECK macros in the including file). */
#ifdef CHECK_EQ
static inline void check_sense(const struct tcmd *t, int key, int asc, int ascq)
{
    int k, a, q;

    t_sense(&t->c, &k, &a, &q);
    CHECK_EQ(t->done, 1);
    CHECK_EQ(t->c.host_status, SCSI_HOST_OK);
    CHECK_EQ(t->c.status, SCSI_STATUS_CHECK_CONDITION);
    CHECK(t->c.sense_len >= 8);
    CHECK_EQ(k, key);
    CHECK_EQ(a, asc);
    CHECK_EQ(q, ascq);
}

static inline void check_good(const struct tcmd *t)
{
    CHECK_EQ(t->done, 1);
    CHECK_EQ(t->c.host_status, SCSI_HOST_OK);
    CHECK_EQ(t->c.status, SCSI_STATUS_GOOD);
    CHECK_EQ(t->c.sense_len, 0);
}
#endif

#endif
