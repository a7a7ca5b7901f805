/* Adaptive coalescing (src/virtio_scsi/coalesce.h), driven by made-up
 * guests: each is a time per completion without holding and with it. */
#include "test.h"
#include "virtio_scsi/coalesce.h"

#define US 1000ull

struct guest {
    uint64_t off_ns, on_ns;     /* time per completion, signals at once / held */
};

/* n completions of guest g from *now; returns how many were held. */
static unsigned run(struct vscsi_ac *ac, const struct guest *g, uint64_t *now, unsigned n)
{
    unsigned held = 0;

    for (unsigned i = 0; i < n; i++) {
        bool h = vscsi_ac_holding(ac);

        held += h;
        *now += h ? g->on_ns : g->off_ns;
        vscsi_ac_completed(ac, *now);
    }
    return held;
}

/* A TCG guest: 150 us per completion signalled at once, 110 us held. After
 * the first pair of epochs it holds, and keeps holding across re-measures
 * (only the epochs that measure without holding are lost). */
static void test_slow_guest_holds(void)
{
    static const struct guest g = { 150 * US, 110 * US };
    struct vscsi_ac ac = { 0 };
    uint64_t now = 1;
    unsigned n = 4 * VSCSI_AC_STAY * VSCSI_AC_EPOCH, held;

    held = run(&ac, &g, &now, n);
    CHECK(ac.hold);
    /* all but the first epoch and one of every VSCSI_AC_STAY + 2 after it */
    CHECK(held >= n - VSCSI_AC_EPOCH * (1 + n / (VSCSI_AC_EPOCH * VSCSI_AC_STAY) + 1));
}

/* A guest waiting on each completion (QD1 under KVM): 13 us at once, 100 us
 * held. Holding is tried on VSCSI_AC_EARLY completions per cycle only. */
static void test_waiting_guest_does_not(void)
{
    static const struct guest g = { 13 * US, 100 * US };
    struct vscsi_ac ac = { 0 };
    uint64_t now = 1;
    unsigned cycles = 4, n = cycles * (VSCSI_AC_STAY + 2) * VSCSI_AC_EPOCH, held;

    held = run(&ac, &g, &now, n);
    CHECK(!ac.hold);
    CHECK(held > 0);                                    /* it was tried */
    CHECK(held <= (cycles + 1) * VSCSI_AC_EARLY);       /* and cut short each time */
}

/* A pipeline that holding slows only a little (a fast guest, 2.2 us against
 * 2.4 us): holding is tried for a whole epoch, found slower, and dropped. */
static void test_slightly_slower_does_not(void)
{
    static const struct guest g = { 2200, 2400 };
    struct vscsi_ac ac = { 0 };
    uint64_t now = 1;
    unsigned n = 3 * (VSCSI_AC_STAY + 2) * VSCSI_AC_EPOCH, held;

    held = run(&ac, &g, &now, n);
    CHECK(!ac.hold);
    CHECK(held <= 4 * VSCSI_AC_EPOCH);
    /* no gain short of 5%: not worth the latency */
    static const struct guest g2 = { 10000, 9700 };
    struct vscsi_ac ac2 = { 0 };
    now = 1;
    run(&ac2, &g2, &now, 3 * VSCSI_AC_EPOCH);
    CHECK_EQ(ac2.phase, VSCSI_AC_DECIDED);
    CHECK(!ac2.hold);
}

/* The guest changes: waiting at first, then a slow guest; the next measure
 * turns holding on. A pause longer than VSCSI_AC_IDLE_NS inside a measured
 * epoch makes it start over instead of deciding on it. */
static void test_change_and_pause(void)
{
    static const struct guest waiting = { 13 * US, 100 * US }, slow = { 150 * US, 110 * US };
    struct vscsi_ac ac = { 0 };
    uint64_t now = 1;

    run(&ac, &waiting, &now, 3 * VSCSI_AC_EPOCH);
    CHECK_EQ(ac.phase, VSCSI_AC_DECIDED);
    CHECK(!ac.hold);
    run(&ac, &slow, &now, (VSCSI_AC_STAY + 3) * VSCSI_AC_EPOCH);
    CHECK(ac.hold);
    /* a pause in an epoch measured without holding */
    struct vscsi_ac p = { 0 };
    now = 1;
    run(&p, &slow, &now, 10);
    now += 2 * VSCSI_AC_IDLE_NS;
    run(&p, &slow, &now, VSCSI_AC_EPOCH + 1 - 10);     /* the first call only starts the epoch */
    CHECK_EQ(p.phase, VSCSI_AC_MEASURE_OFF);            /* measured again */
    CHECK_EQ(p.count, 0);
}

int main(void)
{
    RUN_TEST(test_slow_guest_holds);
    RUN_TEST(test_waiting_guest_does_not);
    RUN_TEST(test_slightly_slower_does_not);
    RUN_TEST(test_change_and_pause);
    return test_exit();
}
