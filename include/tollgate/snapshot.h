/*
 * A config snapshot: one config and catalog, their router, and their limits bound to
 * the live state, immutable once published, with a reference count and a generation
 * number. Each worker thread pins the current snapshot and every call holds the one
 * it started on, so a reload swaps in a new snapshot while calls in flight finish on
 * the old one, which is freed when its last holder lets go.
 */
#ifndef tollgate__snapshot_h
#define tollgate__snapshot_h

#include <stdatomic.h>
#include <stdint.h>
#include "tollgate/config.h"
#include "tollgate/limits.h"
#include "tollgate/state.h"

typedef struct st_tg_snapshot_t {
    _Atomic size_t refs;
    uint64_t generation;    /* 1 for the config the gateway started with, then one more per reload */
    int64_t loaded_at_ms;   /* wall-clock time it was made (Unix ms) */
    tg_config_t *config;    /* owned */
    tg_limits_t *limits;    /* owned: the config's tenants and queries bound to the live state */
    tg_buf_t openapi;       /* owned: the catalog's OpenAPI document (tollgate/openapi.h), made with the snapshot */
} tg_snapshot_t;

/**
 * Makes a snapshot of `cfg` (taken over) with one reference, binding its tenants and
 * queries to `state` (new names start fresh at `now_ns`).
 */
tg_snapshot_t *tg_snapshot_create(tg_config_t *cfg, tg_state_t *state, uint64_t generation, uint64_t now_ns);

/** takes a reference; returns `s` */
tg_snapshot_t *tg_snapshot_ref(tg_snapshot_t *s);

/** lets a reference go; the last one frees the snapshot and its config */
void tg_snapshot_release(tg_snapshot_t *s);

/**
 * One thread's hold on a snapshot: its current one, or an older one that calls which
 * started on it still use. Counted without atomics (only the owning thread touches
 * it); the snapshot's own reference is let go when the pin is retired and its last
 * call ends.
 */
typedef struct st_tg_pin_t {
    tg_snapshot_t *snap;
    size_t calls;             /* calls in progress that started on it */
    struct st_tg_pin_t *next; /* in the list of retired pins */
} tg_pin_t;

/** a thread's pins: what new calls start on, and what older calls still hold */
typedef struct st_tg_pins_t {
    tg_pin_t *current;
    tg_pin_t *retired;
} tg_pins_t;

/** starts with `snap` current (its reference is taken over) */
void tg_pins_init(tg_pins_t *pins, tg_snapshot_t *snap);

/** a call starts on the current snapshot: it holds it until tg_pins_drop */
tg_pin_t *tg_pins_hold(tg_pins_t *pins);

/** a call that started on `pin` has ended */
void tg_pins_drop(tg_pins_t *pins, tg_pin_t *pin);

/** from now on `snap` is current (its reference is taken over); calls on the old one finish on it */
void tg_pins_set(tg_pins_t *pins, tg_snapshot_t *snap);

/** lets every pin go, held or not (at exit, when no call can end any more) */
void tg_pins_dispose(tg_pins_t *pins);

#endif
