/* QMP-compatible management socket (QEMU's QMP wire protocol). It changes
 * daemon state only through the builder functions in daemon.h. All calls
 * are made from the loop's thread. Protocol, limits, commands: docs/qmp.md. */
#ifndef VSCSI_MGMT_QMP_H
#define VSCSI_MGMT_QMP_H

#include <stddef.h>

struct ev_loop;
struct vscsid;
struct qmp_server;

/* Listen on path (unix socket, mode 0600). NULL with a message in err on failure. */
struct qmp_server *qmp_server_new(struct ev_loop *loop, const char *path, struct vscsid *d,
                                  char *err, size_t errlen);
/* Close every client and the socket; unlink the path. */
void qmp_server_free(struct qmp_server *s);
/* Emit an event {"event": name, "data": data_json, "timestamp": {...}} to every
 * client in command mode. data_json is a JSON object text or NULL. */
void qmp_server_event(struct qmp_server *s, const char *name, const char *data_json);

#endif
