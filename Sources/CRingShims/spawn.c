/* The child side of spawning: clone3 → (cgroup, fd map, session, signals, cwd, LISTEN_PID) → execve.
 *
 * Why C: between clone and exec the child is a copy of a (possibly multi-threaded) Swift
 * process whose allocator and runtime locks may be held by threads that do not exist in
 * the child. Only async-signal-safe calls are allowed there: no malloc, no Swift, no stdio.
 * Everything the child needs (strings, arrays) is prepared by the parent beforehand; the
 * child only does raw syscalls and writes into its own copy-on-write memory.
 *
 * Failures in the child are reported back over a CLOEXEC pipe as {errno, stage}: if exec
 * succeeds the kernel closes the pipe and the parent reads EOF. */
#define _GNU_SOURCE
#include "ringshims.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define DEFAULT_SEARCH_PATH "/usr/local/bin:/usr/bin:/bin"
#define DEFAULT_JOURNAL_SOCKET "/run/systemd/journal/stdout"
/* As sd_journal_stream_fd: a large send buffer so a chatty child rarely blocks on journald. */
#define JOURNAL_SNDBUF_SIZE (8 * 1024 * 1024)
/* At most ~100 ms per stream waiting for room in journald's backlog. */
#define JOURNAL_CONNECT_RETRIES 5
#define JOURNAL_CONNECT_PAUSE_NS (20 * 1000 * 1000)

/* The stages the child can fail in. Only the index travels over the pipe; the parent maps
 * it back to a static string, so the report is two plain ints. */
enum stage {
    STAGE_CGROUP,
    STAGE_SETSID,
    STAGE_DUP2,
    STAGE_CHDIR,
    STAGE_LISTEN_PID,
    STAGE_EXEC,
    STAGE_COUNT
};

static const char *const stage_names[STAGE_COUNT] = {
    [STAGE_CGROUP] = "cgroup",
    [STAGE_SETSID] = "setsid",
    [STAGE_DUP2] = "dup2",
    [STAGE_CHDIR] = "chdir",
    [STAGE_LISTEN_PID] = "listen_pid",
    [STAGE_EXEC] = "exec",
};

struct child_report {
    int err;
    int stage;
};

/* ---- async-signal-safe helpers (child side) ---- */

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
        ssize_t k = write(fd, p, len);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static _Noreturn void child_fail(int report_fd, int stage) {
    struct child_report r = { .err = errno, .stage = stage };
    (void)write_all(report_fd, &r, sizeof r);
    _exit(127);
}

/* Connect to journald's stdout stream the way sd_journal_stream_fd() does, but with raw
 * syscalls only: the stream then belongs to this process, and journald attributes the
 * lines to the child's own _PID. Returns the fd or -1. */
static int journal_stream_connect(const char *socket_path, const char *identifier, int priority) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t plen = ring_strlen(socket_path);
    if (plen >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, socket_path, plen);

    /* Non-blocking connect: with journald stuck and its backlog full, a blocking connect
     * would hang this child and, through the exec-error pipe, the daemon's loop. A unix
     * socket reports a full backlog as EAGAIN; retry briefly, then fall back. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    for (int attempt = 0;; attempt++) {
        if (connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen)) == 0)
            break;
        if (errno == EINTR) continue;
        if (errno != EAGAIN || attempt >= JOURNAL_CONNECT_RETRIES) goto fail;
        struct timespec pause = { .tv_sec = 0, .tv_nsec = JOURNAL_CONNECT_PAUSE_NS };
        (void)nanosleep(&pause, NULL);
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
    if (write_all(fd, header, l) < 0) goto fail;
    return fd;

fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

/* Drop envp[index] by shifting the rest down (the array is the child's own copy). */
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

static _Noreturn void child_main(const struct ring_spawn_request *req, int report_fd, int join_cgroup) {
    /* 0. The cgroup, when clone3 could not start us there: before anything else, so that
     *    whatever this child does or starts is inside it. openat + write are async-signal-safe. */
    if (join_cgroup) {
        int procs = openat(req->cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (procs < 0) child_fail(report_fd, STAGE_CGROUP);
        if (write_all(procs, "0", 1) < 0) child_fail(report_fd, STAGE_CGROUP);
        close(procs);
    }

    /* 1. Signals: every handler back to SIG_DFL (SIGPIPE included: the daemon ignores it,
     *    the child must not inherit that). All signals are still blocked (the parent blocked
     *    them around clone), so no handler of the daemon can run in the child meanwhile. */
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
    if (setsid() < 0) child_fail(report_fd, STAGE_SETSID);

    const int n_extra = req->n_extra_fds > 0 ? req->n_extra_fds : 0;
    const int n_targets = 3 + n_extra;

    /* 3. Keep the report pipe out of the target range 0..n_targets-1 (dup2 would clobber it). */
    if (report_fd < n_targets) {
        int moved = fcntl(report_fd, F_DUPFD_CLOEXEC, n_targets);
        if (moved < 0) _exit(127); /* cannot even report */
        report_fd = moved;
    }

    /* 4. Journal streams, connected from the child so that journald sees the child's pid.
     *    Any failure here is not an error: that stream falls back to the given fd. */
    int listen_pid_index = req->listen_pid_index;
    int out_src = req->stdout_fd, err_src = req->stderr_fd;
    int journal_fd_for_env = -1;
    if (req->journal_identifier) {
        const char *path = req->journal_socket ? req->journal_socket : DEFAULT_JOURNAL_SOCKET;
        int jout = journal_stream_connect(path, req->journal_identifier, 6);
        int jerr = jout >= 0 ? journal_stream_connect(path, req->journal_identifier, 3) : -1;
        if (jout >= 0) out_src = jout;
        if (jerr >= 0) err_src = jerr;
        journal_fd_for_env = jerr >= 0 ? jerr : jout;
    }
    if (req->journal_stream_index >= 0) {
        char *slot = req->envp[req->journal_stream_index];
        struct stat st;
        if (journal_fd_for_env >= 0 && has_prefix(slot, "JOURNAL_STREAM=") &&
            fstat(journal_fd_for_env, &st) == 0) {
            char *p = slot + sizeof "JOURNAL_STREAM=" - 1;
            p += format_u64(p, (uint64_t)st.st_dev);
            *p++ = ':';
            p += format_u64(p, (uint64_t)st.st_ino);
            *p = '\0';
        } else {
            env_remove(req->envp, req->journal_stream_index);
            if (listen_pid_index > req->journal_stream_index) listen_pid_index--;
        }
    }

    /* 5. The fd map. Sources may overlap targets in any order (stdout_fd could be 3 while
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
            src = open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY);
            if (src < 0) child_fail(report_fd, STAGE_DUP2);
            /* This fd might itself sit in the target range: copying it up below is enough. */
        }
        int copy = dup_above(src, n_targets);
        if (copy < 0) child_fail(report_fd, STAGE_DUP2);
        srcs[i] = copy;
    }
    for (int i = 0; i < n_targets; i++) {
        while (dup2(srcs[i], i) < 0) {
            if (errno != EINTR) child_fail(report_fd, STAGE_DUP2);
        }
    }

    /* 6. Every other fd closed, except the report pipe (CLOEXEC: exec closes it). The
     *    copies made above are among those closed. */
    if ((unsigned)report_fd > (unsigned)n_targets)
        (void)ring_close_range((unsigned)n_targets, (unsigned)report_fd - 1, 0);
    (void)ring_close_range((unsigned)report_fd + 1, ~0U, 0);

    /* 7. Working directory. */
    if (req->cwd && chdir(req->cwd) < 0) child_fail(report_fd, STAGE_CHDIR);

    /* 8. LISTEN_PID must be the pid of the process that will run the service, which only
     *    the child knows; the parent left room for the digits. */
    if (listen_pid_index >= 0) {
        char *slot = req->envp[listen_pid_index];
        if (!has_prefix(slot, "LISTEN_PID=")) {
            errno = EINVAL;
            child_fail(report_fd, STAGE_LISTEN_PID);
        }
        char *p = slot + sizeof "LISTEN_PID=" - 1;
        p += format_u64(p, (uint64_t)getpid());
        *p = '\0';
    }

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

    /* 9. An empty signal mask for the new program, whatever the daemon blocked. */
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    /* 10. Exec. */
    exec_search(req->file, req->argv, req->envp, req->search_path ? req->search_path : DEFAULT_SEARCH_PATH);
    child_fail(report_fd, STAGE_EXEC);
}

/* ---- parent side ---- */

/* Cleared by tests (ring_spawn_use_clone3) to exercise the fork+pidfd_open path. */
static int use_clone3 = 1;

void ring_spawn_use_clone3(int enabled) {
    use_clone3 = enabled;
}

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* The clone_args layout of Linux 5.7 (with .cgroup), whatever the installed headers know. */
struct ring_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

/* clone3 as fork with a pidfd: no CLONE_VM, so the child gets its own copy-on-write memory
 * and may scribble on the envp slots. With cgroup_fd >= 0 the child is born in that cgroup
 * (CLONE_INTO_CGROUP). Returns the pid in the parent, 0 in the child. */
static pid_t clone_with_pidfd(int *pidfd, int cgroup_fd) {
    struct ring_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.exit_signal = SIGCHLD;
    size_t size = offsetof(struct ring_clone_args, set_tid); /* CLONE_ARGS_SIZE_VER0: any clone3 */
    if (cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cgroup_fd;
        size = sizeof args;                                   /* CLONE_ARGS_SIZE_VER2 */
    }
    return (pid_t)syscall(SYS_clone3, &args, size);
}

static int reap(pid_t pid, int pidfd) {
    siginfo_t si;
    for (;;) {
        int r = pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED)
                           : waitid(P_PID, (id_t)pid, &si, WEXITED);
        if (r == 0 || errno != EINTR) return r;
    }
}

int ring_spawn(const struct ring_spawn_request *req, pid_t *pid_out, int *pidfd_out,
               int *err_errno, const char **err_stage) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        *err_errno = errno;
        *err_stage = "pipe";
        return -1;
    }

    /* Block every signal across clone so that no handler of the daemon runs in the child
     * before it has reset the dispositions; the parent's mask is restored right after. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    int pidfd = -1;
    pid_t pid = -1;
    /* Read by the child in its own copy of this frame: whether it must join the cgroup itself. */
    int join_cgroup = 0;
    errno = ENOSYS;
    if (use_clone3) {
        pid = clone_with_pidfd(&pidfd, req->cgroup_fd);
        if (pid < 0 && req->cgroup_fd >= 0 && (errno == EINVAL || errno == E2BIG)) {
            /* clone3 without CLONE_INTO_CGROUP (Linux 5.3-5.6): the child joins by itself. */
            join_cgroup = 1;
            pidfd = -1;
            pid = clone_with_pidfd(&pidfd, -1);
        }
    }
    if (pid < 0 && (errno == ENOSYS || errno == EPERM)) {
        /* No clone3 (old kernel, or a seccomp filter that refuses it): fork, then open a
         * pidfd. The child cannot be reaped by anyone else before pidfd_open since only we
         * wait for it, so the pid cannot be recycled in between. */
        join_cgroup = req->cgroup_fd >= 0;
        pidfd = -1;
        pid = fork();
    }
    if (pid == 0) {
        close(pipefd[0]);
        child_main(req, pipefd[1], join_cgroup);
    }
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(pipefd[1]);

    if (pid < 0) {
        close(pipefd[0]);
        *err_errno = clone_errno;
        *err_stage = "clone";
        return -1;
    }
    if (pidfd < 0) {
        pidfd = ring_pidfd_open(pid);
        if (pidfd < 0) {
            int e = errno;
            kill(pid, SIGKILL);
            (void)reap(pid, -1);
            close(pipefd[0]);
            *err_errno = e;
            *err_stage = "pidfd_open";
            return -1;
        }
    }

    struct child_report report;
    size_t got = 0;
    while (got < sizeof report) {
        ssize_t k = read(pipefd[0], (char *)&report + got, sizeof report - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(pipefd[0]);

    if (got == 0) {
        *pid_out = pid;
        *pidfd_out = pidfd;
        return 0;
    }
    (void)reap(pid, pidfd);
    close(pidfd);
    if (got < sizeof report) {
        /* The child died half-way through its report; nothing better to say. */
        *err_errno = EIO;
        *err_stage = "exec";
    } else {
        *err_errno = report.err;
        *err_stage = (report.stage >= 0 && report.stage < STAGE_COUNT) ? stage_names[report.stage] : "exec";
    }
    return -1;
}

int ring_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int ring_pidfd_send_signal(int pidfd, int signo) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, signo, NULL, 0);
}

int ring_close_range(unsigned int first, unsigned int last, unsigned int flags) {
    if (first > last) return 0;
    if (syscall(SYS_close_range, first, last, flags) == 0) return 0;
    if (errno != ENOSYS || flags != 0) return -1;
    /* Pre-5.9 kernel: close one by one up to the fd limit (async-signal-safe). */
    struct rlimit rl;
    unsigned int max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)UINT_MAX)
        max = (unsigned int)rl.rlim_cur;
    if (last >= max) last = max - 1;
    for (unsigned int fd = first; fd <= last && fd >= first; fd++) (void)close((int)fd);
    return 0;
}
