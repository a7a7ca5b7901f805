/* Guest memory regions: mmap of the frontend's fds, guest-physical and
 * frontend-virtual address translation (vhost-user spec, "Memory access").
 *
 * Truncation guard: a frontend can shrink the file behind a region after we
 * mapped it (an unsealed memfd, a tmpfs or hugetlbfs file); any access to the
 * lost pages then raises SIGBUS, from a ring read as much as from a memcpy in
 * the SCSI layer. Rather than require F_SEAL_SHRINK (QEMU's memory-backend-memfd
 * seals by default, memory-backend-file cannot), every unsealed region is
 * registered with a SIGBUS handler that maps anonymous zero pages over the
 * rest of the region from the faulting page on and returns: the access
 * completes (reads see zeros, writes are lost), the daemon keeps running, and
 * the region's unmap logs what happened. io_uring I/O into such pages fails
 * with EFAULT instead. Faults outside every region keep the default action. */
#include "vhost/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

/* ---- truncation guard ---- */

#define GUARD_SLOTS 256

struct guard_slot {
    uintptr_t start;            /* 0: free; written last when registering */
    uintptr_t end;
    uintptr_t align;            /* replacement granule (huge page size for hugetlbfs) */
    int fd;                     /* the region's file, to learn where it ends now */
    uint64_t file_off;          /* file offset mapped at start */
    unsigned faults;
};

static struct guard_slot g_guard[GUARD_SLOTS];
static pthread_mutex_t g_guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_guard_once = PTHREAD_ONCE_INIT;
static struct sigaction g_guard_prev;
static bool g_guard_installed;

static void guard_handler(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    struct stat st;

    for (unsigned i = 0; i < GUARD_SLOTS; i++) {
        struct guard_slot *g = &g_guard[i];
        uintptr_t start = __atomic_load_n(&g->start, __ATOMIC_ACQUIRE), from;

        if (!start || a < start || a >= g->end)
            continue;
        /* File pages past the (new) end of file are all gone: replace them
         * up to the region end in one go (one signal, not one per page).
         * fstat is async-signal-safe. */
        from = a & ~(g->align - 1);
        if (fstat(g->fd, &st) == 0 && st.st_size >= 0) {
            uint64_t end = ((uint64_t)st.st_size + g->align - 1) & ~(uint64_t)(g->align - 1);

            if (end > g->file_off && end - g->file_off < from - start)
                from = start + (uintptr_t)(end - g->file_off);
            else if (end <= g->file_off)
                from = start;
        }
        if (from < start)
            from = start;
        if (mmap((void *)from, g->end - from, PROT_READ | PROT_WRITE,
                 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED)
            break;
        __atomic_add_fetch(&g->faults, 1, __ATOMIC_RELAXED);
        return;
    }
    /* Not guest memory: whatever was there before us decides. */
    if ((g_guard_prev.sa_flags & SA_SIGINFO) && g_guard_prev.sa_sigaction) {
        g_guard_prev.sa_sigaction(sig, si, uc);
    } else if (g_guard_prev.sa_handler != SIG_IGN && g_guard_prev.sa_handler != SIG_DFL &&
               g_guard_prev.sa_handler) {
        g_guard_prev.sa_handler(sig);
    } else {
        signal(sig, SIG_DFL);   /* the access faults again and kills us */
    }
}

static void guard_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = guard_handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    g_guard_installed = sigaction(SIGBUS, &sa, &g_guard_prev) == 0;
}

/* Returns the slot index + 1, or 0 when the region is not guarded. */
static unsigned guard_add(void *p, size_t len, uint64_t align, int fd, uint64_t file_off)
{
    unsigned slot = 0;

    pthread_once(&g_guard_once, guard_install);
    if (!g_guard_installed)
        return 0;
    pthread_mutex_lock(&g_guard_lock);
    for (unsigned i = 0; i < GUARD_SLOTS; i++) {
        struct guard_slot *g = &g_guard[i];

        if (__atomic_load_n(&g->start, __ATOMIC_RELAXED))
            continue;
        g->end = (uintptr_t)p + len;
        g->align = (uintptr_t)align;
        g->fd = fd;
        g->file_off = file_off;
        g->faults = 0;
        __atomic_store_n(&g->start, (uintptr_t)p, __ATOMIC_RELEASE);
        slot = i + 1;
        break;
    }
    pthread_mutex_unlock(&g_guard_lock);
    return slot;
}

/* Before the munmap: returns how many truncation faults the region took. */
static unsigned guard_remove(unsigned slot)
{
    struct guard_slot *g;
    unsigned faults;

    if (!slot)
        return 0;
    g = &g_guard[slot - 1];
    pthread_mutex_lock(&g_guard_lock);
    faults = __atomic_load_n(&g->faults, __ATOMIC_RELAXED);
    __atomic_store_n(&g->start, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_guard_lock);
    return faults;
}

unsigned mem_region_faults(const struct vhost_mem_region *r)
{
    return r->guard ? __atomic_load_n(&g_guard[r->guard - 1].faults, __ATOMIC_RELAXED) : 0;
}

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
    int ret, seals;

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

    /* A file sealed against shrinking cannot lose pages under us. */
    seals = fcntl(fd, F_GET_SEALS);
    r->sealed = seals >= 0 && (seals & F_SEAL_SHRINK);
    if (!r->sealed) {
        r->guard = guard_add(p, d->size + delta, align, fd, start);
        if (!r->guard)
            log_warn("vhost: no truncation guard for a region (all %u slots used)", GUARD_SLOTS);
    }

    log_debug("vhost: region gpa 0x%llx+0x%llx: %s", (unsigned long long)d->gpa,
              (unsigned long long)d->size, r->sealed ? "sealed against shrinking"
                                                     : "not sealed: truncation guard on");
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
    unsigned faults;

    if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL))
        return;
    faults = guard_remove(r->guard);
    if (faults)
        log_warn("vhost: the frontend truncated the file behind guest region gpa 0x%llx+0x%llx "
                 "while mapped; %u access(es) saw zero pages", (unsigned long long)r->d.gpa,
                 (unsigned long long)r->d.size, faults);
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
