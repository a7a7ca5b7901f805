/* Command-line option strings -> daemon configuration structs. */
#ifndef VSCSI_CLI_H
#define VSCSI_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"
#include "util/opts.h"

/* Parse "--drive" / "--device" values. 0 or -EINVAL with a one-line message
 * that names the option and how to fix it. */
int cli_parse_drive(const char *str, struct drive_conf *conf, char *err, size_t errlen);
int cli_parse_device(const char *str, struct device_conf *conf, char *err, size_t errlen);
/* The same checks on options already split into keys and values: the
 * management socket (QMP blockdev-add/device_add) builds a struct opts from
 * its arguments and calls these, so both paths validate alike. `what` starts
 * each message ("--device", "device_add"). Keys never looked up are refused. */
int cli_drive_from_opts(struct opts *o, struct drive_conf *conf, const char *what, char *err,
                        size_t errlen);
int cli_device_from_opts(struct opts *o, struct device_conf *conf, const char *what, char *err,
                         size_t errlen);
/* Drive and device ids follow QEMU's rule (they appear in events and paths). */
#define CLI_ID_RULE "an id starts with a letter and has only letters, digits, '-', '.' and '_'"
bool cli_id_valid(const char *id);
/* "--controller id=NAME,socket=PATH[,num-queues=N]": a further controller
 * (its own vhost-user socket, SCSI bus and I_T nexus). conf keeps the
 * defaults it had for keys not given. */
int cli_parse_controller(const char *str, struct ctrl_conf *conf, char *err, size_t errlen);
/* Text for --device help. */
const char *cli_device_help(void);

#endif
