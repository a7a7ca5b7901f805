/* Error policy of a drive (QEMU's werror/rerror): which action a failed
 * request gets, and the drive's I/O status. Carrying the action out (holding
 * the request, stopping the VM) is the device model's and the daemon's. */
#include "block/blk_int.h"

static const char *const policy_names[] = {
    [BLK_ERR_AUTO] = "auto",
    [BLK_ERR_REPORT] = "report",
    [BLK_ERR_IGNORE] = "ignore",
    [BLK_ERR_STOP] = "stop",
    [BLK_ERR_ENOSPC] = "enospc",
};

static const char *const action_names[] = {
    [BLK_ACTION_REPORT] = "report",
    [BLK_ACTION_IGNORE] = "ignore",
    [BLK_ACTION_STOP] = "stop",
};

static const char *const iostatus_names[] = {
    [BLK_IOSTATUS_OK] = "ok",
    [BLK_IOSTATUS_FAILED] = "failed",
    [BLK_IOSTATUS_NOSPACE] = "nospace",
};

const char *blk_error_policy_name(enum blk_error_policy p)
{
    return (unsigned)p <= BLK_ERR_ENOSPC ? policy_names[p] : "?";
}

const char *blk_error_action_name(enum blk_error_action a)
{
    return (unsigned)a <= BLK_ACTION_STOP ? action_names[a] : "?";
}

const char *blk_io_status_name(enum blk_io_status s)
{
    return (unsigned)s <= BLK_IOSTATUS_NOSPACE ? iostatus_names[s] : "?";
}

/* QEMU's -drive values: auto is not one of them. */
int blk_error_policy_parse(const char *s, bool is_read, enum blk_error_policy *out)
{
    for (unsigned p = BLK_ERR_REPORT; p <= BLK_ERR_ENOSPC; p++) {
        if (strcmp(s, policy_names[p]))
            continue;
        if (p == BLK_ERR_ENOSPC && is_read)
            return -EINVAL;
        *out = (enum blk_error_policy)p;
        return 0;
    }
    return -EINVAL;
}

enum blk_error_policy blk_error_policy(const struct blk_drive *d, bool is_read)
{
    enum blk_error_policy p = is_read ? d->rerror : d->werror;

    if (p == BLK_ERR_AUTO)
        p = is_read ? BLK_ERR_REPORT : BLK_ERR_ENOSPC;
    return p;
}

enum blk_error_action blk_error_action(const struct blk_drive *d, bool is_read, int err)
{
    switch (blk_error_policy(d, is_read)) {
    case BLK_ERR_IGNORE:
        return BLK_ACTION_IGNORE;
    case BLK_ERR_STOP:
        return BLK_ACTION_STOP;
    case BLK_ERR_ENOSPC:
        return err == ENOSPC ? BLK_ACTION_STOP : BLK_ACTION_REPORT;
    default:
        return BLK_ACTION_REPORT;
    }
}

enum blk_io_status blk_iostatus(const struct blk_drive *d)
{
    return (enum blk_io_status)__atomic_load_n(&d->iostatus, __ATOMIC_RELAXED);
}

void blk_iostatus_set_err(struct blk_drive *d, int err)
{
    int ok = BLK_IOSTATUS_OK;
    int v = err == ENOSPC ? BLK_IOSTATUS_NOSPACE : BLK_IOSTATUS_FAILED;

    /* the first error counts until cont (QEMU: only set while ok) */
    __atomic_compare_exchange_n(&d->iostatus, &ok, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void blk_iostatus_reset(struct blk_drive *d)
{
    __atomic_store_n(&d->iostatus, BLK_IOSTATUS_OK, __ATOMIC_RELAXED);
}
