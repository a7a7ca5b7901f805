/* Guest memory table (internal to src/vhost).
 *
 * A table is an immutable, refcounted set of mapped regions sorted by guest
 * physical address. The device holds one reference on the current table and
 * every popped element holds one on the table its iovecs were translated
 * through, so a region removed or replaced while requests are in flight stays
 * mapped until the last of them is pushed. Regions are refcounted too: a
 * region shared by an old and a new table is mapped once.
 *
 * Reference counts are atomic: elements may be pushed from queue threads. */
#ifndef VSCSI_VHOST_MEM_H
#define VSCSI_VHOST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GET_MAX_MEM_SLOTS answer and the limit for ADD_MEM_REG. */
#define VHOST_MEM_MAX_SLOTS 32

/* One region as the frontend describes it (wire layout of the vhost-user
 * "memory region description": guest address, size, user address, offset). */
struct vhost_mem_desc {
    uint64_t gpa;
    uint64_t size;
    uint64_t uva;
    uint64_t mmap_offset;
};

struct vhost_mem_region {
    struct vhost_mem_desc d;
    uint8_t *host;              /* host address of d.gpa */
    void *map_base;             /* what mmap returned */
    size_t map_len;
    int fd;
    unsigned refs;
    bool sealed;                /* F_SEAL_SHRINK: cannot lose pages under us */
    unsigned guard;             /* truncation guard slot + 1, 0 = none (mem.c) */
};

struct vhost_mem {
    unsigned refs;
    unsigned nregions;
    struct vhost_mem_region *regions[VHOST_MEM_MAX_SLOTS];     /* sorted by gpa */
};

/* Check a region description on its own: non-zero size, no range wraps
 * (gpa, uva, mmap_offset + size). Returns 0 or -EINVAL; *why says what failed. */
int mem_desc_check(const struct vhost_mem_desc *d, const char **why);

/* Map d from fd (MAP_SHARED, read-write). The fd must be a regular file (memfd,
 * hugetlbfs, tmpfs) at least mmap_offset + size long. Unless the file is
 * sealed with F_SEAL_SHRINK, the mapping is registered with a SIGBUS guard
 * that survives a later truncation by the frontend (see mem.c). On success the region
 * owns fd and has one reference. -EINVAL for a bad description or fd, or the
 * mmap error. */
int mem_region_map(const struct vhost_mem_desc *d, int fd, struct vhost_mem_region **out,
                   const char **why);
void mem_region_unref(struct vhost_mem_region *r);
/* Accesses to pages the frontend truncated away since the map (0 for a
 * sealed region): each one was answered with zero pages by the SIGBUS guard. */
unsigned mem_region_faults(const struct vhost_mem_region *r);

/* A new empty table with one reference, or a copy of src (sharing its
 * regions; src may be NULL). NULL on allocation failure. */
struct vhost_mem *mem_new(const struct vhost_mem *src);
void mem_ref(struct vhost_mem *m);
/* Drop a reference; the last one unmaps regions no other table uses. */
void mem_unref(struct vhost_mem *m);

/* Add r (the table takes a new reference on it). -EEXIST when its guest
 * range overlaps a region already there, -ENOSPC past VHOST_MEM_MAX_SLOTS. */
int mem_insert(struct vhost_mem *m, struct vhost_mem_region *r);
/* Remove the region with this guest address, user address and size
 * (REM_MEM_REG ignores the mmap offset). -ENOENT when there is none. */
int mem_remove(struct vhost_mem *m, const struct vhost_mem_desc *d);

/* Host address of guest-physical gpa; *len is reduced to the bytes that are
 * contiguous from there within gpa's region. NULL when gpa is not mapped. */
void *mem_gpa_to_host(const struct vhost_mem *m, uint64_t gpa, uint64_t *len);
/* Host address of [gpa, gpa + len) when it lies inside one region, else NULL.
 * len 0 is never mapped. */
void *mem_gpa_range(const struct vhost_mem *m, uint64_t gpa, uint64_t len);
/* Same for frontend (QEMU) virtual addresses, which SET_VRING_ADDR carries. */
void *mem_uva_range(const struct vhost_mem *m, uint64_t uva, uint64_t len);

#endif
