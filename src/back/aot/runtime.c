/* The runtime of objects built by `netc build`: a second core for the generated code.
 *
 * `NETC_PAIR(job, ctx)` runs job(ctx, 0) on the calling thread and job(ctx, 1) on a helper
 * thread, and returns when both have finished. The generated `NAME_predict` calls it to split
 * a large product or convolution by output columns (small batches) or a batch by rows; the two
 * parts write different outputs with the same arithmetic, so the results never depend on which
 * thread ran a part. When the helper cannot be had (the system refuses a thread, or another
 * thread's call is using it) the caller runs both parts itself, one after the other.
 *
 * Why a helper kept hot rather than a thread per call or a pool: at batch 1 a part lasts a few
 * microseconds, and waking a sleeping thread costs about as much (measured in the JIT,
 * `back/jit/pair.rs`, whose design this is). The helper spins for SPIN_NS after each job, then
 * sleeps on a condition variable until the next one.
 *
 * netc compiles this file with `cc -O2 -fPIC -DNETC_PAIR=NAME_netc_pair -DNETC_HELPER_STACK=N`
 * and merges it into NAME.o (`cc -r`), so NAME.o needs the system's threads (-lpthread) and
 * nothing else. Every name but NETC_PAIR is static: two models can be linked into one program. */

#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#ifndef NETC_PAIR
#error "netc defines NETC_PAIR"
#endif
#ifndef NETC_HELPER_STACK
#error "netc defines NETC_HELPER_STACK"
#endif

typedef void (*netc_job)(void *ctx, int64_t part);

/* How long the helper spins for the next job before it sleeps. */
#define SPIN_NS 300000

/* The helper's state. `posted` and `done` count jobs: the caller writes `job` and `ctx`, then
 * increments `posted` (release); the helper reads them after it sees the increment (acquire)
 * and sets `done` to that count when the part is finished (release). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    netc_job job;
    void *ctx;
    uint64_t posted, done;
    int sleeping;
    /* 0: not started, 1: running, 2: the system refused a thread. */
    int state;
    /* 1 while a caller owns the helper. */
    int busy;
} helper = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0};

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *helper_main(void *unused) {
    (void)unused;
    uint64_t seen = 0;
    for (;;) {
        uint64_t idle_since = now_ns();
        unsigned spins = 0;
        while (__atomic_load_n(&helper.posted, __ATOMIC_ACQUIRE) == seen) {
            spins++;
            if (spins % 2048 == 0) sched_yield(); /* should the OS put both threads on one core */
            if (spins % 256 == 0 && now_ns() - idle_since > SPIN_NS) {
                pthread_mutex_lock(&helper.lock);
                __atomic_store_n(&helper.sleeping, 1, __ATOMIC_SEQ_CST);
                while (__atomic_load_n(&helper.posted, __ATOMIC_SEQ_CST) == seen)
                    pthread_cond_wait(&helper.wake, &helper.lock);
                __atomic_store_n(&helper.sleeping, 0, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&helper.lock);
                idle_since = now_ns();
            } else {
                relax();
            }
        }
        seen = __atomic_load_n(&helper.posted, __ATOMIC_ACQUIRE);
        helper.job(helper.ctx, 1);
        __atomic_store_n(&helper.done, seen, __ATOMIC_RELEASE);
    }
    return 0;
}

/* After fork() the child has no helper: it starts its own when it first needs one. */
static void forget_helper(void) {
    pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_wake = PTHREAD_COND_INITIALIZER;
    pthread_mutex_t fresh_start = PTHREAD_MUTEX_INITIALIZER;
    helper.lock = fresh_lock;
    helper.wake = fresh_wake;
    start_lock = fresh_start;
    helper.posted = helper.done = 0;
    helper.sleeping = 0;
    helper.busy = 0;
    helper.state = 0;
}

/* Starts the helper (once); 1 when it runs. Signals stay with the program's own threads. */
static int helper_running(void) {
    int state = __atomic_load_n(&helper.state, __ATOMIC_ACQUIRE);
    if (state != 0) return state == 1;
    pthread_mutex_lock(&start_lock);
    state = helper.state;
    if (state == 0) {
        pthread_attr_t attr;
        pthread_t thread;
        sigset_t all, old;
        state = 2;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&attr, NETC_HELPER_STACK);
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            if (pthread_create(&thread, &attr, helper_main, 0) == 0) state = 1;
            pthread_sigmask(SIG_SETMASK, &old, 0);
            pthread_attr_destroy(&attr);
        }
        if (state == 1) pthread_atfork(0, 0, forget_helper);
        __atomic_store_n(&helper.state, state, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&start_lock);
    return state == 1;
}

__attribute__((visibility("hidden"))) void NETC_PAIR(netc_job job, void *ctx) {
    int expected = 0;
    if (!__atomic_compare_exchange_n(&helper.busy, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        job(ctx, 0);
        job(ctx, 1);
        return;
    }
    if (!helper_running()) {
        __atomic_store_n(&helper.busy, 0, __ATOMIC_RELEASE);
        job(ctx, 0);
        job(ctx, 1);
        return;
    }
    helper.job = job;
    helper.ctx = ctx;
    uint64_t number = __atomic_add_fetch(&helper.posted, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&helper.sleeping, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&helper.lock);
        pthread_cond_signal(&helper.wake);
        pthread_mutex_unlock(&helper.lock);
    }
    job(ctx, 0);
    unsigned spins = 0;
    while (__atomic_load_n(&helper.done, __ATOMIC_ACQUIRE) < number) {
        if (++spins % 256 == 0) sched_yield(); /* the helper may have been descheduled */
        else relax();
    }
    __atomic_store_n(&helper.busy, 0, __ATOMIC_RELEASE);
}
