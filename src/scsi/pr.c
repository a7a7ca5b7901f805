/* Reservations: persistent reservations (SPC-4 5.13; PERSISTENT RESERVE IN
 * 6.15, PERSISTENT RESERVE OUT 6.16) and the SPC-2 RESERVE/RELEASE(6/10)
 * reservations, with the SPC-3 compatible reservation handling (CRH=1,
 * SPC-4 5.13.3).
 *
 * An I_T nexus is cmd->nexus, an integer the transport gives (one per
 * controller). virtio has no SCSI transport protocol of its own, so the
 * nexus is shown to initiators as a SAS initiator port / target port pair
 * with locally assigned NAA addresses: TransportIDs (SPC-4 7.6.4.6, 24
 * bytes, protocol identifier 6h) name the initiator port of nexus N as
 * PR_INIT_SAS_BASE | N, and its target port has relative target port
 * identifier N + 1 (VPD 83, spc.c).
 *
 * PERSISTENT RESERVE OUT works on a copy of the state: with APTPL the copy
 * is written to the state file first, and only when that succeeded does it
 * become current and do its unit attentions and task aborts happen. */
#include "scsi/scsi_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/opts.h"

#define PR_MAX_REG      64          /* registrations per LU (05/55/04 beyond) */
#define PR_PARAM_MAX    4096        /* PERSISTENT RESERVE OUT parameter list */
#define PR_TID_LEN      24          /* SAS TransportID */
#define PR_PROTO_SAS    0x06

enum pr_type {
    PR_WE = 1, PR_EA = 3, PR_WE_RO = 5, PR_EA_RO = 6, PR_WE_AR = 7, PR_EA_AR = 8,
};

enum pr_out_sa {
    PRO_REGISTER = 0, PRO_RESERVE = 1, PRO_RELEASE = 2, PRO_CLEAR = 3, PRO_PREEMPT = 4,
    PRO_PREEMPT_ABORT = 5, PRO_REGISTER_IGNORE = 6, PRO_REGISTER_MOVE = 7,
};

struct pr_reg {
    uint32_t nexus;
    bool all_tg_pt;
    uint64_t key;
};

struct pr_state {
    uint32_t generation;
    bool aptpl;                     /* persist through power loss (APTPL) */
    bool reserved;
    uint8_t type;
    uint32_t holder;                /* nexus holding it (not for all-registrants types) */
    unsigned nreg;
    struct pr_reg reg[PR_MAX_REG];
};

struct scsi_pr {
    struct pr_state st;
    bool res2;                      /* SPC-2 RESERVE(6/10) reservation */
    uint32_t res2_nexus;
    char *path;                     /* APTPL state file; NULL: PTPL_C=0 */
};

/* Unit attentions and aborts a PERSISTENT RESERVE OUT causes, applied once
 * the new state is in place. */
struct pr_fx {
    unsigned nua, nabort;
    struct { uint32_t nexus; uint8_t reason; } ua[2 * PR_MAX_REG];
    uint32_t abort[PR_MAX_REG];
};

/* ------------------------------------------------------------- helpers */

static bool type_valid(unsigned t)
{
    return t == PR_WE || t == PR_EA || t == PR_WE_RO || t == PR_EA_RO || t == PR_WE_AR || t == PR_EA_AR;
}

static bool type_all_reg(unsigned t) { return t == PR_WE_AR || t == PR_EA_AR; }
static bool type_reg_only(unsigned t) { return t == PR_WE_RO || t == PR_EA_RO; }
static bool type_we(unsigned t) { return t == PR_WE || t == PR_WE_RO || t == PR_WE_AR; }

static int reg_find(const struct pr_state *st, uint32_t nexus)
{
    for (unsigned i = 0; i < st->nreg; i++)
        if (st->reg[i].nexus == nexus)
            return (int)i;
    return -1;
}

static bool is_holder(const struct pr_state *st, uint32_t nexus)
{
    if (!st->reserved)
        return false;
    if (type_all_reg(st->type))
        return reg_find(st, nexus) >= 0;
    return st->holder == nexus;
}

static void reg_remove(struct pr_state *st, unsigned i)
{
    st->reg[i] = st->reg[--st->nreg];
}

static void fx_ua(struct pr_fx *fx, uint32_t nexus, int reason)
{
    if (fx->nua < sizeof(fx->ua) / sizeof(fx->ua[0])) {
        fx->ua[fx->nua].nexus = nexus;
        fx->ua[fx->nua].reason = (uint8_t)reason;
        fx->nua++;
    }
}

/* UA for every registered nexus but one (SPC-4 5.13.11.*) */
static void fx_ua_registered(struct pr_fx *fx, const struct pr_state *st, uint32_t except, int reason)
{
    for (unsigned i = 0; i < st->nreg; i++)
        if (st->reg[i].nexus != except)
            fx_ua(fx, st->reg[i].nexus, reason);
}

uint16_t scsi_pr_rel_port(uint32_t nexus)
{
    return (uint16_t)(nexus % 0xffffu + 1);     /* 0 is reserved (SPC-4 7.8.6.7) */
}

uint64_t scsi_pr_init_port_addr(uint32_t nexus)
{
    return PR_INIT_SAS_BASE | nexus;
}

static void put_tid(uint8_t *b, uint32_t nexus)
{
    memset(b, 0, PR_TID_LEN);
    b[0] = PR_PROTO_SAS;                        /* FORMAT CODE 00b */
    put_be64(&b[4], scsi_pr_init_port_addr(nexus));
}

/* A TransportID naming one of our initiator ports: 0 and *nexus, else -1. */
static int parse_tid(const uint8_t *b, size_t len, uint32_t *nexus)
{
    uint64_t a;

    if (len < PR_TID_LEN || b[0] != PR_PROTO_SAS)
        return -1;
    a = get_be64(&b[4]);
    if ((a & ~(uint64_t)UINT32_MAX) != PR_INIT_SAS_BASE)
        return -1;
    *nexus = (uint32_t)a;
    return 0;
}

/* ----------------------------------------------------- APTPL state file */

/* SPC-4 5.13.5: with APTPL the registrations and the reservation survive a
 * power loss, here a restart of the daemon. Written to PATH.tmp, synced and
 * renamed over PATH, so a crash leaves the old or the new file. */
static int pr_save(const struct scsi_pr *pr, const struct pr_state *st)
{
    char tmp[sizeof(((struct scsi_dev_config *)0)->pr_state) + 8];
    FILE *f;
    int ret = 0;

    snprintf(tmp, sizeof(tmp), "%s.tmp", pr->path);
    f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "# vscsid persistent reservations (SPC-4 5.13.5 APTPL)\nversion 1\n");
    fprintf(f, "generation %" PRIu32 "\naptpl %d\n", st->generation, st->aptpl ? 1 : 0);
    if (st->aptpl) {
        for (unsigned i = 0; i < st->nreg; i++)
            fprintf(f, "reg %" PRIu32 " 0x%016" PRIx64 " %d\n", st->reg[i].nexus, st->reg[i].key,
                    st->reg[i].all_tg_pt ? 1 : 0);
        if (st->reserved)
            fprintf(f, "reservation %u %" PRIu32 "\n", st->type, st->holder);
    }
    if (fflush(f) || fsync(fileno(f)))
        ret = -errno;
    if (fclose(f) && !ret)
        ret = -errno;
    if (!ret && rename(tmp, pr->path))
        ret = -errno;
    if (ret) {
        log_err("pr-state %s: %s", pr->path, strerror(-ret));
        unlink(tmp);
    }
    return ret;
}

static int pr_load(struct scsi_pr *pr, char *err, size_t errlen)
{
    struct pr_state st;
    char line[256];
    unsigned lineno = 0;
    bool version = false;
    FILE *f = fopen(pr->path, "r");

    if (!f) {
        if (errno == ENOENT)
            return 0;       /* nothing saved yet */
        snprintf(err, errlen, "pr-state=%s: %s", pr->path, strerror(errno));
        return -errno;
    }
    memset(&st, 0, sizeof(st));
    while (fgets(line, sizeof(line), f)) {
        /* "keyword N [N [N]]": numbers decimal or 0x hex, each range-checked
         * (sscanf would wrap an overflowing number silently). */
        char *w[5], *save = NULL;
        uint64_t n[3];
        unsigned nw = 0;
        bool ok = true;

        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        for (char *t = strtok_r(line, " \t\n", &save); t && nw < 5; t = strtok_r(NULL, " \t\n", &save))
            w[nw++] = t;
        for (unsigned i = 1; i < nw && i < 4; i++)
            ok = ok && parse_u64(w[i], &n[i - 1]) == 0;
        ok = ok && nw >= 2 && nw <= 4;
        if (ok && nw == 2 && !strcmp(w[0], "version") && n[0] == 1) {
            version = true;
        } else if (ok && nw == 2 && !strcmp(w[0], "generation") && n[0] <= UINT32_MAX) {
            st.generation = (uint32_t)n[0];
        } else if (ok && nw == 2 && !strcmp(w[0], "aptpl") && n[0] <= 1) {
            st.aptpl = n[0];
        } else if (ok && nw == 4 && !strcmp(w[0], "reg") && n[0] <= UINT32_MAX && n[1] &&
                   n[2] <= 1 && st.nreg < PR_MAX_REG && reg_find(&st, (uint32_t)n[0]) < 0) {
            st.reg[st.nreg].nexus = (uint32_t)n[0];
            st.reg[st.nreg].key = n[1];
            st.reg[st.nreg].all_tg_pt = n[2];
            st.nreg++;
        } else if (ok && nw == 3 && !strcmp(w[0], "reservation") && n[0] <= UINT8_MAX &&
                   type_valid((unsigned)n[0]) && n[1] <= UINT32_MAX) {
            st.reserved = true;
            st.type = (uint8_t)n[0];
            st.holder = (uint32_t)n[1];
        } else {
            snprintf(err, errlen, "pr-state=%s: line %u is not understood; remove the file to start "
                     "without reservations", pr->path, lineno);
            fclose(f);
            return -EINVAL;
        }
    }
    fclose(f);
    if (!version || (st.reserved && (!st.nreg ||
                     (!type_all_reg(st.type) && reg_find(&st, st.holder) < 0)))) {
        snprintf(err, errlen, "pr-state=%s: not a vscsid reservation state file (or inconsistent); "
                 "remove it to start without reservations", pr->path);
        return -EINVAL;
    }
    if (st.aptpl)
        pr->st = st;
    else
        pr->st.generation = st.generation;
    return 0;
}

int scsi_pr_init(struct scsi_lun *lu, const struct scsi_dev_config *cfg, char *err, size_t errlen)
{
    struct scsi_pr *pr = calloc(1, sizeof(*pr));
    int ret;

    if (!pr) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (cfg->pr_state[0]) {
        if (!memchr(cfg->pr_state, '\0', sizeof(cfg->pr_state)) ||
            strlen(cfg->pr_state) + 8 > sizeof(cfg->pr_state)) {
            snprintf(err, errlen, "pr-state: path too long");
            free(pr);
            return -EINVAL;
        }
        pr->path = strdup(cfg->pr_state);
        if (!pr->path) {
            free(pr);
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        ret = pr_load(pr, err, errlen);
        if (ret) {
            free(pr->path);
            free(pr);
            return ret;
        }
    }
    lu->pr = pr;
    return 0;
}

void scsi_pr_free(struct scsi_lun *lu)
{
    if (!lu->pr)
        return;
    free(lu->pr->path);
    free(lu->pr);
    lu->pr = NULL;
}

/* ---------------------------------------------------- access control */

/* SPC-4 5.13.1 tables "commands allowed in the presence of various
 * reservations" (and SBC-4 4.17): op->flags say whether a command is always
 * allowed (SCSI_OPF_PR_ALLOW), reads (SCSI_OPF_PR_READ: allowed through
 * Write Exclusive types) or neither (conflicts for non-holders). */
static bool pr_cdb_allowed(const struct scsi_cmd *cmd)
{
    switch (cmd->cdb[0]) {
    case 0x1b:      /* START STOP UNIT: START=1, POWER CONDITION 0, no LOEJ */
        return (cmd->cdb[4] & 0xf3) == 0x01;
    case 0x1e:      /* PREVENT ALLOW MEDIUM REMOVAL with PREVENT=0 */
        return !(cmd->cdb[4] & 0x03);
    default:
        return false;
    }
}

int scsi_pr_check(struct scsi_cmd *cmd, const struct scsi_op *op)
{
    const struct scsi_pr *pr = cmd->lu->pr;
    const struct pr_state *st = &pr->st;
    uint32_t n = cmd->nexus;

    if (pr->res2) {
        /* SPC-2 5.5.1: PERSISTENT RESERVE IN/OUT conflict with a RESERVE
         * reservation whoever sends them */
        if (cmd->cdb[0] == 0x5e || cmd->cdb[0] == 0x5f)
            return SENSE_RESERVATION_CONFLICT;
        if (pr->res2_nexus != n && !(op->flags & SCSI_OPF_RES2_OK) &&
            !(cmd->cdb[0] == 0x1e && !(cmd->cdb[4] & 0x03)))
            return SENSE_RESERVATION_CONFLICT;
    }
    if (!st->reserved || is_holder(st, n))
        return SENSE_OK;
    if (type_reg_only(st->type) && reg_find(st, n) >= 0)
        return SENSE_OK;
    if ((op->flags & SCSI_OPF_PR_ALLOW) || pr_cdb_allowed(cmd))
        return SENSE_OK;
    if ((op->flags & SCSI_OPF_PR_READ) && type_we(st->type))
        return SENSE_OK;
    return SENSE_RESERVATION_CONFLICT;
}

int scsi_pr_access(const struct scsi_lun *lu, uint32_t nexus, bool write)
{
    const struct scsi_pr *pr = lu->pr;
    const struct pr_state *st = &pr->st;

    if (pr->res2 && pr->res2_nexus != nexus)
        return SENSE_RESERVATION_CONFLICT;
    if (!st->reserved || is_holder(st, nexus) || (type_reg_only(st->type) && reg_find(st, nexus) >= 0))
        return SENSE_OK;
    return !write && type_we(st->type) ? SENSE_OK : SENSE_RESERVATION_CONFLICT;
}

void scsi_pr_nexus_loss(struct scsi_lun *lu, uint32_t nexus)
{
    /* SPC-2 5.5.1: a RESERVE reservation ends with its I_T nexus; persistent
     * reservations are not affected (SPC-4 5.13.1) */
    if (lu->pr && lu->pr->res2 && lu->pr->res2_nexus == nexus)
        lu->pr->res2 = false;
}

void scsi_pr_lun_reset(struct scsi_lun *lu)
{
    if (lu->pr)
        lu->pr->res2 = false;
}

/* ------------------------------------------- RESERVE / RELEASE (SPC-2) */

/* SPC-4 5.13.3 (CRH=1): with registrations present a RESERVE or RELEASE is
 * GOOD without effect from a reservation holder, or from a registered nexus
 * under a registrants-only or all-registrants reservation, and conflicts
 * otherwise (SPC-2 5.5.1). */
static int crh_check(const struct scsi_cmd *cmd, bool *done)
{
    const struct pr_state *st = &cmd->lu->pr->st;
    uint32_t n = cmd->nexus;

    *done = false;
    if (!st->nreg)
        return SENSE_OK;
    *done = true;
    if (is_holder(st, n) || (st->reserved && type_reg_only(st->type) && reg_find(st, n) >= 0))
        return SENSE_OK;
    return SENSE_RESERVATION_CONFLICT;
}

int scsi_pr_reserve(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_pr *pr = cmd->lu->pr;
    bool done;
    int r;

    (void)p;
    r = crh_check(cmd, &done);
    if (done)
        return r;
    /* SPC-2 7.21: another nexus' reservation conflicted centrally; from the
     * holder it is renewed */
    pr->res2 = true;
    pr->res2_nexus = cmd->nexus;
    return SENSE_OK;
}

int scsi_pr_release(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_pr *pr = cmd->lu->pr;
    bool done;
    int r;

    (void)p;
    r = crh_check(cmd, &done);
    if (done)
        return r;
    /* SPC-2 7.17: GOOD without effect unless this nexus holds it */
    if (pr->res2 && pr->res2_nexus == cmd->nexus)
        pr->res2 = false;
    return SENSE_OK;
}

/* -------------------------------------------- PERSISTENT RESERVE IN */

int scsi_pr_parse_in(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    p->data_len = get_be16(&cmd->cdb[7]);
    return SENSE_OK;
}

static size_t pr_read_keys(const struct pr_state *st, uint8_t *b)
{
    size_t n = 8;

    for (unsigned i = 0; i < st->nreg; i++, n += 8)
        put_be64(&b[n], st->reg[i].key);
    return n;
}

static size_t pr_read_reservation(const struct pr_state *st, uint8_t *b)
{
    int i;

    if (!st->reserved)
        return 8;
    memset(&b[8], 0, 16);
    /* SPC-4 6.15.3.2: the holder's key; 0 for all-registrants types */
    i = type_all_reg(st->type) ? -1 : reg_find(st, st->holder);
    put_be64(&b[8], i >= 0 ? st->reg[i].key : 0);
    b[21] = st->type;                           /* SCOPE 0h: LU_SCOPE */
    return 24;
}

static size_t pr_report_caps(const struct scsi_pr *pr, uint8_t *b)
{
    /* SPC-4 6.15.4 */
    memset(b, 0, 8);
    put_be16(b, 8);
    b[2] = 0x10 | 0x08 | 0x04;                  /* CRH SIP_C ATP_C */
    if (pr->path)
        b[2] |= 0x01;                           /* PTPL_C */
    b[3] = 0x80 | 0x10;                         /* TMV; ALLOW COMMANDS 001b: TEST UNIT READY */
    if (pr->st.aptpl)
        b[3] |= 0x01;                           /* PTPL_A */
    b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02;    /* WR_EX_AR EX_AC_RO WR_EX_RO EX_AC WR_EX */
    b[5] = 0x01;                                /* EX_AC_AR */
    return 8;
}

static size_t pr_full_status(const struct pr_state *st, uint8_t *b)
{
    size_t n = 8;

    /* SPC-4 6.15.5: one descriptor per registered I_T nexus */
    for (unsigned i = 0; i < st->nreg; i++) {
        const struct pr_reg *r = &st->reg[i];
        uint8_t *d = &b[n];

        memset(d, 0, 24);
        put_be64(d, r->key);
        if (r->all_tg_pt)
            d[12] |= 0x02;
        if (is_holder(st, r->nexus)) {
            d[12] |= 0x01;                      /* R_HOLDER */
            d[13] = st->type;
        }
        put_be16(&d[18], scsi_pr_rel_port(r->nexus));
        put_be32(&d[20], PR_TID_LEN);
        put_tid(&d[24], r->nexus);
        n += 24 + PR_TID_LEN;
    }
    return n;
}

int scsi_pr_in(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    const struct scsi_pr *pr = cmd->lu->pr;
    uint8_t b[8 + PR_MAX_REG * (24 + PR_TID_LEN)];
    size_t n;

    memset(b, 0, 8);
    put_be32(b, pr->st.generation);
    switch (cmd->cdb[1] & 0x1f) {
    case 0:
        n = pr_read_keys(&pr->st, b);
        break;
    case 1:
        n = pr_read_reservation(&pr->st, b);
        break;
    case 2:
        n = pr_report_caps(pr, b);
        scsi_datain(cmd, b, n, p->data_len);
        return SENSE_OK;
    default:
        n = pr_full_status(&pr->st, b);
        break;
    }
    /* ADDITIONAL LENGTH: what there is, whatever the allocation length */
    put_be32(&b[4], (uint32_t)(n - 8));
    scsi_datain(cmd, b, n, p->data_len);
    return SENSE_OK;
}

/* ------------------------------------------- PERSISTENT RESERVE OUT */

int scsi_pr_parse_out(struct scsi_cmd *cmd, struct scsi_parsed *p)
{
    unsigned sa = cmd->cdb[1] & 0x1f;
    uint32_t len = get_be32(&cmd->cdb[5]);

    /* SPC-4 6.16.3: 24 bytes, more only with SPEC_I_PT (REGISTER) or for
     * REGISTER AND MOVE; checked against the contents in scsi_pr_out */
    if (len < 24 || len > PR_PARAM_MAX)
        return SENSE_PARAM_LIST_LENGTH;
    if (len != 24 && sa != PRO_REGISTER && sa != PRO_REGISTER_MOVE)
        return SENSE_PARAM_LIST_LENGTH;
    /* RESERVE, RELEASE, PREEMPT (AND ABORT): LU_SCOPE and a defined type */
    if (sa == PRO_RESERVE || sa == PRO_RELEASE || sa == PRO_PREEMPT || sa == PRO_PREEMPT_ABORT) {
        if (cmd->cdb[2] >> 4)
            return scsi_invalid_cdb(cmd, 2, 7);
        if (!type_valid(cmd->cdb[2] & 0x0f))
            return scsi_invalid_cdb(cmd, 2, 3);
    }
    p->data_len = len;
    return SENSE_OK;
}

static int check_key(const struct pr_state *st, uint32_t n, uint64_t key, int *idx)
{
    *idx = reg_find(st, n);
    if (*idx < 0 || st->reg[*idx].key != key)
        return SENSE_RESERVATION_CONFLICT;
    return SENSE_OK;
}

static int pro_register(struct scsi_cmd *cmd, struct pr_state *st, const uint8_t *b, size_t len,
                        bool ignore, struct pr_fx *fx)
{
    const struct scsi_pr *pr = cmd->lu->pr;
    uint32_t me = cmd->nexus;
    uint64_t key = get_be64(b), sakey = get_be64(&b[8]);
    bool spec_i_pt = b[20] & 0x08, all_tg_pt = b[20] & 0x04, aptpl = b[20] & 0x01;
    int i = reg_find(st, me);

    if (spec_i_pt && ignore)
        return scsi_invalid_param(cmd, 20, 3);  /* SPC-4 6.16.3 */
    if (!spec_i_pt && len != 24)
        return SENSE_PARAM_LIST_LENGTH;
    if (aptpl && !pr->path)
        return scsi_invalid_param(cmd, 20, 0);  /* PTPL_C=0 */

    if (i < 0) {
        /* SPC-4 5.13.7: an unregistered nexus; REGISTER wants key 0 */
        if (!ignore && key)
            return SENSE_RESERVATION_CONFLICT;
        if (!sakey)
            return SENSE_OK;                    /* nothing to do; generation unchanged */
        if (spec_i_pt) {
            /* TransportIDs of further initiator ports to register */
            uint32_t tlen;

            if (len < 28)
                return SENSE_PARAM_LIST_LENGTH;
            tlen = get_be32(&b[24]);
            if (tlen > len - 28)
                return SENSE_PARAM_LIST_LENGTH;
            for (size_t o = 0; o < tlen; o += PR_TID_LEN) {
                uint32_t n;

                if (parse_tid(&b[28 + o], tlen - o, &n))
                    return scsi_invalid_param(cmd, (unsigned)(28 + o), 7);
                if (n == me)
                    continue;
                if (reg_find(st, n) >= 0)
                    return SENSE_RESERVATION_CONFLICT;
                if (st->nreg == PR_MAX_REG)
                    return SENSE_INSUFFICIENT_REG_RES;
                st->reg[st->nreg++] = (struct pr_reg){ n, all_tg_pt, sakey };
            }
        }
        if (st->nreg == PR_MAX_REG)
            return SENSE_INSUFFICIENT_REG_RES;
        st->reg[st->nreg++] = (struct pr_reg){ me, all_tg_pt, sakey };
        st->aptpl = aptpl;
        st->generation++;
        return SENSE_OK;
    }
    if (!ignore && st->reg[i].key != key)
        return SENSE_RESERVATION_CONFLICT;
    if (spec_i_pt)
        return scsi_invalid_param(cmd, 20, 3);  /* only for an unregistered nexus */
    if (sakey) {
        st->reg[i].key = sakey;
        st->aptpl = aptpl;
        st->generation++;
        return SENSE_OK;
    }
    /* unregister (SPC-4 5.13.11.3): the holder's reservation goes with it */
    reg_remove(st, (unsigned)i);
    if (st->reserved && (type_all_reg(st->type) ? !st->nreg : st->holder == me)) {
        st->reserved = false;
        if (type_reg_only(st->type))
            fx_ua_registered(fx, st, me, SENSE_UA_RESERVATIONS_RELEASED);
    }
    st->generation++;
    return SENSE_OK;
}

static int pro_reserve(struct scsi_cmd *cmd, struct pr_state *st, uint64_t key, unsigned type)
{
    int i, r = check_key(st, cmd->nexus, key, &i);

    if (r)
        return r;
    /* SPC-4 5.13.9: the same reservation again is GOOD, any other conflicts */
    if (st->reserved)
        return is_holder(st, cmd->nexus) && st->type == type ? SENSE_OK : SENSE_RESERVATION_CONFLICT;
    st->reserved = true;
    st->type = (uint8_t)type;
    st->holder = cmd->nexus;
    return SENSE_OK;
}

static int pro_release(struct scsi_cmd *cmd, struct pr_state *st, uint64_t key, unsigned type,
                       struct pr_fx *fx)
{
    int i, r = check_key(st, cmd->nexus, key, &i);

    if (r)
        return r;
    /* SPC-4 5.13.11.2 */
    if (!st->reserved || !is_holder(st, cmd->nexus))
        return SENSE_OK;
    if (st->type != type)
        return SENSE_INVALID_RELEASE_PR;
    st->reserved = false;
    if (type_reg_only(st->type) || type_all_reg(st->type))
        fx_ua_registered(fx, st, cmd->nexus, SENSE_UA_RESERVATIONS_RELEASED);
    return SENSE_OK;
}

static int pro_clear(struct scsi_cmd *cmd, struct pr_state *st, uint64_t key, struct pr_fx *fx)
{
    int i, r = check_key(st, cmd->nexus, key, &i);

    if (r)
        return r;
    /* SPC-4 5.13.11.6 */
    fx_ua_registered(fx, st, cmd->nexus, SENSE_UA_RESERVATIONS_PREEMPTED);
    st->nreg = 0;
    st->reserved = false;
    st->generation++;
    return SENSE_OK;
}

/* Remove the registrations with key (not the preempting nexus'); counts
 * every match, the preempting nexus included. */
static unsigned remove_key(struct pr_state *st, uint64_t key, uint32_t me, bool all, struct pr_fx *fx,
                           bool abort)
{
    unsigned matched = 0;

    for (unsigned i = 0; i < st->nreg;) {
        struct pr_reg *r = &st->reg[i];

        if (!all && r->key != key) {
            i++;
            continue;
        }
        matched++;
        if (r->nexus == me) {
            i++;
            continue;
        }
        fx_ua(fx, r->nexus, SENSE_UA_REGISTRATIONS_PREEMPTED);
        if (abort && fx->nabort < PR_MAX_REG)
            fx->abort[fx->nabort++] = r->nexus;
        reg_remove(st, i);
    }
    return matched;
}

static int pro_preempt(struct scsi_cmd *cmd, struct pr_state *st, uint64_t key, uint64_t sakey,
                       unsigned type, bool abort, struct pr_fx *fx)
{
    uint32_t me = cmd->nexus;
    int i, r = check_key(st, me, key, &i);

    if (r)
        return r;
    /* SPC-4 5.13.11.4 */
    if (st->reserved && type_all_reg(st->type)) {
        if (!sakey) {
            /* all other registrations go; a new reservation for us */
            remove_key(st, 0, me, true, fx, abort);
            st->type = (uint8_t)type;
            st->holder = me;
        } else if (!remove_key(st, sakey, me, false, fx, abort)) {
            return SENSE_RESERVATION_CONFLICT;
        }
    } else if (!sakey) {
        return scsi_invalid_param(cmd, 8, 7);
    } else if (st->reserved && reg_find(st, st->holder) >= 0 &&
               st->reg[reg_find(st, st->holder)].key == sakey) {
        uint8_t old = st->type;

        /* preempt the reservation: its holder's key names it */
        remove_key(st, sakey, me, false, fx, abort);
        st->type = (uint8_t)type;
        st->holder = me;
        if (old != type)
            fx_ua_registered(fx, st, me, SENSE_UA_RESERVATIONS_RELEASED);
    } else if (!remove_key(st, sakey, me, false, fx, abort)) {
        return SENSE_RESERVATION_CONFLICT;
    }
    st->generation++;
    return SENSE_OK;
}

static int pro_register_move(struct scsi_cmd *cmd, struct pr_state *st, const uint8_t *b, size_t len)
{
    const struct scsi_pr *pr = cmd->lu->pr;
    uint32_t me = cmd->nexus, dest;
    uint64_t key = get_be64(b), sakey = get_be64(&b[8]);
    bool unreg = b[17] & 0x02, aptpl = b[17] & 0x01;
    uint16_t port = get_be16(&b[18]);
    uint32_t tlen = get_be32(&b[20]);
    int i, d, r;

    /* SPC-4 6.16.4 parameter list */
    if (tlen > len - 24)
        return SENSE_PARAM_LIST_LENGTH;
    r = check_key(st, me, key, &i);
    if (r)
        return r;
    /* SPC-4 5.13.8: only the holder of a reservation that has one moves it */
    if (!st->reserved || type_all_reg(st->type) || st->holder != me)
        return SENSE_RESERVATION_CONFLICT;
    if (!sakey)
        return scsi_invalid_param(cmd, 8, 7);
    if (parse_tid(&b[24], tlen, &dest))
        return scsi_invalid_param(cmd, 24, 7);
    if (port != scsi_pr_rel_port(dest))
        return scsi_invalid_param(cmd, 18, 7);
    if (dest == me)
        return scsi_invalid_param(cmd, 24, 7);
    if (aptpl && !pr->path)
        return scsi_invalid_param(cmd, 17, 0);
    d = reg_find(st, dest);
    if (d < 0) {
        if (st->nreg == PR_MAX_REG)
            return SENSE_INSUFFICIENT_REG_RES;
        d = (int)st->nreg++;
        st->reg[d] = (struct pr_reg){ dest, false, sakey };
    } else {
        st->reg[d].key = sakey;
    }
    st->holder = dest;
    if (unreg)
        reg_remove(st, (unsigned)reg_find(st, me));
    st->aptpl = aptpl;
    st->generation++;
    return SENSE_OK;
}

/* The new state, its effects and the parameter list copy of one command */
struct pr_out_work {
    struct pr_state ns;
    struct pr_fx fx;
    uint8_t param[];
};

int scsi_pr_out(struct scsi_cmd *cmd, const struct scsi_parsed *p)
{
    struct scsi_lun *lu = cmd->lu;
    struct scsi_pr *pr = lu->pr;
    unsigned sa = cmd->cdb[1] & 0x1f, type = cmd->cdb[2] & 0x0f;
    size_t len = p->data_len, need = sizeof(struct pr_out_work) + len;
    struct pr_out_work *w;
    struct pr_state *ns;
    struct pr_fx *fx;
    uint8_t *b;
    int r;

    /* bounded: len <= PR_PARAM_MAX (parse) */
    w = scsi_cmd_alloc(cmd, need, need, NULL);
    if (!w)
        return SENSE_BUSY;
    ns = &w->ns;
    fx = &w->fx;
    b = w->param;
    if (scsi_dataout(cmd, b, len) != len)
        return SENSE_PARAM_LIST_LENGTH;
    cmd->xfer_len = len;
    *ns = pr->st;
    fx->nua = fx->nabort = 0;

    /* SPC-4 6.16.3: SPEC_I_PT only for REGISTER */
    if ((b[20] & 0x08) && sa != PRO_REGISTER && sa != PRO_REGISTER_IGNORE && sa != PRO_REGISTER_MOVE)
        return scsi_invalid_param(cmd, 20, 3);
    switch (sa) {
    case PRO_REGISTER:
    case PRO_REGISTER_IGNORE:
        r = pro_register(cmd, ns, b, len, sa == PRO_REGISTER_IGNORE, fx);
        break;
    case PRO_RESERVE:
        r = pro_reserve(cmd, ns, get_be64(b), type);
        break;
    case PRO_RELEASE:
        r = pro_release(cmd, ns, get_be64(b), type, fx);
        break;
    case PRO_CLEAR:
        r = pro_clear(cmd, ns, get_be64(b), fx);
        break;
    case PRO_PREEMPT:
    case PRO_PREEMPT_ABORT:
        r = pro_preempt(cmd, ns, get_be64(b), get_be64(&b[8]), type, sa == PRO_PREEMPT_ABORT, fx);
        break;
    case PRO_REGISTER_MOVE:
        r = pro_register_move(cmd, ns, b, len);
        break;
    default:
        r = scsi_invalid_cdb(cmd, 1, 4);
        break;
    }
    if (r)
        return r;
    if (pr->path && (ns->aptpl || pr->st.aptpl)) {
        if (pr_save(pr, ns))
            return SENSE_INSUFFICIENT_REG_RES;  /* nothing changed */
    }
    pr->st = *ns;
    for (unsigned i = 0; i < fx->nua; i++)
        scsi_lun_ua_add_nexus(lu, fx->ua[i].nexus, fx->ua[i].reason);
    /* SPC-4 5.13.11.5 PREEMPT AND ABORT: the preempted nexuses' tasks */
    for (unsigned i = 0; i < fx->nabort; i++)
        scsi_lun_abort_nexus(lu, fx->abort[i]);
    return SENSE_OK;
}
