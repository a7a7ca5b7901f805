/* Reservations: PERSISTENT RESERVE IN/OUT (every service action and type),
 * access rules per type, unit attentions per I_T nexus, PREEMPT AND ABORT,
 * REGISTER AND MOVE, APTPL state file, SPC-2 RESERVE/RELEASE and CRH. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"
#include "scsi_test.h"
#include "scsi/scsi_int.h"

enum { WE = 1, EA = 3, WE_RO = 5, EA_RO = 6, WE_AR = 7, EA_AR = 8 };
enum { REG = 0, RES = 1, REL = 2, CLR = 3, PRE = 4, PRE_ABORT = 5, REG_IGN = 6, REG_MOVE = 7 };

static void check_conflict(const struct tcmd *t)
{
    CHECK_EQ(t->done, 1);
    CHECK_EQ(t->c.status, SCSI_STATUS_RESERVATION_CONFLICT);
    CHECK_EQ(t->c.sense_len, 0);
}

static void run_nx(struct t_env *e, struct tcmd *t, uint32_t nexus, const uint8_t *cdb, unsigned len,
                   enum scsi_dir dir, void *buf, size_t blen)
{
    tcmd_init(t, 0, 0, cdb, len, dir, buf, blen);
    t->c.nexus = nexus;
    tcmd_run(e, t);
}

static void pr_out_raw(struct t_env *e, struct tcmd *t, uint32_t nexus, unsigned sa, unsigned type,
                       const uint8_t *param, uint32_t plen)
{
    static uint8_t buf[4096];
    uint8_t cdb[10] = { 0x5f, (uint8_t)sa, (uint8_t)type, 0, 0, 0, 0, 0, 0, 0 };

    put_be32(&cdb[5], plen);
    memcpy(buf, param, plen);
    run_nx(e, t, nexus, cdb, 10, SCSI_DIR_TO_DEV, buf, plen);
}

static void pr_out(struct t_env *e, struct tcmd *t, uint32_t nexus, unsigned sa, unsigned type, uint64_t key,
                   uint64_t sakey, uint8_t flags)
{
    uint8_t p[24] = { 0 };

    put_be64(p, key);
    put_be64(&p[8], sakey);
    p[20] = flags;
    pr_out_raw(e, t, nexus, sa, type, p, 24);
}

static size_t pr_in(struct t_env *e, struct tcmd *t, uint32_t nexus, unsigned sa, uint16_t alloc, uint8_t *b)
{
    uint8_t cdb[10] = { 0x5e, (uint8_t)sa, 0, 0, 0, 0, 0, (uint8_t)(alloc >> 8), (uint8_t)alloc, 0 };

    memset(b, 0xcc, 4096);
    run_nx(e, t, nexus, cdb, 10, SCSI_DIR_FROM_DEV, b, 4096);
    return t->c.xfer_len;
}

static struct t_env *env(void)
{
    struct t_env *e = t_env_new(MiB, 512, false);

    for (uint32_t n = 1; n <= 4; n++)
        t_clear_ua_nexus(e, 0, 0, n);
    return e;
}

static const uint8_t rd10[10] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
static const uint8_t wr10[10] = { 0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0 };
static const uint8_t tur[6] = { 0 };

/* read and write access of nexus n: 0 good, 1 conflict */
static void check_access(struct t_env *e, uint32_t n, int rd, int wr)
{
    static uint8_t blk[512];
    struct tcmd t;

    run_nx(e, &t, n, rd10, 10, SCSI_DIR_FROM_DEV, blk, 512);
    if (rd)
        check_conflict(&t);
    else
        check_good(&t);
    run_nx(e, &t, n, wr10, 10, SCSI_DIR_TO_DEV, blk, 512);
    if (wr)
        check_conflict(&t);
    else
        check_good(&t);
}

static void test_pr_in_basics(void)
{
    struct t_env *e = env();
    uint8_t b[4096];
    struct tcmd t;

    /* READ KEYS with nothing registered: 8 bytes, generation 0 */
    CHECK_EQ(pr_in(e, &t, 1, 0, 100, b), 8);
    check_good(&t);
    CHECK_EQ(get_be32(b), 0);
    CHECK_EQ(get_be32(&b[4]), 0);
    CHECK_EQ(b[8], 0xcc);
    /* READ RESERVATION: none */
    CHECK_EQ(pr_in(e, &t, 1, 1, 100, b), 8);
    check_good(&t);
    /* REPORT CAPABILITIES (SPC-4 6.15.4) */
    CHECK_EQ(pr_in(e, &t, 1, 2, 100, b), 8);
    check_good(&t);
    CHECK_EQ(get_be16(b), 8);
    CHECK_EQ(b[2], 0x1c);               /* CRH SIP_C ATP_C; no PTPL_C without pr-state */
    CHECK_EQ(b[3], 0x90);               /* TMV, ALLOW COMMANDS 1 */
    CHECK_EQ(b[4], 0xea);
    CHECK_EQ(b[5], 0x01);
    /* READ FULL STATUS: empty */
    CHECK_EQ(pr_in(e, &t, 1, 3, 100, b), 8);
    check_good(&t);
    /* service actions 04h-1Fh: invalid field, pointer at byte 1 */
    for (unsigned sa = 4; sa < 0x20; sa++) {
        pr_in(e, &t, 1, sa, 100, b);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xcc0001);
    }
    /* reserved CDB bits */
    for (unsigned byte = 2; byte <= 6; byte++) {
        uint8_t cdb[10] = { 0x5e, 0, 0, 0, 0, 0, 0, 0, 100, 0 };

        cdb[byte] = 0x10;
        run_nx(e, &t, 1, cdb, 10, SCSI_DIR_FROM_DEV, b, 100);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xc80000u | byte | 4u << 16);
    }
    t_env_free(e);
}

static void test_register(void)
{
    struct t_env *e = env();
    uint8_t b[4096];
    struct tcmd t;

    /* REGISTER from an unregistered nexus with a non-zero key: conflict */
    pr_out(e, &t, 1, REG, 0, 0x1234, 0xaaaa, 0);
    check_conflict(&t);
    /* SA key 0 from an unregistered nexus: nothing, generation unchanged */
    pr_out(e, &t, 1, REG, 0, 0, 0, 0);
    check_good(&t);
    pr_in(e, &t, 1, 0, 100, b);
    CHECK_EQ(get_be32(b), 0);

    pr_out(e, &t, 1, REG, 0, 0, 0xaaaa, 0);
    check_good(&t);
    CHECK_EQ(t.c.xfer_len, 24);
    pr_out(e, &t, 2, REG_IGN, 0, 0x9999, 0xbbbb, 0);      /* key ignored */
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 3, 0, 100, b), 24);
    CHECK_EQ(get_be32(b), 2);
    CHECK_EQ(get_be32(&b[4]), 16);
    CHECK_EQ(get_be64(&b[8]), 0xaaaa);
    CHECK_EQ(get_be64(&b[16]), 0xbbbb);
    /* truncated: ADDITIONAL LENGTH still tells all (SPC-4 6.15.2) */
    CHECK_EQ(pr_in(e, &t, 3, 0, 8, b), 8);
    CHECK_EQ(get_be32(&b[4]), 16);
    CHECK_EQ(b[8], 0xcc);
    CHECK_EQ(pr_in(e, &t, 3, 0, 12, b), 12);
    CHECK_EQ(b[12], 0xcc);

    /* re-register with the wrong key: conflict; right key: new key */
    pr_out(e, &t, 1, REG, 0, 0xaaab, 0xcccc, 0);
    check_conflict(&t);
    pr_out(e, &t, 1, REG, 0, 0xaaaa, 0xcccc, 0);
    check_good(&t);
    pr_in(e, &t, 3, 0, 100, b);
    CHECK_EQ(get_be32(b), 3);
    CHECK(get_be64(&b[8]) == 0xcccc || get_be64(&b[16]) == 0xcccc);
    /* unregister */
    pr_out(e, &t, 1, REG, 0, 0xcccc, 0, 0);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 3, 0, 100, b), 16);
    CHECK_EQ(get_be64(&b[8]), 0xbbbb);
    CHECK_EQ(get_be32(b), 4);

    /* parameter list length must be 24 without SPEC_I_PT (05/1A/00) */
    {
        uint8_t p[32] = { 0 };

        put_be64(&p[8], 1);
        pr_out_raw(e, &t, 3, REG, 0, p, 32);
        check_sense(&t, 5, 0x1a, 0);
        pr_out_raw(e, &t, 3, RES, WE, p, 23);
        check_sense(&t, 5, 0x1a, 0);
        pr_out_raw(e, &t, 3, CLR, 0, p, 0);
        check_sense(&t, 5, 0x1a, 0);
    }
    /* APTPL without pr-state: PTPL_C=0, invalid field in the parameter list */
    pr_out(e, &t, 3, REG, 0, 0, 0x77, 0x01);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x880014);
    /* SPEC_I_PT with REGISTER AND IGNORE: invalid field (byte 20 bit 3) */
    pr_out(e, &t, 3, REG_IGN, 0, 0, 0x77, 0x08);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x8b0014);
    /* unknown service action 08h..1Fh */
    pr_out(e, &t, 3, 8, 0, 0, 0, 0);
    check_sense(&t, 5, 0x24, 0);
    /* reserved CDB bytes 3-4 */
    {
        uint8_t cdb[10] = { 0x5f, 0, 0, 1, 0, 0, 0, 0, 24, 0 };
        uint8_t p[24] = { 0 };

        run_nx(e, &t, 3, cdb, 10, SCSI_DIR_TO_DEV, p, 24);
        check_sense(&t, 5, 0x24, 0);
        CHECK_EQ(t_sks(&t.c), 0xc80003);
    }
    t_env_free(e);
}

static void test_spec_i_pt(void)
{
    struct t_env *e = env();
    uint8_t p[28 + 48] = { 0 }, b[4096];
    struct tcmd t;

    put_be64(&p[8], 0x55);
    p[20] = 0x08;
    put_be32(&p[24], 48);
    p[28] = 0x06;
    put_be64(&p[32], PR_INIT_SAS_BASE | 2);
    p[52] = 0x06;
    put_be64(&p[56], PR_INIT_SAS_BASE | 3);
    /* TransportID length beyond the list */
    pr_out_raw(e, &t, 1, REG, 0, p, 28 + 24);
    check_sense(&t, 5, 0x1a, 0);
    pr_out_raw(e, &t, 1, REG, 0, p, sizeof(p));
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 1, 0, 100, b), 8 + 24);
    /* READ FULL STATUS: TransportIDs and relative target ports */
    CHECK_EQ(pr_in(e, &t, 1, 3, 4096, b), 8 + 3 * 48);
    for (int i = 0; i < 3; i++) {
        const uint8_t *d = &b[8 + 48 * i];
        uint32_t n = (uint32_t)get_be64(&d[28]);

        CHECK_EQ(get_be64(d), 0x55);
        CHECK_EQ(d[12], 0);
        CHECK_EQ(get_be32(&d[20]), 24);
        CHECK_EQ(d[24], 0x06);
        CHECK(n >= 1 && n <= 3);
        CHECK_EQ(get_be16(&d[18]), n + 1);
    }
    /* again with a registered nexus in the list: conflict */
    pr_out_raw(e, &t, 4, REG, 0, p, sizeof(p));
    check_conflict(&t);
    /* a TransportID we don't know: invalid field */
    p[28] = 0x05;
    pr_out_raw(e, &t, 4, REG, 0, p, sizeof(p));
    check_sense(&t, 5, 0x26, 0);
    t_env_free(e);
}

static void test_reserve_types(void)
{
    struct t_env *e = env();
    uint8_t b[4096];
    struct tcmd t;

    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    pr_out(e, &t, 2, REG, 0, 0, 0x22, 0);
    /* nexus 3 stays unregistered */
    pr_out(e, &t, 3, RES, WE, 0, 0, 0);
    check_conflict(&t);
    pr_out(e, &t, 1, RES, WE, 0x12, 0, 0);
    check_conflict(&t);                         /* wrong key */
    /* scope and type checked first */
    pr_out(e, &t, 1, RES, 0x10 | WE, 0x11, 0, 0);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcf0002);
    pr_out(e, &t, 1, RES, 2, 0x11, 0, 0);
    check_sense(&t, 5, 0x24, 0);
    CHECK_EQ(t_sks(&t.c), 0xcb0002);

    struct { unsigned type; int r2, w2, r3, w3; } c[] = {
        { WE, 0, 1, 0, 1 }, { EA, 1, 1, 1, 1 }, { WE_RO, 0, 0, 0, 1 },
        { EA_RO, 0, 0, 1, 1 }, { WE_AR, 0, 0, 0, 1 }, { EA_AR, 0, 0, 1, 1 },
    };
    for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        bool ar = c[i].type >= WE_AR;

        pr_out(e, &t, 1, RES, c[i].type, 0x11, 0, 0);
        check_good(&t);
        /* the same again is GOOD, another type conflicts */
        pr_out(e, &t, 1, RES, c[i].type, 0x11, 0, 0);
        check_good(&t);
        pr_out(e, &t, 1, RES, c[i].type == WE ? EA : WE, 0x11, 0, 0);
        check_conflict(&t);
        CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 24);
        CHECK_EQ(get_be32(&b[4]), 16);
        CHECK_EQ(get_be64(&b[8]), ar ? 0 : 0x11);
        CHECK_EQ(b[21], c[i].type);
        check_access(e, 1, 0, 0);
        check_access(e, 2, c[i].r2, c[i].w2);
        check_access(e, 3, c[i].r3, c[i].w3);
        /* always allowed: INQUIRY, TUR, READ CAPACITY, PR IN */
        {
            uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 }, rc[10] = { 0x25 };

            run_nx(e, &t, 3, inq, 6, SCSI_DIR_FROM_DEV, b, 36);
            check_good(&t);
            run_nx(e, &t, 3, tur, 6, SCSI_DIR_NONE, NULL, 0);
            check_good(&t);
            run_nx(e, &t, 3, rc, 10, SCSI_DIR_FROM_DEV, b, 8);
            check_good(&t);
        }
        /* RELEASE: wrong type from the holder is 05/26/04, from a
         * non-holder nothing happens */
        pr_out(e, &t, 1, REL, c[i].type == WE ? EA : WE, 0x11, 0, 0);
        check_sense(&t, 5, 0x26, 0x04);
        if (!ar) {
            pr_out(e, &t, 2, REL, c[i].type, 0x22, 0, 0);
            check_good(&t);
            CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 24);
        }
        pr_out(e, &t, 1, REL, c[i].type, 0x11, 0, 0);
        check_good(&t);
        CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 8);
        /* SPC-4 5.13.11.2: releasing a registrants-only or all-registrants
         * reservation tells the other registrants */
        run_nx(e, &t, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
        if (c[i].type >= WE_RO)
            check_sense(&t, 6, 0x2a, 0x04);
        else
            check_good(&t);
        run_nx(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
        check_good(&t);
        run_nx(e, &t, 3, tur, 6, SCSI_DIR_NONE, NULL, 0);
        check_good(&t);
    }
    /* RESERVE and RELEASE leave the generation alone */
    pr_in(e, &t, 3, 0, 100, b);
    CHECK_EQ(get_be32(b), 2);
    /* the holder unregistering releases a WE_RO reservation: UA 2A/04 */
    pr_out(e, &t, 1, RES, WE_RO, 0x11, 0, 0);
    pr_out(e, &t, 1, REG, 0, 0x11, 0, 0);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 8);
    run_nx(e, &t, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x2a, 0x04);
    /* an all-registrants reservation lasts while anyone is registered */
    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    pr_out(e, &t, 2, RES, EA_AR, 0x22, 0, 0);
    check_good(&t);
    pr_out(e, &t, 2, REG, 0, 0x22, 0, 0);
    CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 24);
    pr_out(e, &t, 1, REG, 0, 0x11, 0, 0);
    CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 8);
    t_env_free(e);
}

static void test_clear(void)
{
    struct t_env *e = env();
    uint8_t b[4096];
    struct tcmd t;

    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    pr_out(e, &t, 2, REG, 0, 0, 0x22, 0);
    pr_out(e, &t, 1, RES, EA, 0x11, 0, 0);
    pr_out(e, &t, 3, CLR, 0, 0, 0, 0);
    check_conflict(&t);                         /* not registered */
    pr_out(e, &t, 2, CLR, 0, 0x21, 0, 0);
    check_conflict(&t);
    pr_out(e, &t, 2, CLR, 0, 0x22, 0, 0);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 3, 0, 100, b), 8);
    CHECK_EQ(get_be32(b), 3);
    CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 8);
    /* SPC-4 5.13.11.6: RESERVATIONS PREEMPTED to the other registrants */
    run_nx(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x2a, 0x03);
    run_nx(e, &t, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    t_env_free(e);
}

static void test_preempt(void)
{
    struct t_env *e = env();
    uint8_t b[4096];
    struct tcmd t;

    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    pr_out(e, &t, 2, REG, 0, 0, 0x22, 0);
    pr_out(e, &t, 3, REG, 0, 0, 0x33, 0);
    /* no reservation: SA key 0 is invalid, an unknown key conflicts */
    pr_out(e, &t, 2, PRE, WE, 0x22, 0, 0);
    check_sense(&t, 5, 0x26, 0);
    pr_out(e, &t, 2, PRE, WE, 0x22, 0x44, 0);
    check_conflict(&t);
    /* remove nexus 3's registration; no reservation is made */
    pr_out(e, &t, 2, PRE, WE, 0x22, 0x33, 0);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 1, 1, 100, b), 8);
    CHECK_EQ(pr_in(e, &t, 1, 0, 100, b), 24);
    run_nx(e, &t, 3, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x2a, 0x05);
    /* preempt the holder: its registration goes, we hold the new type */
    pr_out(e, &t, 1, RES, WE, 0x11, 0, 0);
    pr_out(e, &t, 2, PRE, EA, 0x22, 0x11, 0);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 2, 1, 100, b), 24);
    CHECK_EQ(get_be64(&b[8]), 0x22);
    CHECK_EQ(b[21], EA);
    CHECK_EQ(pr_in(e, &t, 2, 0, 100, b), 16);
    run_nx(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x2a, 0x05);
    check_access(e, 1, 1, 1);
    /* preempting our own key changes the type */
    pr_out(e, &t, 2, PRE, WE, 0x22, 0x22, 0);
    check_good(&t);
    pr_in(e, &t, 2, 1, 100, b);
    CHECK_EQ(b[21], WE);
    /* all-registrants: SA key 0 takes everything */
    pr_out(e, &t, 2, REL, WE, 0x22, 0, 0);
    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    pr_out(e, &t, 3, REG, 0, 0, 0x33, 0);
    pr_out(e, &t, 1, RES, WE_AR, 0x11, 0, 0);
    check_good(&t);
    pr_out(e, &t, 3, PRE, EA, 0x33, 0, 0);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 3, 0, 100, b), 16);
    CHECK_EQ(get_be64(&b[8]), 0x33);
    pr_in(e, &t, 3, 1, 100, b);
    CHECK_EQ(b[21], EA);
    CHECK_EQ(get_be64(&b[8]), 0x33);
    t_env_free(e);
}

static void test_preempt_abort(void)
{
    struct t_env *e = env();
    static uint8_t blk[4][512];
    struct tcmd t, r[4];

    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    pr_out(e, &t, 2, REG, 0, 0, 0x22, 0);
    pr_out(e, &t, 1, RES, WE, 0x11, 0, 0);
    /* nexus 1 has reads in flight, nexus 2 one too */
    for (int i = 0; i < 4; i++) {
        tcmd_init(&r[i], 0, 0, rd10, 10, SCSI_DIR_FROM_DEV, blk[i], 512);
        r[i].c.nexus = i < 3 ? 1 : 2;
        tcmd_submit(e, &r[i]);
    }
    {
        uint8_t p[24] = { 0 };
        uint8_t cdb[10] = { 0x5f, PRE_ABORT, EA, 0, 0, 0, 0, 0, 24, 0 };

        put_be64(p, 0x22);
        put_be64(&p[8], 0x11);
        tcmd_init(&t, 0, 0, cdb, 10, SCSI_DIR_TO_DEV, p, 24);
        t.c.nexus = 2;
        tcmd_submit(e, &t);
        check_good(&t);         /* answered from memory */
    }
    fake_ctx_run(e->ctx, 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(r[i].done, 1);
        CHECK_EQ(r[i].c.host_status, SCSI_HOST_ABORTED);
    }
    check_good(&r[3]);
    run_nx(e, &t, 1, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 6, 0x2a, 0x05);
    t_env_free(e);
}

static void test_register_move(void)
{
    struct t_env *e = env();
    uint8_t p[48] = { 0 }, b[4096];
    struct tcmd t;

    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    put_be64(p, 0x11);
    put_be64(&p[8], 0x99);
    put_be16(&p[18], 3);                       /* relative target port of nexus 2 */
    put_be32(&p[20], 24);
    p[24] = 0x06;
    put_be64(&p[28], PR_INIT_SAS_BASE | 2);
    /* no reservation: conflict */
    pr_out_raw(e, &t, 1, REG_MOVE, 0, p, 48);
    check_conflict(&t);
    pr_out(e, &t, 1, RES, EA_RO, 0x11, 0, 0);
    /* wrong relative port, then to ourselves: invalid field */
    put_be16(&p[18], 4);
    pr_out_raw(e, &t, 1, REG_MOVE, 0, p, 48);
    check_sense(&t, 5, 0x26, 0);
    CHECK_EQ(t_sks(&t.c), 0x8f0012);
    put_be16(&p[18], 2);
    put_be64(&p[28], PR_INIT_SAS_BASE | 1);
    pr_out_raw(e, &t, 1, REG_MOVE, 0, p, 48);
    check_sense(&t, 5, 0x26, 0);
    /* TransportID longer than the list */
    put_be32(&p[20], 25);
    pr_out_raw(e, &t, 1, REG_MOVE, 0, p, 48);
    check_sense(&t, 5, 0x1a, 0);
    put_be32(&p[20], 24);
    /* move to nexus 2, and unregister ourselves (UNREG) */
    put_be16(&p[18], 3);
    put_be64(&p[28], PR_INIT_SAS_BASE | 2);
    p[17] = 0x02;
    pr_out_raw(e, &t, 1, REG_MOVE, 0, p, 48);
    check_good(&t);
    CHECK_EQ(pr_in(e, &t, 3, 0, 100, b), 16);
    CHECK_EQ(get_be64(&b[8]), 0x99);
    CHECK_EQ(pr_in(e, &t, 3, 1, 100, b), 24);
    CHECK_EQ(get_be64(&b[8]), 0x99);
    CHECK_EQ(b[21], EA_RO);
    CHECK_EQ(pr_in(e, &t, 3, 3, 4096, b), 8 + 48);
    CHECK_EQ(b[8 + 12], 0x01);                  /* R_HOLDER */
    CHECK_EQ(b[8 + 13], EA_RO);
    check_access(e, 2, 0, 0);
    check_access(e, 1, 1, 1);
    t_env_free(e);
}

static void test_aptpl(void)
{
    char path[] = "/tmp/vscsi-pr-XXXXXX";
    int fd = mkstemp(path);
    struct t_env *e;
    struct scsi_dev_config cfg = { .type = SCSI_DEV_HD };
    uint8_t b[4096];
    struct tcmd t;
    char err[256];
    FILE *f;

    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    snprintf(cfg.pr_state, sizeof(cfg.pr_state), "%s", path);
    e = env();
    CHECK(t_add_lun(e, 0, 1, &cfg, MiB) != NULL);
    t_clear_ua(e, 0, 1);
    t_clear_ua_nexus(e, 0, 1, 1);
    t_clear_ua_nexus(e, 0, 1, 2);
    {
        uint8_t cdb[10] = { 0x5e, 2, 0, 0, 0, 0, 0, 0, 8, 0 };

        tcmd_init(&t, 0, 1, cdb, 10, SCSI_DIR_FROM_DEV, b, 8);
        tcmd_run(e, &t);
        CHECK_EQ(b[2] & 0x01, 0x01);            /* PTPL_C */
        CHECK_EQ(b[3] & 0x01, 0x00);            /* PTPL_A */
    }
    /* register with APTPL=1 and reserve: the file follows */
    {
        uint8_t p[24] = { 0 };
        uint8_t cdb[10] = { 0x5f, REG, 0, 0, 0, 0, 0, 0, 24, 0 };

        put_be64(&p[8], 0xabcdef);
        p[20] = 0x01;
        tcmd_init(&t, 0, 1, cdb, 10, SCSI_DIR_TO_DEV, p, 24);
        t.c.nexus = 2;
        tcmd_run(e, &t);
        check_good(&t);
        cdb[1] = RES;
        cdb[2] = WE_RO;
        put_be64(p, 0xabcdef);
        put_be64(&p[8], 0);
        p[20] = 0;
        tcmd_init(&t, 0, 1, cdb, 10, SCSI_DIR_TO_DEV, p, 24);
        t.c.nexus = 2;
        tcmd_run(e, &t);
        check_good(&t);
    }
    CHECK(access(path, R_OK) == 0);
    /* a new LU (a restart) from the same file has them back */
    {
        struct scsi_bus *bus = scsi_bus_new();
        struct blk_drive *d = fake_drive_new(MiB);
        struct t_env e2 = { .bus = bus, .ctx = e->ctx };
        uint8_t cdb[10] = { 0x5e, 1, 0, 0, 0, 0, 0, 0, 100, 0 };

        CHECK_EQ(scsi_bus_add_lun(bus, 0, 0, &cfg, d, err, sizeof(err)), 0);
        t_clear_ua_nexus(&e2, 0, 0, 1);
        tcmd_init(&t, 0, 0, cdb, 10, SCSI_DIR_FROM_DEV, b, 100);
        t.c.nexus = 1;
        tcmd_run(&e2, &t);
        check_good(&t);
        CHECK_EQ(t.c.xfer_len, 24);
        CHECK_EQ(get_be64(&b[8]), 0xabcdef);
        CHECK_EQ(b[21], WE_RO);
        CHECK_EQ(get_be32(b), 1);
        cdb[1] = 2;
        tcmd_init(&t, 0, 0, cdb, 10, SCSI_DIR_FROM_DEV, b, 100);
        tcmd_run(&e2, &t);
        CHECK_EQ(b[3] & 0x01, 0x01);            /* PTPL_A */
        /* the holder's write goes through, an unregistered nexus' conflicts */
        t_clear_ua_nexus(&e2, 0, 0, 2);
        tcmd_init(&t, 0, 0, wr10, 10, SCSI_DIR_TO_DEV, b, 512);
        t.c.nexus = 2;
        tcmd_run(&e2, &t);
        check_good(&t);
        tcmd_init(&t, 0, 0, wr10, 10, SCSI_DIR_TO_DEV, b, 512);
        t.c.nexus = 1;
        tcmd_run(&e2, &t);
        check_conflict(&t);
        scsi_bus_remove_lun(bus, 0, 0, NULL, NULL);
        scsi_bus_free(bus);
        fake_drive_free(d);
    }
    /* a file we did not write is refused with a message: garbage, numbers
     * out of range (not wrapped), trailing words */
    static const char *const bad[] = {
        "garbage\n", "generation 4294967296\n", "reg 4294967298 0x1 0\n", "aptpl 1 0\n",
        "reservation 257 2\n", "version 1x\n", "reg 2 0x1\n", "generation -1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scsi_bus *bus = scsi_bus_new();
        struct blk_drive *d = fake_drive_new(MiB);

        f = fopen(path, "w");
        fprintf(f, "version 1\n%s", bad[i]);
        fclose(f);
        CHECK_EQ(scsi_bus_add_lun(bus, 0, 0, &cfg, d, err, sizeof(err)), -EINVAL);
        if (!strstr(err, "line 2"))
            fprintf(stderr, "pr-state line '%s' was not refused: %s\n", bad[i], err);
        CHECK(strstr(err, "line 2") != NULL);
        scsi_bus_free(bus);
        fake_drive_free(d);
    }
    unlink(path);
    t_env_free(e);
}

static void test_spc2_reserve(void)
{
    struct t_env *e = env();
    uint8_t res6[6] = { 0x16 }, rel6[6] = { 0x17 }, res10[10] = { 0x56 }, rel10[10] = { 0x57 };
    uint8_t inq[6] = { 0x12, 0, 0, 0, 36, 0 }, b[4096];
    struct tcmd t;

    run_nx(e, &t, 1, res6, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    run_nx(e, &t, 1, res6, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);                             /* the holder again */
    check_access(e, 1, 0, 0);
    check_access(e, 2, 1, 1);
    run_nx(e, &t, 2, tur, 6, SCSI_DIR_NONE, NULL, 0);
    check_conflict(&t);
    run_nx(e, &t, 2, inq, 6, SCSI_DIR_FROM_DEV, b, 36);
    check_good(&t);
    run_nx(e, &t, 2, res10, 10, SCSI_DIR_NONE, NULL, 0);
    check_conflict(&t);
    /* SPC-2 5.5.1: PERSISTENT RESERVE IN/OUT conflict, from anyone */
    pr_in(e, &t, 2, 0, 100, b);
    check_conflict(&t);
    pr_in(e, &t, 1, 0, 100, b);
    check_conflict(&t);
    /* RELEASE from another nexus: GOOD, nothing released */
    run_nx(e, &t, 2, rel10, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    check_access(e, 2, 1, 1);
    run_nx(e, &t, 1, rel6, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    check_access(e, 2, 0, 0);
    /* reserved CDB fields (third party, extents) */
    res6[1] = 0x01;
    run_nx(e, &t, 1, res6, 6, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x24, 0);
    res6[1] = 0;
    res10[1] = 0x10;
    run_nx(e, &t, 1, res10, 10, SCSI_DIR_NONE, NULL, 0);
    check_sense(&t, 5, 0x24, 0);
    res10[1] = 0;
    /* the reservation ends with a LU reset, and with its nexus */
    run_nx(e, &t, 1, res10, 10, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    scsi_lun_nexus_loss(scsi_bus_find_lun(e->bus, 0, 0), 1);
    check_access(e, 2, 0, 0);
    t_clear_ua_nexus(e, 0, 0, 1);

    /* CRH=1 (SPC-4 5.13.3): with registrations, RESERVE/RELEASE conflict
     * unless from the persistent reservation holder */
    pr_out(e, &t, 1, REG, 0, 0, 0x11, 0);
    run_nx(e, &t, 2, res6, 6, SCSI_DIR_NONE, NULL, 0);
    check_conflict(&t);
    run_nx(e, &t, 1, res6, 6, SCSI_DIR_NONE, NULL, 0);
    check_conflict(&t);                         /* registered, no reservation */
    pr_out(e, &t, 1, RES, WE, 0x11, 0, 0);
    run_nx(e, &t, 1, res6, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    run_nx(e, &t, 1, rel6, 6, SCSI_DIR_NONE, NULL, 0);
    check_good(&t);
    pr_in(e, &t, 2, 1, 100, b);
    CHECK_EQ(t.c.xfer_len, 24);                 /* still reserved */
    run_nx(e, &t, 2, rel6, 6, SCSI_DIR_NONE, NULL, 0);
    check_conflict(&t);
    t_env_free(e);
}

int main(void)
{
    RUN_TEST(test_pr_in_basics);
    RUN_TEST(test_register);
    RUN_TEST(test_spec_i_pt);
    RUN_TEST(test_reserve_types);
    RUN_TEST(test_clear);
    RUN_TEST(test_preempt);
    RUN_TEST(test_preempt_abort);
    RUN_TEST(test_register_move);
    RUN_TEST(test_aptpl);
    RUN_TEST(test_spc2_reserve);
    return test_exit();
}
