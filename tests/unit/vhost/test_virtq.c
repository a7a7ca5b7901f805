/* Split ring tests: chains, indirect tables, malformed chains from a hostile
 * driver, notification decisions, used ring publication. */
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "test.h"
#include "guest.h"
#include "util/log.h"

#define F(bit)          (1ull << (bit))
#define BASE_FEATURES   (F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_INDIRECT_DESC))
#define NUM             16
#define IOV_CAP         64

static struct guest g;
static struct iovec iov[IOV_CAP];
static struct vq_elem elem;

static void setup(uint64_t features)
{
    int ret = guest_init(&g, NUM, features, false);

    CHECK_EQ(ret, 0);
    memset(&elem, 0, sizeof(elem));
}

static int pop(void)
{
    return vq_pop(&g.vq, &elem, iov, IOV_CAP);
}

/* The chain is rejected and the queue stays broken. */
static void expect_broken(void)
{
    CHECK(pop() < 0);
    CHECK(vq_is_broken(&g.vq));
    CHECK_EQ(pop(), -EIO);
    CHECK_EQ(vq_inflight(&g.vq), 0);
}

static void test_simple_chain(void)
{
    setup(BASE_FEATURES);
    CHECK_EQ(pop(), 0);                         /* empty */
    memcpy(g.ram + G_DATA, "request-header!!", 16);
    g_set_desc(&g, 3, g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 7);
    g_set_desc(&g, 7, g_gpa(G_DATA + 0x100), 64, VRING_DESC_F_WRITE, 0);
    g_publish(&g, 3);

    CHECK_EQ(pop(), 1);
    CHECK_EQ(elem.head, 3);
    CHECK_EQ(elem.out_num, 1);
    CHECK_EQ(elem.in_num, 1);
    CHECK_EQ(iov[0].iov_len, 16);
    CHECK_MEM(iov[0].iov_base, "request-header!!", 16);
    CHECK_EQ(iov[1].iov_len, 64);
    CHECK_EQ(vq_inflight(&g.vq), 1);
    CHECK_EQ(pop(), 0);

    /* The device writes through the iovec; the guest sees it. */
    memcpy(iov[1].iov_base, "response", 8);
    CHECK_MEM(g.ram + G_DATA + 0x100, "response", 8);

    vq_push(&g.vq, &elem, 8);
    CHECK_EQ(g_used(&g)->idx, 1);
    CHECK_EQ(g_used(&g)->ring[0].id, 3);
    CHECK_EQ(g_used(&g)->ring[0].len, 8);
    CHECK_EQ(vq_inflight(&g.vq), 0);
    CHECK(!vq_is_broken(&g.vq));
    guest_fini(&g);
}

static void test_zero_length_desc(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 0, g_gpa(G_DATA), 0, VRING_DESC_F_NEXT, 1);
    g_set_desc(&g, 1, g_gpa(G_DATA), 32, VRING_DESC_F_WRITE, 0);
    g_publish(&g, 0);
    CHECK_EQ(pop(), 1);
    CHECK_EQ(elem.out_num, 0);
    CHECK_EQ(elem.in_num, 1);
    vq_push(&g.vq, &elem, 0);
    guest_fini(&g);
}

static void test_indirect(void)
{
    struct vring_desc *t;

    setup(BASE_FEATURES);
    t = (void *)(g.ram + G_DATA + 0x1000);
    t[0] = (struct vring_desc){ g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 2 };
    t[2] = (struct vring_desc){ g_gpa(G_DATA + 0x40), 32, VRING_DESC_F_NEXT, 1 };
    t[1] = (struct vring_desc){ g_gpa(G_DATA + 0x80), 100, VRING_DESC_F_WRITE, 0 };
    /* A direct descriptor may come before the indirect one. */
    g_set_desc(&g, 5, g_gpa(G_DATA + 0x200), 8, VRING_DESC_F_NEXT, 6);
    g_set_desc(&g, 6, g_gpa(G_DATA + 0x1000), 3 * 16, VRING_DESC_F_INDIRECT, 0);
    g_publish(&g, 5);
    CHECK_EQ(pop(), 1);
    CHECK_EQ(elem.head, 5);
    CHECK_EQ(elem.out_num, 3);
    CHECK_EQ(elem.in_num, 1);
    CHECK_EQ(iov[0].iov_len, 8);
    CHECK_EQ(iov[1].iov_len, 16);
    CHECK_EQ(iov[2].iov_len, 32);
    CHECK_EQ(iov[3].iov_len, 100);
    vq_push(&g.vq, &elem, 100);
    CHECK_EQ(g_used(&g)->ring[0].id, 5);
    guest_fini(&g);
}

static void test_indirect_without_feature(void)
{
    setup(F(VIRTIO_F_VERSION_1));
    ((struct vring_desc *)(g.ram + G_DATA))[0] =
        (struct vring_desc){ g_gpa(G_DATA + 0x100), 16, 0, 0 };
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, VRING_DESC_F_INDIRECT, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

static void test_nested_indirect(void)
{
    struct vring_desc *t;

    setup(BASE_FEATURES);
    t = (void *)(g.ram + G_DATA);
    t[0] = (struct vring_desc){ g_gpa(G_DATA + 0x100), 16, VRING_DESC_F_INDIRECT, 0 };
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, VRING_DESC_F_INDIRECT, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

static void test_indirect_with_next(void)
{
    setup(BASE_FEATURES);
    ((struct vring_desc *)(g.ram + G_DATA))[0] =
        (struct vring_desc){ g_gpa(G_DATA + 0x100), 16, 0, 0 };
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    g_set_desc(&g, 1, g_gpa(G_DATA + 0x200), 16, 0, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

static void test_indirect_bad_tables(void)
{
    static const struct { uint64_t addr; uint32_t len; } bad[] = {
        { G_GPA + G_DATA, 0 },                          /* empty */
        { G_GPA + G_DATA, 24 },                         /* not a multiple of 16 */
        { G_GPA + G_DATA, (VQ_MAX_CHAIN + 1) * 16 },    /* too long */
        { G_GPA + G_SIZE - 16, 32 },                    /* runs past the region */
        { 0x1000, 16 },                                 /* not guest memory */
    };

    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup(BASE_FEATURES);
        g_set_desc(&g, 0, bad[i].addr, bad[i].len, VRING_DESC_F_INDIRECT, 0);
        g_publish(&g, 0);
        expect_broken();
        guest_fini(&g);
    }
}

static void test_indirect_loop(void)
{
    struct vring_desc *t;

    setup(BASE_FEATURES);
    t = (void *)(g.ram + G_DATA + 0x1000);
    t[0] = (struct vring_desc){ g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 1 };
    t[1] = (struct vring_desc){ g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 0 };
    g_set_desc(&g, 0, g_gpa(G_DATA + 0x1000), 32, VRING_DESC_F_INDIRECT, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

/* The chain limit counts buffers: a full table behind one indirect
 * descriptor is fine, one more buffer is not. */
static void test_chain_limit(void)
{
    static struct iovec big[VQ_MAX_CHAIN + 1];
    struct vring_desc *t;
    const unsigned tbl = 0x20000;

    for (unsigned extra = 0; extra < 2; extra++) {
        setup(BASE_FEATURES);
        t = (void *)(g.ram + tbl);
        for (unsigned i = 0; i < VQ_MAX_CHAIN; i++)
            t[i] = (struct vring_desc){ g_gpa(G_DATA + i), 1,
                                        (uint16_t)(i + 1 < VQ_MAX_CHAIN ? VRING_DESC_F_NEXT : 0),
                                        (uint16_t)(i + 1) };
        if (extra) {
            g_set_desc(&g, 0, g_gpa(G_DATA), 1, VRING_DESC_F_NEXT, 1);
            g_set_desc(&g, 1, g_gpa(tbl), VQ_MAX_CHAIN * 16, VRING_DESC_F_INDIRECT, 0);
        } else {
            g_set_desc(&g, 0, g_gpa(tbl), VQ_MAX_CHAIN * 16, VRING_DESC_F_INDIRECT, 0);
        }
        g_publish(&g, 0);
        int r = vq_pop(&g.vq, &elem, big, VQ_MAX_CHAIN + 1);
        if (extra) {
            CHECK(r < 0);
            CHECK(vq_is_broken(&g.vq));
        } else {
            CHECK_EQ(r, 1);
            CHECK_EQ(elem.out_num, VQ_MAX_CHAIN);
            vq_push(&g.vq, &elem, 0);
        }
        guest_fini(&g);
    }
}

static void test_desc_loop(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 1);
    g_set_desc(&g, 1, g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 2);
    g_set_desc(&g, 2, g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);

    setup(BASE_FEATURES);                       /* self loop */
    g_set_desc(&g, 4, g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, 4);
    g_publish(&g, 4);
    expect_broken();
    guest_fini(&g);
}

static void test_next_out_of_range(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, VRING_DESC_F_NEXT, NUM);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

static void test_out_of_region(void)
{
    static const struct { uint64_t addr; uint32_t len; } bad[] = {
        { 0, 16 },                                      /* below guest RAM */
        { G_GPA + G_SIZE, 16 },                         /* just past it */
        { G_GPA + G_SIZE - 8, 16 },                     /* straddles the end */
        { 0xfffffffffffffff0ull, 0x100 },               /* addr + len wraps */
        { 0xffffffffffffffffull, 2 },
    };

    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setup(BASE_FEATURES);
        g_set_desc(&g, 0, bad[i].addr, bad[i].len, 0, 0);
        g_publish(&g, 0);
        expect_broken();
        guest_fini(&g);
    }
}

static void test_chain_byte_limit(void)
{
    setup(BASE_FEATURES);
    /* Two 3 GiB "buffers": fails on the total before any translation matters. */
    g_set_desc(&g, 0, g_gpa(G_DATA), 0xC0000000u, VRING_DESC_F_NEXT, 1);
    g_set_desc(&g, 1, g_gpa(G_DATA), 0xC0000000u, 0, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

static void test_in_before_out(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    g_set_desc(&g, 1, g_gpa(G_DATA + 0x100), 16, 0, 0);
    g_publish(&g, 0);
    expect_broken();
    guest_fini(&g);
}

static void test_avail_idx_jump(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, 0, 0);
    __atomic_store_n(&g_avail(&g)->idx, NUM + 1, __ATOMIC_RELEASE);
    expect_broken();
    guest_fini(&g);

    /* Exactly num outstanding is fine. */
    setup(BASE_FEATURES);
    for (unsigned i = 0; i < NUM; i++) {
        g_set_desc(&g, i, g_gpa(G_DATA + 16 * i), 16, 0, 0);
        g_publish(&g, i);
    }
    struct vq_elem all[NUM];
    for (unsigned i = 0; i < NUM; i++) {
        CHECK_EQ(pop(), 1);
        all[i] = elem;
    }
    CHECK_EQ(pop(), 0);
    CHECK_EQ(vq_inflight(&g.vq), NUM);
    for (unsigned i = 0; i < NUM; i++)
        vq_push(&g.vq, &all[i], 0);
    CHECK_EQ(vq_inflight(&g.vq), 0);
    CHECK_EQ(g_used(&g)->idx, NUM);
    guest_fini(&g);
}

static void test_head_out_of_range(void)
{
    setup(BASE_FEATURES);
    g_publish(&g, NUM);
    expect_broken();
    guest_fini(&g);
}

static void test_head_in_flight_twice(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 2, g_gpa(G_DATA), 16, 0, 0);
    g_publish(&g, 2);
    g_publish(&g, 2);
    CHECK_EQ(pop(), 1);
    CHECK(pop() < 0);
    CHECK(vq_is_broken(&g.vq));
    /* The first element can still complete. */
    vq_push(&g.vq, &elem, 0);
    CHECK_EQ(vq_inflight(&g.vq), 0);
    guest_fini(&g);
}

static void test_iov_cap(void)
{
    setup(BASE_FEATURES);
    for (unsigned i = 0; i < 4; i++)
        g_set_desc(&g, i, g_gpa(G_DATA + 16 * i), 16, i < 3 ? VRING_DESC_F_NEXT : 0, i + 1);
    g_publish(&g, 0);
    CHECK(vq_pop(&g.vq, &elem, iov, 3) < 0);
    CHECK(vq_is_broken(&g.vq));
    guest_fini(&g);
}

static void test_split_regions(void)
{
    CHECK_EQ(guest_init(&g, NUM, BASE_FEATURES, true), 0);
    memset(g.ram + G_SIZE / 2 - 8, 'a', 8);
    memset(g.ram + G_SIZE / 2, 'b', 8);
    g_set_desc(&g, 0, g_gpa(G_SIZE / 2 - 8), 16, 0, 0);
    g_publish(&g, 0);
    CHECK_EQ(pop(), 1);
    CHECK_EQ(elem.out_num, 2);
    CHECK_EQ(iov[0].iov_len, 8);
    CHECK_EQ(iov[1].iov_len, 8);
    CHECK_MEM(iov[0].iov_base, "aaaaaaaa", 8);
    CHECK_MEM(iov[1].iov_base, "bbbbbbbb", 8);
    vq_push(&g.vq, &elem, 0);
    guest_fini(&g);
}

static void test_used_ring_wrap(void)
{
    setup(BASE_FEATURES);
    /* Start near the 16-bit wrap of the indices. */
    vq_stop(&g.vq);
    CHECK_EQ(vq_set_base(&g.vq, 65530), 0);
    g.avail_idx = 65530;
    g_avail(&g)->idx = 65530;
    g_used(&g)->idx = 65530;
    CHECK_EQ(vq_start(&g.vq), 0);
    for (unsigned round = 0; round < 3 * NUM; round++) {
        unsigned head = round % NUM;

        g_set_desc(&g, head, g_gpa(G_DATA), 16, VRING_DESC_F_WRITE, 0);
        g_publish(&g, head);
        CHECK_EQ(pop(), 1);
        CHECK_EQ(elem.head, head);
        vq_push(&g.vq, &elem, round);
        uint16_t idx = (uint16_t)(65530 + round);
        CHECK_EQ(g_used(&g)->ring[idx % NUM].id, head);
        CHECK_EQ(g_used(&g)->ring[idx % NUM].len, round);
        CHECK_EQ(g_used(&g)->idx, (uint16_t)(idx + 1));
    }
    CHECK_EQ(vq_last_avail(&g.vq), (uint16_t)(65530 + 3 * NUM));
    guest_fini(&g);
}

static void test_double_push_refused(void)
{
    setup(BASE_FEATURES);
    g_set_desc(&g, 1, g_gpa(G_DATA), 16, 0, 0);
    g_publish(&g, 1);
    CHECK_EQ(pop(), 1);
    vq_push(&g.vq, &elem, 0);
    vq_push(&g.vq, &elem, 0);                    /* device bug: ignored */
    CHECK_EQ(g_used(&g)->idx, 1);
    CHECK_EQ(vq_inflight(&g.vq), 0);
    guest_fini(&g);
}

/* Drain eventfd; returns how many signals were pending (0 or 1). */
static int signalled(int efd)
{
    uint64_t v = 0;

    return read(efd, &v, sizeof(v)) == sizeof(v) ? 1 : 0;
}

static void push_one(unsigned head)
{
    g_set_desc(&g, head, g_gpa(G_DATA), 16, VRING_DESC_F_WRITE, 0);
    g_publish(&g, head);
    CHECK_EQ(pop(), 1);
    vq_push(&g.vq, &elem, 1);
}

static void test_notify_event_idx(void)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    uint16_t *used_event;

    setup(BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX));
    used_event = &g_avail(&g)->ring[NUM];
    vq_set_call(&g.vq, efd);
    CHECK_EQ(signalled(efd), 1);                /* a new call fd on a running queue: once */

    vq_notify(&g.vq);                           /* nothing used yet */
    CHECK_EQ(signalled(efd), 0);
    *used_event = 0;
    push_one(0);                                /* used 0 -> 1 crosses event 0 */
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 1);
    push_one(1);                                /* 1 -> 2, event still 0: suppressed */
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 0);
    *used_event = 3;
    push_one(2);                                /* 2 -> 3: event 3 not reached */
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 0);
    push_one(3);                                /* 3 -> 4: crosses 3 */
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 1);
    vq_notify(&g.vq);                           /* nothing new */
    CHECK_EQ(signalled(efd), 0);
    *used_event = 5;                            /* batch 4 -> 7 crosses 5 */
    push_one(4);
    push_one(5);
    push_one(6);
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 1);

    /* A replaced call fd gets the next signal whatever used_event says. */
    int efd2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    vq_set_call(&g.vq, efd2);
    CHECK_EQ(signalled(efd2), 1);               /* signalled on the swap */
    *used_event = 100;
    push_one(7);
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd2), 1);
    guest_fini(&g);                             /* closes efd2; efd was closed by the swap */
}

static void test_notify_flags(void)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    setup(BASE_FEATURES);
    vq_set_call(&g.vq, efd);
    CHECK_EQ(signalled(efd), 1);                /* a new call fd on a running queue: once */
    g_avail(&g)->flags = VRING_AVAIL_F_NO_INTERRUPT;
    push_one(0);
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 0);
    g_avail(&g)->flags = 0;
    push_one(1);
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 1);
    guest_fini(&g);
}

static void test_notify_on_empty(void)
{
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    setup(BASE_FEATURES | F(VIRTIO_F_NOTIFY_ON_EMPTY));
    vq_set_call(&g.vq, efd);
    CHECK_EQ(signalled(efd), 1);                /* a new call fd on a running queue: once */
    g_avail(&g)->flags = VRING_AVAIL_F_NO_INTERRUPT;
    /* One more buffer still available: suppression holds. */
    g_set_desc(&g, 9, g_gpa(G_DATA), 16, 0, 0);
    push_one(0);
    g_publish(&g, 9);
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 0);
    /* Ring empty: notify despite NO_INTERRUPT. */
    CHECK_EQ(pop(), 1);
    vq_push(&g.vq, &elem, 0);
    vq_notify(&g.vq);
    CHECK_EQ(signalled(efd), 1);
    guest_fini(&g);
}

static void test_enable_disable_notify(void)
{
    uint16_t *avail_event;

    setup(BASE_FEATURES);
    vq_disable_notify(&g.vq);
    CHECK_EQ(g_used(&g)->flags, VRING_USED_F_NO_NOTIFY);
    CHECK(!vq_enable_notify(&g.vq));
    CHECK_EQ(g_used(&g)->flags, 0);
    vq_disable_notify(&g.vq);
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, 0, 0);
    g_publish(&g, 0);
    CHECK(vq_enable_notify(&g.vq));             /* arrived while disabled */
    guest_fini(&g);

    setup(BASE_FEATURES | F(VIRTIO_RING_F_EVENT_IDX));
    avail_event = (uint16_t *)&g_used(&g)->ring[NUM];
    g_set_desc(&g, 0, g_gpa(G_DATA), 16, 0, 0);
    g_publish(&g, 0);
    CHECK_EQ(pop(), 1);
    *avail_event = 0xdead;
    CHECK_EQ(pop(), 0);                         /* empty pop re-arms kicks */
    CHECK_EQ(*avail_event, 1);
    vq_disable_notify(&g.vq);
    *avail_event = 0xbeef;
    CHECK_EQ(pop(), 0);                         /* disabled: left alone */
    CHECK_EQ(*avail_event, 0xbeef);
    CHECK(!vq_enable_notify(&g.vq));
    CHECK_EQ(*avail_event, 1);
    CHECK_EQ(g_used(&g)->flags, 0);             /* flags untouched with EVENT_IDX */
    vq_push(&g.vq, &elem, 0);
    guest_fini(&g);
}

static bool page_mapped(void *p)
{
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);

    return msync((void *)page, 1, MS_ASYNC) == 0 || errno != ENOMEM;
}

static void test_mapping_outlives_table(void)
{
    struct vhost_mem *other;

    setup(BASE_FEATURES);
    memcpy(g.ram + G_DATA, "still-mapped", 12);
    g_set_desc(&g, 0, g_gpa(G_DATA), 12, 0, 0);
    g_publish(&g, 0);
    CHECK_EQ(pop(), 1);

    /* The frontend replaces the table with one that lacks our region. */
    other = mem_new(NULL);
    CHECK_EQ(g_add_region(&g, other, 0, G_SIZE / 2), 0);
    vq_set_mem(&g.vq, other);
    mem_unref(g.table);
    g.table = other;
    CHECK(!vq_is_broken(&g.vq));                /* rings are in the new table too */
    CHECK(page_mapped(iov[0].iov_base));
    CHECK_MEM(iov[0].iov_base, "still-mapped", 12);
    void *old = iov[0].iov_base;
    vq_push(&g.vq, &elem, 0);
    CHECK(!page_mapped(old));                   /* last user gone: unmapped */
    guest_fini(&g);
}

static void test_rings_leave_memory(void)
{
    struct vhost_mem *other;

    setup(BASE_FEATURES);
    other = mem_new(NULL);
    CHECK_EQ(g_add_region(&g, other, G_SIZE / 2, G_SIZE / 2), 0);
    vq_set_mem(&g.vq, other);                   /* rings not mapped any more */
    CHECK(vq_is_broken(&g.vq));
    CHECK_EQ(pop(), -EIO);
    mem_unref(g.table);
    g.table = other;
    guest_fini(&g);
}

static void test_config_checks(void)
{
    struct vq vq;

    vq_init(&vq, 1);
    CHECK_EQ(vq_set_num(&vq, 0), -EINVAL);
    CHECK_EQ(vq_set_num(&vq, 3), -EINVAL);
    CHECK_EQ(vq_set_num(&vq, 65536), -EINVAL);
    CHECK_EQ(vq_set_num(&vq, 32768), 0);
    CHECK_EQ(vq_set_base(&vq, 0x10000), -EINVAL);
    CHECK_EQ(vq_set_addr(&vq, 8, 0, 0, 0, 0), -EINVAL);
    CHECK_EQ(vq_set_addr(&vq, 0, 1, 0, 0, 0), -EINVAL);
    CHECK_EQ(vq_set_addr(&vq, 0, 0, 2, 0, 0), -EINVAL);
    CHECK(!vq_ready(&vq));
    vq_destroy(&vq);

    /* Rings must fit in one region once memory and size are known. */
    setup(BASE_FEATURES);
    vq_stop(&g.vq);
    CHECK_EQ(vq_set_addr(&g.vq, G_UVA + G_SIZE - 16, G_UVA + G_AVAIL, G_UVA + G_USED, 0, 0),
             -EFAULT);
    CHECK_EQ(vq_set_addr(&g.vq, G_UVA, G_UVA + G_SIZE - 2, G_UVA + G_USED, 0, 0), -EFAULT);
    CHECK_EQ(vq_set_addr(&g.vq, G_GPA, G_GPA + G_AVAIL, G_GPA + G_USED, 0, 0), -EFAULT);
    guest_fini(&g);
}

static void test_mem_table(void)
{
    struct vhost_mem *m = mem_new(NULL);
    struct vhost_mem_region *r;
    struct vhost_mem_desc d;
    int fd = memfd_create("t", MFD_CLOEXEC);
    uint64_t len;

    CHECK(fd >= 0 && ftruncate(fd, 1 << 16) == 0);
    d = (struct vhost_mem_desc){ .gpa = 0x1000, .size = 0x4000, .uva = 0x10000, .mmap_offset = 0x1000 };
    CHECK_EQ(mem_region_map(&d, dup(fd), &r, NULL), 0);
    CHECK_EQ(mem_insert(m, r), 0);
    mem_region_unref(r);

    /* Overlap at either end is refused. */
    d = (struct vhost_mem_desc){ .gpa = 0x4fff, .size = 0x1000, .uva = 0x20000 };
    CHECK_EQ(mem_region_map(&d, dup(fd), &r, NULL), 0);
    CHECK_EQ(mem_insert(m, r), -EEXIST);
    mem_region_unref(r);
    d = (struct vhost_mem_desc){ .gpa = 0, .size = 0x1001, .uva = 0x20000 };
    CHECK_EQ(mem_region_map(&d, dup(fd), &r, NULL), 0);
    CHECK_EQ(mem_insert(m, r), -EEXIST);
    mem_region_unref(r);
    /* Adjacent is fine, and sorted in front. */
    d = (struct vhost_mem_desc){ .gpa = 0, .size = 0x1000, .uva = 0x20000 };
    CHECK_EQ(mem_region_map(&d, dup(fd), &r, NULL), 0);
    CHECK_EQ(mem_insert(m, r), 0);
    mem_region_unref(r);
    CHECK_EQ(m->nregions, 2);
    CHECK_EQ(m->regions[0]->d.gpa, 0);

    /* Bad descriptions and fds. */
    const char *why;
    d = (struct vhost_mem_desc){ .gpa = 0x100000, .size = 0, .uva = 0 };
    CHECK_EQ(mem_region_map(&d, fd, &r, &why), -EINVAL);
    d = (struct vhost_mem_desc){ .gpa = UINT64_MAX - 0xfff, .size = 0x2000, .uva = 0 };
    CHECK_EQ(mem_region_map(&d, fd, &r, &why), -EINVAL);
    d = (struct vhost_mem_desc){ .gpa = 0x100000, .size = 0x2000, .uva = UINT64_MAX };
    CHECK_EQ(mem_region_map(&d, fd, &r, &why), -EINVAL);
    d = (struct vhost_mem_desc){ .gpa = 0x100000, .size = 1 << 16, .uva = 0, .mmap_offset = 1 };
    CHECK_EQ(mem_region_map(&d, fd, &r, &why), -EINVAL);       /* past end of file */
    d = (struct vhost_mem_desc){ .gpa = 0x100000, .size = 0x1000, .uva = 0 };
    int pfd[2];
    CHECK_EQ(pipe(pfd), 0);
    CHECK_EQ(mem_region_map(&d, pfd[0], &r, &why), -EINVAL);   /* not a file */
    close(pfd[0]);
    close(pfd[1]);

    /* Translation. */
    len = 0x100;
    CHECK(mem_gpa_to_host(m, 0x4f80, &len) != NULL);
    CHECK_EQ(len, 0x80);
    CHECK(mem_gpa_to_host(m, 0x5000, &len) == NULL);
    CHECK(mem_gpa_range(m, 0x0ff0, 0x20) == NULL);             /* spans two regions */
    CHECK(mem_gpa_range(m, 0x1000, 0x4000) != NULL);
    CHECK(mem_gpa_range(m, 0x1000, 0x4001) == NULL);
    CHECK(mem_gpa_range(m, 0x1000, 0) == NULL);
    CHECK(mem_uva_range(m, 0x10000, 0x4000) == mem_gpa_range(m, 0x1000, 0x4000));
    CHECK(mem_uva_range(m, 0x13fff, 2) == NULL);

    d = (struct vhost_mem_desc){ .gpa = 0, .size = 0x1000, .uva = 0x20000 };
    CHECK_EQ(mem_remove(m, &d), 0);
    CHECK_EQ(mem_remove(m, &d), -ENOENT);
    CHECK_EQ(m->nregions, 1);
    mem_unref(m);
    close(fd);
}

int main(void)
{
    log_set_level(getenv("VHOST_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERR);
    RUN_TEST(test_simple_chain);
    RUN_TEST(test_zero_length_desc);
    RUN_TEST(test_indirect);
    RUN_TEST(test_indirect_without_feature);
    RUN_TEST(test_nested_indirect);
    RUN_TEST(test_indirect_with_next);
    RUN_TEST(test_indirect_bad_tables);
    RUN_TEST(test_indirect_loop);
    RUN_TEST(test_chain_limit);
    RUN_TEST(test_desc_loop);
    RUN_TEST(test_next_out_of_range);
    RUN_TEST(test_out_of_region);
    RUN_TEST(test_chain_byte_limit);
    RUN_TEST(test_in_before_out);
    RUN_TEST(test_avail_idx_jump);
    RUN_TEST(test_head_out_of_range);
    RUN_TEST(test_head_in_flight_twice);
    RUN_TEST(test_iov_cap);
    RUN_TEST(test_split_regions);
    RUN_TEST(test_used_ring_wrap);
    RUN_TEST(test_double_push_refused);
    RUN_TEST(test_notify_event_idx);
    RUN_TEST(test_notify_flags);
    RUN_TEST(test_notify_on_empty);
    RUN_TEST(test_enable_disable_notify);
    RUN_TEST(test_mapping_outlives_table);
    RUN_TEST(test_rings_leave_memory);
    RUN_TEST(test_config_checks);
    RUN_TEST(test_mem_table);
    return test_exit();
}
