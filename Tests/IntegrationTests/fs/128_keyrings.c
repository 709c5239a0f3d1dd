/* Kernel keyrings: add_key, request_key and keyctl in a fresh session
 * keyring (so the host's own keys never show natively): key types and
 * their payload rules, describe, read, update, search, link and unlink,
 * revoke, invalidate, timeouts, permissions, the special keyrings and what
 * fork inherits, a negative key left by a failed request. Serial numbers
 * differ between runs: only whether two are equal is printed. */
#include "t.h"
#include <linux/keyctl.h>

#define KEY_POS_VIEW 0x01000000
#define KEY_POS_SEARCH 0x08000000
#define KEY_USR_VIEW 0x00010000

static long add_key(const char *type, const char *desc, const void *p, size_t n, long ring) {
    return syscall(SYS_add_key, type, desc, p, n, ring);
}
static long request_key(const char *type, const char *desc, const char *callout, long ring) {
    return syscall(SYS_request_key, type, desc, callout, ring);
}
static long keyctl(long op, long a, long b, long c, long d) { return syscall(SYS_keyctl, op, a, b, c, d); }

static void describe(const char *what, long id) {
    char buf[256] = "";
    long n = keyctl(KEYCTL_DESCRIBE, id, (long)buf, sizeof buf, 0);
    if (n < 0) say("describe %s: -1 %s", what, ename(errno));
    else say("describe %s: %ld %s", what, n, buf);
}
static void readkey(const char *what, long id) {
    char buf[64] = "";
    long n = keyctl(KEYCTL_READ, id, (long)buf, sizeof buf - 4, 0);
    if (n < 0) say("read %s: -1 %s", what, ename(errno));
    else say("read %s: %ld", what, n);
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "--after-exec")) {
        T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0) == atol(argv[2]));
        T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0, 0, 0));
        T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 0, 0, 0));
        T(request_key("user", "in-thread", NULL, 0));
        T(request_key("user", "u1", NULL, 0) > 0);
        return 0;
    }
    long ses = keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0, 0, 0);
    say("joined a new session keyring: %d", ses > 0);
    T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0) == ses);
    describe("session", KEY_SPEC_SESSION_KEYRING);
    readkey("empty session", KEY_SPEC_SESSION_KEYRING);

    /* Types and payloads. */
    char big[40000];
    memset(big, 'b', sizeof big);
    T(add_key("user", "u1", "hello", 5, KEY_SPEC_SESSION_KEYRING) > 0);
    T(add_key("user", "u0", "", 0, KEY_SPEC_SESSION_KEYRING));
    T(add_key("user", "ubig", big, 32768, KEY_SPEC_SESSION_KEYRING));
    T(add_key("user", NULL, "x", 1, KEY_SPEC_SESSION_KEYRING));
    T(add_key("logon", "nocolon", "x", 1, KEY_SPEC_SESSION_KEYRING));
    T(add_key("logon", "svc:name", "secret", 6, KEY_SPEC_SESSION_KEYRING) > 0);
    T(add_key("keyring", "kr", "x", 1, KEY_SPEC_SESSION_KEYRING));
    T(add_key("keyring", ".dot", NULL, 0, KEY_SPEC_SESSION_KEYRING));
    T(add_key(".internal", "d", "x", 1, KEY_SPEC_SESSION_KEYRING));
    T(add_key("no_such_type", "d", "x", 1, KEY_SPEC_SESSION_KEYRING));
    T(add_key("no_such_type", "d", NULL, 1, KEY_SPEC_SESSION_KEYRING));
    T(add_key("user", "d", "x", 1, KEY_SPEC_GROUP_KEYRING));
    T(add_key("user", "d", "x", 1, 12345));
    T(add_key("user", "d", "x", (size_t)-1, KEY_SPEC_SESSION_KEYRING));           /* sizes past any int */
    T(keyctl(KEYCTL_UPDATE, KEY_SPEC_SESSION_KEYRING, (long)"x", -1L, 0));
    char huge[512];
    T(keyctl(KEYCTL_DESCRIBE, KEY_SPEC_SESSION_KEYRING, (long)huge, -1L, 0) > 0);
    T(keyctl(KEYCTL_GET_SECURITY, KEY_SPEC_SESSION_KEYRING, (long)huge, -1L, 0));

    long u1 = request_key("user", "u1", NULL, 0);
    long logon = request_key("logon", "svc:name", NULL, 0);
    describe("u1", u1);
    describe("logon", logon);
    readkey("u1", u1);
    readkey("logon", logon);
    char rb[8] = "";
    T(keyctl(KEYCTL_READ, u1, (long)rb, 3, 0));
    say("short read got: %.3s", rb);
    T(keyctl(KEYCTL_READ, KEY_SPEC_SESSION_KEYRING, (long)rb, 3, 0));

    /* Same type and description: updated in place. */
    T(add_key("user", "u1", "updated!", 8, KEY_SPEC_SESSION_KEYRING) == u1);
    readkey("u1 after add", u1);
    T(keyctl(KEYCTL_UPDATE, u1, (long)"again", 5, 0));
    readkey("u1 after update", u1);
    T(keyctl(KEYCTL_UPDATE, KEY_SPEC_SESSION_KEYRING, (long)"x", 1, 0));

    /* Keyrings inside keyrings, search, link, unlink. */
    long kr = add_key("keyring", "inner", NULL, 0, KEY_SPEC_SESSION_KEYRING);
    long deep = add_key("user", "deep", "d", 1, kr);
    T(keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)"deep", 0) == deep);
    T(keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)"nothere", 0));
    T(request_key("user", "deep", NULL, 0) == deep);
    T(keyctl(KEYCTL_LINK, u1, kr, 0, 0));
    T(keyctl(KEYCTL_READ, kr, 0, 0, 0));
    T(keyctl(KEYCTL_LINK, KEY_SPEC_SESSION_KEYRING, kr, 0, 0));
    T(keyctl(KEYCTL_LINK, kr, u1, 0, 0));
    T(keyctl(KEYCTL_UNLINK, u1, kr, 0, 0));
    T(keyctl(KEYCTL_UNLINK, u1, kr, 0, 0));
    T(keyctl(KEYCTL_READ, kr, 0, 0, 0));

    /* Permissions: a key without the possessor's read... is still read
     * when possessed; setperm with unknown bits is refused. */
    T(keyctl(KEYCTL_SETPERM, deep, KEY_POS_VIEW | KEY_POS_SEARCH | KEY_USR_VIEW, 0, 0));
    describe("deep", deep);
    readkey("deep without read", deep);
    T(keyctl(KEYCTL_UPDATE, deep, (long)"x", 1, 0));
    T(keyctl(KEYCTL_SETPERM, deep, 0x40000000, 0, 0));
    T(keyctl(KEYCTL_SET_TIMEOUT, deep, 0, 0, 0));

    /* Revoke, invalidate, expiry. */
    long r = add_key("user", "torevoke", "r", 1, KEY_SPEC_SESSION_KEYRING);
    T(keyctl(KEYCTL_REVOKE, r, 0, 0, 0));
    readkey("revoked", r);
    T(request_key("user", "torevoke", NULL, 0));
    T(keyctl(KEYCTL_UPDATE, r, (long)"x", 1, 0));
    long inv = add_key("user", "toinvalidate", "i", 1, KEY_SPEC_SESSION_KEYRING);
    T(keyctl(KEYCTL_INVALIDATE, inv, 0, 0, 0));
    /* What a search finds next depends on when Linux's key collector runs
     * (EKEYREVOKED before, ENOKEY after): not compared. */
    long ex = add_key("user", "expiring", "e", 1, KEY_SPEC_SESSION_KEYRING);
    T(keyctl(KEYCTL_SET_TIMEOUT, ex, 1, 0, 0));
    sleep(2);
    readkey("expired", ex);
    T(request_key("user", "expiring", NULL, 0));

    /* Special keyrings: the thread and process keyrings are made on
     * demand; a child shares the session keyring, not the thread keyring. */
    T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0, 0, 0));
    long tk = keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 1, 0, 0);
    T(tk > 0);
    T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0, 0, 0) == tk);
    describe("thread", KEY_SPEC_THREAD_KEYRING);
    T(add_key("user", "in-thread", "t", 1, KEY_SPEC_THREAD_KEYRING) > 0);
    T(add_key("user", "in-process", "p", 1, KEY_SPEC_PROCESS_KEYRING) > 0);
    describe("process", KEY_SPEC_PROCESS_KEYRING);
    T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_GROUP_KEYRING, 1, 0, 0));
    T(keyctl(KEYCTL_GET_KEYRING_ID, -99, 1, 0, 0));
    T(keyctl(KEYCTL_GET_KEYRING_ID, 0x7ffffff0, 0, 0, 0));
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0, 0, 0) == ses);
        T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_THREAD_KEYRING, 0, 0, 0));
        T(keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 0, 0, 0));
        T(request_key("user", "u1", NULL, 0) == u1);
        T(request_key("user", "in-thread", NULL, 0));
        T(request_key("user", "in-process", NULL, 0));
        _exit(0);
    }
    waitpid(p, NULL, 0);
    /* execve keeps the session keyring, drops the thread and process ones. */
    fflush(stdout);
    p = fork();
    if (p == 0) {
        T(add_key("user", "in-thread", "t", 1, KEY_SPEC_THREAD_KEYRING) > 0);
        T(add_key("user", "in-process", "p", 1, KEY_SPEC_PROCESS_KEYRING) > 0);
        char s[32];
        snprintf(s, sizeof s, "%ld", ses);
        execl("/proc/self/exe", "prog", "--after-exec", s, (char *)NULL);
        _exit(9);
    }
    waitpid(p, NULL, 0);

    /* A request with a callout nothing serves fails and leaves a negative
     * key in the destination keyring. */
    T(request_key("user", "negative", "callout", KEY_SPEC_SESSION_KEYRING));
    T(request_key("user", "negative", NULL, 0));
    long neg = keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, (long)"user", (long)"negative", 0);
    say("search for the negative key: %ld %s", neg, neg < 0 ? ename(errno) : "");

    /* Clearing a keyring; bad commands. */
    T(keyctl(KEYCTL_CLEAR, kr, 0, 0, 0));
    T(keyctl(KEYCTL_READ, kr, 0, 0, 0));
    T(keyctl(KEYCTL_CLEAR, u1, 0, 0, 0));
    T(keyctl(9999, 0, 0, 0, 0));
    T(keyctl(KEYCTL_JOIN_SESSION_KEYRING, (long)".builtin_trusted_keys", 0, 0, 0));
    long named = keyctl(KEYCTL_JOIN_SESSION_KEYRING, (long)"moat-named", 0, 0, 0);
    describe("named session", named);
    T(keyctl(KEYCTL_JOIN_SESSION_KEYRING, (long)"moat-named", 0, 0, 0) == named);
    return 0;
}
