/* A QMP server over the stub daemon, for testing vscsictl without vscsid:
 *   qmp_stub_server PATH
 * runs until a QMP quit, SIGTERM or SIGINT; SIGUSR1 emits a USER_TEST event. */
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "mgmt/qmp.h"
#include "stub_daemon.h"
#include "util/log.h"
#include "util/loop.h"

struct sig_ctx {
    struct ev_loop *loop;
    struct qmp_server *srv;
    unsigned n;
};

static void signal_cb(void *opaque, int fd, uint32_t events)
{
    struct sig_ctx *ctx = opaque;
    struct signalfd_siginfo si;
    char data[64];

    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            snprintf(data, sizeof(data), "{\"n\": %u}", ++ctx->n);
            qmp_server_event(ctx->srv, "USER_TEST", data);
        } else {
            ev_loop_stop(ctx->loop);
        }
    }
}

int main(int argc, char **argv)
{
    struct sig_ctx ctx = { 0 };
    struct ev_handler *sh = NULL;
    char err[256];
    sigset_t mask;
    int sfd;

    if (argc != 2) {
        fprintf(stderr, "usage: qmp_stub_server PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGUSR1);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    log_set_level(LOG_WARN);
    stub_init(false);
    ctx.loop = ev_loop_new();
    g_d.loop = ctx.loop;
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (ctx.loop && sfd >= 0)
        sh = ev_loop_add_fd(ctx.loop, sfd, EPOLLIN, signal_cb, &ctx);
    if (!sh) {
        perror("qmp_stub_server: setup");
        return 1;
    }
    ctx.srv = qmp_server_new(ctx.loop, argv[1], &g_d, err, sizeof(err));
    if (!ctx.srv) {
        fprintf(stderr, "qmp_stub_server: %s\n", err);
        return 1;
    }
    ev_loop_run(ctx.loop);
    qmp_server_free(ctx.srv);
    ev_loop_del_fd(ctx.loop, sh);
    close(sfd);
    ev_loop_free(ctx.loop);
    return 0;
}
