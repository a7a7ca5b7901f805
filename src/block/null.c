/* Null driver: no storage. Reads return zeroes, writes/flush/discard succeed
 * and are dropped; every request completes at the end of the current loop
 * round. Zeroing read buffers costs a memset of the transfer (a few us per
 * MiB), which we pay so that a guest never reads back stale buffer contents
 * and blk_discard_zeroes() can honestly say true. read-zeroes=off skips it
 * for benchmarks of the device path (then blk_discard_zeroes() is false). */
#include "block/blk_int.h"

#include "util/iov.h"

void null_submit(struct blk_ctx *ctx, struct blk_req *req)
{
    if (req->op == BLK_OP_READ && !req->drive->null_no_read_zeroes)
        iov_memset(req->iov, req->iovcnt, 0, 0, req->len);
    blk_complete_later(ctx, req, 0);
}
