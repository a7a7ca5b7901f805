/* Scatter-gather helpers over struct iovec arrays (guest memory, never copied whole). */
#ifndef VSCSI_UTIL_IOV_H
#define VSCSI_UTIL_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Total byte length; saturates at SIZE_MAX instead of wrapping. */
size_t iov_size(const struct iovec *iov, unsigned cnt);

/* Copy up to len bytes starting at byte offset off of the iov into buf.
 * Returns the number of bytes copied (less than len when the iov is shorter). */
size_t iov_to_buf(const struct iovec *iov, unsigned cnt, size_t off, void *buf, size_t len);

/* Copy up to len bytes from buf into the iov at byte offset off. Returns bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned cnt, size_t off, const void *buf, size_t len);

/* Fill len bytes at offset off with byte c. Returns bytes written. */
size_t iov_memset(const struct iovec *iov, unsigned cnt, size_t off, int c, size_t len);

/* Describe bytes [off, off+len) of src as a new iovec array in dst (capacity dst_cap).
 * Returns the number of entries used, or -1 when dst_cap is too small.
 * The described length may be shorter than len when src is shorter. */
int iov_slice(const struct iovec *src, unsigned src_cnt, size_t off, size_t len,
              struct iovec *dst, unsigned dst_cap);

/* True when every base and length is a multiple of align (a power of two). */
int iov_is_aligned(const struct iovec *iov, unsigned cnt, size_t align);

#endif
