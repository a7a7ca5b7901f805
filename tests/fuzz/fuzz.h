/* Helpers shared by the libFuzzer targets: a cursor over the fuzz input.
 * Reads past the end return zeros, so every input decodes to something. */
#ifndef VSCSI_FUZZ_H
#define VSCSI_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fz {
    const uint8_t *p;
    size_t n;
};

static inline size_t fz_left(const struct fz *f) { return f->n; }

static inline void fz_bytes(struct fz *f, void *out, size_t len)
{
    size_t k = len < f->n ? len : f->n;

    if (k)
        memcpy(out, f->p, k);
    if (len > k)
        memset((uint8_t *)out + k, 0, len - k);
    f->p += k;
    f->n -= k;
}

static inline uint8_t fz_u8(struct fz *f) { uint8_t v; fz_bytes(f, &v, 1); return v; }
static inline uint16_t fz_u16(struct fz *f) { uint16_t v; fz_bytes(f, &v, 2); return v; }
static inline uint32_t fz_u32(struct fz *f) { uint32_t v; fz_bytes(f, &v, 4); return v; }
static inline uint64_t fz_u64(struct fz *f) { uint64_t v; fz_bytes(f, &v, 8); return v; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
