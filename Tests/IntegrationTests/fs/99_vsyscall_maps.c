/* The legacy vsyscall page in /proc/self/maps and smaps, as Linux's
 * default "xonly" mode shows it (gVisor's time tests look for the line
 * before they call into the page): its range and permissions, and that a
 * call into it works (time). Moat emulates the page under ptrace only
 * (Syscalls/Time.swift): the KVM row leaves this program out. */
#include "t.h"
#include <time.h>

static void find(const char *file) {
    FILE *f = fopen(file, "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (!strstr(line, "[vsyscall]")) continue;
        char range[64], perms[8];
        sscanf(line, "%63s %7s", range, perms);
        say("%s: %s %s", file, range, perms);
        found = 1;
    }
    if (!found) say("%s: no [vsyscall] line", file);
    if (f) fclose(f);
}

int main(void) {
    find("/proc/self/maps");
    find("/proc/self/smaps");
    time_t (*vtime)(time_t *) = (time_t (*)(time_t *))0xffffffffff600400UL;
    time_t a = vtime(NULL), b = time(NULL);
    say("vsyscall time within a second of time(): %s", b - a <= 1 && b >= a ? "yes" : "no");
    return 0;
}
