#include "util/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct ev_handler {
    int fd;
    bool dead;
    ev_fd_cb *cb;
    void *opaque;
    struct ev_handler *next_dead;
    struct ev_handler *prev, *next;     /* live handlers, freed by ev_loop_free */
};

/* struct ev_call (loop.h) is also the node of the deferred and posted lists;
 * nodes the loop allocated have owned set and are freed after their call. */

struct ev_loop {
    int epfd;
    int wakefd;
    bool stop;
    struct ev_handler wake_h;
    struct ev_handler *dead;            /* freed after the dispatch round */
    struct ev_handler *live;
    struct ev_call *defer_head, **defer_tail;
    struct ev_poller poller;
    uint64_t poll_ns;
    uint64_t last_work_ns;
    uint64_t round_ns;                  /* ev_loop_now() */
    pthread_t owner;                    /* the thread that runs the loop */
    /* ev_loop_post: calls from any thread, run by the owner */
    pthread_mutex_t post_lock;
    struct ev_call *post_head, **post_tail;
    /* ev_loop_set_wait_hooks */
    void (*before_wait)(void *opaque);
    void (*after_wait)(void *opaque);
    void *wait_opaque;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ev_loop_set_poller(struct ev_loop *loop, const struct ev_poller *p, uint64_t poll_ns)
{
    if (p)
        loop->poller = *p;
    else
        loop->poller = (struct ev_poller){ 0 };
    loop->poll_ns = p ? poll_ns : 0;
}

/* Returns the epoll timeout to use: 0 while inside the polling window. */
static int poll_round(struct ev_loop *loop, int timeout_ms)
{
    uint64_t now;

    if (!loop->poll_ns || !loop->poller.poll_cb)
        return timeout_ms;
    now = now_ns();
    if (loop->poller.poll_cb(loop->poller.opaque))
        loop->last_work_ns = now;
    if (now - loop->last_work_ns < loop->poll_ns)
        return 0;
    /* Window over: arm notifications, and keep polling if work slipped in. */
    if (timeout_ms != 0 && loop->poller.idle_cb && loop->poller.idle_cb(loop->poller.opaque)) {
        loop->last_work_ns = now;
        return 0;
    }
    return timeout_ms;
}

/* Move what other threads posted onto this round's deferred list. */
static void take_posted(struct ev_loop *loop)
{
    struct ev_call *d;

    pthread_mutex_lock(&loop->post_lock);
    d = loop->post_head;
    loop->post_head = NULL;
    loop->post_tail = &loop->post_head;
    pthread_mutex_unlock(&loop->post_lock);
    if (!d)
        return;
    *loop->defer_tail = d;
    while (d->next)
        d = d->next;
    loop->defer_tail = &d->next;
}

static void wake_cb(void *opaque, int fd, uint32_t events)
{
    uint64_t v;

    (void)events;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending; nothing else can fail on an eventfd */
    }
    take_posted(opaque);
}

struct ev_loop *ev_loop_new(void)
{
    struct ev_loop *loop = calloc(1, sizeof(*loop));

    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto err_free;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0)
        goto err_ep;
    loop->wake_h = (struct ev_handler){ .fd = loop->wakefd, .cb = wake_cb, .opaque = loop };
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &loop->wake_h };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) < 0)
        goto err_wake;
    loop->defer_tail = &loop->defer_head;
    loop->post_tail = &loop->post_head;
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->owner = pthread_self();
    loop->round_ns = now_ns();
    return loop;

err_wake:
    close(loop->wakefd);
err_ep:
    close(loop->epfd);
err_free:
    free(loop);
    return NULL;
}

static void reap_dead(struct ev_loop *loop)
{
    while (loop->dead) {
        struct ev_handler *h = loop->dead;
        loop->dead = h->next_dead;
        free(h);
    }
}

static void run_deferred(struct ev_loop *loop)
{
    /* Callbacks may defer more work: take the list and run only what was queued. */
    struct ev_call *d = loop->defer_head;

    loop->defer_head = NULL;
    loop->defer_tail = &loop->defer_head;
    while (d) {
        struct ev_call *next = d->next;
        bool owned = d->owned;

        /* a caller's node may be posted again (or freed) by its own call */
        d->cb(d->opaque);
        if (owned)
            free(d);
        d = next;
    }
}

void ev_loop_free(struct ev_loop *loop)
{
    if (!loop)
        return;
    take_posted(loop);
    while (loop->defer_head)
        run_deferred(loop);
    reap_dead(loop);
    while (loop->live) {
        struct ev_handler *h = loop->live;
        loop->live = h->next;
        free(h);
    }
    close(loop->wakefd);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop);
}

struct ev_handler *ev_loop_add_fd(struct ev_loop *loop, int fd, uint32_t events,
                                  ev_fd_cb *cb, void *opaque)
{
    struct ev_handler *h = calloc(1, sizeof(*h));

    if (!h) {
        errno = ENOMEM;
        return NULL;
    }
    *h = (struct ev_handler){ .fd = fd, .cb = cb, .opaque = opaque };
    struct epoll_event ev = { .events = events, .data.ptr = h };
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        free(h);
        errno = e;
        return NULL;
    }
    h->next = loop->live;
    if (loop->live)
        loop->live->prev = h;
    loop->live = h;
    return h;
}

int ev_loop_mod_fd(struct ev_loop *loop, struct ev_handler *h, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = h };

    return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, h->fd, &ev) < 0 ? -errno : 0;
}

void ev_loop_del_fd(struct ev_loop *loop, struct ev_handler *h)
{
    if (!h || h->dead)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, h->fd, NULL);
    if (h->prev)
        h->prev->next = h->next;
    else
        loop->live = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->dead = true;
    h->next_dead = loop->dead;
    loop->dead = h;
}

int ev_loop_defer(struct ev_loop *loop, ev_defer_cb *cb, void *opaque)
{
    struct ev_call *d;

    if (!ev_loop_is_current(loop))
        return ev_loop_post(loop, cb, opaque);
    d = malloc(sizeof(*d));
    if (!d)
        return -ENOMEM;
    *d = (struct ev_call){ .cb = cb, .opaque = opaque, .owned = true };
    *loop->defer_tail = d;
    loop->defer_tail = &d->next;
    return 0;
}

int ev_loop_run_once(struct ev_loop *loop, int timeout_ms)
{
    struct epoll_event evs[64];
    int n;

    if (loop->defer_head)
        timeout_ms = 0;
    timeout_ms = poll_round(loop, timeout_ms);
    if (loop->before_wait)
        loop->before_wait(loop->wait_opaque);
    n = epoll_wait(loop->epfd, evs, 64, timeout_ms);
    if (loop->after_wait)
        loop->after_wait(loop->wait_opaque);
    if (n < 0) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    loop->round_ns = now_ns();
    for (int i = 0; i < n; i++) {
        struct ev_handler *h = evs[i].data.ptr;
        if (!h->dead)
            h->cb(h->opaque, h->fd, evs[i].events);
    }
    if (n > 0 && loop->poll_ns)
        loop->last_work_ns = loop->round_ns;
    run_deferred(loop);
    reap_dead(loop);
    return n;
}

int ev_loop_run(struct ev_loop *loop)
{
    __atomic_store_n(&loop->stop, false, __ATOMIC_RELAXED);
    while (!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
        int r = ev_loop_run_once(loop, -1);
        if (r < 0)
            return r;
    }
    return 0;
}

void ev_loop_stop(struct ev_loop *loop)
{
    __atomic_store_n(&loop->stop, true, __ATOMIC_RELEASE);
    if (!ev_loop_is_current(loop))
        ev_loop_wakeup(loop);
}

bool ev_loop_stopped(const struct ev_loop *loop)
{
    return __atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE);
}

uint64_t ev_loop_now(const struct ev_loop *loop)
{
    return loop->round_ns;
}

void ev_loop_wakeup(struct ev_loop *loop)
{
    uint64_t one = 1;

    if (write(loop->wakefd, &one, sizeof(one)) < 0) {
        /* EAGAIN only when the counter is saturated: a wakeup is pending anyway */
    }
}

/* owner is read by other threads (ev_loop_defer from them), and set by the
 * thread that takes the loop over: atomically. */
void ev_loop_bind_thread(struct ev_loop *loop)
{
    __atomic_store_n(&loop->owner, pthread_self(), __ATOMIC_RELEASE);
}

bool ev_loop_is_current(const struct ev_loop *loop)
{
    return pthread_equal(__atomic_load_n(&loop->owner, __ATOMIC_ACQUIRE), pthread_self());
}

static void post_node(struct ev_loop *loop, struct ev_call *c)
{
    c->next = NULL;
    pthread_mutex_lock(&loop->post_lock);
    *loop->post_tail = c;
    loop->post_tail = &c->next;
    pthread_mutex_unlock(&loop->post_lock);
    ev_loop_wakeup(loop);
}

void ev_loop_post_call(struct ev_loop *loop, struct ev_call *c)
{
    c->owned = false;
    post_node(loop, c);
}

int ev_loop_post(struct ev_loop *loop, ev_defer_cb *cb, void *opaque)
{
    struct ev_call *d = malloc(sizeof(*d));

    if (!d)
        return -ENOMEM;
    *d = (struct ev_call){ .cb = cb, .opaque = opaque, .owned = true };
    post_node(loop, d);
    return 0;
}

void ev_loop_set_wait_hooks(struct ev_loop *loop, void (*before_wait)(void *opaque),
                            void (*after_wait)(void *opaque), void *opaque)
{
    loop->before_wait = before_wait;
    loop->after_wait = after_wait;
    loop->wait_opaque = opaque;
}
