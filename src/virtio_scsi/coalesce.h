/* Adaptive interrupt coalescing (--coalesce-us auto): whether a request
 * queue holds its guest signals, decided by measuring. Pure logic on one
 * queue's state, driven by the queue's thread (vscsi.c) with the loop's
 * clock; unit-tested alone (tests/unit/virtio_scsi).
 *
 * Holding a signal helps a guest whose interrupts are costly and that has
 * other work meanwhile (under TCG: 1.1-1.4x the IOPS), and hurts one that
 * waits for the completion (QD1, or a pipeline whose other end is the
 * daemon: up to 8x slower). What the device sees of the two can look alike,
 * so the queue compares: it times VSCSI_AC_EPOCH completions without
 * holding, then as many with holding, and holds for the next VSCSI_AC_STAY
 * epochs only if that was at least 5% faster. A holding epoch running at
 * under 0.8 of the speed is cut short after VSCSI_AC_EARLY completions, so a
 * guest that waits pays the hold on about VSCSI_AC_EARLY of every
 * VSCSI_AC_STAY * VSCSI_AC_EPOCH completions (16 of 32768). An epoch longer than
 * VSCSI_AC_IDLE_NS (the guest went quiet) measures nothing and starts over. */
#ifndef VSCSI_VIRTIO_SCSI_COALESCE_H
#define VSCSI_VIRTIO_SCSI_COALESCE_H

#include <stdbool.h>
#include <stdint.h>

#define VSCSI_AC_EPOCH 128
#define VSCSI_AC_EARLY 16
#define VSCSI_AC_STAY 256
#define VSCSI_AC_IDLE_NS 100000000ull

enum vscsi_ac_phase {
    VSCSI_AC_MEASURE_OFF,       /* timing an epoch without holding */
    VSCSI_AC_MEASURE_ON,        /* ... with holding */
    VSCSI_AC_DECIDED,           /* holding (or not) for `stay` epochs */
};

struct vscsi_ac {
    enum vscsi_ac_phase phase;
    bool hold;                  /* VSCSI_AC_DECIDED: holding pays */
    uint32_t count;             /* completions in this epoch */
    uint32_t stay;              /* VSCSI_AC_DECIDED: epochs left */
    uint64_t start_ns;          /* this epoch's start (0: not started) */
    uint64_t off_ns;            /* the last epoch without holding took this long */
};

/* Hold the signal now due? */
static inline bool vscsi_ac_holding(const struct vscsi_ac *ac)
{
    return ac->phase == VSCSI_AC_MEASURE_ON || (ac->phase == VSCSI_AC_DECIDED && ac->hold);
}

static inline void vscsi_ac_next(struct vscsi_ac *ac, enum vscsi_ac_phase phase, uint64_t now_ns)
{
    ac->phase = phase;
    ac->count = 0;
    ac->start_ns = now_ns;
}

static inline void vscsi_ac_decide(struct vscsi_ac *ac, bool hold, uint64_t now_ns)
{
    ac->hold = hold;
    ac->stay = VSCSI_AC_STAY;
    vscsi_ac_next(ac, VSCSI_AC_DECIDED, now_ns);
}

/* One completion on the queue, at now_ns (> 0). */
static inline void vscsi_ac_completed(struct vscsi_ac *ac, uint64_t now_ns)
{
    uint64_t took;

    if (!ac->start_ns) {
        vscsi_ac_next(ac, ac->phase, now_ns);
        return;
    }
    took = now_ns - ac->start_ns;
    ac->count++;
    if (ac->phase == VSCSI_AC_MEASURE_ON && ac->count == VSCSI_AC_EARLY &&
        took * VSCSI_AC_EPOCH * 4 > ac->off_ns * VSCSI_AC_EARLY * 5) {
        vscsi_ac_decide(ac, false, now_ns);     /* under 0.8 of the speed: enough seen */
        return;
    }
    if (ac->count < VSCSI_AC_EPOCH)
        return;
    if (took > VSCSI_AC_IDLE_NS && ac->phase != VSCSI_AC_DECIDED) {
        vscsi_ac_next(ac, VSCSI_AC_MEASURE_OFF, now_ns);    /* the guest paused: again */
        return;
    }
    switch (ac->phase) {
    case VSCSI_AC_MEASURE_OFF:
        ac->off_ns = took;
        vscsi_ac_next(ac, VSCSI_AC_MEASURE_ON, now_ns);
        break;
    case VSCSI_AC_MEASURE_ON:
        /* at least 5% more completions per second with holding */
        vscsi_ac_decide(ac, ac->off_ns * 100 > took * 105, now_ns);
        break;
    case VSCSI_AC_DECIDED:
        if (--ac->stay)
            vscsi_ac_next(ac, VSCSI_AC_DECIDED, now_ns);
        else
            vscsi_ac_next(ac, VSCSI_AC_MEASURE_OFF, now_ns);
        break;
    }
}

#endif
