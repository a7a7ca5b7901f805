/* The bus: targets and their LUN maps, command dispatch through the opcode
 * tables with the central checks, completion, task management and hot-plug. */
#include "scsi/scsi_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/iov.h"
#include "util/log.h"

/* ------------------------------------------------------------- the lock */

/* A big-reader lock (scsi.h, Threading): a mutex per I/O thread slot, and
 * one that orders exclusive holders. An I/O thread's scsi_lock() takes its
 * own slot's mutex only, so I/O threads never wait for each other; any other
 * thread's takes the writer mutex and then every slot's. Depth counts make
 * both recursive. Slots are numbered once and never shrink; a freed one is
 * reused (its mutex is still taken by exclusive holders, unused). */
struct io_slot {
    pthread_mutex_t m;
    bool used;
} __attribute__((aligned(64)));

static struct io_slot g_slots[SCSI_IO_SLOTS];
static unsigned g_nslots;               /* slots ever made; changed exclusively */
static pthread_mutex_t g_writer = PTHREAD_MUTEX_INITIALIZER;
static struct ev_loop *g_control;       /* runs what an I/O thread sends (scsi_run_exclusive) */
static __thread int t_slot = -1;
static __thread unsigned t_depth;

void scsi_lock(void)
{
    if (t_depth++)
        return;
    if (t_slot >= 0) {
        pthread_mutex_lock(&g_slots[t_slot].m);
        return;
    }
    pthread_mutex_lock(&g_writer);
    for (unsigned i = 0; i < g_nslots; i++)
        pthread_mutex_lock(&g_slots[i].m);
}

void scsi_unlock(void)
{
    if (--t_depth)
        return;
    if (t_slot >= 0) {
        pthread_mutex_unlock(&g_slots[t_slot].m);
        return;
    }
    for (unsigned i = g_nslots; i-- > 0;)
        pthread_mutex_unlock(&g_slots[i].m);
    pthread_mutex_unlock(&g_writer);
}

int scsi_io_slot_new(struct ev_loop *control)
{
    unsigned i = 0;

    while (i < g_nslots && g_slots[i].used)
        i++;
    if (i == SCSI_IO_SLOTS)
        return -ENOSPC;
    if (i == g_nslots) {
        pthread_mutex_init(&g_slots[i].m, NULL);
        /* the caller holds the lock exclusively: so it does this slot too */
        if (t_depth)
            pthread_mutex_lock(&g_slots[i].m);
        g_nslots++;
    }
    g_slots[i].used = true;
    g_control = control;
    return (int)i;
}

void scsi_io_slot_free(int slot)
{
    if (slot >= 0 && (unsigned)slot < g_nslots)
        g_slots[slot].used = false;
}

void scsi_io_thread_enter(int slot)
{
    t_slot = slot;
}

bool scsi_in_io_thread(void)
{
    return t_slot >= 0;
}

unsigned scsi_io_slots(void)
{
    return g_nslots;
}

/* From an I/O thread: run c on the control thread, which holds the lock
 * exclusively while it works (c->cb takes it again, to be sure). */
void scsi_run_exclusive(struct ev_call *c, ev_defer_cb *cb, void *opaque)
{
    c->cb = cb;
    c->opaque = opaque;
    ev_loop_post_call(g_control, c);
}

/* ------------------------------------------------------------- LU shares */

/* The share of I/O slot `slot` (-1: the exclusive one, io0). A command's is
 * cmd->share, set when it starts on its LU (dispatch) and moved with the
 * array by lun_io_grow. */
static struct scsi_lun_io *lun_share(const struct scsi_lun *lu, int slot)
{
    /* const for the readers (sums, lookups); every LU is heap memory */
    return slot < 0 ? (struct scsi_lun_io *)&lu->io0 : &lu->io[slot];
}

unsigned scsi_lun_io_sum(const struct scsi_lun *lu, size_t offset)
{
    unsigned n = 0;

    for (int s = -1; s < (int)lu->nio; s++)
        n += *(const unsigned *)((const char *)lun_share(lu, s) + offset);
    return n;
}

/* Exclusive: a share for every I/O slot made so far. Lists move with the
 * array: their first commands point back into it. On failure the LU keeps
 * what it had, and an I/O thread without a share sends its commands here. */
static void lun_io_grow(struct scsi_lun *lu)
{
    unsigned want = g_nslots;
    struct scsi_lun_io *io;

    io = realloc(lu->io, want * sizeof(*io));
    if (!io)
        return;
    memset(&io[lu->nio], 0, (want - lu->nio) * sizeof(*io));
    for (unsigned i = 0; i < lu->nio; i++) {
        if (io[i].inflight)
            io[i].inflight->pprev_inflight = &io[i].inflight;
        for (struct scsi_cmd *c = io[i].inflight; c; c = c->next_inflight)
            c->share = &io[i];
    }
    lu->io = io;
    lu->nio = want;
}

static inline void lun_io_reserve(struct scsi_lun *lu)
{
    if (lu->nio < g_nslots)
        lun_io_grow(lu);
}

/* ---------------------------------------------------------------- LUN map */

struct scsi_lun *scsi_target_find(const struct scsi_target *tgt, uint16_t lun)
{
    struct scsi_lun **chunk;

    if (lun > SCSI_MAX_LUN)
        return NULL;
    chunk = tgt->chunk[lun / SCSI_LUN_CHUNK];
    return chunk ? chunk[lun % SCSI_LUN_CHUNK] : NULL;
}

uint16_t scsi_lun_number(const struct scsi_lun *lu, const struct scsi_target *tgt)
{
    for (unsigned i = 0; i < lu->npaths; i++)
        if (lu->paths[i].tgt == tgt)
            return lu->paths[i].lun;
    return lu->lun;
}

int scsi_target_foreach(const struct scsi_target *tgt,
                        int (*fn)(void *opaque, struct scsi_lun *lu), void *opaque)
{
    for (unsigned c = 0; c < SCSI_LUN_NCHUNKS; c++) {
        struct scsi_lun **chunk = tgt->chunk[c];

        if (!chunk)
            continue;
        for (unsigned i = 0; i < SCSI_LUN_CHUNK; i++) {
            int ret;

            if (!chunk[i])
                continue;
            ret = fn(opaque, chunk[i]);
            if (ret)
                return ret;
        }
    }
    return 0;
}

static int target_map_set(struct scsi_target *tgt, uint16_t lun, struct scsi_lun *lu)
{
    struct scsi_lun ***chunk = &tgt->chunk[lun / SCSI_LUN_CHUNK];

    if (!*chunk) {
        if (!lu)
            return 0;
        *chunk = calloc(SCSI_LUN_CHUNK, sizeof(**chunk));
        if (!*chunk)
            return -ENOMEM;
    }
    (*chunk)[lun % SCSI_LUN_CHUNK] = lu;
    return 0;
}

bool scsi_bus_has_target(const struct scsi_bus *bus, uint8_t target)
{
    const struct scsi_target *tgt = bus->targets[target];

    return tgt && tgt->nluns > 0;
}

struct scsi_lun *scsi_bus_find_lun(const struct scsi_bus *bus, uint8_t target, uint16_t lun)
{
    const struct scsi_target *tgt = bus->targets[target];

    return tgt ? scsi_target_find(tgt, lun) : NULL;
}

struct find_desig_ctx {
    unsigned code_set, type;
    const uint8_t *d;
    size_t len;
    struct scsi_lun *found;
};

static int find_desig_one(void *opaque, struct scsi_lun *lu)
{
    struct find_desig_ctx *c = opaque;
    uint8_t naa[8];
    size_t slen = strlen(lu->serial);

    switch (c->type) {
    case 3:     /* NAA, binary (VPD 83, spc.c) */
        put_be64(naa, lu->wwn);
        if (c->code_set == 1 && c->len == 8 && !memcmp(c->d, naa, 8))
            c->found = lu;
        break;
    case 1:     /* T10 vendor ID: vendor + serial, ASCII */
        if (c->code_set == 2 && c->len == 8 + slen && !memcmp(c->d, lu->vendor, 8) &&
            !memcmp(c->d + 8, lu->serial, slen))
            c->found = lu;
        break;
    }
    return c->found != NULL;
}

struct scsi_lun *scsi_bus_find_lun_by_designator(struct scsi_bus *bus, unsigned code_set, unsigned type,
                                                 const uint8_t *d, size_t len)
{
    struct find_desig_ctx c = { code_set, type, d, len, NULL };

    for (unsigned t = 0; t <= SCSI_MAX_TARGET && !c.found; t++)
        if (bus->targets[t] && bus->targets[t]->nluns)
            scsi_target_foreach(bus->targets[t], find_desig_one, &c);
    return c.found;
}

unsigned scsi_bus_lun_count(const struct scsi_bus *bus)
{
    return bus->nluns;
}

struct foreach_ctx {
    int (*fn)(void *opaque, const struct scsi_lun_info *info);
    void *opaque;
    const struct scsi_target *tgt;
};

static int foreach_one(void *opaque, struct scsi_lun *lu)
{
    struct foreach_ctx *c = opaque;
    struct scsi_lun_info info = {
        .target = c->tgt->id,
        .lun = scsi_lun_number(lu, c->tgt),
        .type = lu->type,
        .id = lu->id,
        .drive = lu->drive,
    };

    return c->fn(c->opaque, &info);
}

int scsi_bus_foreach_lun(const struct scsi_bus *bus,
                         int (*fn)(void *opaque, const struct scsi_lun_info *info), void *opaque)
{
    struct foreach_ctx c = { fn, opaque, NULL };

    for (unsigned t = 0; t <= SCSI_MAX_TARGET; t++) {
        int ret;

        if (!bus->targets[t] || !bus->targets[t]->nluns)
            continue;
        c.tgt = bus->targets[t];
        ret = scsi_target_foreach(bus->targets[t], foreach_one, &c);
        if (ret)
            return ret;
    }
    return 0;
}

/* ------------------------------------------------------------ bus / hotplug */

/* Forget the path (tgt, lun) of lu; returns how many paths are left. The
 * first path is the LU's bus/tgt/lun. */
static unsigned path_drop(struct scsi_lun *lu, const struct scsi_target *tgt, uint16_t lun)
{
    for (unsigned i = 0; i < lu->npaths; i++) {
        if (lu->paths[i].tgt != tgt || lu->paths[i].lun != lun)
            continue;
        memmove(&lu->paths[i], &lu->paths[i + 1], (lu->npaths - i - 1) * sizeof(lu->paths[0]));
        lu->npaths--;
        break;
    }
    if (lu->npaths) {
        lu->tgt = lu->paths[0].tgt;
        lu->bus = lu->tgt->bus;
        lu->lun = lu->paths[0].lun;
    }
    return lu->npaths;
}

struct scsi_bus *scsi_bus_new(void)
{
    return calloc(1, sizeof(struct scsi_bus));
}

void scsi_bus_free(struct scsi_bus *bus)
{
    if (!bus)
        return;
    for (unsigned t = 0; t <= SCSI_MAX_TARGET; t++) {
        struct scsi_target *tgt = bus->targets[t];

        if (!tgt)
            continue;
        for (unsigned c = 0; c < SCSI_LUN_NCHUNKS; c++) {
            if (!tgt->chunk[c])
                continue;
            /* The contract says all LUNs are removed; free leftovers anyway
             * (an LU with a path on another bus only loses this one). */
            for (unsigned i = 0; i < SCSI_LUN_CHUNK; i++) {
                struct scsi_lun *lu = tgt->chunk[c][i];

                if (lu && !path_drop(lu, tgt, (uint16_t)(c * SCSI_LUN_CHUNK + i)))
                    scsi_lun_free(lu);
            }
            free(tgt->chunk[c]);
        }
        free(tgt);
    }
    free(bus);
}

void scsi_bus_set_listener(struct scsi_bus *bus, const struct scsi_bus_listener_ops *ops, void *opaque)
{
    bus->listener = ops;
    bus->listener_opaque = opaque;
}

static void bus_event(struct scsi_bus *bus, enum scsi_bus_event ev, uint8_t target, uint16_t lun)
{
    if (bus->listener && bus->listener->event_cb)
        bus->listener->event_cb(bus->listener_opaque, ev, target, lun);
}

static int ua_luns_changed(void *opaque, struct scsi_lun *lu)
{
    const struct scsi_lun *except = opaque;

    if (lu != except)
        scsi_lun_ua_add(lu, SENSE_UA_LUNS_CHANGED);
    return 0;
}

/* The target for a new LUN at target:lun, created on first use; -EEXIST when
 * the address is taken. Target structures live as long as the bus: draining
 * LUNs point at them. */
static int target_claim(struct scsi_bus *bus, uint8_t target, uint16_t lun,
                        struct scsi_target **out, char *err, size_t errlen)
{
    struct scsi_target *tgt = bus->targets[target];

    if (tgt && scsi_target_find(tgt, lun)) {
        snprintf(err, errlen, "SCSI address %u:%u is in use", target, lun);
        return -EEXIST;
    }
    if (!tgt) {
        tgt = calloc(1, sizeof(*tgt));
        if (!tgt) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        tgt->id = target;
        tgt->bus = bus;
        bus->targets[target] = tgt;
    }
    *out = tgt;
    return 0;
}

int scsi_bus_add_lun(struct scsi_bus *bus, uint8_t target, uint16_t lun,
                     const struct scsi_dev_config *cfg, struct blk_drive *drive,
                     char *err, size_t errlen)
{
    struct scsi_target *tgt = bus->targets[target];
    struct scsi_lun *lu;
    int ret;

    if (lun > SCSI_MAX_LUN) {
        snprintf(err, errlen, "LUN %u out of range (0..%u)", lun, SCSI_MAX_LUN);
        return -EINVAL;
    }
    ret = target_claim(bus, target, lun, &tgt, err, errlen);
    if (ret < 0)
        return ret;
    ret = scsi_lun_new(bus, tgt, lun, cfg, drive, &lu, err, errlen);
    if (ret)
        return ret;
    lun_io_reserve(lu);
    ret = target_map_set(tgt, lun, lu);
    if (ret) {
        scsi_lun_free(lu);
        snprintf(err, errlen, "out of memory");
        return ret;
    }
    tgt->nluns++;
    bus->nluns++;
    /* SPC-4 6.33: the other LUNs report REPORTED LUNS DATA HAS CHANGED */
    scsi_target_foreach(tgt, ua_luns_changed, lu);
    bus_event(bus, SCSI_EV_LUN_ADDED, target, lun);
    return 0;
}

int scsi_bus_add_path(struct scsi_bus *bus, uint8_t target, uint16_t lun, struct scsi_bus *first_bus,
                      uint8_t first_target, uint16_t first_lun, char *err, size_t errlen)
{
    struct scsi_lun *lu = scsi_bus_find_lun(first_bus, first_target, first_lun);
    struct scsi_target *tgt = bus->targets[target];
    int ret;

    if (!lu || lu->removed) {
        snprintf(err, errlen, "no logical unit at %u:%u to add a path to", first_target, first_lun);
        return -ENOENT;
    }
    if (lun > SCSI_MAX_LUN) {
        snprintf(err, errlen, "LUN %u out of range (0..%u)", lun, SCSI_MAX_LUN);
        return -EINVAL;
    }
    for (unsigned i = 0; i < lu->npaths; i++) {
        if (lu->paths[i].tgt->bus == bus) {
            snprintf(err, errlen, "the logical unit has a path on this bus already");
            return -EINVAL;
        }
    }
    if (lu->npaths == SCSI_LUN_MAX_PATHS) {
        snprintf(err, errlen, "the logical unit has %u paths already", SCSI_LUN_MAX_PATHS);
        return -ENOSPC;
    }
    ret = target_claim(bus, target, lun, &tgt, err, errlen);
    if (ret < 0)
        return ret;
    ret = target_map_set(tgt, lun, lu);
    if (ret) {
        snprintf(err, errlen, "out of memory");
        return ret;
    }
    lu->paths[lu->npaths].tgt = tgt;
    lu->paths[lu->npaths].lun = lun;
    lu->npaths++;
    tgt->nluns++;
    bus->nluns++;
    scsi_target_foreach(tgt, ua_luns_changed, lu);
    bus_event(bus, SCSI_EV_LUN_ADDED, target, lun);
    return 0;
}

static void lun_finish_remove(struct scsi_lun *lu)
{
    void (*cb)(void *) = lu->remove_cb;
    void *opaque = lu->remove_opaque;

    scsi_lun_free(lu);
    if (cb)
        cb(opaque);
}

int scsi_bus_remove_lun(struct scsi_bus *bus, uint8_t target, uint16_t lun,
                        void (*done_cb)(void *opaque), void *opaque)
{
    struct scsi_target *tgt = bus->targets[target];
    struct scsi_lun *lu = tgt ? scsi_target_find(tgt, lun) : NULL;

    if (!lu)
        return -ENOENT;
    /* Out of the map at once: new commands see an absent LUN (05/25/00). */
    target_map_set(tgt, lun, NULL);
    tgt->nluns--;
    bus->nluns--;
    if (path_drop(lu, tgt, lun)) {
        /* other paths remain: the LU lives on; this path's commands still in
         * flight complete normally (their target lives as long as the bus) */
        scsi_target_foreach(tgt, ua_luns_changed, NULL);
        bus_event(bus, SCSI_EV_LUN_REMOVED, target, lun);
        if (done_cb)
            done_cb(opaque);
        return 0;
    }
    lu->removed = true;
    lu->remove_cb = done_cb;
    lu->remove_opaque = opaque;
    scsi_target_foreach(tgt, ua_luns_changed, NULL);
    bus_event(bus, SCSI_EV_LUN_REMOVED, target, lun);
    /* commands held after an I/O error would wait for a retry that no
     * longer makes sense: aborted (host ABORTED), as a real unplug does */
    scsi_lun_hold(lu);
    scsi_held_abort_all(lu);
    scsi_lun_release(lu);
    return 0;
}

void scsi_bus_capacity_changed(struct scsi_bus *bus, uint8_t target, uint16_t lun)
{
    struct scsi_lun *lu = scsi_bus_find_lun(bus, target, lun);

    /* SBC-4 4.x: CAPACITY DATA HAS CHANGED to every I_T nexus, on every path.
     * SPC-4 lists 2A/09 for direct-access devices only: a CD-ROM reports
     * nothing (as QEMU), its guest rereads the capacity with a new medium. */
    if (!lu || lu->type != SCSI_DEV_HD)
        return;
    scsi_lun_ua_add(lu, SENSE_UA_CAPACITY_CHANGED);
    scsi_lun_notify(lu, SCSI_EV_CAPACITY_CHANGED);
}

void scsi_lun_notify(struct scsi_lun *lu, enum scsi_bus_event ev)
{
    for (unsigned i = 0; i < lu->npaths; i++)
        bus_event(lu->paths[i].tgt->bus, ev, lu->paths[i].tgt->id, lu->paths[i].lun);
}

/* ------------------------------------------------------------- data moves */

void scsi_datain(struct scsi_cmd *cmd, const void *buf, size_t len, size_t alloc)
{
    size_t n = len < alloc ? len : alloc;

    if (n > cmd->buf_len)
        n = cmd->buf_len;
    if (cmd->dir != SCSI_DIR_FROM_DEV)
        n = 0;
    cmd->xfer_len = iov_from_buf(cmd->iov, cmd->iovcnt, 0, buf, n);
}

size_t scsi_dataout(struct scsi_cmd *cmd, void *buf, size_t len)
{
    if (cmd->dir != SCSI_DIR_TO_DEV)
        return 0;
    if (len > cmd->buf_len)
        len = cmd->buf_len;
    return iov_to_buf(cmd->iov, cmd->iovcnt, 0, buf, len);
}

void *scsi_cmd_alloc(struct scsi_cmd *cmd, size_t want, size_t min, size_t *got)
{
    struct scsi_lun_io *share = cmd->share;
    size_t left = share->buf_bytes < SCSI_LUN_BUF_BUDGET ? SCSI_LUN_BUF_BUDGET - share->buf_bytes : 0;
    size_t n = want < left ? want : left;

    if (cmd->priv || !min)
        return NULL;
    n -= n % min;
    if (n < min)
        return NULL;
    cmd->priv = malloc(n);
    if (!cmd->priv)
        return NULL;
    cmd->priv_len = n;
    share->buf_bytes += n;
    if (got)
        *got = n;
    return cmd->priv;
}

/* ------------------------------------------------------------- completion */

static void tmf_check(struct scsi_target *tgt);
static inline void lun_release(struct scsi_lun *lu, int slot);
static void gate_resume(struct scsi_lun *lu);

static void inflight_unlink(struct scsi_cmd *cmd)
{
    if (!(cmd->flags & SCSI_CMDF_INFLIGHT))
        return;
    if (cmd->next_inflight)
        cmd->next_inflight->pprev_inflight = cmd->pprev_inflight;
    *cmd->pprev_inflight = cmd->next_inflight;
    cmd->next_inflight = NULL;
    cmd->pprev_inflight = NULL;
}

static void complete_exclusive_cb(void *opaque)
{
    struct scsi_cmd *cmd = opaque;

    scsi_lock();
    scsi_cmd_complete(cmd, cmd->xret);
    scsi_unlock();
}

/* On an I/O thread: whether finishing cmd would change more than the
 * thread's own share (an abort to account, commands waiting at the gate, a
 * removal of the LU or of its medium waiting for the last command). */
static bool complete_needs_exclusive(const struct scsi_cmd *cmd)
{
    const struct scsi_lun *lu = cmd->lu;

    return lu && ((cmd->flags & SCSI_CMDF_ABORTED) || cmd->io_slot != t_slot || lu->removed ||
                  lu->deferred || lu->removing);
}

void scsi_cmd_complete(struct scsi_cmd *cmd, int reason)
{
    struct scsi_lun *lu = cmd->lu;
    /* Tracked: linked into its LUN's in-flight list (inflight_link), so never
     * without a LUN; commands for no LUN (or the REPORT LUNS well-known LUN)
     * are not tracked. */
    bool tracked = lu && (cmd->flags & SCSI_CMDF_INFLIGHT);
    bool aborted = cmd->flags & SCSI_CMDF_ABORTED;
    struct scsi_target *tgt = cmd->tgt;     /* the path's: cmd is not ours after done_cb */
    int slot = cmd->io_slot;
    uint32_t gate;

    if (__builtin_expect(t_slot >= 0, 0) && complete_needs_exclusive(cmd)) {
        cmd->xret = reason;
        scsi_run_exclusive(&cmd->xcall, complete_exclusive_cb, cmd);
        return;
    }

    if (aborted) {
        /* SAM-5 7.x: the command's own outcome is replaced by TASK ABORTED */
        cmd->host_status = (cmd->flags & SCSI_CMDF_RESET) ? SCSI_HOST_RESET : SCSI_HOST_ABORTED;
        cmd->status = SCSI_STATUS_TASK_ABORTED;
        cmd->sense_len = 0;
        cmd->xfer_len = 0;
    } else if (reason == SENSE_OK) {
        cmd->status = SCSI_STATUS_GOOD;
        cmd->sense_len = 0;
    } else {
        const struct sense_info *si = sense_reason_info(reason);
        bool desc = lu && lu->d_sense;

        cmd->status = si->status;
        if (si->status == SCSI_STATUS_CHECK_CONDITION) {
            cmd->sense_len = (uint8_t)sense_build(cmd->sense, sizeof(cmd->sense), desc, reason,
                                                  cmd->sense_sks, cmd->flags & SCSI_CMDF_INFO,
                                                  cmd->sense_info);
        } else {
            cmd->sense_len = 0;
        }
        cmd->xfer_len = 0;
    }
    if (cmd->priv) {
        if (lu)
            cmd->share->buf_bytes -= cmd->priv_len;
        free(cmd->priv);
        cmd->priv = NULL;
        cmd->priv_len = 0;
    }
    /* the I/O is over: a removal waiting for this medium may finish */
    if (cmd->medium) {
        cmd->medium = NULL;
        scsi_lun_medium_put(lu, cmd->share);
    }

    if (!tracked || !lu) {     /* tracked commands have an LU; said for the analyzer */
        cmd->done_cb(cmd);
        return;
    }
    inflight_unlink(cmd);
    gate = cmd->flags & SCSI_CMDF_GATE;
    if (gate & SCSI_CMDF_WCOUNTED)
        cmd->share->nwrites--;
    if (gate & SCSI_CMDF_EXCL)
        lu->excl_active = false;
    if (gate & SCSI_CMDF_RWCOUNTED)
        cmd->share->nrw--;
    if (gate & SCSI_CMDF_ATOMIC)
        lu->atomic_active = false;
    cmd->flags &= ~(SCSI_CMDF_INFLIGHT | SCSI_CMDF_GATE);
    /* ninflight still counts this command while done_cb runs, so a removal
     * requested from inside done_cb waits for us. */
    cmd->done_cb(cmd);
    /* cmd belongs to the transport again: don't touch it below. */
    if (aborted) {
        lu->naborted--;
        tgt->naborted--;
        tmf_check(tgt);
    }
    if (gate && lu->deferred)
        gate_resume(lu);
    lun_release(lu, slot);
}

/* ------------------------------------------------------------- dispatch */

static int check_usage(struct scsi_cmd *cmd, const struct scsi_op *op, bool is_sa)
{
    const uint8_t *u = op->usage;
    unsigned last = op->cdb_len - 1u;

    if (!u)
        return SENSE_OK;
    for (unsigned i = 1; i <= last; i++) {
        uint8_t allowed = u[i];
        uint8_t bad;

        if (i == 1 && is_sa)
            allowed |= 0x1f;    /* the SERVICE ACTION field, matched already */
        if (i == last)
            allowed |= 0xc0;    /* CONTROL: vendor-specific bits are ignored */
        bad = cmd->cdb[i] & (uint8_t)~allowed;
        if (bad)
            return scsi_invalid_cdb(cmd, i, 31 - __builtin_clz(bad));
    }
    return SENSE_OK;
}

static const struct scsi_op *find_sa(const struct scsi_op *op, uint8_t sa)
{
    for (unsigned i = 0; i < op->n_sa; i++)
        if (op->sa_ops[i].sa == sa)
            return &op->sa_ops[i];
    return NULL;
}

static void inflight_link(struct scsi_lun_io *share, struct scsi_cmd *cmd)
{
    cmd->next_inflight = share->inflight;
    if (share->inflight)
        share->inflight->pprev_inflight = &cmd->next_inflight;
    cmd->pprev_inflight = &share->inflight;
    share->inflight = cmd;
    cmd->flags |= SCSI_CMDF_INFLIGHT;
    share->ninflight++;
}

/* Direction and buffer checks (virtio-scsi answers VIRTIO_SCSI_S_OVERRUN,
 * as QEMU does). Returns true when the command may proceed. */
static bool check_dir(const struct scsi_cmd *cmd, const struct scsi_op *op, const struct scsi_parsed *p)
{
    if (!p->data_len)
        return true;
    if (op->flags & SCSI_OPF_DATA_IN) {
        if (cmd->dir != SCSI_DIR_FROM_DEV)
            return false;
        /* allocation-length commands move what fits; the rest is residual */
        return (op->flags & SCSI_OPF_ALLOC) || p->data_len <= cmd->buf_len;
    }
    if (op->flags & SCSI_OPF_DATA_OUT)
        return cmd->dir == SCSI_DIR_TO_DEV && p->data_len <= cmd->buf_len;
    return true;
}

static void dispatch_run(struct scsi_cmd *cmd, const struct scsi_optable *t);

/* The gate (see struct scsi_lun): which commands wait for which. */
enum gate_class { G_NONE, G_READ, G_WRITE, G_EXCL, G_ATOMIC };

static enum gate_class gate_class(uint32_t flags)
{
    if (flags & SCSI_OPF_ATOMIC)
        return G_ATOMIC;
    if (flags & SCSI_OPF_EXCL)
        return G_EXCL;
    if (flags & SCSI_OPF_WRITE)
        return G_WRITE;
    return (flags & SCSI_OPF_RW) ? G_READ : G_NONE;
}

static bool gate_open(const struct scsi_lun *lu, enum gate_class c)
{
    switch (c) {
    case G_ATOMIC:
        return !lu->excl_active && !LUN_IO_SUM(lu, nrw);
    case G_EXCL:
        return !lu->excl_active && !LUN_IO_SUM(lu, nwrites);
    case G_WRITE:
        return !lu->excl_active;
    case G_READ:
        return !lu->atomic_active;
    default:
        return true;
    }
}

static void gate_take(struct scsi_lun *lu, struct scsi_cmd *cmd, enum gate_class c)
{
    cmd->share->nrw++;
    cmd->flags |= SCSI_CMDF_RWCOUNTED;
    switch (c) {
    case G_ATOMIC:
        lu->atomic_active = true;
        cmd->flags |= SCSI_CMDF_ATOMIC;
        /* fall through */
    case G_EXCL:
        lu->excl_active = true;
        cmd->flags |= SCSI_CMDF_EXCL;
        break;
    case G_WRITE:
        cmd->share->nwrites++;
        cmd->flags |= SCSI_CMDF_WCOUNTED;
        break;
    default:
        break;
    }
}

/* Returns true when cmd may run now; otherwise it is queued and runs from
 * gate_resume(), in arrival order. Reads only queue behind an atomic write. */
static bool gate_enter(struct scsi_lun *lu, struct scsi_cmd *cmd, uint32_t flags)
{
    enum gate_class c = gate_class(flags);
    bool behind = c == G_READ ? lu->natomic_wait > 0 : lu->deferred != NULL;

    if (!behind && gate_open(lu, c)) {
        gate_take(lu, cmd, c);
        return true;
    }
    if (c == G_ATOMIC)
        lu->natomic_wait++;
    cmd->next_deferred = NULL;
    *lu->deferred_tail = cmd;
    lu->deferred_tail = &cmd->next_deferred;
    return false;
}

static struct scsi_cmd *gate_pop(struct scsi_lun *lu)
{
    struct scsi_cmd *c = lu->deferred;

    lu->deferred = c->next_deferred;
    if (!lu->deferred)
        lu->deferred_tail = &lu->deferred;
    c->next_deferred = NULL;
    return c;
}

/* A reference across code that completes commands: a done_cb may remove
 * the LU, which is freed when its last command is gone. Exclusive code holds
 * in io0; a command releases in its own share (slot). */
static void lun_hold(struct scsi_lun *lu)
{
    lu->io0.ninflight++;
}

static inline void lun_release(struct scsi_lun *lu, int slot)
{
    struct scsi_lun_io *share = lun_share(lu, slot);

    /* on an I/O thread removed is false (complete_needs_exclusive) */
    if (--share->ninflight == 0 && lu->removed && !LUN_IO_SUM(lu, ninflight))
        lun_finish_remove(lu);
}

void scsi_lun_hold(struct scsi_lun *lu)
{
    lun_hold(lu);
}

void scsi_lun_release(struct scsi_lun *lu)
{
    lun_release(lu, -1);
}

/* Run waiting commands in order while the gate lets them through. */
static void gate_resume(struct scsi_lun *lu)
{
    if (lu->resuming)
        return;     /* the outer loop carries on */
    lun_hold(lu);
    lu->resuming = true;
    while (lu->deferred) {
        struct scsi_cmd *c = lu->deferred;
        enum gate_class gc = gate_class(lu->optable->op[c->cdb[0]].flags);

        if (!(c->flags & SCSI_CMDF_ABORTED)) {
            if (!gate_open(lu, gc))
                break;
            gate_take(lu, c, gc);
        }
        if (gc == G_ATOMIC)
            lu->natomic_wait--;
        gate_pop(lu);
        dispatch_run(c, lu->optable);
    }
    lu->resuming = false;
    lun_release(lu, -1);
}

/* Aborted commands still waiting at the gate complete at once (they never
 * reached the block layer). */
static void gate_flush_aborted(struct scsi_lun *lu)
{
    struct scsi_cmd **pp = &lu->deferred, *ready = NULL, **rtail = &ready;

    /* held after an I/O error (ioerr.c): nothing of theirs is in flight either */
    scsi_held_flush_aborted(lu);

    while (*pp) {
        struct scsi_cmd *c = *pp;

        if (c->flags & SCSI_CMDF_ABORTED) {
            if (gate_class(lu->optable->op[c->cdb[0]].flags) == G_ATOMIC)
                lu->natomic_wait--;
            *pp = c->next_deferred;
            c->next_deferred = NULL;
            *rtail = c;
            rtail = &c->next_deferred;
        } else {
            pp = &c->next_deferred;
        }
    }
    lu->deferred_tail = pp;
    if (!ready)
        return;
    lun_hold(lu);
    while (ready) {
        struct scsi_cmd *c = ready;

        ready = c->next_deferred;
        c->next_deferred = NULL;
        scsi_cmd_complete(c, SENSE_OK);
    }
    /* an aborted exclusive command may have held back the others */
    if (lu->deferred)
        gate_resume(lu);
    lun_release(lu, -1);
}

static void dispatch(struct scsi_cmd *cmd, const struct scsi_optable *t)
{
    struct scsi_lun *lu = cmd->lu;

    if (lu) {
        uint32_t flags = t->op[cmd->cdb[0]].flags;
        struct scsi_lun_io *share = lun_share(lu, cmd->io_slot);

        cmd->share = share;
        inflight_link(share, cmd);
        cmd->seq = share->next_seq++;
        if ((flags & (SCSI_OPF_WRITE | SCSI_OPF_RW)) && !gate_enter(lu, cmd, flags))
            return;
    }
    dispatch_run(cmd, t);
}

bool scsi_lun_write_protected(const struct scsi_lun *lu)
{
    return lu->swp || (lu->drive && blk_is_readonly(lu->drive));
}

static void dispatch_run(struct scsi_cmd *cmd, const struct scsi_optable *t)
{
    struct scsi_lun *lu = cmd->lu;
    const struct scsi_op *op = &t->op[cmd->cdb[0]];
    struct scsi_parsed p = { 0, 0, 0 };
    bool is_sa = false;
    int r;

    if (cmd->flags & SCSI_CMDF_ABORTED) {
        r = SENSE_OK;       /* aborted while waiting at the write gate */
        goto done;
    }

    /* SAM-5 5.14 / SPC-4 5.x: a pending UA is reported to any command but
     * INQUIRY, REPORT LUNS and REQUEST SENSE, and consumed by it. */
    if (lu && !(op->flags & SCSI_OPF_UA_OK) && scsi_lun_ua_peek(lu, cmd->nexus)) {
        r = scsi_lun_ua_take(lu, cmd->nexus);
        goto done;
    }
    /* SBC-4 4.11.4: while a sanitize runs, only INQUIRY, REPORT LUNS and
     * REQUEST SENSE are answered; the rest learn how far it got */
    if (lu && lu->sanitize && !(op->flags & SCSI_OPF_UA_OK)) {
        cmd->sense_sks = SENSE_SKS_VALID | scsi_sanitize_progress(lu);
        r = SENSE_SANITIZE_IN_PROGRESS;
        goto done;
    }
    if ((!op->execute && !op->n_sa) || !cmd->cdb_len) {
        r = t->unsupported_reason;
        goto done;
    }
    if (op->n_sa) {
        const struct scsi_op *sop = find_sa(op, cmd->cdb[1] & 0x1f);

        if (!sop || !sop->execute || (lu && sop->supported && !sop->supported(lu))) {
            /* SPC-4 4.2.5.x: an unsupported service action is an invalid field */
            r = scsi_invalid_cdb(cmd, 1, 4);
            goto done;
        }
        op = sop;
        is_sa = true;
    }
    if (lu && op->supported && !op->supported(lu)) {
        /* A write-protected LU refuses every command that would change the
         * medium with DATA PROTECT, also one it implements only when writable
         * (UNMAP on a read-only drive: SBC-4 4.11, libiscsi ReadOnly). */
        r = (op->flags & SCSI_OPF_WRITE) && scsi_lun_write_protected(lu) ? SENSE_WRITE_PROTECTED
                                                                         : SENSE_INVALID_OPCODE;
        goto done;
    }
    cmd->op = op;
    if (cmd->cdb_len < op->cdb_len) {
        r = SENSE_INVALID_FIELD_CDB;
        goto done;
    }
    r = check_usage(cmd, op, is_sa);
    if (r)
        goto done;
    /* Medium and write protection come before the CDB contents: a write to a
     * protected LU is DATA PROTECT whatever its fields say (as LIO, and what
     * libiscsi ReadOnly expects). A reservation conflict comes first: the
     * reservation holder owns the LU's state (SPC-4 5.13.1). */
    if (lu) {
        r = scsi_pr_check(cmd, op);
        if (r)
            goto done;
        /* the medium the command uses to its end (a removal waits for it) */
        cmd->medium = scsi_lun_medium_get(lu, cmd->share);
        if ((op->flags & SCSI_OPF_MEDIUM) && !cmd->medium) {
            r = scsi_lun_no_medium(lu);
            goto done;
        }
        /* SBC-4 4.11.4: in the sanitize failure mode medium access fails,
         * but a new SANITIZE may try again */
        if ((op->flags & SCSI_OPF_MEDIUM) && lu->sanitize_failed && cmd->cdb[0] != 0x48) {
            r = SENSE_SANITIZE_FAILED;
            goto done;
        }
        if ((op->flags & SCSI_OPF_WRITE) && scsi_lun_write_protected(lu)) {
            r = SENSE_WRITE_PROTECTED;
            goto done;
        }
    }
    if (op->parse) {
        r = op->parse(cmd, &p);
        if (r)
            goto done;
    }
    if (!check_dir(cmd, op, &p)) {
        log_guest("scsi %u:%u: opcode 0x%02x: direction %d buffer %zu for %zu bytes: overrun",
                  cmd->target, cmd->lun, cmd->cdb[0], cmd->dir, cmd->buf_len, p.data_len);
        cmd->host_status = SCSI_HOST_OVERRUN;
        r = SENSE_OK;
        goto done;
    }
    if (lu && (op->flags & SCSI_OPF_LBA)) {
        /* SBC-4 4.5: overflow-safe LBA + length against the capacity */
        uint64_t cap = scsi_lun_capacity(lu);

        if (p.lba > cap || p.nblocks > cap - p.lba) {
            r = SENSE_LBA_OUT_OF_RANGE;
            goto done;
        }
    }
    r = op->execute(cmd, &p);
    if (r == SCSI_ASYNC)
        return;
done:
    scsi_cmd_complete(cmd, r);
}

static void submit_exclusive_cb(void *opaque)
{
    struct scsi_cmd *cmd = opaque;

    scsi_lock();
    scsi_bus_submit(cmd->bus, cmd);
    scsi_unlock();
}

/* On an I/O thread: whether cmd can run there, holding the lock shared. It
 * must be a READ or WRITE (SCSI_OPF_MT) of an LU in a plain state: nothing
 * that the command would change beyond its thread's share (a unit attention
 * to take, COMPARE AND WRITE or an atomic write to wait for), no medium
 * missing, no sanitize. Only exclusive holders change what is read here. */
static bool runs_shared(const struct scsi_lun *lu, const struct scsi_cmd *cmd)
{
    uint32_t f = lu->optable->op[cmd->cdb[0]].flags;

    if (!(f & SCSI_OPF_MT) || (f & (SCSI_OPF_EXCL | SCSI_OPF_ATOMIC)) || (unsigned)t_slot >= lu->nio)
        return false;
    if (lu->sanitize || lu->sanitize_failed || !scsi_lun_medium(lu) || scsi_lun_ua_peek(lu, cmd->nexus))
        return false;
    if (f & SCSI_OPF_WRITE)
        return !lu->deferred && !lu->excl_active;
    return !lu->natomic_wait && !lu->atomic_active;
}

void scsi_bus_submit(struct scsi_bus *bus, struct scsi_cmd *cmd)
{
    struct scsi_target *tgt = bus->targets[cmd->target];

    cmd->host_status = SCSI_HOST_OK;
    cmd->status = SCSI_STATUS_GOOD;
    cmd->sense_len = 0;
    cmd->xfer_len = 0;
    cmd->lu = NULL;
    cmd->tgt = tgt;
    cmd->op = NULL;
    cmd->flags = 0;
    cmd->priv = NULL;
    cmd->priv_len = 0;
    cmd->sense_sks = 0;
    cmd->sense_info = 0;
    cmd->next_deferred = NULL;
    cmd->medium = NULL;
    cmd->state = 0;
    cmd->next_inflight = NULL;
    cmd->pprev_inflight = NULL;
    cmd->io_cb = NULL;
    cmd->next_held = NULL;
    cmd->io_slot = -1;
    cmd->share = NULL;
    cmd->bus = bus;
    if (cmd->cdb_len > SCSI_CDB_MAX)
        cmd->cdb_len = SCSI_CDB_MAX;

    if (!tgt || !tgt->nluns) {
        cmd->host_status = SCSI_HOST_BAD_TARGET;
        cmd->done_cb(cmd);
        return;
    }
    if (__builtin_expect(t_slot >= 0, 0)) {
        struct scsi_lun *lu = cmd->lun_wlun_report ? NULL : scsi_target_find(tgt, cmd->lun);

        if (!lu || !runs_shared(lu, cmd)) {
            /* the control thread looks the LUN up again when it runs it */
            scsi_run_exclusive(&cmd->xcall, submit_exclusive_cb, cmd);
            return;
        }
        cmd->lu = lu;
        cmd->io_slot = t_slot;
        dispatch(cmd, lu->optable);
        return;
    }
    if (cmd->lun_wlun_report) {
        dispatch(cmd, &spc_wlun_optable);
        return;
    }
    cmd->lu = scsi_target_find(tgt, cmd->lun);
    if (cmd->lu)
        lun_io_reserve(cmd->lu);
    dispatch(cmd, cmd->lu ? cmd->lu->optable : &spc_nolun_optable);
}

/* ------------------------------------------------------- task management */

static bool tmf_satisfied(const struct scsi_tmf *tmf, const struct scsi_target *tgt)
{
    return tmf->wait_lu ? tmf->wait_lu->naborted == 0 : tgt->naborted == 0;
}

/* Complete the waiting TMFs whose aborted commands have all completed. */
static void tmf_check(struct scsi_target *tgt)
{
    struct scsi_tmf *ready = NULL, **pp = &tgt->tmfs;

    while (*pp) {
        struct scsi_tmf *t = *pp;

        if (tmf_satisfied(t, tgt)) {
            *pp = t->next;
            t->next = ready;
            ready = t;
        } else {
            pp = &t->next;
        }
    }
    while (ready) {
        struct scsi_tmf *t = ready;

        ready = t->next;
        t->next = NULL;
        t->wait_lu = NULL;
        t->done_cb(t);
    }
}

void scsi_cmd_mark_aborted(struct scsi_cmd *cmd, bool reset)
{
    cmd->flags |= SCSI_CMDF_ABORTED | (reset ? SCSI_CMDF_RESET : 0);
    cmd->lu->naborted++;
    cmd->tgt->naborted++;
}

enum abort_match { MATCH_TAG, MATCH_NEXUS, MATCH_ALL };

/* Mark matching commands aborted; they complete with TASK ABORTED when
 * their I/O returns (the block layer can't cancel). Returns how many match. */
static unsigned lun_abort(struct scsi_lun *lu, enum abort_match m, uint32_t nexus, uint64_t tag, bool reset)
{
    unsigned n = 0;

    for (int s = -1; s < (int)lu->nio; s++) {
        for (struct scsi_cmd *c = lun_share(lu, s)->inflight; c; c = c->next_inflight) {
            if (m != MATCH_ALL && c->nexus != nexus)
                continue;
            if (m == MATCH_TAG && c->tag != tag)
                continue;
            n++;
            if (!(c->flags & SCSI_CMDF_ABORTED))
                scsi_cmd_mark_aborted(c, reset);
        }
    }
    return n;
}

void scsi_lun_abort_nexus(struct scsi_lun *lu, uint32_t nexus)
{
    if (!lun_abort(lu, MATCH_NEXUS, nexus, 0, false))
        return;
    /* those waiting at the write gate complete at once */
    gate_flush_aborted(lu);
}

static bool lun_has_task(const struct scsi_lun *lu, bool by_tag, uint32_t nexus, uint64_t tag)
{
    for (int s = -1; s < (int)lu->nio; s++) {
        for (const struct scsi_cmd *c = lun_share(lu, s)->inflight; c; c = c->next_inflight)
            if (!(c->flags & SCSI_CMDF_ABORTED) && c->nexus == nexus && (!by_tag || c->tag == tag))
                return true;
    }
    return false;
}

struct nexus_reset_ctx {
    uint32_t nexus;
};

static int nexus_reset_one(void *opaque, struct scsi_lun *lu)
{
    struct nexus_reset_ctx *c = opaque;

    lun_abort(lu, MATCH_NEXUS, c->nexus, 0, true);
    scsi_lun_nexus_loss(lu, c->nexus);
    return 0;
}

/* REFERENCE.md: the guest polls its queues after the TMF response, so
 * aborted commands must complete first: the TMF waits for them. */
static void tmf_wait(struct scsi_target *tgt, struct scsi_tmf *tmf)
{
    tmf->pending = 1;
    tmf->next = tgt->tmfs;
    tgt->tmfs = tmf;
}

static int flush_one(void *opaque, struct scsi_lun *lu)
{
    (void)opaque;
    gate_flush_aborted(lu);
    return 0;
}

void scsi_bus_tmf(struct scsi_bus *bus, struct scsi_tmf *tmf)
{
    struct scsi_target *tgt = bus->targets[tmf->target];
    struct scsi_lun *lu;

    tmf->next = NULL;
    tmf->wait_lu = NULL;
    tmf->pending = 0;
    if (!tgt || !tgt->nluns) {
        tmf->response = SCSI_TMF_BAD_TARGET;
        goto done;
    }
    tmf->response = SCSI_TMF_COMPLETE;
    if (tmf->type == SCSI_TMF_I_T_NEXUS_RESET) {
        struct nexus_reset_ctx c = { tmf->nexus };

        scsi_target_foreach(tgt, nexus_reset_one, &c);
        scsi_target_foreach(tgt, flush_one, NULL);
        if (tgt->naborted) {
            tmf_wait(tgt, tmf);
            return;
        }
        goto done;
    }
    lu = scsi_target_find(tgt, tmf->lun);
    if (!lu) {
        tmf->response = SCSI_TMF_INCORRECT_LUN;
        goto done;
    }
    if (tmf->type == SCSI_TMF_QUERY_TASK || tmf->type == SCSI_TMF_QUERY_TASK_SET) {
        bool found = lun_has_task(lu, tmf->type == SCSI_TMF_QUERY_TASK, tmf->nexus, tmf->tag);

        tmf->response = found ? SCSI_TMF_SUCCEEDED : SCSI_TMF_COMPLETE;
        goto done;
    }
    switch (tmf->type) {
    case SCSI_TMF_ABORT_TASK:
        lun_abort(lu, MATCH_TAG, tmf->nexus, tmf->tag, false);
        break;
    case SCSI_TMF_ABORT_TASK_SET:
        lun_abort(lu, MATCH_NEXUS, tmf->nexus, 0, false);
        break;
    case SCSI_TMF_CLEAR_TASK_SET:
        /* TST=0: one task set shared by all nexuses (control mode page) */
        lun_abort(lu, MATCH_ALL, 0, 0, false);
        break;
    case SCSI_TMF_LOGICAL_UNIT_RESET:
        lun_abort(lu, MATCH_ALL, 0, 0, true);
        scsi_lun_reset(lu);
        break;
    case SCSI_TMF_CLEAR_ACA:
    default:
        /* NACA is not supported (INQUIRY NORMACA=0): SAM-5 7.3 */
        tmf->response = SCSI_TMF_REJECTED;
        goto done;
    }
    lun_hold(lu);
    gate_flush_aborted(lu);
    if (lu->naborted) {
        tmf->wait_lu = lu;
        tmf_wait(tgt, tmf);
        lun_release(lu, -1);        /* aborted commands keep it alive */
        return;
    }
    lun_release(lu, -1);
done:
    tmf->done_cb(tmf);
}
