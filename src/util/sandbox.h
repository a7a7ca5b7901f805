/* seccomp sandbox: a system call allow-list (libseccomp) that vscsid installs
 * once start-up is over (sockets and images open, privileges dropped). Any
 * system call outside the list kills the whole process with SIGSYS. The list
 * and the reason for each entry are in sandbox.c; docs/robustness.md has the
 * method used to find them. */
#ifndef VSCSI_UTIL_SANDBOX_H
#define VSCSI_UTIL_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* True when this binary was built with libseccomp (the kernel may still
 * refuse the filter; sandbox_enable() tells). */
bool sandbox_built_in(void);

/* Install the allow-list on every thread of the process (TSYNC), with
 * no_new_privs set. Irreversible. Returns the number of system calls the
 * filter allows (> 0), or -ENOSYS when built without libseccomp, or another
 * -errno when libseccomp or the kernel refused (message in err). */
int sandbox_enable(char *err, size_t errlen);

/* System calls on the list that neither this libseccomp nor this kernel
 * architecture knows (skipped by sandbox_enable): names are written to buf,
 * space-separated. Returns how many. For tests and the debug log. */
unsigned sandbox_unknown_syscalls(char *buf, size_t buflen);

#endif
