// The time this process began running its own code, for the start-up
// profile (Sources/Sentry/StartupProfile.swift): a constructor runs right
// after the dynamic loader has finished, before the Swift runtime starts
// main, so "spawned -> constructor" is the exec and dynamic-loading cost and
// "constructor -> main" the runtime's own start.
#define _GNU_SOURCE
#include "cmoat.h"
#include <time.h>

static uint64_t process_start_ns;

uint64_t moat_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((constructor(101))) static void record_process_start(void) {
    process_start_ns = moat_monotonic_ns();
}

uint64_t moat_process_start_ns(void) { return process_start_ns; }
