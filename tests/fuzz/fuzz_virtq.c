/* libFuzzer target: split virtqueue contents. The input is decoded into ring
 * setup (size, features) and a sequence of driver and device operations over
 * guest RAM in a memfd that the device sees through a two-region memory
 * table: write descriptors, bytes (indirect tables), avail entries and the
 * avail index; vq_pop, vq_push, notifications, stop/start. With inflight
 * tracking on (config bit 0x40) also: a backend "restart" (held chains
 * abandoned, a fresh struct vq over the same memory and inflight region
 * started at used->idx, as QEMU does after a crash: resubmission path) and
 * frontend writes into the inflight region.
 *
 * Oracle besides the sanitizers: every iovec vq_pop returns lies inside a
 * mapped region, the in-flight count matches the elements held, and a
 * popped head is never popped again before its push. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "util/log.h"
#include "vhost/mem.h"
#include "vhost/virtq_internal.h"

#define RAM             (256u << 10)
#define GPA             0x100000ull
#define UVA             0x7f0000000000ull
#define RING_DESC       0x0000u
#define RING_AVAIL      0x2000u
#define RING_USED       0x3000u
#define MAX_HELD        64
#define MAX_OPS         512
#define IOV_MAX_CAP     80

static int ram_fd = -1;
static uint8_t *ram;                /* the driver's view */
static struct vhost_mem *table;     /* the device's view: two adjacent regions */
static struct vq_inflight_region *ireg;     /* inflight buffer for up to 128 entries */
static uint64_t ireg_bytes;

static void die(const char *what)
{
    perror(what);
    abort();
}

static void add_region(uint64_t off, uint64_t size)
{
    struct vhost_mem_desc d = { .gpa = GPA + off, .size = size, .uva = UVA + off,
                                .mmap_offset = off };
    struct vhost_mem_region *r;

    if (mem_region_map(&d, dup(ram_fd), &r, NULL) < 0 || mem_insert(table, r) < 0)
        die("region");
    mem_region_unref(r);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    log_set_level(LOG_ERR);
    ram_fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
    if (ram_fd < 0 || ftruncate(ram_fd, RAM) < 0)
        die("memfd");
    ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    if (ram == MAP_FAILED)
        die("mmap");
    table = mem_new(NULL);
    add_region(0, RAM / 2);
    add_region(RAM / 2, RAM / 2);
    ireg_bytes = vq_inflight_region_bytes(128);
    ireg = aligned_alloc(64, ireg_bytes);
    if (!ireg)
        die("inflight");
    return 0;
}

/* Mostly addresses in and around guest RAM, sometimes far away. */
static uint64_t fz_gpa(struct fz *f)
{
    uint32_t a = fz_u32(f);

    if (a & 0x80000000u)
        return ((uint64_t)a << 33) ^ a;
    return GPA - 4096 + a % (RAM + 8192);
}

static bool in_region(const struct iovec *v)
{
    for (unsigned i = 0; i < table->nregions; i++) {
        const struct vhost_mem_region *r = table->regions[i];
        const uint8_t *b = v->iov_base;

        if (b >= r->host && b < r->host + r->d.size && v->iov_len <= (size_t)(r->host + r->d.size - b))
            return true;
    }
    return false;
}

struct held {
    struct vq_elem e;
    struct iovec iov[IOV_MAX_CAP];
};

/* A ring set up like the frontend does; the inflight region attached when
 * tracking (before the start, like SET_INFLIGHT_FD). */
static void ring_setup(struct vq *vq, uint64_t features, unsigned num, bool track, uint16_t base)
{
    if (vq_init(vq, 0) < 0)
        abort();
    vq_set_features(vq, features);
    vq_set_mem(vq, table);
    if (vq_set_num(vq, num) < 0 || vq_set_base(vq, base) < 0 ||
        vq_set_addr(vq, UVA + RING_DESC, UVA + RING_AVAIL, UVA + RING_USED, 0, 0) < 0)
        abort();
    vq_set_kick(vq, -1, true);
    if (track && vq_set_inflight(vq, ireg, 128) < 0)
        abort();
    if (vq_start(vq) < 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct held held[MAX_HELD];
    struct fz f = { data, size };
    struct vq vq;
    unsigned nheld = 0, num, cap;
    uint8_t cfg = fz_u8(&f);
    uint64_t features = 1ull << VIRTIO_F_VERSION_1;
    uint16_t avail_shadow = 0;
    bool track;

    memset(ram, 0, RAM);
    memset(ireg, 0, ireg_bytes);
    num = 1u << (cfg & 7);
    if (cfg & 0x08)
        features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
    if (cfg & 0x10)
        features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
    if (cfg & 0x20)
        features |= 1ull << VIRTIO_F_NOTIFY_ON_EMPTY;
    track = cfg & 0x40;
    cap = 1 + fz_u8(&f) % IOV_MAX_CAP;
    ring_setup(&vq, features, num, track, 0);

    struct vring_desc *desc = (void *)(ram + RING_DESC);
    struct vring_avail *avail = (void *)(ram + RING_AVAIL);
    struct vring_used *used = (void *)(ram + RING_USED);

    for (unsigned ops = 0; fz_left(&f) && ops < MAX_OPS; ops++) {
        switch (fz_u8(&f) % 11) {
        case 0: {                                       /* write a descriptor */
            unsigned i = fz_u16(&f) % num;
            struct vring_desc d;

            d.addr = fz_gpa(&f);
            d.len = fz_u8(&f) & 1 ? fz_u32(&f) : fz_u16(&f) % 4097;
            d.flags = fz_u8(&f) & 7;
            d.next = fz_u16(&f) % (num + 1);
            desc[i] = d;
            break;
        }
        case 1: {                                       /* make a head available */
            uint16_t head = fz_u16(&f) % (num + 1);

            avail->ring[avail_shadow % num] = head;
            avail_shadow++;
            __atomic_store_n(&avail->idx, avail_shadow, __ATOMIC_RELEASE);
            break;
        }
        case 2: {                                       /* device pops */
            if (nheld == MAX_HELD)
                break;
            struct held *h = &held[nheld];
            int ret = vq_pop(&vq, &h->e, h->iov, cap);

            if (ret < 0 && !vq_is_broken(&vq))
                abort();
            if (ret != 1)
                break;
            if (h->e.out_num + h->e.in_num > cap || h->e.head >= num)
                abort();
            for (unsigned i = 0; i < h->e.out_num + h->e.in_num; i++)
                if (!in_region(&h->iov[i]))
                    abort();
            for (unsigned i = 0; i < nheld; i++)
                if (held[i].e.head == h->e.head)
                    abort();                            /* popped twice while in flight */
            h->e.iov = h->iov;
            nheld++;
            if (vq_inflight(&vq) != nheld)
                abort();
            break;
        }
        case 3: {                                       /* device completes one */
            if (!nheld)
                break;
            unsigned i = fz_u8(&f) % nheld;

            vq_push(&vq, &held[i].e, fz_u32(&f));
            held[i] = held[--nheld];
            held[i].e.iov = held[i].iov;
            if (vq_inflight(&vq) != nheld)
                abort();
            break;
        }
        case 4: {                                       /* driver writes RAM */
            uint32_t off = fz_u32(&f) % RAM;
            unsigned len = fz_u8(&f);

            if (len > RAM - off)
                len = RAM - off;
            fz_bytes(&f, ram + off, len);
            break;
        }
        case 5:                                         /* set avail idx to anything */
            avail_shadow = fz_u16(&f);
            __atomic_store_n(&avail->idx, avail_shadow, __ATOMIC_RELEASE);
            break;
        case 6:
            vq_notify(&vq);
            break;
        case 7:
            if (fz_u8(&f) & 1)
                (void)vq_enable_notify(&vq);
            else
                vq_disable_notify(&vq);
            break;
        case 8:                                         /* stop and start again */
            vq_stop(&vq);
            if (fz_u8(&f) & 1)
                vq_set_mem(&vq, table);
            (void)vq_start(&vq);
            break;
        case 9:                                         /* the backend dies, a new one starts */
            if (!track)
                break;
            while (nheld) {
                nheld--;
                mem_unref(held[nheld].e.mem);           /* never pushed */
            }
            vq_destroy(&vq);
            ring_setup(&vq, features, num, true, __atomic_load_n(&used->idx, __ATOMIC_ACQUIRE));
            if (vq_resubmit_pending(&vq) > num)
                abort();
            break;
        case 10: {                                      /* the frontend scribbles on the region */
            uint32_t off = fz_u32(&f) % ireg_bytes;
            unsigned len = fz_u8(&f) % 32;

            if (len > ireg_bytes - off)
                len = (unsigned)(ireg_bytes - off);
            fz_bytes(&f, (uint8_t *)ireg + off, len);
            break;
        }
        }
    }
    while (nheld) {
        nheld--;
        vq_push(&vq, &held[nheld].e, 0);
    }
    if (vq_inflight(&vq) != 0)
        abort();
    vq_destroy(&vq);
    return 0;
}
