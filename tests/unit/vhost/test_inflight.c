/* Inflight I/O tracking (vhost-user "Inflight I/O tracking", split rings):
 * marks and counters on pop, the last-batch list and used_idx on push, and
 * what a new backend process does at queue start with the region its
 * predecessor left: repair the last batch, resubmit in counter order, then
 * continue with new avail entries. A "restart" here is a fresh struct vq over
 * the same guest memory and region, started like QEMU does after a backend
 * crash (SET_VRING_BASE = used->idx). */
#include <stdlib.h>

#include "test.h"
#include "guest.h"
#include "util/log.h"

#define F(bit)          (1ull << (bit))
#define FEAT            (F(VIRTIO_F_VERSION_1) | F(VIRTIO_RING_F_INDIRECT_DESC))
#define NUM             16
#define IOV_CAP         16

static struct guest g;
static struct vq_inflight_region *reg;
static struct iovec iov[NUM][IOV_CAP];
static struct vq_elem el[NUM];

static void setup(void)
{
    CHECK_EQ(guest_init(&g, NUM, FEAT, false), 0);
    reg = aligned_alloc(64, vq_inflight_region_bytes(NUM));
    vq_inflight_region_init(reg, NUM);
    /* Attach needs a stopped queue, like SET_INFLIGHT_FD before the rings start. */
    vq_stop(&g.vq);
    CHECK_EQ(vq_set_inflight(&g.vq, reg, NUM), 0);
    CHECK_EQ(vq_start(&g.vq), 0);
    for (unsigned h = 0; h < NUM; h++)
        g_set_desc(&g, h, g_gpa(G_DATA + h * 0x100), 0x80, VRING_DESC_F_WRITE, 0);
}

static void teardown(void)
{
    guest_fini(&g);
    free(reg);
}

static int pop(unsigned i)
{
    return vq_pop(&g.vq, &el[i], iov[i], IOV_CAP);
}

/* A popped element the dying process never pushes: drop its memory reference. */
static void abandon(unsigned i)
{
    mem_unref(el[i].mem);
    el[i].mem = NULL;
}

/* The backend process dies: its struct vq is gone without any push; the
 * guest memory and the region (kept by the frontend) stay. A new one starts
 * the ring at used->idx. */
static void restart(void)
{
    vq_destroy(&g.vq);
    vq_init(&g.vq, 0);
    vq_set_features(&g.vq, FEAT);
    vq_set_mem(&g.vq, g.table);
    CHECK_EQ(vq_set_num(&g.vq, NUM), 0);
    CHECK_EQ(vq_set_addr(&g.vq, G_UVA + G_DESC, G_UVA + G_AVAIL, G_UVA + G_USED, 0, 0), 0);
    vq_set_kick(&g.vq, -1, true);
    CHECK_EQ(vq_set_base(&g.vq, g_used(&g)->idx), 0);
    CHECK_EQ(vq_set_inflight(&g.vq, reg, NUM), 0);
    CHECK_EQ(vq_start(&g.vq), 0);
}

static void test_marks(void)
{
    setup();
    g_publish(&g, 3);
    g_publish(&g, 5);
    g_publish(&g, 7);
    for (unsigned i = 0; i < 3; i++)
        CHECK_EQ(pop(i), 1);
    CHECK_EQ(reg->desc[3].inflight, 1);
    CHECK_EQ(reg->desc[5].inflight, 1);
    CHECK_EQ(reg->desc[7].inflight, 1);
    CHECK_EQ(reg->desc[3].counter, 0);
    CHECK_EQ(reg->desc[5].counter, 1);
    CHECK_EQ(reg->desc[7].counter, 2);
    vq_push(&g.vq, &el[1], 0x80);                /* head 5 */
    CHECK_EQ(reg->desc[5].inflight, 0);
    CHECK_EQ(reg->last_batch_head, 5);
    CHECK_EQ(reg->used_idx, 1);
    CHECK_EQ(g_used(&g)->idx, 1);
    vq_push(&g.vq, &el[0], 0x80);                /* head 3 */
    CHECK_EQ(reg->last_batch_head, 3);
    CHECK_EQ(reg->desc[3].next, 5);
    CHECK_EQ(reg->used_idx, 2);
    vq_push(&g.vq, &el[2], 0x80);
    for (unsigned h = 0; h < NUM; h++)
        CHECK_EQ(reg->desc[h].inflight, 0);
    teardown();
}

static void test_resubmit_in_counter_order(void)
{
    setup();
    /* Pop 9, 3, 5, 7 (counters 0..3); complete 3 out of order; die. */
    g_publish(&g, 9);
    g_publish(&g, 3);
    g_publish(&g, 5);
    g_publish(&g, 7);
    for (unsigned i = 0; i < 4; i++)
        CHECK_EQ(pop(i), 1);
    vq_push(&g.vq, &el[1], 0x80);
    CHECK_EQ(g_used(&g)->idx, 1);
    abandon(0);
    abandon(2);
    abandon(3);
    restart();
    CHECK_EQ(vq_resubmit_pending(&g.vq), 3);
    CHECK_EQ(vq_last_avail(&g.vq), 4);          /* used 1 + 3 resubmitted */
    g_publish(&g, 11);                          /* arrives after the restart */
    CHECK_EQ(pop(0), 1);
    CHECK_EQ(el[0].head, 9);
    CHECK_EQ(pop(1), 1);
    CHECK_EQ(el[1].head, 5);
    CHECK_EQ(pop(2), 1);
    CHECK_EQ(el[2].head, 7);
    CHECK_EQ(el[2].in_num, 1);
    CHECK_EQ(iov[2][0].iov_len, 0x80);
    CHECK_EQ(pop(3), 1);
    CHECK_EQ(el[3].head, 11);                   /* then new work */
    CHECK_EQ(reg->desc[11].counter, 4);         /* counting on after the old ones */
    CHECK_EQ(pop(4), 0);
    CHECK_EQ(vq_inflight(&g.vq), 4);
    for (unsigned i = 0; i < 4; i++)
        vq_push(&g.vq, &el[i], 1);
    CHECK_EQ(g_used(&g)->idx, 5);
    CHECK_EQ(reg->used_idx, 5);
    /* A second restart finds nothing left to do. */
    restart();
    CHECK_EQ(vq_resubmit_pending(&g.vq), 0);
    CHECK_EQ(vq_last_avail(&g.vq), 5);
    CHECK_EQ(pop(0), 0);
    teardown();
}

/* Killed after used->idx was published but before the mark was cleared:
 * the last batch says that head is done. */
static void test_last_batch_repair(void)
{
    setup();
    g_publish(&g, 2);
    g_publish(&g, 4);
    CHECK_EQ(pop(0), 1);
    CHECK_EQ(pop(1), 1);
    vq_push(&g.vq, &el[1], 0x80);               /* head 4 fully used */
    /* Head 2: the batch list and used ring are written, the mark is not. */
    reg->desc[2].next = reg->last_batch_head;
    reg->last_batch_head = 2;
    g_used(&g)->ring[1] = (struct vring_used_elem){ 2, 0x80 };
    g_used(&g)->idx = 2;
    abandon(0);
    restart();
    CHECK_EQ(vq_resubmit_pending(&g.vq), 0);
    CHECK_EQ(reg->desc[2].inflight, 0);
    CHECK_EQ(reg->used_idx, 2);
    CHECK_EQ(vq_last_avail(&g.vq), 2);
    CHECK_EQ(pop(0), 0);
    teardown();
}

/* Stop and start in one process with requests in flight (SET_VRING_ENABLE
 * 0/1): our own marks are not resubmitted. */
static void test_same_process_restart(void)
{
    setup();
    g_publish(&g, 1);
    CHECK_EQ(pop(0), 1);
    vq_stop(&g.vq);
    CHECK_EQ(vq_start(&g.vq), 0);
    CHECK_EQ(vq_resubmit_pending(&g.vq), 0);
    CHECK_EQ(pop(1), 0);
    vq_push(&g.vq, &el[0], 0);
    teardown();
}

/* A region for another ring size, or never initialized, is reset, not believed. */
static void test_region_mismatch(void)
{
    setup();
    g_publish(&g, 1);
    CHECK_EQ(pop(0), 1);
    reg->desc_num = 8;
    abandon(0);
    restart();
    CHECK_EQ(vq_resubmit_pending(&g.vq), 0);
    CHECK_EQ(reg->desc_num, NUM);
    CHECK_EQ(reg->version, 1);
    CHECK_EQ(vq_last_avail(&g.vq), 0);
    CHECK_EQ(pop(0), 1);                        /* re-read from the avail ring */
    CHECK_EQ(el[0].head, 1);
    vq_push(&g.vq, &el[0], 0);
    teardown();
}

/* A hostile frontend fills the region with garbage: bounded work, and a
 * chain that does not walk breaks the queue instead of the daemon. */
static void test_garbage_region(void)
{
    setup();
    for (size_t i = 0; i < vq_inflight_region_bytes(NUM); i++)
        ((uint8_t *)reg)[i] = (uint8_t)(i * 37 + 11);
    reg->version = 1;
    reg->desc_num = NUM;
    reg->last_batch_head = 0xffff;
    reg->used_idx = 0x8000;
    g_set_desc(&g, 6, 0xdead0000ull, 16, 0, 0);  /* not guest memory */
    restart();
    unsigned n = vq_resubmit_pending(&g.vq), popped = 0;
    CHECK(n <= NUM);
    for (unsigned i = 0; i < NUM; i++) {
        int ret = pop(i);
        if (ret != 1)
            break;
        popped++;
    }
    CHECK(popped <= n);
    for (unsigned i = 0; i < popped; i++)
        vq_push(&g.vq, &el[i], 0);
    CHECK_EQ(vq_inflight(&g.vq), 0);
    teardown();
}

int main(void)
{
    log_set_level(getenv("VHOST_TEST_VERBOSE") ? LOG_DEBUG : LOG_ERR);
    RUN_TEST(test_marks);
    RUN_TEST(test_resubmit_in_counter_order);
    RUN_TEST(test_last_batch_repair);
    RUN_TEST(test_same_process_restart);
    RUN_TEST(test_region_mismatch);
    RUN_TEST(test_garbage_region);
    return test_exit();
}
