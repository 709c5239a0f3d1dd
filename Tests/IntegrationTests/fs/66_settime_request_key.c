/* Setting the clock and requesting a key, as a caller without CAP_SYS_TIME
 * (a child that became nobody; root natively would set the host's clock):
 * settimeofday and clock_settime check the address, the time and the clock
 * before the permission (EFAULT, EINVAL), then refuse (EPERM), as LTP
 * stime02 and settimeofday02 expect. request_key checks its strings (an
 * empty or overlong type EINVAL, an internal '.' type EPERM, bad addresses
 * EFAULT) and then finds no key (ENOKEY): nothing here has added one, and
 * a type the kernel does not know (LTP request_key05's "dead") is ENOKEY
 * too. */
#include "t.h"
#include <sys/time.h>
#include <time.h>

static void unprivileged(void) {
    if (setgid(65534) || setuid(65534)) { say("setuid nobody failed"); return; }
    struct timeval tv = {100, 0}, bad_usec = {100, 1000000}, neg = {-1, 0};
    struct timezone tz = {0, 0};
    T(syscall(SYS_settimeofday, &tv, NULL));
    T(syscall(SYS_settimeofday, &bad_usec, NULL));
    T(syscall(SYS_settimeofday, &neg, NULL));
    T(syscall(SYS_settimeofday, (void *)8, NULL));
    T(syscall(SYS_settimeofday, &tv, (void *)8));
    T(syscall(SYS_settimeofday, NULL, &tz));
    T(syscall(SYS_settimeofday, NULL, NULL));
    struct timespec ts = {100, 0}, bad_ns = {100, 1000000000};
    T(syscall(SYS_clock_settime, CLOCK_REALTIME, &ts));
    T(syscall(SYS_clock_settime, CLOCK_REALTIME, &bad_ns));
    T(syscall(SYS_clock_settime, CLOCK_REALTIME, (void *)8));
    T(syscall(SYS_clock_settime, CLOCK_MONOTONIC, &ts));
    T(syscall(SYS_clock_settime, CLOCK_BOOTTIME, &ts));
    T(syscall(SYS_clock_settime, CLOCK_PROCESS_CPUTIME_ID, &ts));
    T(syscall(SYS_clock_settime, CLOCK_THREAD_CPUTIME_ID, &ts));
    T(syscall(SYS_clock_settime, 10, &ts));
    T(syscall(SYS_clock_settime, 100, &ts));
}

int main(void) {
    in_child("unprivileged", unprivileged);
    char longtype[64];
    memset(longtype, 'a', sizeof longtype - 1);
    longtype[63] = 0;
    T(syscall(SYS_request_key, "dead", "abc", "abc", 0));
    T(syscall(SYS_request_key, "user", "moat:no-such-key", NULL, 0));
    T(syscall(SYS_request_key, "keyring", "moat:no-such-ring", NULL, 0));
    T(syscall(SYS_request_key, "no-such-type", "x", NULL, 0));
    T(syscall(SYS_request_key, ".dead", "x", NULL, 0));
    T(syscall(SYS_request_key, "", "x", NULL, 0));
    T(syscall(SYS_request_key, longtype, "x", NULL, 0));
    T(syscall(SYS_request_key, (void *)8, "x", NULL, 0));
    T(syscall(SYS_request_key, "user", (void *)8, NULL, 0));
    T(syscall(SYS_request_key, "user", "x", (void *)8, 0));
    return 0;
}
