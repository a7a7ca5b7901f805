/* A small epoll event loop. One loop per thread; not thread-safe except
 * ev_loop_wakeup() and ev_loop_post(). Handlers may add/remove handlers (including themselves)
 * from inside a callback: removal takes effect at once, memory is freed after
 * the current dispatch round. */
#ifndef VSCSI_UTIL_LOOP_H
#define VSCSI_UTIL_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ev_loop;
struct ev_handler;

/* events: EPOLLIN/EPOLLOUT/... bits as delivered by epoll. */
typedef void ev_fd_cb(void *opaque, int fd, uint32_t events);
typedef void ev_defer_cb(void *opaque);

struct ev_loop *ev_loop_new(void);
void ev_loop_free(struct ev_loop *loop);

/* Watch fd for events (EPOLLIN etc). Returns a handle or NULL (errno set). */
struct ev_handler *ev_loop_add_fd(struct ev_loop *loop, int fd, uint32_t events,
                                  ev_fd_cb *cb, void *opaque);
int ev_loop_mod_fd(struct ev_loop *loop, struct ev_handler *h, uint32_t events);
/* Stop watching; h is invalid afterwards. Does not close the fd. Handlers
 * still registered when the loop is freed are freed with it. */
void ev_loop_del_fd(struct ev_loop *loop, struct ev_handler *h);

/* Run cb(opaque) once, after the current dispatch round, on the loop's thread
 * (from another thread this is ev_loop_post). */
int ev_loop_defer(struct ev_loop *loop, ev_defer_cb *cb, void *opaque);

/* Dispatch ready events, waiting at most timeout_ms (-1 = forever). Returns the
 * number of handlers run or -errno. */
int ev_loop_run_once(struct ev_loop *loop, int timeout_ms);
/* Run until ev_loop_stop() is called. */
int ev_loop_run(struct ev_loop *loop);
/* Any thread: the loop returns from ev_loop_run after its current round. */
void ev_loop_stop(struct ev_loop *loop);
bool ev_loop_stopped(const struct ev_loop *loop);
/* Adaptive polling: after a round that did work (an fd event, or poll_cb
 * finding work), the loop keeps calling poll_cb without sleeping for up to
 * poll_ns; only when that window passes with nothing to do does it call
 * idle_cb (re-enable notifications; return true if work appeared meanwhile)
 * and block in epoll_wait. poll_ns = 0 turns polling off. */
struct ev_poller {
    bool (*poll_cb)(void *opaque);      /* true when it found work */
    bool (*idle_cb)(void *opaque);      /* true when work appeared: keep polling */
    void *opaque;
};
void ev_loop_set_poller(struct ev_loop *loop, const struct ev_poller *p, uint64_t poll_ns);

/* CLOCK_MONOTONIC in ns as of the start of the current dispatch round: one
 * clock read per round, for per-request accounting on hot paths. */
uint64_t ev_loop_now(const struct ev_loop *loop);

/* Wake a loop blocked in epoll_wait (any thread). */
void ev_loop_wakeup(struct ev_loop *loop);

/* Threads. A loop belongs to the thread that created it until
 * ev_loop_bind_thread() hands it to the calling thread (an iothread that runs
 * a loop created for it). */
void ev_loop_bind_thread(struct ev_loop *loop);
bool ev_loop_is_current(const struct ev_loop *loop);
/* Run cb(opaque) on the loop's own thread, from any thread: the call is queued
 * (FIFO, with the loop's deferred work) and the loop woken. 0 or -ENOMEM. */
int ev_loop_post(struct ev_loop *loop, ev_defer_cb *cb, void *opaque);
/* The same without allocating: the caller fills cb and opaque of a node it
 * owns, which must stay valid until cb starts (cb may post it again). Cannot
 * fail. */
struct ev_call {
    ev_defer_cb *cb;
    void *opaque;
    struct ev_call *next;   /* private to the loop */
    bool owned;             /* private to the loop: allocated by it */
};
void ev_loop_post_call(struct ev_loop *loop, struct ev_call *c);
/* Called right before and right after the loop blocks in epoll_wait (also
 * with a zero timeout): a thread that holds a lock while it works lets go of
 * it only while it waits. */
void ev_loop_set_wait_hooks(struct ev_loop *loop, void (*before_wait)(void *opaque),
                            void (*after_wait)(void *opaque), void *opaque);

#endif
