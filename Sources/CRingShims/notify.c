/* Receiving sd_notify datagrams. In C because the control-message walk (CMSG_FIRSTHDR,
 * CMSG_NXTHDR, CMSG_DATA) consists of macros Swift does not import. */
#define _GNU_SOURCE
#include "ringshims.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t ring_recv_notify(int fd, char *buf, size_t len, pid_t *pid, uid_t *uid) {
    /* Room for credentials plus a generous number of passed fds (which we only close). */
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * 64)];
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = &control,
        .msg_controllen = sizeof control,
    };

    *pid = 0;
    *uid = (uid_t)-1;

    ssize_t n;
    do {
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET) continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            *pid = cred.pid;
            *uid = cred.uid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            /* FDSTORE=1 and friends are not supported for children: drop the fds. */
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int passed;
                memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
                (void)close(passed);
            }
        }
    }

    /* MSG_TRUNC makes n the datagram's real length; keep what fitted. */
    size_t kept = (size_t)n < len ? (size_t)n : len;
    buf[kept] = '\0';
    return (ssize_t)kept;
}
