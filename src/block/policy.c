/* Error policies (QEMU's werror/rerror): their names, and which action a
 * failed request gets. The policy and the I/O status belong to the drive's
 * owner (the daemon's drive, like QEMU's BlockBackend: they stay when the
 * medium changes); carrying the action out (holding the request, stopping
 * the VM) is the device model's and the daemon's. */
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

enum blk_error_policy blk_error_policy_resolve(enum blk_error_policy p, bool is_read)
{
    if (p == BLK_ERR_AUTO)
        p = is_read ? BLK_ERR_REPORT : BLK_ERR_ENOSPC;
    return p;
}

enum blk_error_action blk_error_action(enum blk_error_policy werror, enum blk_error_policy rerror,
                                       bool is_read, int err)
{
    switch (blk_error_policy_resolve(is_read ? rerror : werror, is_read)) {
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
