/* Command-line option strings -> daemon configuration structs. */
#ifndef VSCSI_CLI_H
#define VSCSI_CLI_H

#include <stddef.h>

#include "daemon.h"

/* Parse "--drive" / "--device" values. 0 or -EINVAL with a one-line message
 * that names the option and how to fix it. */
int cli_parse_drive(const char *str, struct drive_conf *conf, char *err, size_t errlen);
int cli_parse_device(const char *str, struct device_conf *conf, char *err, size_t errlen);
/* Text for --device help. */
const char *cli_device_help(void);

#endif
