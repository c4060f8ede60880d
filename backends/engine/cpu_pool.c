/*
 * cpu_pool.c - the CPU device's thread pool (cpu_ops.h).
 *
 * A decode step is about 80 short parallel phases (a GEMM, a norm, the
 * attention of each layer), each a few hundred microseconds.  Waking a
 * sleeping thread through a condition variable costs tens of microseconds
 * in a virtual machine, so both sides spin for a while before they sleep:
 * a worker waiting for the next phase, and the caller waiting for the
 * workers to finish this one.  Past SPIN_ROUNDS they block, so an idle
 * engine does not burn its cores.
 */
#include "cpu_ops.h"
#include "cpu_simd.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* A waiting thread checks SPIN_ROUNDS times before it sleeps: the first
 * PAUSE_ROUNDS after a pause instruction (tens of nanoseconds), the rest
 * after yielding its core, so that with more threads than cores (tests
 * running side by side) the spinning does not keep a thread with work off
 * the core.  All told about 100 microseconds, longer than the gap between
 * two phases of a forward pass. */
#define SPIN_ROUNDS 1000
#define PAUSE_ROUNDS 200

struct ssf_cpu_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu; /* guards the sleeps on start and done */
    pthread_cond_t start, done;
    atomic_ulong generation; /* one more for each run */
    atomic_int stop;
    atomic_int busy; /* workers not yet finished with this generation */
    ssf_cpu_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next;
};

typedef struct {
    ssf_cpu_pool *p;
    int worker;
} worker_arg;

static void relax(int round)
{
    if (round >= PAUSE_ROUNDS) {
        sched_yield();
        return;
    }
#ifdef SSF_CPU_X86
    _mm_pause();
#endif
}

static void run_tasks(ssf_cpu_pool *p, int worker)
{
    int t;
    while ((t = atomic_fetch_add(&p->next, 1)) < p->n_tasks)
        p->fn(p->ctx, t, worker);
}

/* Waits for a generation other than seen (or the stop), spinning first. */
static void wait_for_run(ssf_cpu_pool *p, unsigned long seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load(&p->generation) != seen || atomic_load(&p->stop)) return;
        relax(i);
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->start, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg)
{
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    ssf_cpu_pool *p = a.p;
    unsigned long seen = 0;
    for (;;) {
        wait_for_run(p, seen);
        if (atomic_load(&p->stop)) break;
        seen = atomic_load(&p->generation);
        run_tasks(p, a.worker);
        /* the last one out wakes the caller, under the lock it checks in */
        if (atomic_fetch_sub(&p->busy, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

ssf_cpu_pool *ssf_cpu_pool_new(int n_threads)
{
    ssf_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    p->threads = calloc((size_t)p->n_threads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 1; i < p->n_threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) *a = (worker_arg){p, i};
        if (!a || pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
            free(a);
            p->n_threads = i; /* join the ones started */
            ssf_cpu_pool_free(p);
            return NULL;
        }
    }
    return p;
}

int ssf_cpu_pool_threads(const ssf_cpu_pool *p)
{
    return p->n_threads;
}

void ssf_cpu_pool_run(ssf_cpu_pool *p, int n_tasks, ssf_cpu_task_fn fn, void *ctx)
{
    if (p->n_threads == 1 || n_tasks <= 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->busy, p->n_threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->generation, 1); /* publishes the fields above */
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    for (int i = 0; i < SPIN_ROUNDS && atomic_load(&p->busy) > 0; i++)
        relax(i);
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->busy) > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void ssf_cpu_pool_free(ssf_cpu_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->threads);
    free(p);
}
