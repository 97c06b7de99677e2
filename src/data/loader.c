/* The batch loader (include/memloc/loader.h).
 *
 * A ring of S slots, each one preallocated batch. Workers claim batch
 * numbers in order (next_claim), each into any FREE slot, fill it without
 * holding the lock, and mark it READY; the consumer takes batches in order
 * (next_consume) from whichever slot holds its number, marks them HELD and
 * frees them on release. So at most S batches exist at a time, no memory is
 * allocated after create, and what a batch contains depends only on (seed,
 * epoch, batch number), never on which worker made it or when. Because
 * claims are in order, a batch not yet claimed while no slot is FREE means
 * the consumer holds every slot: next() reports that instead of waiting.
 *
 * Slot states: FREE -> FILLING (a worker) -> READY -> HELD (the consumer)
 * -> FREE. start_epoch bumps a generation counter, waits for fills in flight
 * (their results are dropped), frees READY slots and resets the counters.
 * Workers do no allocation and cannot fail; only the consumer's calls report
 * errors, in the context. */
#include "memloc/loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SLOT_FREE = 0, SLOT_FILLING, SLOT_READY, SLOT_HELD } slot_state;

typedef struct {
    mloc_batch batch;
    slot_state state;
    int64_t number; /* batch number it holds or is being filled with */
} slot;

struct mloc_loader;

typedef struct {
    struct mloc_loader *L;
    int id;
} worker_arg;

struct mloc_loader {
    mloc_ctx *ctx;
    const mloc_dataset *ds;
    mloc_loader_config cfg;
    char purpose[64];
    int64_t n, n_batches;
    int64_t *indices;        /* n, as given */
    int64_t *order;          /* n, this epoch's order */
    int c, oh, ow;
    int64_t view_floats;     /* c * oh * ow */
    size_t ws_bytes;         /* per worker, 64-byte multiple */
    char *ws;                /* max(W, 1) workspaces */
    int n_slots;
    slot *slots;
    int n_threads;
    pthread_t *threads;
    worker_arg *args;
    int sync_ready;          /* mutex and condition variables initialised */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* a slot became FREE, an epoch started, or stop */
    pthread_cond_t ready_cv; /* a slot became READY, or a fill ended */
    /* guarded by mu */
    int stop, active;
    uint64_t gen;
    int64_t epoch, next_claim, next_consume;
    int inflight;
};

mloc_loader_config mloc_loader_config_default(void) {
    mloc_loader_config c;
    memset(&c, 0, sizeof c);
    c.batch_size = 256;
    c.views = 2;
    mloc_aug_config ac = mloc_aug_config_default();
    mloc_aug_pipeline_make(NULL, &c.aug, &ac);
    c.seed = 0;
    c.shuffle = 1;
    c.drop_last = 1;
    c.workers = 2;
    c.ring = 0;
    c.purpose = "aug";
    c.metric_keys = 0;
    return c;
}

int64_t mloc_loader_batches(const mloc_loader *L) { return L->n_batches; }

/* Make batch `number` of `epoch` into b (any thread; reads L->order, which
 * only changes while no fill is in flight). */
static void fill(mloc_loader *L, mloc_batch *b, int64_t epoch, int64_t number, void *ws) {
    const mloc_dataset *ds = L->ds;
    int64_t B = L->cfg.batch_size, first = number * B;
    int n = (int)(L->n - first < B ? L->n - first : B);
    int64_t key_epoch = L->cfg.metric_keys ? MLOC_AUG_NO_EPOCH : epoch;
    int64_t img_bytes = (int64_t)ds->h * ds->w * ds->c;
    b->epoch = epoch;
    b->number = number;
    b->n = n;
    for (int k = 0; k < n; k++) {
        int64_t idx = L->order[first + k];
        b->indices[k] = idx;
        b->labels[k] = ds->labels ? ds->labels[idx] : -1;
        const uint8_t *img = ds->pixels + idx * img_bytes;
        for (int v = 0; v < L->cfg.views; v++) {
            mloc_rng r;
            mloc_aug_stream(&r, L->cfg.seed, L->purpose, key_epoch, idx, v);
            mloc_aug_params p;
            mloc_aug_draw(&p, &L->cfg.aug, ds->h, ds->w, &r);
            mloc_aug_apply_ws(b->x + ((int64_t)v * n + k) * L->view_floats, img, ds->h, ds->w,
                              ds->c, &p, &L->cfg.aug, ws);
        }
    }
}

/* A FREE slot, or NULL. Caller holds mu. */
static slot *free_slot(mloc_loader *L) {
    for (int i = 0; i < L->n_slots; i++)
        if (L->slots[i].state == SLOT_FREE) return &L->slots[i];
    return NULL;
}

/* The slot filling or holding batch `number` of the current epoch, or NULL.
 * Caller holds mu. */
static slot *slot_of(mloc_loader *L, int64_t number) {
    for (int i = 0; i < L->n_slots; i++)
        if ((L->slots[i].state == SLOT_FILLING || L->slots[i].state == SLOT_READY) &&
            L->slots[i].number == number)
            return &L->slots[i];
    return NULL;
}

static void *worker_main(void *arg_) {
    worker_arg *arg = arg_;
    mloc_loader *L = arg->L;
    void *ws = L->ws + L->ws_bytes * (size_t)arg->id;
    pthread_mutex_lock(&L->mu);
    for (;;) {
        slot *s = NULL;
        while (!L->stop && !(L->active && L->next_claim < L->n_batches && (s = free_slot(L))))
            pthread_cond_wait(&L->work_cv, &L->mu);
        if (L->stop) break;
        int64_t number = L->next_claim++;
        s->state = SLOT_FILLING;
        s->number = number;
        uint64_t gen = L->gen;
        int64_t epoch = L->epoch;
        L->inflight++;
        pthread_mutex_unlock(&L->mu);

        fill(L, &s->batch, epoch, number, ws);

        pthread_mutex_lock(&L->mu);
        L->inflight--;
        if (gen == L->gen) {
            s->state = SLOT_READY;
        } else {
            s->state = SLOT_FREE; /* an epoch restart discarded it */
            pthread_cond_broadcast(&L->work_cv);
        }
        pthread_cond_broadcast(&L->ready_cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void stop_threads(mloc_loader *L) {
    if (!L->sync_ready) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->n_threads; i++) pthread_join(L->threads[i], NULL);
    L->n_threads = 0;
}

void mloc_loader_free(mloc_loader *L) {
    if (!L) return;
    stop_threads(L);
    if (L->sync_ready) {
        pthread_cond_destroy(&L->work_cv);
        pthread_cond_destroy(&L->ready_cv);
        pthread_mutex_destroy(&L->mu);
    }
    if (L->slots)
        for (int i = 0; i < L->n_slots; i++) {
            mloc_free(L->slots[i].batch.x);
            mloc_free(L->slots[i].batch.labels);
            mloc_free(L->slots[i].batch.indices);
        }
    mloc_free(L->slots);
    mloc_free(L->threads);
    mloc_free(L->args);
    mloc_free(L->ws);
    mloc_free(L->indices);
    mloc_free(L->order);
    mloc_free(L);
}

mloc_status mloc_loader_create(mloc_ctx *ctx, mloc_loader **out, const mloc_dataset *ds,
                               const int64_t *indices, int64_t n, const mloc_loader_config *cfg) {
    *out = NULL;
    if (cfg->batch_size < 1 || cfg->views < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "loader: batch size %d, views %d, expected >= 1",
                          cfg->batch_size, cfg->views);
    if (cfg->workers < 0 || cfg->workers > 256 || cfg->ring < 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "loader: %d workers, ring %d, expected 0..256, >= 0",
                          cfg->workers, cfg->ring);
    if (ds->c != 1 && ds->c != 3)
        return mloc_error(ctx, MLOC_ERR_USAGE, "loader: dataset %s has %d channels, expected 1 or 3",
                          ds->spec ? ds->spec : "(unnamed)", ds->c);
    if (ds->n > 0 && (!ds->pixels || ds->h < 1 || ds->w < 1))
        return mloc_error(ctx, MLOC_ERR_USAGE, "loader: dataset has no pixels");
    if (!indices) n = ds->n;
    if (n < 0) return mloc_error(ctx, MLOC_ERR_USAGE, "loader: %lld indices", (long long)n);
    if (indices)
        for (int64_t k = 0; k < n; k++)
            if (indices[k] < 0 || indices[k] >= ds->n)
                return mloc_error(ctx, MLOC_ERR_USAGE,
                                  "loader: entry %lld: index %lld, expected 0..%lld", (long long)k,
                                  (long long)indices[k], (long long)ds->n - 1);
    const char *purpose = cfg->purpose ? cfg->purpose : "aug";
    if (strlen(purpose) >= 64)
        return mloc_error(ctx, MLOC_ERR_USAGE, "loader: purpose tag '%s' longer than 63 bytes",
                          purpose);
    MLOC_TRY(mloc_aug_pipeline_check(ctx, &cfg->aug));

    mloc_status st = MLOC_ERR_NOMEM;
    mloc_loader *L = mloc_alloc(ctx, sizeof *L);
    if (!L) return MLOC_ERR_NOMEM;
    L->ctx = ctx;
    L->ds = ds;
    L->cfg = *cfg;
    snprintf(L->purpose, sizeof L->purpose, "%s", purpose);
    L->cfg.purpose = L->purpose;
    L->n = n;
    int64_t B = cfg->batch_size;
    L->n_batches = cfg->drop_last ? n / B : (n + B - 1) / B;
    L->c = ds->c;
    mloc_aug_out_size(&cfg->aug, ds->h, ds->w, &L->oh, &L->ow);
    L->view_floats = (int64_t)L->c * L->oh * L->ow;

    L->indices = mloc_alloc(ctx, sizeof(int64_t) * (size_t)(n ? n : 1));
    L->order = mloc_alloc(ctx, sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!L->indices || !L->order) goto fail;
    for (int64_t k = 0; k < n; k++) L->indices[k] = indices ? indices[k] : k;

    int W = cfg->workers;
    L->ws_bytes = (mloc_aug_workspace_bytes(ds->h, ds->w, ds->c, L->oh, L->ow) + 63) & ~(size_t)63;
    L->ws = mloc_alloc(ctx, L->ws_bytes * (size_t)(W > 0 ? W : 1));
    if (!L->ws) goto fail;

    L->n_slots = cfg->ring > 0 ? cfg->ring : W + 2;
    L->slots = mloc_alloc(ctx, sizeof(slot) * (size_t)L->n_slots);
    if (!L->slots) goto fail;
    for (int i = 0; i < L->n_slots; i++) {
        mloc_batch *b = &L->slots[i].batch;
        b->views = cfg->views;
        b->c = L->c;
        b->h = L->oh;
        b->w = L->ow;
        b->x = mloc_alloc(ctx, sizeof(float) * (size_t)(cfg->views * B * L->view_floats));
        b->labels = mloc_alloc(ctx, sizeof(int32_t) * (size_t)B);
        b->indices = mloc_alloc(ctx, sizeof(int64_t) * (size_t)B);
        if (!b->x || !b->labels || !b->indices) goto fail;
    }

    if (pthread_mutex_init(&L->mu, NULL) != 0) goto fail_sync;
    if (pthread_cond_init(&L->work_cv, NULL) != 0) {
        pthread_mutex_destroy(&L->mu);
        goto fail_sync;
    }
    if (pthread_cond_init(&L->ready_cv, NULL) != 0) {
        pthread_cond_destroy(&L->work_cv);
        pthread_mutex_destroy(&L->mu);
        goto fail_sync;
    }
    L->sync_ready = 1;

    if (W > 0) {
        L->threads = mloc_alloc(ctx, sizeof(pthread_t) * (size_t)W);
        L->args = mloc_alloc(ctx, sizeof(worker_arg) * (size_t)W);
        if (!L->threads || !L->args) goto fail;
        for (int i = 0; i < W; i++) {
            L->args[i].L = L;
            L->args[i].id = i;
            int err = pthread_create(&L->threads[i], NULL, worker_main, &L->args[i]);
            if (err != 0) {
                st = mloc_error(ctx, MLOC_ERR_INTERNAL, "loader: cannot start worker %d of %d: %s",
                                i + 1, W, strerror(err));
                goto fail;
            }
            L->n_threads++;
        }
    }
    *out = L;
    return MLOC_OK;

fail_sync:
    st = mloc_error(ctx, MLOC_ERR_INTERNAL, "loader: cannot initialise a mutex or condition");
fail:
    mloc_loader_free(L);
    return st;
}

mloc_status mloc_loader_start_epoch(mloc_loader *L, int64_t epoch, int64_t first_batch) {
    if (epoch < 0 || first_batch < 0 || first_batch > L->n_batches)
        return mloc_error(L->ctx, MLOC_ERR_USAGE,
                          "loader: start epoch %lld at batch %lld, expected epoch >= 0 and batch "
                          "0..%lld",
                          (long long)epoch, (long long)first_batch, (long long)L->n_batches);
    pthread_mutex_lock(&L->mu);
    L->active = 0;
    L->gen++;
    while (L->inflight > 0) pthread_cond_wait(&L->ready_cv, &L->mu);
    for (int i = 0; i < L->n_slots; i++)
        if (L->slots[i].state == SLOT_READY) L->slots[i].state = SLOT_FREE;
    /* this epoch's order: permutation from stream ("shuffle", epoch) */
    if (L->cfg.shuffle) {
        mloc_rng r;
        mloc_rng_init_tag(&r, L->cfg.seed, "shuffle", (uint64_t)epoch, 0, 0);
        mloc_rng_permutation(&r, L->order, L->n);
        for (int64_t k = 0; k < L->n; k++) L->order[k] = L->indices[L->order[k]];
    } else {
        memcpy(L->order, L->indices, sizeof(int64_t) * (size_t)L->n);
    }
    L->epoch = epoch;
    L->next_claim = L->next_consume = first_batch;
    L->active = 1;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    return MLOC_OK;
}

mloc_status mloc_loader_next(mloc_loader *L, mloc_batch **batch) {
    *batch = NULL;
    pthread_mutex_lock(&L->mu);
    if (!L->active) {
        pthread_mutex_unlock(&L->mu);
        return mloc_error(L->ctx, MLOC_ERR_USAGE, "loader: next batch before start_epoch");
    }
    if (L->next_consume >= L->n_batches) {
        pthread_mutex_unlock(&L->mu);
        return MLOC_OK;
    }
    int64_t number = L->next_consume;
    slot *s;
    if (L->n_threads == 0) {
        /* no workers: make it here */
        s = free_slot(L);
        if (!s) goto too_many;
        s->state = SLOT_FILLING;
        s->number = number;
        L->next_claim = number + 1;
        int64_t epoch = L->epoch;
        pthread_mutex_unlock(&L->mu);
        fill(L, &s->batch, epoch, number, L->ws);
        pthread_mutex_lock(&L->mu);
    } else {
        for (;;) {
            s = slot_of(L, number);
            if (s && s->state == SLOT_READY) break;
            /* unclaimed and nowhere to put it: every slot is held */
            if (!s && L->next_claim <= number && !free_slot(L)) goto too_many;
            pthread_cond_wait(&L->ready_cv, &L->mu);
        }
    }
    s->state = SLOT_HELD;
    L->next_consume++;
    *batch = &s->batch;
    pthread_mutex_unlock(&L->mu);
    return MLOC_OK;

too_many:
    pthread_mutex_unlock(&L->mu);
    return mloc_error(L->ctx, MLOC_ERR_USAGE,
                      "loader: batch %lld has no free slot: release batches (ring of %d)",
                      (long long)number, L->n_slots);
}

void mloc_loader_release(mloc_loader *L, mloc_batch *batch) {
    if (!batch) return;
    pthread_mutex_lock(&L->mu);
    for (int i = 0; i < L->n_slots; i++)
        if (&L->slots[i].batch == batch && L->slots[i].state == SLOT_HELD) {
            L->slots[i].state = SLOT_FREE;
            pthread_cond_broadcast(&L->work_cv);
        }
    pthread_mutex_unlock(&L->mu);
}
