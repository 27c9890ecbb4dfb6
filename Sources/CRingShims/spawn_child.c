/* The child side of spawning: (cgroup, signals, session, journal streams, fd map, cwd,
 * LISTEN_PID, fd limit, mask) → execve.
 *
 * Why C: between clone and exec the child runs either in the daemon's own memory
 * (CLONE_VM|CLONE_VFORK, the usual path: see spawn.c) or in a copy of a possibly
 * multi-threaded Swift process whose allocator and runtime locks may be held by threads that
 * do not exist in the child. Either way only async-signal-safe calls are allowed: no malloc,
 * no Swift, no stdio. Everything the child needs is prepared by the parent beforehand; the
 * child keeps its own data on its own stack and writes nothing else of the parent's memory
 * but the report slot. It uses raw syscalls where glibc's wrappers are cancellation points
 * (those touch the calling thread's cancellation state, which with CLONE_VM is the parent
 * thread's). errno is shared with the parent thread under CLONE_VM; the parent, suspended
 * meanwhile, does not read it afterwards. */
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SEARCH_PATH "/usr/local/bin:/usr/bin:/bin"
#define DEFAULT_JOURNAL_SOCKET "/run/systemd/journal/stdout"
/* As sd_journal_stream_fd: a large send buffer so a chatty child rarely blocks on journald. */
#define JOURNAL_SNDBUF_SIZE (8 * 1024 * 1024)
/* Between retries of a connect that found journald's backlog full (req->journal_connect_
 * retries, 0 for the daemon: under CLONE_VFORK it is suspended until this child execs, so
 * any wait here is the daemon's; journald's backlog is full only when journald is stuck). */
#define JOURNAL_CONNECT_PAUSE_NS (20 * 1000 * 1000)

/* ---- raw syscalls for glibc's cancellation points ---- */

static int sys_openat(int dirfd, const char *path, int flags) {
    return (int)syscall(SYS_openat, dirfd, path, flags, 0);
}

static int sys_close(int fd) {
    return (int)syscall(SYS_close, fd);
}

static ssize_t sys_write(int fd, const void *buf, size_t len) {
    return (ssize_t)syscall(SYS_write, fd, buf, len);
}

/* send(2) with MSG_NOSIGNAL: a peer that closed (journald refusing a stream over its limit
 * of 4096) gives EPIPE, not a SIGPIPE that would kill the child before its exec. */
static ssize_t sys_send_nosignal(int fd, const void *buf, size_t len) {
    return (ssize_t)syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}

static int sys_connect(int fd, const struct sockaddr *sa, socklen_t len) {
    return (int)syscall(SYS_connect, fd, sa, len);
}

static void sys_pause_ns(long ns) {
    struct timespec pause = { .tv_sec = 0, .tv_nsec = ns };
    (void)syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &pause, NULL);
}

/* ---- async-signal-safe helpers ---- */

static size_t ring_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static int has_prefix(const char *s, const char *prefix) {
    while (*prefix)
        if (*s++ != *prefix++) return 0;
    return 1;
}

/* Decimal digits of v at p; returns the number written (no NUL). */
static size_t format_u64(char *p, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t k = sys_write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

/* The child's own state: a copy of the context on its stack (with CLONE_VM the context is
 * in the parent's memory, where the child must not write). */
struct child {
    volatile struct ring_child_report *report;
    int report_fd;
};

static _Noreturn void child_fail(const struct child *c, int stage) {
    if (c->report) {
        c->report->err = errno;
        c->report->stage = stage;
    } else if (c->report_fd >= 0) {
        struct ring_child_report r = { .err = errno, .stage = stage };
        (void)write_all(c->report_fd, &r, sizeof r);
    }
    _exit(127);
}

/* Connect to journald's stdout stream the way sd_journal_stream_fd() does, but with raw
 * syscalls only: the stream then belongs to this process, and journald attributes the
 * lines to the child's own _PID. Returns the fd or -1. */
static int journal_stream_connect(const char *socket_path, const char *identifier, int priority, int retries) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t plen = ring_strlen(socket_path);
    if (plen >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, socket_path, plen);

    /* Non-blocking connect: with journald stuck and its backlog full, a blocking connect
     * would hang this child and, since the parent waits for the exec, the daemon's loop. A
     * unix socket reports a full backlog as EAGAIN: retry `retries` times, then fall back. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    for (int attempt = 0;; attempt++) {
        if (sys_connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen)) == 0)
            break;
        if (errno == EINTR) continue;
        if (errno != EAGAIN || attempt >= retries) goto fail;
        sys_pause_ns(JOURNAL_CONNECT_PAUSE_NS);
    }
    /* The program writes to a blocking stdout, like everywhere else. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) goto fail;
    if (shutdown(fd, SHUT_RD) < 0) goto fail;
    int sndbuf = JOURNAL_SNDBUF_SIZE;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

    /* identifier \n unit-id(empty) \n priority \n level_prefix \n syslog \n kmsg \n console \n */
    char header[256 + 1 + 1 + 2 * 5];
    size_t ilen = ring_strlen(identifier);
    if (ilen > 256) ilen = 256;
    size_t l = 0;
    memcpy(header, identifier, ilen);
    l += ilen;
    header[l++] = '\n';
    header[l++] = '\n';
    header[l++] = (char)('0' + priority);
    header[l++] = '\n';
    header[l++] = '1'; /* level_prefix: "<3>…" lines set their own priority */
    header[l++] = '\n';
    header[l++] = '0'; /* forward_to_syslog */
    header[l++] = '\n';
    header[l++] = '0'; /* forward_to_kmsg */
    header[l++] = '\n';
    header[l++] = '0'; /* forward_to_console */
    header[l++] = '\n';
    for (size_t sent = 0; sent < l;) {
        ssize_t k = sys_send_nosignal(fd, header + sent, l - sent);
        if (k < 0) {
            if (errno == EINTR) continue;
            goto fail; /* EPIPE: journald refused the stream; the caller falls back */
        }
        sent += (size_t)k;
    }
    return fd;

fail:;
    int saved = errno;
    sys_close(fd);
    errno = saved;
    return -1;
}

/* Drop envp[index] by shifting the rest down (envp is the child's own copy). */
/* Puts "<prefix><getpid()>" in envp[index], built in buf (room for prefix + 20 digits + NUL),
 * in place of the "<prefix>" entry the parent made. -1 with errno EINVAL if there is none. */
static int put_own_pid(char **envp, int n_env, int index, char *buf, const char *prefix) {
    if (index >= n_env || !has_prefix(envp[index], prefix)) {
        errno = EINVAL;
        return -1;
    }
    size_t n = ring_strlen(prefix);
    memcpy(buf, prefix, n);
    char *p = buf + n;
    p += format_u64(p, (uint64_t)getpid());
    *p = '\0';
    envp[index] = buf;
    return 0;
}

static void env_remove(char **envp, int index) {
    int i = index;
    for (; envp[i]; i++) envp[i] = envp[i + 1];
}

/* execvp's lookup, by hand: execvpe(3) may allocate, so it is not async-signal-safe.
 * Like execvp, remember EACCES from any candidate and report it in preference to the
 * ENOENT of the last one; stop on errors that mean "this file exists but cannot run". */
static void exec_search(const char *file, char *const *argv, char **envp, const char *search_path) {
    if (file[0] == '\0') {
        errno = ENOENT;
        return;
    }
    for (const char *c = file; *c; c++) {
        if (*c == '/') {
            execve(file, argv, envp);
            return;
        }
    }

    size_t flen = ring_strlen(file);
    if (flen > NAME_MAX) {
        errno = ENAMETOOLONG;
        return;
    }
    char buf[PATH_MAX];
    int seen_eacces = 0;
    const char *p = search_path;
    for (;;) {
        const char *end = p;
        while (*end && *end != ':') end++;
        size_t dlen = (size_t)(end - p);
        /* An empty element means the current directory, as in execvp. */
        if (dlen == 0) {
            p = ".";
            dlen = 1;
        }
        if (dlen + 1 + flen + 1 <= sizeof buf) {
            memcpy(buf, p, dlen);
            buf[dlen] = '/';
            memcpy(buf + dlen + 1, file, flen + 1);
            execve(buf, argv, envp);
            switch (errno) {
            case EACCES:
                seen_eacces = 1;
                break;
            case ENOENT:
            case ENOTDIR:
            case ENAMETOOLONG:
            case ESTALE:
            case ENODEV:
            case ETIMEDOUT:
            case ELOOP:
                break;
            default:
                return; /* found, but it cannot run (ENOEXEC, E2BIG, ENOMEM, ETXTBSY...) */
            }
        }
        if (*end == '\0') break;
        p = end + 1;
    }
    errno = seen_eacces ? EACCES : ENOENT;
}

/* glibc's sigaction() refuses the two signals it reserves for itself (32, 33), yet an
 * ignored disposition of those survives exec like any other (we have seen a test harness
 * leave SIG_IGN on 32). Reset them with the raw syscall, where the kernel's struct layout
 * is the generic one. */
static void reset_reserved_signal(int sig) {
#if defined(__x86_64__) || defined(__aarch64__) || defined(__riscv)
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } ksa = { 0 }; /* SIG_DFL, no flags, empty mask */
    (void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof ksa.mask);
#else
    (void)sig;
#endif
}

/* Returns the lowest fd >= min that is a copy of fd (no CLOEXEC), or -1. */
static int dup_above(int fd, int min) {
    return fcntl(fd, F_DUPFD, min);
}

_Noreturn void ring_child_main(const struct ring_child_ctx *ctx) {
    const struct ring_spawn_request *req = ctx->req;
    struct child c = { .report = ctx->report, .report_fd = ctx->report_fd };

    /* 0. The cgroup, when clone3 could not start us there: before anything else, so that
     *    whatever this child does or starts is inside it. openat + write are async-signal-safe. */
    if (ctx->join_cgroup) {
        int procs = sys_openat(req->cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (procs < 0) child_fail(&c, STAGE_CGROUP);
        if (write_all(procs, "0", 1) < 0) child_fail(&c, STAGE_CGROUP);
        sys_close(procs);
    }

    /* 1. Signals: every disposition back to SIG_DFL (SIGPIPE included: the daemon ignores
     *    it, the child must not inherit that). All signals are still blocked (the parent
     *    blocked them around clone), so no handler of the daemon can run in the child — with
     *    CLONE_VM, on the daemon's memory — before this is done. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        if (sigaction(sig, &dfl, NULL) < 0 && errno == EINVAL)
            reset_reserved_signal(sig);
    }

    /* 2. Own session (and process group): signals to the group reach grandchildren, and
     *    the daemon's terminal, if any, is not the child's. */
    if (setsid() < 0) child_fail(&c, STAGE_SETSID);

    const int n_extra = req->n_extra_fds > 0 ? req->n_extra_fds : 0;
    const int n_targets = 3 + n_extra;

    /* 3. Keep the report pipe, if any, out of the target range 0..n_targets-1 (dup2 would
     *    clobber it). */
    if (c.report_fd >= 0 && c.report_fd < n_targets) {
        int moved = fcntl(c.report_fd, F_DUPFD_CLOEXEC, n_targets);
        if (moved < 0) _exit(127); /* cannot even report */
        c.report_fd = moved;
    }

    /* 4. The environment, as this child's own array: the two entries only the child can
     *    fill in (JOURNAL_STREAM, LISTEN_PID) are built in its own buffers. */
    char *envp[ctx->n_env + 1];
    for (int i = 0; i < ctx->n_env; i++) envp[i] = req->envp[i];
    envp[ctx->n_env] = NULL;
    char listen_pid_entry[sizeof "LISTEN_PID=" + 20];
    char watchdog_pid_entry[sizeof "WATCHDOG_PID=" + 20];
    char journal_stream_entry[sizeof "JOURNAL_STREAM=" + 2 * 20 + 1];

    /* 5. Journal streams, connected from the child so that journald sees the child's pid.
     *    Any failure here is not an error: that stream falls back to the given fd. */
    int listen_pid_index = req->listen_pid_index;
    int watchdog_pid_index = req->watchdog_pid_index;
    int out_src = req->stdout_fd, err_src = req->stderr_fd;
    int journal_fd_for_env = -1;
    if (req->journal_identifier) {
        const char *path = req->journal_socket ? req->journal_socket : DEFAULT_JOURNAL_SOCKET;
        int jout = journal_stream_connect(path, req->journal_identifier, 6, req->journal_connect_retries);
        int jerr = jout >= 0 ? journal_stream_connect(path, req->journal_identifier, 3, req->journal_connect_retries) : -1;
        if (jout >= 0) out_src = jout;
        if (jerr >= 0) err_src = jerr;
        journal_fd_for_env = jerr >= 0 ? jerr : jout;
    }
    if (req->journal_stream_index >= 0 && req->journal_stream_index < ctx->n_env) {
        struct stat st;
        if (journal_fd_for_env >= 0 && has_prefix(envp[req->journal_stream_index], "JOURNAL_STREAM=") &&
            fstat(journal_fd_for_env, &st) == 0) {
            char *p = journal_stream_entry;
            memcpy(p, "JOURNAL_STREAM=", sizeof "JOURNAL_STREAM=" - 1);
            p += sizeof "JOURNAL_STREAM=" - 1;
            p += format_u64(p, (uint64_t)st.st_dev);
            *p++ = ':';
            p += format_u64(p, (uint64_t)st.st_ino);
            *p = '\0';
            envp[req->journal_stream_index] = journal_stream_entry;
        } else {
            env_remove(envp, req->journal_stream_index);
            if (listen_pid_index > req->journal_stream_index) listen_pid_index--;
            if (watchdog_pid_index > req->journal_stream_index) watchdog_pid_index--;
        }
    }

    /* 6. The fd map. Sources may overlap targets in any order (stdout_fd could be 3 while
     *    extra_fds[0] is 1), so first copy every source above the target range, then dup2
     *    the copies into place; dup2 leaves the targets without CLOEXEC. -1 → /dev/null. */
    int srcs[3 + n_extra];
    srcs[0] = req->stdin_fd;
    srcs[1] = out_src;
    srcs[2] = err_src;
    for (int i = 0; i < n_extra; i++) srcs[3 + i] = req->extra_fds[i];
    for (int i = 0; i < n_targets; i++) {
        int src = srcs[i];
        if (src < 0) {
            src = sys_openat(AT_FDCWD, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
            if (src < 0) child_fail(&c, STAGE_DUP2);
            /* This fd might itself sit in the target range: copying it up below is enough. */
        }
        int copy = dup_above(src, n_targets);
        if (copy < 0) child_fail(&c, STAGE_DUP2);
        srcs[i] = copy;
    }
    for (int i = 0; i < n_targets; i++) {
        while (dup2(srcs[i], i) < 0) {
            if (errno != EINTR) child_fail(&c, STAGE_DUP2);
        }
    }

    /* 7. Every other fd closed, except the report pipe if any (CLOEXEC: exec closes it). The
     *    copies made above are among those closed. */
    if (c.report_fd >= 0) {
        if ((unsigned)c.report_fd > (unsigned)n_targets)
            (void)ring_close_range((unsigned)n_targets, (unsigned)c.report_fd - 1, 0);
        (void)ring_close_range((unsigned)c.report_fd + 1, ~0U, 0);
    } else {
        (void)ring_close_range((unsigned)n_targets, ~0U, 0);
    }

    /* 8. Working directory. */
    if (req->cwd && chdir(req->cwd) < 0) child_fail(&c, STAGE_CHDIR);

    /* 9. LISTEN_PID must be the pid of the process that will run the service, which only
     *    the child knows; so must WATCHDOG_PID (sd_watchdog_enabled() checks it is getpid()). */
    if (listen_pid_index >= 0 && put_own_pid(envp, ctx->n_env, listen_pid_index, listen_pid_entry, "LISTEN_PID=") < 0)
        child_fail(&c, STAGE_LISTEN_PID);
    if (watchdog_pid_index >= 0 &&
        put_own_pid(envp, ctx->n_env, watchdog_pid_index, watchdog_pid_entry, "WATCHDOG_PID=") < 0)
        child_fail(&c, STAGE_WATCHDOG_PID);

    /* The daemon's raised fd limit is not the child's: give back the usual soft limit. Only
     * now, with the daemon's (high-numbered) fds closed: the fd shuffle above may need
     * numbers beyond it. (A plain syscall; never fails for a soft limit below the hard one.) */
    if (req->nofile_soft > 0) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && req->nofile_soft < rl.rlim_cur) {
            rl.rlim_cur = req->nofile_soft;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
    }

    /* 10. An empty signal mask for the new program, whatever the daemon blocked. */
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    /* 11. Exec. */
    exec_search(req->file, req->argv, envp, req->search_path ? req->search_path : DEFAULT_SEARCH_PATH);
    child_fail(&c, STAGE_EXEC);
}
