/* Test helper: a fake guest RAM (memfd) mapped twice, once as the "guest"
 * writes rings and buffers, once through a vhost memory table as the device
 * sees it, and a split ring over it built without any socket. */
#ifndef VSCSI_TEST_VHOST_GUEST_H
#define VSCSI_TEST_VHOST_GUEST_H

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost/mem.h"
#include "vhost/virtq_internal.h"

#define G_SIZE          (1u << 20)
#define G_GPA           0x100000ull             /* guest-physical base */
#define G_UVA           0x7f0000000000ull       /* "QEMU virtual" base */
#define G_DESC          0x0000u
#define G_AVAIL         0x4000u
#define G_USED          0x8000u
#define G_DATA          0x10000u                /* buffers from here */

struct guest {
    int fd;
    uint8_t *ram;                   /* the guest's view */
    struct vhost_mem *table;        /* the device's view */
    struct vq vq;
    unsigned num;
    uint16_t avail_idx;
};

static inline struct vring_desc *g_desc(struct guest *g) { return (void *)(g->ram + G_DESC); }
static inline struct vring_avail *g_avail(struct guest *g) { return (void *)(g->ram + G_AVAIL); }
static inline struct vring_used *g_used(struct guest *g) { return (void *)(g->ram + G_USED); }
static inline uint64_t g_gpa(unsigned off) { return G_GPA + off; }

/* Map [off, off + size) of the guest file as one region. */
static inline int g_add_region(struct guest *g, struct vhost_mem *m, uint64_t off, uint64_t size)
{
    struct vhost_mem_desc d = { .gpa = G_GPA + off, .size = size, .uva = G_UVA + off,
                                .mmap_offset = off };
    struct vhost_mem_region *r;
    int ret = mem_region_map(&d, dup(g->fd), &r, NULL);

    if (ret < 0)
        return ret;
    ret = mem_insert(m, r);
    mem_region_unref(r);
    return ret;
}

/* split: map the RAM as two adjacent regions (halves) instead of one. */
static inline int guest_init(struct guest *g, unsigned num, uint64_t features, bool split)
{
    memset(g, 0, sizeof(*g));
    g->num = num;
    g->fd = memfd_create("guest", MFD_CLOEXEC);
    if (g->fd < 0 || ftruncate(g->fd, G_SIZE) < 0)
        return -errno;
    g->ram = mmap(NULL, G_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, g->fd, 0);
    if (g->ram == MAP_FAILED)
        return -errno;
    g->table = mem_new(NULL);
    if (split) {
        if (g_add_region(g, g->table, 0, G_SIZE / 2) < 0 ||
            g_add_region(g, g->table, G_SIZE / 2, G_SIZE / 2) < 0)
            return -EINVAL;
    } else if (g_add_region(g, g->table, 0, G_SIZE) < 0) {
        return -EINVAL;
    }
    vq_init(&g->vq, 0);
    vq_set_features(&g->vq, features);
    vq_set_mem(&g->vq, g->table);
    if (vq_set_num(&g->vq, num) < 0 ||
        vq_set_addr(&g->vq, G_UVA + G_DESC, G_UVA + G_AVAIL, G_UVA + G_USED, 0, 0) < 0)
        return -EINVAL;
    vq_set_kick(&g->vq, -1, true);
    return vq_start(&g->vq);
}

static inline void guest_fini(struct guest *g)
{
    vq_destroy(&g->vq);
    mem_unref(g->table);
    munmap(g->ram, G_SIZE);
    close(g->fd);
}

static inline void g_set_desc(struct guest *g, unsigned i, uint64_t addr, uint32_t len,
                              uint16_t flags, uint16_t next)
{
    g_desc(g)[i] = (struct vring_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* Make head available (driver side of 2.7.13). */
static inline void g_publish(struct guest *g, uint16_t head)
{
    g_avail(g)->ring[g->avail_idx % g->num] = head;
    g->avail_idx++;
    __atomic_store_n(&g_avail(g)->idx, g->avail_idx, __ATOMIC_RELEASE);
}

#endif
