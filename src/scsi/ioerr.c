/* The I/O error policy hook and held commands (QEMU's werror/rerror as seen
 * from the SCSI layer). A failed block request asks the LU's owner
 * (io_error_cb) what to do: report it (the step's completion gets the
 * error and builds the sense), ignore it (the step's completion gets 0), or
 * hold the command. A held command keeps its block request as it was
 * (operation, range, buffers, completion), stays in flight on its LU, and is
 * resubmitted by scsi_bus_retry_held; the policy itself and stopping the
 * guest's queues are the owner's business. */
#include "scsi/scsi_int.h"

static void held_insert(struct scsi_lun *lu, struct scsi_cmd *cmd)
{
    struct scsi_cmd **pp = &lu->held;

    /* arrival order, whatever order the failures came in */
    while (*pp && (*pp)->seq < cmd->seq)
        pp = &(*pp)->next_held;
    cmd->next_held = *pp;
    *pp = cmd;
    cmd->flags |= SCSI_CMDF_HELD;
    cmd->tgt->bus->nheld++;
}

static void io_done(struct blk_req *req, int ret);

static void io_done_exclusive_cb(void *opaque)
{
    struct scsi_cmd *cmd = opaque;

    scsi_lock();
    io_done(&cmd->breq, cmd->xret);
    scsi_unlock();
}

static void io_done(struct blk_req *req, int ret)
{
    struct scsi_cmd *cmd = req->opaque;
    struct scsi_lun *lu = cmd->lu;

    /* the policy is the owner's, held commands are the LU's: on an I/O
     * thread, a failure goes to the control thread */
    if (ret < 0 && scsi_in_io_thread()) {
        cmd->xret = ret;
        scsi_run_exclusive(&cmd->xcall, io_done_exclusive_cb, cmd);
        return;
    }
    /* an aborted command completes with TASK ABORTED anyway; an LU being
     * removed reports (nobody would retry the command) */
    if (ret < 0 && !(cmd->flags & SCSI_CMDF_ABORTED) && !lu->removed && lu->io_error_cb) {
        struct scsi_io_error e = {
            .is_read = req->op == BLK_OP_READ, .err = -ret, .offset = req->offset, .len = req->len,
        };

        switch (lu->io_error_cb(lu->io_error_opaque, &e)) {
        case SCSI_IOERR_IGNORE:
            ret = 0;
            break;
        case SCSI_IOERR_HOLD:
            held_insert(lu, cmd);
            return;
        case SCSI_IOERR_REPORT:
            break;
        }
    }
    cmd->io_cb(req, ret);
}

void scsi_io_prepare(struct scsi_cmd *cmd, blk_done_cb *cb)
{
    cmd->io_cb = cb;
    cmd->breq.done_cb = io_done;
    cmd->breq.opaque = cmd;
}

/* Unlink the held commands of lu that pass pick (NULL: all), keeping their
 * order; returns them as a list through next_held. */
static struct scsi_cmd *held_take(struct scsi_lun *lu, bool (*pick)(void *arg, const struct scsi_cmd *c),
                                  void *arg)
{
    struct scsi_cmd **pp = &lu->held, *out = NULL, **tail = &out;

    while (*pp) {
        struct scsi_cmd *c = *pp;

        if (pick && !pick(arg, c)) {
            pp = &c->next_held;
            continue;
        }
        *pp = c->next_held;
        c->next_held = NULL;
        c->flags &= ~SCSI_CMDF_HELD;
        c->tgt->bus->nheld--;
        *tail = c;
        tail = &c->next_held;
    }
    return out;
}

enum held_end { END_COMPLETE, END_ABORT, END_RESET };

/* Complete a list from held_take: aborted (TASK ABORTED, host ABORTED or
 * RESET) unless the command was marked already. */
static void held_complete(struct scsi_lun *lu, struct scsi_cmd *list, enum held_end how)
{
    if (!list)
        return;
    scsi_lun_hold(lu);      /* a completion may remove the LU */
    while (list) {
        struct scsi_cmd *c = list;

        list = c->next_held;
        c->next_held = NULL;
        if (how != END_COMPLETE && !(c->flags & SCSI_CMDF_ABORTED))
            scsi_cmd_mark_aborted(c, how == END_RESET);
        scsi_cmd_complete(c, SENSE_OK);
    }
    scsi_lun_release(lu);
}

static bool is_aborted(void *arg, const struct scsi_cmd *c)
{
    (void)arg;
    return c->flags & SCSI_CMDF_ABORTED;
}

void scsi_held_flush_aborted(struct scsi_lun *lu)
{
    if (lu->held)
        held_complete(lu, held_take(lu, is_aborted, NULL), END_COMPLETE);
}

void scsi_held_abort_all(struct scsi_lun *lu)
{
    if (lu->held)
        held_complete(lu, held_take(lu, NULL, NULL), END_ABORT);
}

static int retry_lu(void *opaque, struct scsi_lun *lu)
{
    struct scsi_cmd *list;

    (void)opaque;
    if (!lu->held)
        return 0;
    /* Taken first: a retry refused at once goes through the policy again and
     * may be held again, on the (now empty) list, for the next round. */
    list = held_take(lu, NULL, NULL);
    scsi_lun_hold(lu);
    while (list) {
        struct scsi_cmd *c = list;
        int ret;

        list = c->next_held;
        c->next_held = NULL;
        ret = blk_submit(c->blk_ctx, c->breq.drive, &c->breq);
        if (ret < 0)
            io_done(&c->breq, ret);
    }
    scsi_lun_release(lu);
    return 0;
}

void scsi_bus_retry_held(struct scsi_bus *bus)
{
    for (unsigned t = 0; t <= SCSI_MAX_TARGET; t++)
        if (bus->targets[t] && bus->targets[t]->nluns)
            scsi_target_foreach(bus->targets[t], retry_lu, NULL);
}

struct reset_ctx {
    struct scsi_bus *bus;
    bool (*match)(void *opaque, const struct scsi_cmd *cmd);
    void *opaque;
};

static bool reset_pick(void *arg, const struct scsi_cmd *c)
{
    const struct reset_ctx *r = arg;

    return c->tgt->bus == r->bus && (!r->match || r->match(r->opaque, c));
}

static int reset_lu(void *opaque, struct scsi_lun *lu)
{
    if (lu->held)
        held_complete(lu, held_take(lu, reset_pick, opaque), END_RESET);
    return 0;
}

void scsi_bus_reset_held(struct scsi_bus *bus, bool (*match)(void *opaque, const struct scsi_cmd *cmd),
                         void *opaque)
{
    struct reset_ctx r = { bus, match, opaque };

    for (unsigned t = 0; t <= SCSI_MAX_TARGET && bus->nheld; t++)
        if (bus->targets[t] && bus->targets[t]->nluns)
            scsi_target_foreach(bus->targets[t], reset_lu, &r);
}

unsigned scsi_bus_held_count(const struct scsi_bus *bus)
{
    return bus->nheld;
}
