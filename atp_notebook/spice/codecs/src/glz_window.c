/*
 * The GLZ window: decoded images by id, shared by the decodes of every display channel of
 * one session (see glz.h).
 *
 * Written for atp-notebook from the format description in the project's research notes
 * (shared/research/display.md sections 1.4, 1.5 and 8); no code is taken from spice-gtk,
 * spice-common or spice-server.
 *
 * Images live in a ring of slots indexed by id; every held id is in [base, base + nslots).
 * Ids below `base` are released: a reference to one fails at once. `next_missing` is the
 * lowest id that has not arrived; the images below it arrived in order, and the newest of
 * them says (its win_head_dist) which older images no later image can reference: those are
 * released. The newest image overall cannot decide that, because an image still in flight on
 * the other channel may reference older ones (the server's window head only moves forward
 * in id order). Memory is bounded by `cap` (3 windows, see glz_window_new) whatever the
 * server sends: past it the oldest images go first.
 *
 * One mutex guards everything; a decode holds it only to look up, pin or insert, never while
 * it copies pixels, and waits on the condition variable (which releases it). Pixels of an
 * image in the window never change, so pinned images are read without the lock.
 */
#define _POSIX_C_SOURCE 200809L

#include "glz.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INITIAL_SLOTS 64

struct GlzWindow {
    pthread_mutex_t lock;
    pthread_cond_t changed;   /* an image arrived, or the window was closed or cleared */
    uint64_t max_pixels;
    uint64_t cap;             /* the most the held images may be charged */
    GlzImage **slot;
    size_t nslots, max_slots; /* powers of two */
    uint64_t base, next_missing, generation;
    size_t images, failed;
    uint64_t pixels, charge;
    unsigned waiting;
    int closed;
};

static uint64_t
charge_of(const GlzImage *img)
{
    return (img->failed ? 0 : img->pixels) + GLZ_IMAGE_OVERHEAD;
}

static GlzImage **
slot_of(GlzWindow *w, uint64_t id)
{
    return &w->slot[id & (w->nslots - 1)];
}

/* The image with `id`, or NULL (also for ids outside [base, base + nslots)). */
static GlzImage *
lookup(GlzWindow *w, uint64_t id)
{
    if (id < w->base || id - w->base >= w->nslots) {
        return NULL;
    }
    return *slot_of(w, id);
}

static void
drop_ref(GlzImage *img)
{
    if (--img->refs == 0) {
        free(img);
    }
}

static void
remove_slot(GlzWindow *w, GlzImage **s)
{
    GlzImage *img = *s;
    *s = NULL;
    if (img->failed) {
        w->failed--;
    } else {
        w->images--;
        w->pixels -= img->pixels;
    }
    w->charge -= charge_of(img);
    drop_ref(img);
}

static void
advance_next_missing(GlzWindow *w)
{
    if (w->next_missing < w->base) {
        w->next_missing = w->base;
    }
    while (w->next_missing - w->base < w->nslots && *slot_of(w, w->next_missing) != NULL) {
        w->next_missing++;
    }
}

/* Release every image with an id below `new_base`. */
static void
release_below(GlzWindow *w, uint64_t new_base)
{
    if (new_base <= w->base) {
        return;
    }
    if (new_base - w->base >= w->nslots) {
        for (size_t i = 0; i < w->nslots; i++) {
            if (w->slot[i] != NULL) {
                remove_slot(w, &w->slot[i]);
            }
        }
    } else {
        for (uint64_t id = w->base; id < new_base; id++) {
            GlzImage **s = slot_of(w, id);
            if (*s != NULL) {
                remove_slot(w, s);
            }
        }
    }
    w->base = new_base;
    advance_next_missing(w);
}

static void
release_all(GlzWindow *w)
{
    for (size_t i = 0; i < w->nslots; i++) {
        if (w->slot[i] != NULL) {
            remove_slot(w, &w->slot[i]);
        }
    }
}

/* Make `id` (>= base) fit the ring: grow it, or past max_slots drop the oldest ids. */
static int
make_room(GlzWindow *w, uint64_t id, DecodeFailure *f)
{
    if (id - w->base >= w->max_slots) {
        release_below(w, id - w->max_slots + 1);
    }
    if (id - w->base < w->nslots) {
        return 0;
    }
    size_t n = w->nslots;
    while (id - w->base >= n) {
        n *= 2;
    }
    GlzImage **grown = calloc(n, sizeof *grown);
    if (grown == NULL) {
        return fail(f, 0, "out of memory for a window of %zu images", n);
    }
    for (size_t i = 0; i < w->nslots; i++) {
        if (w->slot[i] != NULL) {
            grown[w->slot[i]->id & (n - 1)] = w->slot[i];
        }
    }
    free(w->slot);
    w->slot = grown;
    w->nslots = n;
    return 0;
}

/* Put `img` in the window (lock held); it owns img from here on, even on failure. */
static int
insert_locked(GlzWindow *w, GlzImage *img, DecodeFailure *f)
{
    int rc = 0;
    if (w->closed) {
        rc = fail(f, 0, "window closed");
    } else if (img->generation != w->generation) {
        rc = fail(f, 0, "window cleared while image %llu was decoding",
                  (unsigned long long)img->id);
    } else if (img->id < w->base) {
        rc = fail(f, 25, "image id %llu is older than the window (ids below %llu were released)",
                  (unsigned long long)img->id, (unsigned long long)w->base);
    } else if (make_room(w, img->id, f) != 0) {
        rc = -1;
    } else if (*slot_of(w, img->id) != NULL) {
        rc = fail(f, 25, "image id %llu is already in the window", (unsigned long long)img->id);
    }
    if (rc != 0) {
        drop_ref(img);
        return rc;
    }
    /* bounded memory whatever the server sends: the oldest images go first */
    while (w->charge + charge_of(img) > w->cap && w->base < img->id) {
        release_below(w, w->base + 1);
    }
    *slot_of(w, img->id) = img;
    if (img->failed) {
        w->failed++;
    } else {
        w->images++;
        w->pixels += img->pixels;
    }
    w->charge += charge_of(img);
    advance_next_missing(w);
    if (w->next_missing > w->base) {
        GlzImage *newest = *slot_of(w, w->next_missing - 1);
        release_below(w, newest->head);
    }
    pthread_cond_broadcast(&w->changed);
    return 0;
}

GlzWindow *
glz_window_new(uint64_t max_pixels)
{
    GlzWindow *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->slot = calloc(INITIAL_SLOTS, sizeof *w->slot);
    pthread_condattr_t attr;
    int cond_ok = 0, mutex_ok = 0;
    if (w->slot != NULL && pthread_condattr_init(&attr) == 0) {
        /* deadlines on the monotonic clock: a wall-clock step must not stretch a wait */
        cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&w->changed, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (cond_ok) {
        mutex_ok = pthread_mutex_init(&w->lock, NULL) == 0;
    }
    if (!mutex_ok) {
        if (cond_ok) {
            pthread_cond_destroy(&w->changed);
        }
        free(w->slot);
        free(w);
        return NULL;
    }
    w->nslots = INITIAL_SLOTS;
    w->max_pixels = max_pixels;
    /*
     * Three windows: images arriving out of order across channels are kept beyond one
     * window (everything from the head of the newest in-order image up), and an image of a
     * few pixels costs more than its pixels; a full window of the smallest images the
     * server GLZ-encodes (about 14 pixels: smaller bitmaps go raw) stays under this.
     */
    w->cap = 3 * max_pixels;
    w->max_slots = INITIAL_SLOTS;
    while (w->max_slots < w->cap / GLZ_IMAGE_OVERHEAD + 1) {
        w->max_slots *= 2;
    }
    return w;
}

void
glz_window_free(GlzWindow *w)
{
    if (w == NULL) {
        return;
    }
    release_all(w);
    free(w->slot);
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void
glz_window_close(GlzWindow *w)
{
    pthread_mutex_lock(&w->lock);
    w->closed = 1;
    release_all(w);
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

void
glz_window_clear(GlzWindow *w)
{
    pthread_mutex_lock(&w->lock);
    w->generation++;
    release_all(w);
    w->base = w->next_missing = 0;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

uint64_t
glz_window_max_pixels(const GlzWindow *w)
{
    return w->max_pixels;
}

void
glz_window_stats(GlzWindow *w, GlzWindowStats *s)
{
    pthread_mutex_lock(&w->lock);
    s->images = w->images;
    s->pixels = w->pixels;
    s->waiting = w->waiting;
    s->closed = w->closed;
    pthread_mutex_unlock(&w->lock);
}

size_t
glz_window_ids(GlzWindow *w, uint64_t *ids, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (uint64_t i = 0; i < w->nslots; i++) {
        GlzImage *img = *slot_of(w, w->base + i);
        if (img != NULL && !img->failed) {
            if (n < max) {
                ids[n] = img->id;
            }
            n++;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

int
glz_refs_begin(GlzRefs *r, GlzWindow *w, const GlzHeader *h, double timeout,
               DecodeFailure *f)
{
    int rc = 0;
    memset(r, 0, sizeof *r);
    r->w = w;
    r->h = h;
    if (timeout > 1e6) {
        timeout = 1e6;   /* keeps the deadline arithmetic in range */
    }
    r->wait = timeout > 0;
    r->timeout = timeout;
    if (r->wait) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double whole = (double)(int64_t)timeout;
        r->deadline.sec = (int64_t)now.tv_sec + (int64_t)whole;
        r->deadline.nsec = now.tv_nsec + (long)((timeout - whole) * 1e9);
        if (r->deadline.nsec >= 1000000000L) {
            r->deadline.sec++;
            r->deadline.nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&w->lock);
    r->generation = w->generation;
    if (w->closed) {
        rc = fail(f, 0, "window closed");
    } else if (h->id < w->base) {
        rc = fail(f, 25, "image id %llu is older than the window (ids below %llu were released)",
                  (unsigned long long)h->id, (unsigned long long)w->base);
    } else if (lookup(w, h->id) != NULL) {
        rc = fail(f, 25, "image id %llu is already in the window", (unsigned long long)h->id);
    } else if (h->pixels > w->max_pixels) {
        rc = fail(f, 13, "an image of %llu pixels does not fit the window of %llu pixels",
                  (unsigned long long)h->pixels, (unsigned long long)w->max_pixels);
        pthread_mutex_unlock(&w->lock);
        glz_window_record_failure(w, h, r->generation);
        return rc;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* Wait until the window changes (lock held); 0 when the deadline passed. */
static int
wait_for(GlzRefs *r)
{
    GlzWindow *w = r->w;
    if (!r->wait) {
        return 0;
    }
    struct timespec until = {.tv_sec = (time_t)r->deadline.sec, .tv_nsec = r->deadline.nsec};
    w->waiting++;
    int rc = pthread_cond_timedwait(&w->changed, &w->lock, &until);
    w->waiting--;
    return rc != ETIMEDOUT;
}

int
glz_refs_fetch(GlzRefs *r, uint64_t dist, size_t at, const uint8_t **data, size_t *units,
               DecodeFailure *f)
{
    GlzWindow *w = r->w;
    const GlzHeader *h = r->h;
    if (dist > h->win_head_dist) {
        return fail(f, at, "a reference %llu images back is outside this image's window"
                    " (%u images back)", (unsigned long long)dist, h->win_head_dist);
    }
    if (r->npins == r->pins_cap) {
        size_t cap = r->pins_cap ? r->pins_cap * 2 : 16;
        GlzImage **grown = realloc(r->pins, cap * sizeof *grown);
        if (grown == NULL) {
            return fail(f, at, "out of memory for %zu image references", cap);
        }
        r->pins = grown;
        r->pins_cap = cap;
    }
    uint64_t id = h->id - dist;   /* dist <= win_head_dist <= id: checked with the header */
    int rc = 0, timed_out = 0;
    GlzImage *img;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        if (w->closed) {
            rc = fail(f, at, "window closed");
            break;
        }
        if (w->generation != r->generation) {
            rc = fail(f, at, "window cleared while image %llu was decoding",
                      (unsigned long long)h->id);
            break;
        }
        if (id < w->base) {
            rc = fail(f, at, "a reference to image %llu, which was already released"
                      " (ids below %llu)", (unsigned long long)id, (unsigned long long)w->base);
            break;
        }
        img = lookup(w, id);
        if (img != NULL) {
            if (img->failed) {
                rc = fail(f, at, "a reference to image %llu, which failed to decode",
                          (unsigned long long)id);
            } else if (img->type != h->type) {
                rc = fail(f, at, "a reference from an image of type %u to image %llu of type %u",
                          h->type, (unsigned long long)id, img->type);
            } else {
                img->refs++;
                r->pins[r->npins++] = img;
                *data = img->data;
                *units = img->units;
            }
            break;
        }
        if (!r->wait) {
            rc = fail(f, at, "a reference to image %llu, which has not arrived (no wait)",
                      (unsigned long long)id);
            break;
        }
        if (timed_out) {
            rc = fail(f, at, "a reference to image %llu, which did not arrive within %g s",
                      (unsigned long long)id, r->timeout);
            break;
        }
        /* after a timeout, one more look: it may have arrived with it */
        timed_out = !wait_for(r);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void
glz_refs_end(GlzRefs *r)
{
    if (r->npins != 0) {
        pthread_mutex_lock(&r->w->lock);
        for (size_t i = 0; i < r->npins; i++) {
            drop_ref(r->pins[i]);
        }
        pthread_mutex_unlock(&r->w->lock);
    }
    free(r->pins);
    r->pins = NULL;
    r->npins = r->pins_cap = 0;
}

void
glz_window_record_failure(GlzWindow *w, const GlzHeader *h, uint64_t generation)
{
    GlzImage *img = calloc(1, sizeof *img);
    if (img == NULL) {
        return;   /* waiters on it then time out instead of failing at once */
    }
    img->id = h->id;
    img->head = h->id - h->win_head_dist;
    img->generation = generation;
    img->type = h->type;
    img->failed = 1;
    img->refs = 1;
    DecodeFailure ignored;
    pthread_mutex_lock(&w->lock);
    insert_locked(w, img, &ignored);
    pthread_mutex_unlock(&w->lock);
}

int
glz_window_insert(GlzWindow *w, GlzImage *img, DecodeFailure *f)
{
    pthread_mutex_lock(&w->lock);
    int rc = insert_locked(w, img, f);
    pthread_mutex_unlock(&w->lock);
    return rc;
}
