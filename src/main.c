/* vscsid: vhost-user-scsi backend daemon. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "daemon.h"
#include "mgmt/qmp.h"
#include "util/log.h"
#include "util/loop.h"
#include "util/opts.h"
#include "util/sandbox.h"
#include "vscsi-config.h"

#define EXIT_USAGE 2
#define MAX_ITEMS 4096

static void usage(FILE *f)
{
    fprintf(f,
"Usage: vscsid --socket PATH [--num-queues N] [--iothreads N] [--poll-us N] [--coalesce-us N|auto]\n"
"              [--qmp PATH]\n"
"              --drive file=PATH,id=ID[,format=raw][,cache=MODE][,readonly=on|off]\n"
"                      [,discard=ignore|unmap][,aio=io_uring|threads][,media=disk|cdrom]\n"
"                      [,werror=enospc|report|ignore|stop][,rerror=report|ignore|stop]\n"
"                      [,inject=RULE[;RULE...]]\n"
"              --device scsi-hd,drive=ID,scsi-id=T,lun=L[,id=NAME][,serial=S][,wwn=0xHEX]\n"
"                      [,vendor=V][,product=P][,logical_block_size=512|4096]\n"
"                      [,physical_block_size=N][,removable=on|off]\n"
"              [--drive id=ID,media=cdrom[,file=ISO] --device scsi-cd,drive=ID,scsi-id=T,lun=L]\n"
"              [--device ...]\n"
"              [--controller id=NAME,socket=PATH[,num-queues=N]]\n"
"\n"
"A vhost-user-scsi backend: QEMU attaches with\n"
"  -chardev socket,id=c0,path=PATH -device vhost-user-scsi-pci,chardev=c0\n"
"(guest RAM must be shared: -object memory-backend-memfd,...,share=on).\n"
"\n"
"Options:\n"
"  -s, --socket PATH     vhost-user socket to listen on (created, mode 0600)\n"
"  -q, --num-queues N    request queues offered (1-64, default 16; QEMU uses\n"
"                        one per vCPU by default and needs at least that many)\n"
"  --iothreads N         serve the request queues from N threads of their own\n"
"                        (0-64, default 0: every queue on the main thread);\n"
"                        queues are spread over them round robin, each thread\n"
"                        has its own io_uring; control stays on the main thread\n"
"  --poll-us N           after activity, poll the request queues for N us before\n"
"                        sleeping (default 32; 0 = wait for guest kicks only);\n"
"                        an idle daemon uses no CPU either way\n"
"  --coalesce-us N       hold a request queue's completion interrupt for up to\n"
"                        N us after its first unsignalled completion, so the\n"
"                        guest takes several per interrupt (default 0: signal at\n"
"                        once); helps guests whose interrupts and kicks are\n"
"                        costly (TCG), adds up to N us of latency; auto: each\n"
"                        queue holds for 50 us, and only while it measures that\n"
"                        holding completes more requests per second\n"
"  --drive OPTS          a backing image (see above); cache modes: writeback\n"
"                        (default), none, writethrough, directsync, unsafe;\n"
"                        driver=null,size=N gives a data-less disk for benchmarks,\n"
"                        driver=memory,size=N a disk in the daemon's memory (sparse;\n"
"                        its data lasts as long as the drive);\n"
"                        media=cdrom is read-only and may have no file= (an\n"
"                        empty tray; insert media over QMP);\n"
"                        werror/rerror: what a failed write (default enospc: stop\n"
"                        on ENOSPC, else report) or read (default report) does:\n"
"                        report it to the guest, ignore it, or stop (hold it, stop\n"
"                        every controller until QMP cont); inject=OP:ERRNO[:sector=\n"
"                        S[+N]|:offset=B[+LEN]][:count=N|inf] fails matching requests\n"
"                        (tests; docs/robustness.md)\n"
"  --device OPTS         a SCSI device on the drive: scsi-hd (a disk) or scsi-cd\n"
"                        (a CD/DVD-ROM with a tray); --device help lists them\n"
"  --controller OPTS     a further vhost-user-scsi controller (its own socket,\n"
"                        LUNs and I_T nexus); --device ...,bus=NAME puts a device\n"
"                        on it, --device ...,bus=NAME,path-of=DEV makes a second\n"
"                        path to DEV's logical unit (same identity, one state)\n"
"  --qmp PATH            QMP management socket (created, mode 0600); use\n"
"                        vscsictl --qmp PATH, or any QMP client\n"
"  --user NAME           drop root and run as NAME once sockets and images are\n"
"                        open (with --group NAME for a group other than NAME's)\n"
"  --socket-group NAME   vhost-user sockets get group NAME and mode 0660, so a\n"
"                        QEMU running in that group can connect\n"
"  --sandbox on|off      seccomp allow-list once start-up is over: any other\n"
"                        system call kills vscsid (SIGSYS). Default: on when\n"
"                        vscsid was built with libseccomp and the kernel takes\n"
"                        the filter, else a warning and no sandbox; with\n"
"                        --sandbox=on that is a start-up error instead.\n"
"                        Off in sanitizer builds (their leak check needs ptrace)\n"
"  --log-file PATH       log to PATH (appended, UTC timestamps) instead of stderr;\n"
"                        SIGHUP reopens it (after logrotate has moved it)\n"
"  -v, --verbose         more log output (repeat for debug)\n"
"  -h, --help            this text\n"
"  -V, --version         version\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "vscsid: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'vscsid --help' for more information.\n");
    return EXIT_USAGE;
}

/* Resolve --user/--group/--socket-group before anything is opened, so a typo
 * fails at once with exit status 2. */
static int resolve_ids(const char *user, const char *group, const char *sgroup,
                       uid_t *uid, gid_t *gid, gid_t *sgid)
{
    if (user) {
        struct passwd *pw = getpwnam(user);
        if (!pw)
            return usage_error("--user %s: no such user (see /etc/passwd)", user);
        *uid = pw->pw_uid;
        *gid = pw->pw_gid;
    }
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr)
            return usage_error("--group %s: no such group (see /etc/group)", group);
        *gid = gr->gr_gid;
    }
    if (sgroup) {
        struct group *gr = getgrnam(sgroup);
        if (!gr)
            return usage_error("--socket-group %s: no such group (see /etc/group)", sgroup);
        *sgid = gr->gr_gid;
    }
    return 0;
}

/* Hand a socket we created to the user we become (and, for vhost-user
 * sockets with --socket-group, to that group with mode 0660). */
static int own_socket(const char *path, bool drop, uid_t uid, gid_t gid, bool vhost, gid_t sgid,
                      bool sgroup)
{
    uid_t o_uid = drop ? uid : (uid_t)-1;
    gid_t o_gid = vhost && sgroup ? sgid : drop ? gid : (gid_t)-1;

    if ((o_uid != (uid_t)-1 || o_gid != (gid_t)-1) && chown(path, o_uid, o_gid) < 0) {
        log_err("cannot hand %s to the unprivileged user: %s", path, strerror(errno));
        return -errno;
    }
    if (vhost && sgroup && chmod(path, 0660) < 0) {
        log_err("cannot make %s group-accessible: %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

/* Drop root for good once every socket and image is open (issue: least
 * privilege). Images added later over QMP are opened as the new user. */
static int drop_privileges(uid_t uid, gid_t gid)
{
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        log_err("cannot drop privileges to uid %u gid %u: %s", (unsigned)uid, (unsigned)gid,
                strerror(errno));
        return -1;
    }
    if (uid != 0 && setuid(0) == 0) {
        log_err("privileges were not dropped (setuid(0) still works)");
        return -1;
    }
    return 0;
}

enum { SANDBOX_DEFAULT, SANDBOX_ON, SANDBOX_OFF };

/* --sandbox: install the seccomp allow-list (src/util/sandbox.c) now that
 * every socket and image of the command line is open and privileges are
 * dropped. By default a sandbox that cannot be had is a warning; with
 * --sandbox=on it is an error. */
static int start_sandbox(int mode)
{
    char err[256];
    int n;

    if (mode == SANDBOX_OFF) {
        log_info("sandbox: off (--sandbox=off)");
        return 0;
    }
#ifdef VSCSI_SANITIZER_BUILD
    /* ASan's leak check at exit stops the threads with ptrace from a cloned
     * tracer process, and a report may start a symbolizer (fork + exec):
     * what the sandbox kills. Sanitizer builds run without it (--sandbox=on
     * was refused with the options already). */
    log_info("sandbox: off in this sanitizer build (the leak check needs ptrace and fork)");
    return 0;
#endif
    n = sandbox_enable(err, sizeof(err));
    if (n > 0) {
        log_info("sandbox: on, %d system calls allowed; any other kills vscsid (SIGSYS)", n);
        return 0;
    }
    if (mode == SANDBOX_ON) {
        log_err("sandbox: cannot be enabled: %s (--sandbox=on)", err);
        return -1;
    }
    log_warn("sandbox: not available: %s; running without it (--sandbox=off silences this)", err);
    return 0;
}

struct sig_state {
    struct ev_loop *loop;
    int signals;
};

static void signal_cb(void *opaque, int fd, uint32_t events)
{
    struct sig_state *s = opaque;
    struct signalfd_siginfo si;

    (void)events;
    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            char err[300];

            /* logrotate moved the file away: continue in a new one */
            if (log_reopen(err, sizeof(err)) < 0)
                log_warn("SIGHUP: %s; still logging to the old file", err);
            else
                log_info("received SIGHUP, log file reopened");
            continue;
        }
        s->signals++;
        log_info("received %s, shutting down", strsignal((int)si.ssi_signo));
        ev_loop_stop(s->loop);
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, 's' },
        { "num-queues", required_argument, NULL, 'q' },
        { "poll-us", required_argument, NULL, 'P' },
        { "coalesce-us", required_argument, NULL, 'c' },
        { "iothreads", required_argument, NULL, 'I' },
        { "drive", required_argument, NULL, 'D' },
        { "device", required_argument, NULL, 'd' },
        { "qmp", required_argument, NULL, 'Q' },
        { "controller", required_argument, NULL, 'C' },
        { "user", required_argument, NULL, 'u' },
        { "group", required_argument, NULL, 'g' },
        { "socket-group", required_argument, NULL, 'G' },
        { "sandbox", required_argument, NULL, 'S' },
        { "log-file", required_argument, NULL, 'L' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    /* Parsed options, on the heap so that they can be given back once built
     * (4096 drives are 17 MB); static pointers keep them reachable until then. */
    static struct drive_conf *drives;
    static struct device_conf *devices;
    unsigned ndrives = 0, ndevices = 0, verbose = 0, nctrls = 0;
    static struct ctrl_conf ctrls[16];
    struct ctrl_conf ctrl = { .num_queues = 16, .poll_us = 32 };
    char err[512], abs_socket[PATH_MAX];
    struct ev_loop *loop = NULL;
    struct vscsid *d = NULL;
    struct qmp_server *qmp = NULL;
    const char *qmp_path = NULL;
    const char *user = NULL, *group = NULL, *socket_group = NULL;
    uid_t run_uid = 0;
    gid_t run_gid = 0, sock_gid = 0;
    struct sig_state sigs = { 0 };
    sigset_t mask;
    int c, sfd = -1, rc = 1, sandbox = SANDBOX_DEFAULT;
    unsigned iothreads = 0;

    while ((c = getopt_long(argc, argv, "s:q:vhV", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (strlen(optarg) >= sizeof(ctrl.socket_path))
                return usage_error("--socket %s: path too long for a unix socket (max 107 bytes)", optarg);
            strcpy(ctrl.socket_path, optarg);
            break;
        case 'q': {
            uint64_t n;
            if (parse_u64(optarg, &n) < 0 || n < 1 || n > 64)
                return usage_error("--num-queues %s: expected a number from 1 to 64", optarg);
            ctrl.num_queues = (unsigned)n;
            break;
        }
        case 'P': {
            uint64_t n;
            if (parse_u64(optarg, &n) < 0 || n > 1000000)
                return usage_error("--poll-us %s: expected microseconds from 0 (off) to 1000000", optarg);
            ctrl.poll_us = (unsigned)n;
            break;
        }
        case 'c': {
            uint64_t n;
            if (!strcmp(optarg, "auto")) {
                ctrl.coalesce_auto = true;
                ctrl.coalesce_us = 0;       /* the controller's default hold */
                break;
            }
            if (parse_u64(optarg, &n) < 0 || n > 1000000)
                return usage_error("--coalesce-us %s: expected microseconds from 0 (off: signal at once) "
                                   "to 1000000, or auto", optarg);
            ctrl.coalesce_us = (unsigned)n;
            ctrl.coalesce_auto = false;
            break;
        }
        case 'I': {
            uint64_t n;
            if (parse_u64(optarg, &n) < 0 || n > VSCSID_MAX_IOTHREADS)
                return usage_error("--iothreads %s: expected a number from 0 (none: the main thread "
                                   "serves every queue) to 64", optarg);
            iothreads = (unsigned)n;
            break;
        }
        case 'D':
            if (!drives && !(drives = calloc(MAX_ITEMS, sizeof(*drives))))
                return usage_error("%s: out of memory", "--drive");
            if (ndrives == MAX_ITEMS)
                return usage_error("%s: too many --drive options", "--drive");
            if (cli_parse_drive(optarg, &drives[ndrives], err, sizeof(err)) < 0)
                return usage_error("%s", err);
            ndrives++;
            break;
        case 'd':
            if (!strcmp(optarg, "help") || !strcmp(optarg, "?")) {
                fputs(cli_device_help(), stdout);
                return 0;
            }
            if (!devices && !(devices = calloc(MAX_ITEMS, sizeof(*devices))))
                return usage_error("%s: out of memory", "--device");
            if (ndevices == MAX_ITEMS)
                return usage_error("%s: too many --device options", "--device");
            if (cli_parse_device(optarg, &devices[ndevices], err, sizeof(err)) < 0)
                return usage_error("%s", err);
            ndevices++;
            break;
        case 'Q':
            qmp_path = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'g':
            group = optarg;
            break;
        case 'G':
            socket_group = optarg;
            break;
        case 'L':
            if (log_open_file(optarg, err, sizeof(err)) < 0)
                return usage_error("--log-file: %s", err);
            break;
        case 'S':
            if (!strcmp(optarg, "on")) {
#ifdef VSCSI_SANITIZER_BUILD
                /* known before anything is opened: say so at once */
                return usage_error("--sandbox %s: not available in a sanitizer (ASan/UBSan) build; "
                                   "use --sandbox=off or a normal build", optarg);
#endif
                sandbox = SANDBOX_ON;
            } else if (!strcmp(optarg, "off"))
                sandbox = SANDBOX_OFF;
            else
                return usage_error("--sandbox %s: expected on or off", optarg);
            break;
        case 'C':
            if (nctrls == sizeof(ctrls) / sizeof(ctrls[0]))
                return usage_error("%s: too many --controller options (16 at most)", "--controller");
            ctrls[nctrls].num_queues = 0;   /* --num-queues, unless given */
            if (cli_parse_controller(optarg, &ctrls[nctrls], err, sizeof(err)) < 0)
                return usage_error("%s", err);
            nctrls++;
            break;
        case 'v':
            verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("vscsid %s\n", VSCSI_VERSION);
            return 0;
        default:
            return usage_error("%s", "invalid option");
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s' (options start with --)", argv[optind]);
    if ((user || group || socket_group) &&
        (c = resolve_ids(user, group, socket_group, &run_uid, &run_gid, &sock_gid)) != 0)
        return c;
    if (group && !user)
        return usage_error("--group %s needs --user (the account to run as)", group);
    if (!ctrl.socket_path[0] && !nctrls)
        return usage_error("%s", "missing --socket PATH (where QEMU connects)");
    for (unsigned i = 0; i < nctrls; i++) {
        if (!ctrls[i].num_queues)
            ctrls[i].num_queues = ctrl.num_queues;
        ctrls[i].poll_us = ctrl.poll_us;
        ctrls[i].coalesce_us = ctrl.coalesce_us;
        ctrls[i].coalesce_auto = ctrl.coalesce_auto;
    }
    log_set_level(verbose >= 2 ? LOG_DEBUG : LOG_INFO);

    /* A peer closing its socket must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    loop = ev_loop_new();
    if (!loop) {
        fprintf(stderr, "vscsid: cannot create event loop: %s\n", strerror(errno));
        return 1;
    }
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sigs.loop = loop;
    if (sfd < 0 || !ev_loop_add_fd(loop, sfd, EPOLLIN, signal_cb, &sigs)) {
        fprintf(stderr, "vscsid: cannot set up signal handling: %s\n", strerror(errno));
        goto out;
    }
    d = vscsid_new(loop, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "vscsid: %s\n", err);
        goto out;
    }
    if (vscsid_set_iothreads(d, iothreads, ctrl.poll_us, err, sizeof(err)) < 0) {
        fprintf(stderr, "vscsid: --iothreads: %s\n", err);
        goto out;
    }
    for (unsigned i = 0; i < ndrives; i++) {
        if (vscsid_add_drive(d, &drives[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "vscsid: --drive: %s\n", err);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    for (unsigned i = 0; i < nctrls; i++) {
        if (vscsid_add_bus(d, ctrls[i].id, err, sizeof(err)) < 0) {
            fprintf(stderr, "vscsid: --controller: %s\n", err);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    for (unsigned i = 0; i < ndevices; i++) {
        if (vscsid_add_device(d, &devices[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "vscsid: --device: %s\n", err);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    free(drives);
    free(devices);
    drives = NULL;
    devices = NULL;
    if (ctrl.socket_path[0] && vscsid_add_controller(d, &ctrl, err, sizeof(err)) < 0) {
        fprintf(stderr, "vscsid: --socket %s: %s\n", ctrl.socket_path, err);
        goto out;
    }
    for (unsigned i = 0; i < nctrls; i++) {
        if (vscsid_add_controller(d, &ctrls[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "vscsid: --controller id=%s,socket=%s: %s\n", ctrls[i].id,
                    ctrls[i].socket_path, err);
            goto out;
        }
        log_info("controller %s on %s (%u request queues)", ctrls[i].id, ctrls[i].socket_path,
                 ctrls[i].num_queues);
    }
    if (qmp_path) {
        qmp = qmp_server_new(loop, qmp_path, d, err, sizeof(err));
        if (!qmp) {
            fprintf(stderr, "vscsid: --qmp: %s\n", err);
            goto out;
        }
    }
    if (user || socket_group) {
        bool drop = user != NULL;
        int r = 0;

        if (ctrl.socket_path[0])
            r |= own_socket(ctrl.socket_path, drop, run_uid, run_gid, true, sock_gid, socket_group);
        for (unsigned i = 0; i < nctrls; i++)
            r |= own_socket(ctrls[i].socket_path, drop, run_uid, run_gid, true, sock_gid, socket_group);
        if (qmp_path)
            r |= own_socket(qmp_path, drop, run_uid, run_gid, false, 0, false);
        if (r || (drop && drop_privileges(run_uid, run_gid) < 0))
            goto out;
        if (drop)
            log_info("running as uid %u gid %u", (unsigned)run_uid, (unsigned)run_gid);
    }
    if (ctrl.socket_path[0])
        log_info("serving %u device(s) on %s (%u request queues)", vscsid_device_count(d),
                 ctrl.socket_path, ctrl.num_queues);
    fprintf(stderr,
            "vscsid: attach a VM with:\n"
            "  qemu-system-x86_64 -machine q35 -m 1G \\\n"
            "    -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \\\n"
            "    -chardev socket,id=vscsi0,path=%s \\\n"
            "    -device vhost-user-scsi-pci,chardev=vscsi0 ...\n",
            realpath(nctrls && !ctrl.socket_path[0] ? ctrls[0].socket_path : ctrl.socket_path, abs_socket)
                ? abs_socket : (ctrl.socket_path[0] ? ctrl.socket_path : ctrls[0].socket_path));
    if (vscsid_start_iothreads(d, err, sizeof(err)) < 0) {
        fprintf(stderr, "vscsid: --iothreads: %s\n", err);
        goto out;
    }
    if (iothreads)
        log_info("%u iothread(s) serve the request queues", iothreads);
    if (start_sandbox(sandbox) < 0)
        goto out;
    if (ev_loop_run(loop) < 0)
        log_err("event loop failed: %s", strerror(errno));

    /* Graceful stop: take no new requests, let in-flight commands finish, then
     * flush volatile caches, so nothing acknowledged is lost. */
    vscsid_quiesce(d);
    if (vscsid_drain(d, 30000) < 0)
        log_warn("%u command(s) still in flight after 30 s; exiting anyway", vscsid_inflight(d));
    else if ((c = vscsid_flush_all(d, 30000)) < 0)
        log_warn("flushing drives at exit failed: %s", strerror(-c));
    rc = 0;
out:
    qmp_server_free(qmp);
    vscsid_free(d);
    if (sfd >= 0)
        close(sfd);
    ev_loop_free(loop);
    log_close_file();
    return rc;
}
