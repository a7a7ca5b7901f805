/* Guest memory regions: mmap of the frontend's fds, guest-physical and
 * frontend-virtual address translation (vhost-user spec, "Memory access"). */
#include "vhost/mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mem_desc_check(const struct vhost_mem_desc *d, const char **why)
{
    const char *w = NULL;

    if (d->size == 0)
        w = "zero-sized region";
    else if (d->size - 1 > UINT64_MAX - d->gpa)
        w = "guest address range wraps";
    else if (d->size - 1 > UINT64_MAX - d->uva)
        w = "user address range wraps";
    else if (d->mmap_offset > (uint64_t)INT64_MAX || d->size > (uint64_t)INT64_MAX - d->mmap_offset)
        w = "mmap offset + size too large";
    if (why)
        *why = w;
    return w ? -EINVAL : 0;
}

int mem_region_map(const struct vhost_mem_desc *d, int fd, struct vhost_mem_region **out,
                   const char **why)
{
    struct vhost_mem_region *r;
    struct stat st;
    uint64_t align, start, delta;
    long page = sysconf(_SC_PAGESIZE);
    const char *unused;
    void *p;
    int ret;

    if (!why)
        why = &unused;
    *out = NULL;
    ret = mem_desc_check(d, why);
    if (ret < 0)
        return ret;
    if (fd < 0 || fstat(fd, &st) < 0) {
        *why = "bad region fd";
        return -EINVAL;
    }
    /* Mapping past the end of the file would SIGBUS on the first guest access. */
    if (!S_ISREG(st.st_mode)) {
        *why = "region fd is not a regular file";
        return -EINVAL;
    }
    if ((uint64_t)st.st_size < d->mmap_offset + d->size) {
        *why = "region extends past the end of its file";
        return -EINVAL;
    }

    /* Map only [offset, offset + size), from an offset rounded down to the
     * file's block size (hugetlbfs wants huge-page-aligned offsets). */
    align = (uint64_t)page;
    if (st.st_blksize > page && !(st.st_blksize & (st.st_blksize - 1)))
        align = (uint64_t)st.st_blksize;
    start = d->mmap_offset & ~(align - 1);
    delta = d->mmap_offset - start;
    if (d->size > SIZE_MAX - delta) {
        *why = "region too large";
        return -EINVAL;
    }

    r = calloc(1, sizeof(*r));
    if (!r) {
        *why = "out of memory";
        return -ENOMEM;
    }
    p = mmap(NULL, d->size + delta, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
             (off_t)start);
    if (p == MAP_FAILED) {
        ret = -errno;
        *why = "mmap of region failed";
        free(r);
        return ret;
    }
    /* Guest RAM has no place in our core dumps. */
    (void)madvise(p, d->size + delta, MADV_DONTDUMP);

    r->d = *d;
    r->map_base = p;
    r->map_len = d->size + delta;
    r->host = (uint8_t *)p + delta;
    r->fd = fd;
    r->refs = 1;
    *out = r;
    return 0;
}

static void mem_region_ref(struct vhost_mem_region *r)
{
    __atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
}

void mem_region_unref(struct vhost_mem_region *r)
{
    if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
        return;
    munmap(r->map_base, r->map_len);
    close(r->fd);
    free(r);
}

struct vhost_mem *mem_new(const struct vhost_mem *src)
{
    struct vhost_mem *m = calloc(1, sizeof(*m));

    if (!m)
        return NULL;
    m->refs = 1;
    if (src) {
        m->nregions = src->nregions;
        for (unsigned i = 0; i < m->nregions; i++) {
            m->regions[i] = src->regions[i];
            mem_region_ref(m->regions[i]);
        }
    }
    return m;
}

void mem_ref(struct vhost_mem *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}

void mem_unref(struct vhost_mem *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL))
        return;
    for (unsigned i = 0; i < m->nregions; i++)
        mem_region_unref(m->regions[i]);
    free(m);
}

/* Inclusive end, so a region ending at 2^64 does not wrap. */
static uint64_t desc_last(const struct vhost_mem_desc *d)
{
    return d->gpa + (d->size - 1);
}

int mem_insert(struct vhost_mem *m, struct vhost_mem_region *r)
{
    unsigned pos = 0;

    if (m->nregions >= VHOST_MEM_MAX_SLOTS)
        return -ENOSPC;
    for (unsigned i = 0; i < m->nregions; i++) {
        const struct vhost_mem_desc *o = &m->regions[i]->d;

        if (r->d.gpa <= desc_last(o) && o->gpa <= desc_last(&r->d))
            return -EEXIST;
        if (o->gpa < r->d.gpa)
            pos = i + 1;
    }
    memmove(&m->regions[pos + 1], &m->regions[pos],
            (m->nregions - pos) * sizeof(m->regions[0]));
    m->regions[pos] = r;
    m->nregions++;
    mem_region_ref(r);
    return 0;
}

int mem_remove(struct vhost_mem *m, const struct vhost_mem_desc *d)
{
    for (unsigned i = 0; i < m->nregions; i++) {
        struct vhost_mem_region *r = m->regions[i];

        if (r->d.gpa != d->gpa || r->d.uva != d->uva || r->d.size != d->size)
            continue;
        memmove(&m->regions[i], &m->regions[i + 1],
                (m->nregions - i - 1) * sizeof(m->regions[0]));
        m->nregions--;
        mem_region_unref(r);
        return 0;
    }
    return -ENOENT;
}

/* Region containing gpa: binary search over the sorted, disjoint ranges. */
static const struct vhost_mem_region *mem_find(const struct vhost_mem *m, uint64_t gpa)
{
    unsigned lo = 0, hi = m->nregions;

    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        const struct vhost_mem_region *r = m->regions[mid];

        if (gpa < r->d.gpa)
            hi = mid;
        else if (gpa - r->d.gpa >= r->d.size)
            lo = mid + 1;
        else
            return r;
    }
    return NULL;
}

void *mem_gpa_to_host(const struct vhost_mem *m, uint64_t gpa, uint64_t *len)
{
    const struct vhost_mem_region *r = m ? mem_find(m, gpa) : NULL;
    uint64_t off;

    if (!r)
        return NULL;
    off = gpa - r->d.gpa;
    if (*len > r->d.size - off)
        *len = r->d.size - off;
    return r->host + off;
}

void *mem_gpa_range(const struct vhost_mem *m, uint64_t gpa, uint64_t len)
{
    const struct vhost_mem_region *r = m ? mem_find(m, gpa) : NULL;
    uint64_t off;

    if (!r || len == 0)
        return NULL;
    off = gpa - r->d.gpa;
    if (len > r->d.size - off)
        return NULL;
    return r->host + off;
}

void *mem_uva_range(const struct vhost_mem *m, uint64_t uva, uint64_t len)
{
    if (!m || len == 0)
        return NULL;
    for (unsigned i = 0; i < m->nregions; i++) {
        const struct vhost_mem_region *r = m->regions[i];

        if (uva < r->d.uva || uva - r->d.uva >= r->d.size)
            continue;
        if (len > r->d.size - (uva - r->d.uva))
            return NULL;
        return r->host + (uva - r->d.uva);
    }
    return NULL;
}
