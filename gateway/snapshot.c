/* Config snapshots: made whole, shared read-only, freed by their last holder. */
#include <stdlib.h>
#include <time.h>
#include "tollgate/openapi.h"
#include "tollgate/snapshot.h"
#include "internal.h"

tg_snapshot_t *tg_snapshot_create(tg_config_t *cfg, tg_state_t *state, uint64_t generation, uint64_t now_ns)
{
    tg_snapshot_t *s = tg_calloc(1, sizeof(*s));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_init(&s->refs, 1);
    s->generation = generation;
    s->loaded_at_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    s->config = cfg;
    s->limits = tg_limits_create(cfg, state, now_ns);
    /* once per snapshot, not per request: a request for it holds the snapshot while its answer is sent */
    tg_openapi_build(cfg, &s->openapi);
    return s;
}

tg_snapshot_t *tg_snapshot_ref(tg_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void tg_snapshot_release(tg_snapshot_t *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    tg_limits_free(s->limits);
    tg_config_free(s->config);
    tg_buf_dispose(&s->openapi);
    free(s);
}

static tg_pin_t *new_pin(tg_snapshot_t *snap)
{
    tg_pin_t *pin = tg_calloc(1, sizeof(*pin));
    pin->snap = snap;
    return pin;
}

static void free_pin(tg_pin_t *pin)
{
    tg_snapshot_release(pin->snap);
    free(pin);
}

void tg_pins_init(tg_pins_t *pins, tg_snapshot_t *snap)
{
    pins->current = new_pin(snap);
    pins->retired = NULL;
}

tg_pin_t *tg_pins_hold(tg_pins_t *pins)
{
    ++pins->current->calls;
    return pins->current;
}

void tg_pins_drop(tg_pins_t *pins, tg_pin_t *pin)
{
    if (--pin->calls != 0 || pin == pins->current)
        return;
    for (tg_pin_t **p = &pins->retired; *p != NULL; p = &(*p)->next) {
        if (*p == pin) {
            *p = pin->next;
            break;
        }
    }
    free_pin(pin);
}

void tg_pins_set(tg_pins_t *pins, tg_snapshot_t *snap)
{
    tg_pin_t *old = pins->current;
    pins->current = new_pin(snap);
    if (old->calls == 0) {
        free_pin(old);
    } else {
        old->next = pins->retired;
        pins->retired = old;
    }
}

void tg_pins_dispose(tg_pins_t *pins)
{
    while (pins->retired != NULL) {
        tg_pin_t *next = pins->retired->next;
        free_pin(pins->retired);
        pins->retired = next;
    }
    if (pins->current != NULL)
        free_pin(pins->current);
    pins->current = NULL;
}
