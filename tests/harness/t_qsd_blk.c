/* Validate the vuf transport against a real backend: qemu-storage-daemon's
 * vhost-user-blk export. Skips (77) when qemu-storage-daemon is missing.
 * Usage: t_qsd_blk [path-to-qemu-storage-daemon]  (or env QSD) */
#include "test.h"
#include "vuf.h"
#include "vuf_blk.h"
#include "vuf_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#define IMG_SIZE (16ull << 20)
#define SEED     7

static char g_dir[128], g_sock[192], g_img[192];
static struct vuf_proc g_qsd;

static struct vuf *open_with(struct vuf_opts *o)
{
    if (!o->num_queues)
        o->num_queues = 2;
    struct vuf *h = vuf_new(o);
    CHECK(h != NULL);
    if (!h)
        return NULL;
    int rc = vuf_open(h, g_sock);
    CHECK_EQ(rc, 0);
    if (rc) {
        vuf_free(h);
        return NULL;
    }
    return h;
}

static struct vuf *open_default(void)
{
    struct vuf_opts o = { 0 };
    return open_with(&o);
}

static int blk_rw(struct vuf *h, unsigned q, uint32_t type, uint64_t sector, void *buf,
                  size_t len, unsigned segs, unsigned flags)
{
    struct vuf_blk_io io = { q, type, sector, buf, len, segs, flags };
    uint8_t st = 0xff;
    int rc = vuf_blk_do(h, &io, &st);
    if (rc < 0)
        return rc;
    return st;
}

/* Write a fresh pattern at sector, read it back, compare guest data and file. */
static void roundtrip(struct vuf *h, unsigned q, uint64_t sector, size_t len, unsigned segs,
                      unsigned flags, uint32_t seed)
{
    uint8_t *w = malloc(len), *r = malloc(len);
    vuf_pattern(w, len, sector * 512, seed);
    CHECK_EQ(blk_rw(h, q, VUF_BLK_T_OUT, sector, w, len, segs, flags), VUF_BLK_S_OK);
    memset(r, 0, len);
    CHECK_EQ(blk_rw(h, q, VUF_BLK_T_IN, sector, r, len, segs, flags), VUF_BLK_S_OK);
    CHECK_MEM(r, w, len);
    CHECK_EQ(blk_rw(h, q, VUF_BLK_T_FLUSH, 0, NULL, 0, 0, flags), VUF_BLK_S_OK);
    CHECK_EQ(vuf_file_cmp(g_img, sector * 512, w, len), 0);
    free(w);
    free(r);
}

static void test_negotiation(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    CHECK(vuf_features_offered(h) & VUF_BIT(VUF_F_VERSION_1));
    CHECK(vuf_features_offered(h) & VUF_BIT(VUF_F_PROTOCOL_FEATURES));
    CHECK(vuf_has_protocol_feature(h, VUF_PF_MQ));
    CHECK(vuf_has_protocol_feature(h, VUF_PF_REPLY_ACK));
    CHECK(vuf_queue_num(h) >= 2);
    CHECK_EQ(vuf_num_queues(h), 2);
    vuf_free(h);
}

static void test_read_pattern(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    /* untouched area: must read the image's initial pattern */
    uint8_t buf[4096], exp[4096];
    CHECK_EQ(blk_rw(h, 0, VUF_BLK_T_IN, 3000, buf, sizeof(buf), 1, 0), VUF_BLK_S_OK);
    vuf_pattern(exp, sizeof(exp), 3000 * 512, SEED);
    CHECK_MEM(buf, exp, sizeof(buf));
    vuf_free(h);
}

static void test_write_read(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    roundtrip(h, 0, 100, 4096, 1, 0, 11);
    roundtrip(h, 1, 200, 8192, 1, 0, 12);     /* second queue */
    roundtrip(h, 0, 300, 65536, 16, 0, 13);   /* 16 segments */
    vuf_free(h);
}

static void test_indirect(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    CHECK(vuf_has_feature(h, VUF_F_INDIRECT_DESC));
    roundtrip(h, 0, 400, 32768, 64, VUF_ADD_INDIRECT, 21);
    roundtrip(h, 1, 500, 512, 1, VUF_ADD_INDIRECT, 22);
    vuf_free(h);
}

static void test_event_idx(void)
{
    struct vuf_opts o = { .features = VUF_FEATURES_DEFAULT | VUF_BIT(VUF_F_EVENT_IDX) };
    struct vuf *h = open_with(&o);
    if (!h)
        return;
    CHECK(vuf_has_feature(h, VUF_F_EVENT_IDX));
    for (unsigned i = 0; i < 300; i++)   /* wraps the 128-entry ring twice */
        roundtrip(h, i & 1, 600 + (i % 50) * 8, 4096, 1, 0, 100 + i);
    /* the device must have asked for kicks (avail_event follows avail idx) */
    CHECK(vuf_vq_avail_event(h, 0) != 0);
    vuf_free(h);
}

static void test_queue_depth(void)
{
    struct vuf_opts o = { .features = VUF_FEATURES_DEFAULT | VUF_BIT(VUF_F_EVENT_IDX) };
    struct vuf *h = open_with(&o);
    if (!h)
        return;
    enum { N = 128, LEN = 4096 };   /* a full ring, indirect */
    uint64_t gpa = vuf_alloc(h, (uint64_t)N * (LEN + 32), 4096);
    CHECK(gpa != VUF_GPA_NONE);
    uint8_t *base = vuf_ptr(h, gpa, (uint64_t)N * (LEN + 32));
    /* N writes at once, one kick */
    for (unsigned i = 0; i < N; i++) {
        uint64_t g = gpa + (uint64_t)i * (LEN + 32);
        uint8_t *p = base + (uint64_t)i * (LEN + 32);
        struct vuf_blk_req_hdr hdr = { VUF_BLK_T_OUT, 0, 4096 + i * 8 };
        memcpy(p, &hdr, 16);
        vuf_pattern(p + 16, LEN, hdr.sector * 512, 77);
        p[16 + LEN] = 0xff;
        struct vuf_sg sg[3] = { { g, 16, false }, { g + 16, LEN, false }, { g + 16 + LEN, 1, true } };
        CHECK(vuf_vq_add(h, 0, sg, 3, p, VUF_ADD_INDIRECT) >= 0);
    }
    CHECK_EQ(vuf_vq_num_free(h, 0), 0);
    CHECK_EQ(vuf_vq_kick(h, 0), 1);
    unsigned done = 0;
    int64_t deadline = vuf_now_ms() + 5000;
    while (done < N && vuf_now_ms() < deadline) {
        void *tok;
        uint32_t len;
        int rc = vuf_vq_get_used(h, 0, &tok, &len);
        CHECK(rc >= 0);
        if (rc == 1) {
            CHECK_EQ(((uint8_t *)tok)[16 + LEN], VUF_BLK_S_OK);
            done++;
        } else if (vuf_vq_wait(h, 0, 1000) < 0) {
            break;
        }
    }
    CHECK_EQ(done, N);
    CHECK_EQ(vuf_vq_inflight(h, 0), 0);
    CHECK_EQ(vuf_vq_num_free(h, 0), 128);
    uint8_t exp[LEN];
    for (unsigned i = 0; i < N; i += 7) {
        vuf_pattern(exp, LEN, (4096 + i * 8) * 512ull, 77);
        CHECK_EQ(vuf_file_cmp(g_img, (4096 + i * 8) * 512ull, exp, LEN), 0);
    }
    vuf_free(h);
}

static void test_multi_region(void)
{
    /* three regions in one memfd at offsets, gpa holes, reversed qva */
    struct vuf_opts o = { .num_regions = 3, .one_memfd = true, .mmap_offset = 2 << 20 };
    struct vuf *h = open_with(&o);
    if (!h)
        return;
    for (unsigned r = 0; r < 3; r++) {
        uint64_t hg = vuf_alloc_in(h, (r + 1) % 3, 16, 16);
        uint64_t dg = vuf_alloc_in(h, r, 8192, 512);
        uint64_t sg_ = vuf_alloc_in(h, (r + 2) % 3, 16, 16);
        uint8_t *hp = vuf_ptr(h, hg, 16), *dp = vuf_ptr(h, dg, 8192), *sp = vuf_ptr(h, sg_, 1);
        struct vuf_blk_req_hdr hdr = { VUF_BLK_T_OUT, 0, 5000 + r * 16 };
        memcpy(hp, &hdr, 16);
        vuf_pattern(dp, 8192, hdr.sector * 512, 30 + r);
        *sp = 0xff;
        struct vuf_sg sg[3] = { { hg, 16, false }, { dg, 8192, false }, { sg_, 1, true } };
        CHECK(vuf_vq_add(h, 0, sg, 3, hp, 0) >= 0);
        vuf_vq_kick(h, 0);
        CHECK_EQ(vuf_vq_wait_token(h, 0, hp, NULL, 5000), 1);
        CHECK_EQ(*sp, VUF_BLK_S_OK);
        CHECK_EQ(vuf_file_cmp(g_img, hdr.sector * 512, dp, 8192), 0);
    }
    vuf_free(h);
}

static void test_straddle(void)
{
    /* two gpa-contiguous regions in separate memfds; one buffer crosses them */
    struct vuf_opts o = { .num_regions = 2, .gpa_contiguous = true, .mem_size = 32 << 20 };
    struct vuf *h = open_with(&o);
    if (!h)
        return;
    const struct vuf_region *r0 = vuf_region(h, 0), *r1 = vuf_region(h, 1);
    CHECK_EQ(r0->gpa + r0->size, r1->gpa);
    uint64_t g = r1->gpa - 4096;      /* last page of region 0 + first of region 1 */
    uint8_t *lo = r0->hva + r0->size - 4096, *hi = r1->hva;
    uint8_t want[8192];
    vuf_pattern(want, sizeof(want), 6000 * 512ull, 44);
    memcpy(lo, want, 4096);
    memcpy(hi, want + 4096, 4096);
    uint64_t hg = vuf_alloc(h, 32, 16);
    uint8_t *hp = vuf_ptr(h, hg, 32);
    struct vuf_blk_req_hdr hdr = { VUF_BLK_T_OUT, 0, 6000 };
    memcpy(hp, &hdr, 16);
    hp[16] = 0xff;
    struct vuf_sg sg[3] = { { hg, 16, false }, { g, 8192, false }, { hg + 16, 1, true } };
    CHECK(vuf_vq_add(h, 0, sg, 3, hp, 0) >= 0);
    vuf_vq_kick(h, 0);
    CHECK_EQ(vuf_vq_wait_token(h, 0, hp, NULL, 5000), 1);
    CHECK_EQ(hp[16], VUF_BLK_S_OK);
    CHECK_EQ(vuf_file_cmp(g_img, 6000 * 512ull, want, sizeof(want)), 0);
    vuf_free(h);
}

static void test_add_mem_reg(void)
{
    struct vuf_opts o = { .num_regions = 2, .add_mem_reg = true };
    struct vuf *h = open_with(&o);
    if (!h)
        return;
    CHECK(vuf_has_protocol_feature(h, VUF_PF_CONFIGURE_MEM_SLOTS));
    CHECK(vuf_max_mem_slots(h) >= 2);
    roundtrip(h, 0, 7000, 4096, 2, 0, 55);
    vuf_free(h);
}

static void test_stop_start(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    roundtrip(h, 0, 7100, 4096, 1, 0, 60);
    roundtrip(h, 0, 7108, 4096, 1, 0, 61);
    CHECK_EQ(vuf_stop(h), 0);
    /* three requests were completed on queue 0 by roundtrip each (w, r, flush) */
    CHECK_EQ(vuf_vq_used_idx(h, 0), 6);
    CHECK_EQ(vuf_start(h), 0);
    roundtrip(h, 0, 7116, 4096, 1, 0, 62);
    vuf_free(h);
}

static void test_reconnect(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    roundtrip(h, 0, 7200, 4096, 1, 0, 70);
    roundtrip(h, 1, 7208, 4096, 1, 0, 71);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(vuf_reconnect(h), 0);
        roundtrip(h, 0, 7216 + i * 8, 4096, 1, 0, 72 + i);
        roundtrip(h, 1, 7300 + i * 8, 4096, 1, 0, 80 + i);
    }
    vuf_free(h);
}

static void test_get_id(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    char id[20];
    memset(id, 0, sizeof(id));
    int st = blk_rw(h, 0, VUF_BLK_T_GET_ID, 0, id, sizeof(id), 1, 0);
    CHECK(st == VUF_BLK_S_OK || st == VUF_BLK_S_UNSUPP);
    vuf_free(h);
}

static void test_peer_closed(void)
{
    struct vuf *h = open_default();
    if (!h)
        return;
    CHECK_EQ(vuf_peer_closed(h, 100), 0);
    /* a SET_VRING_NUM for a queue that does not exist makes libvhost-user drop us */
    vuf_set_ack(h, false);
    struct vuf_vring_state s = { 200, 128 };
    CHECK_EQ(vuf_msg_send(h, VUF_SET_VRING_NUM, VUF_FLAG_VERSION, &s, sizeof(s), NULL, 0), 0);
    int closed = vuf_peer_closed(h, 1000);
    fprintf(stderr, "  qsd after SET_VRING_NUM index 200: %s\n", closed ? "closed" : "still open");
    vuf_free(h);
    /* and it serves the next session */
    h = open_default();
    if (h) {
        roundtrip(h, 0, 7400, 4096, 1, 0, 90);
        vuf_free(h);
    }
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    const char *qsd = vuf_find_exe(argc > 1 ? argv[1] : NULL, "QSD");
    if (!qsd && access("/usr/bin/qemu-storage-daemon", X_OK) == 0)
        qsd = "/usr/bin/qemu-storage-daemon";
    if (!qsd) {
        fprintf(stderr, "SKIP: qemu-storage-daemon not found\n");
        return 77;
    }
    if (vuf_tmpdir(g_dir, sizeof(g_dir)) < 0)
        return 1;
    snprintf(g_sock, sizeof(g_sock), "%s/s", g_dir);
    snprintf(g_img, sizeof(g_img), "%s/img", g_dir);
    if (vuf_make_image(g_img, IMG_SIZE, SEED) < 0)
        return 1;
    char bd[256], ex[320];
    snprintf(bd, sizeof(bd), "driver=file,node-name=f,filename=%s", g_img);
    snprintf(ex, sizeof(ex), "type=vhost-user-blk,id=e,node-name=f,addr.type=unix,addr.path=%s,"
             "writable=on,num-queues=2", g_sock);
    char *args[] = { (char *)qsd, "--blockdev", bd, "--export", ex, NULL };
    if (vuf_proc_spawn(&g_qsd, args) < 0 || vuf_proc_wait_socket(&g_qsd, g_sock, 5000) < 0) {
        vuf_rmtree(g_dir);
        return 1;
    }

    RUN_TEST(test_negotiation);
    RUN_TEST(test_read_pattern);
    RUN_TEST(test_write_read);
    RUN_TEST(test_indirect);
    RUN_TEST(test_event_idx);
    RUN_TEST(test_queue_depth);
    RUN_TEST(test_multi_region);
    RUN_TEST(test_straddle);
    RUN_TEST(test_add_mem_reg);
    RUN_TEST(test_stop_start);
    RUN_TEST(test_reconnect);
    RUN_TEST(test_get_id);
    RUN_TEST(test_peer_closed);

    CHECK_EQ(vuf_proc_stop(&g_qsd, 5000), 0);
    vuf_rmtree(g_dir);
    return test_exit();
}
