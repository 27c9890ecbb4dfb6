/* CRingShims — the C that Swift can't express: the child side of clone→exec, and a few
 * syscalls/macros (clone3, pidfd_*, close_range, CMSG_*) that Swift cannot call directly.
 * Everything here is prefixed ring_ and is Linux-only. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
/* Not in Swift's Glibc module; the runtime needs them for cgroups (Cgroups.swift). */
#include <sys/epoll.h>
#include <sys/xattr.h>

#include <malloc.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Big buffers (a 1 MiB D-Bus argument, its 1 MiB error reply) straight from mmap and back to
 * the kernel when freed: left alone, glibc raises its mmap threshold after the first such
 * buffer is freed and keeps every later one on the heap, where it stays resident. */
static inline void ring_malloc_return_big_buffers(void) {
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

/* A process to start. Every pointer must stay valid for the duration of ring_spawn(). */
struct ring_spawn_request {
    /* argv[0] to exec; searched in search_path if it has no '/'. */
    const char *file;
    /* NULL-terminated. */
    char *const *argv;
    /* NULL-terminated, the complete environment of the child. Neither the array nor its
     * strings are written to: the child fills in the two entries below in its own copy. */
    char *const *envp;
    /* Index in envp of an entry "LISTEN_PID=" (the rest is ignored), or -1: the child puts
     * "LISTEN_PID=<its own getpid()>" in its place before exec. */
    int listen_pid_index;
    /* Index in envp of an entry "JOURNAL_STREAM=" (the rest is ignored), or -1. When the
     * child's stderr (else stdout) is a journal stream, the child puts
     * "JOURNAL_STREAM=<dev>:<ino>" in its place; otherwise it drops the entry. */
    int journal_stream_index;
    /* Index in envp of an entry "WATCHDOG_PID=" (the rest is ignored), or -1 — set it
     * explicitly: a zeroed request means index 0. The child puts "WATCHDOG_PID=<its own
     * getpid()>" in its place before exec, as systemd does for a service's main process
     * (so sd_watchdog_enabled() in it is true). */
    int watchdog_pid_index;
    /* PATH for the lookup of file; NULL => "/usr/local/bin:/usr/bin:/bin". */
    const char *search_path;
    /* chdir target, or NULL to stay in the daemon's working directory. */
    const char *cwd;
    /* Become 0, 1, 2. -1 means /dev/null (opened by the child). */
    int stdin_fd, stdout_fd, stderr_fd;
    /* Become 3, 4, ... in order (LISTEN_FDS). */
    const int *extra_fds;
    int n_extra_fds;
    /* If non-NULL, the child connects to journald's stdout stream socket itself, twice:
     * stdout at priority 6 (info) and stderr at priority 3 (err), identifier as given,
     * level prefixes honoured — so journald records the child's own _PID. If a connect
     * fails, that stream falls back to stdout_fd / stderr_fd. */
    const char *journal_identifier;
    /* The stream socket; NULL => "/run/systemd/journal/stdout" (tests point it elsewhere). */
    const char *journal_socket;
    /* Times a connect that finds journald's backlog full is retried, 20 ms apart. 0 for the
     * daemon: under CLONE_VFORK it waits for the child, so a stuck journald must cost it
     * nothing (tests use retries to hold a child before exec). */
    int journal_connect_retries;
    /* A cgroup v2 directory (an O_DIRECTORY or O_PATH fd) the child starts in, or -1 to stay
     * in the daemon's cgroup. Set it explicitly: a zeroed request means fd 0. The child is
     * born there (clone3 CLONE_INTO_CGROUP, kernel >= 5.7); where clone3 refuses that (older
     * kernels: EINVAL/E2BIG; no clone3 at all: the fork fallback), the child moves itself by
     * writing "0" to the directory's cgroup.procs before anything else, and failing that
     * reports stage "cgroup": a process outside its cgroup would escape cgroup.kill. */
    int cgroup_fd;
    /* > 0: the child's soft RLIMIT_NOFILE (the daemon raises its own to the hard limit to
     * hold thousands of instances' fds; children get the usual soft limit back, since
     * select()-based programs break on fds >= 1024). 0: inherit the daemon's. */
    unsigned long nofile_soft;
};

/* Starts req->file. Returns 0 and fills *pid and *pidfd (CLOEXEC) once the exec succeeded.
 * Returns -1 with *err_errno and *err_stage (a static string: "exec", "chdir", "setsid",
 * "dup2", "listen_pid", "cgroup" from the child; "clone", "pipe", "pidfd_open" from the
 * parent) when the child failed before or at exec; that child has been reaped already.
 * (Journal connection failures are not errors: the stream falls back.) The calling thread
 * waits until the child has exec'd or failed. Thread-safe; does not touch the parent's
 * signal handlers or mask (all signals are blocked in the calling thread while it clones).
 * How (spawn.c): clone3(CLONE_VM|CLONE_VFORK|CLONE_PIDFD[|CLONE_INTO_CGROUP]) on x86_64;
 * elsewhere, or where the kernel refuses that, the fallbacks below. */
int ring_spawn(const struct ring_spawn_request *req, pid_t *pid, int *pidfd,
               int *err_errno, const char **err_stage);

/* For tests: 0 makes ring_spawn skip CLONE_VM|CLONE_VFORK and use its first fallback, a
 * copy-on-write clone3(CLONE_PIDFD) that reports over a CLOEXEC pipe — the path taken on
 * other architectures than x86_64 and where the kernel refuses clone3 with CLONE_VM.
 * Not thread-safe. */
void ring_spawn_use_clone_vm(int enabled);

/* For tests: 0 makes ring_spawn use its last fallback (fork + pidfd_open) instead of any
 * clone3, as on kernels before 5.3 or under seccomp filters that refuse clone3. Not
 * thread-safe. */
void ring_spawn_use_clone3(int enabled);

/* pidfd_open(2); returns the fd or -1 with errno. */
int ring_pidfd_open(pid_t pid);

/* pidfd_send_signal(2) without siginfo; returns 0 or -1 with errno. */
int ring_pidfd_send_signal(int pidfd, int signo);

/* close_range(2), falling back to a close() loop (up to RLIMIT_NOFILE) on old kernels. */
int ring_close_range(unsigned int first, unsigned int last, unsigned int flags);

/* One datagram from an sd_notify-style socket, with the sender's credentials.
 * Returns the number of bytes stored in buf (the message is truncated to len and
 * NUL-terminated inside buf, so buf must have len+1 bytes), or -1 with errno (EAGAIN
 * when nothing is pending). Uses MSG_DONTWAIT|MSG_CMSG_CLOEXEC; any fds passed along
 * (SCM_RIGHTS) are closed. *pid and *uid are 0 and -1 when the sender passed no credentials. */
ssize_t ring_recv_notify(int fd, char *buf, size_t len, pid_t *pid, uid_t *uid);

#ifdef __cplusplus
}
#endif
