/* mount -t mqueue (session 16, issue 15; gVisor's MqueueTest Mount,
 * MountSeveral, OpenAsFile, UnlinkAsFile): the IPC namespace's queues show
 * in every mqueue mount: ls lists what mq_open made, stat gives the queue's
 * mode and Linux's size 80, read of an open()ed queue gives its QSIZE line,
 * unlink of the name removes the queue as mq_unlink does, no directory can
 * be made there. Natively the program runs in an IPC namespace of its own
 * (unshare -i), as Moat's sandbox has one: both start with no queues. */
#include "t.h"
#include <mqueue.h>
#include <sys/statfs.h>

int main(void) {
    T(mount("none", "nowhere", "mqueue", 0, NULL));
    T(mkdir("mq", 0755));
    T(mkdir("mq2", 0755));
    T(mount("none", "mq", "nosuchfs", 0, NULL));
    T(mount("none", "mq", "mqueue", 0, NULL));
    T(mount("none", "mq2", "mqueue", 0, NULL));
    ls("mq");
    struct mq_attr a = { .mq_maxmsg = 4, .mq_msgsize = 16 };
    mqd_t q1 = T(mq_open("/q1", O_CREAT | O_RDWR, 0640, &a));
    mqd_t q2 = T(mq_open("/q2", O_CREAT | O_RDWR, 0600, &a));
    ls("mq");
    ls("mq2");
    stat_path("mq/q1");
    stat_path("mq2/q2");
    stat_path("mq/none");
    T(mq_send(q1, "hello", 5, 1));
    cat("mq/q1");
    struct statfs sf;
    T(statfs("mq", &sf));
    say("statfs: mqueue magic %d", sf.f_type == 0x19800202);
    T(mkdir("mq/sub", 0755));
    T(rmdir("mq/q1"));
    T(unlink("mq/q2"));
    T(mq_open("/q2", O_RDWR));
    ls("mq2");
    T(mq_send(q2, "still", 5, 0));                   /* an unlinked queue lives while open */
    T(mq_unlink("/q1"));
    ls("mq");
    T(mq_close(q1));
    T(mq_close(q2));
    T(umount("mq"));
    T(umount("mq2"));
    ls("mq");
    T(rmdir("mq"));
    T(rmdir("mq2"));
    return 0;
}
