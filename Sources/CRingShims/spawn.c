/* The parent side of spawning: clone3 → (the child: spawn_child.c) → exec, and the report.
 *
 * The usual path, as glibc's posix_spawn: clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD
 * [| CLONE_INTO_CGROUP]) on a separate child stack. The child runs in the daemon's memory
 * while the calling thread is suspended until the child has exec'd or exited, so nothing
 * is copied: no page tables to duplicate (and tear down again at exec), no copy-on-write
 * faults afterwards. A failure before exec is written into a result slot of the parent's
 * frame, read once the parent resumes: no pipe. glibc 2.36 exports no clone3 wrapper, and a
 * child on a new stack must never return into C code, so the syscall is a few lines of
 * assembly (x86_64 only).
 *
 * Fallbacks, when that path is not available (another architecture; clone3 refused with
 * ENOSYS/EINVAL/E2BIG/EPERM, e.g. by a seccomp filter; no memory for the child stack) or
 * switched off by a test: clone3(CLONE_PIDFD) as a fork, then fork + pidfd_open. There
 * the child has copy-on-write memory and reports failures over a CLOEXEC pipe: if exec
 * succeeds the kernel closes it and the parent reads EOF. */
#define _GNU_SOURCE
#include "spawn_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static const char *const stage_names[STAGE_COUNT] = {
    [STAGE_CGROUP] = "cgroup",
    [STAGE_SETSID] = "setsid",
    [STAGE_DUP2] = "dup2",
    [STAGE_CHDIR] = "chdir",
    [STAGE_LISTEN_PID] = "listen_pid",
    [STAGE_WATCHDOG_PID] = "watchdog_pid",
    [STAGE_EXEC] = "exec",
};

/* The clone_args layout of Linux 5.7 (with .cgroup), whatever the installed headers know. */
struct ring_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};

/* CLONE_ARGS_SIZE_VER0 (any clone3) without a cgroup, VER2 with one. */
static size_t clone_args_size(int cgroup_fd) {
    return cgroup_fd >= 0 ? sizeof(struct ring_clone_args) : offsetof(struct ring_clone_args, set_tid);
}

/* Cleared by tests to exercise the fallbacks (see ringshims.h). */
static int use_clone_vm = 1;
static int use_clone3 = 1;

void ring_spawn_use_clone_vm(int enabled) {
    use_clone_vm = enabled;
}

void ring_spawn_use_clone3(int enabled) {
    use_clone3 = enabled;
}

/* Blocks every signal for the calling thread, glibc's own two (cancellation, setxid) too —
 * as posix_spawn does: no handler of the daemon may run in the child before it has reset
 * the dispositions. The raw syscall, since pthread_sigmask leaves glibc's signals out. */
static void block_all_signals(sigset_t *old) {
    sigset_t all;
    memset(&all, 0xff, sizeof all);
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, old, _NSIG / 8);
}

static void restore_signals(const sigset_t *old) {
    (void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, old, NULL, _NSIG / 8);
}

static int reap(pid_t pid, int pidfd) {
    siginfo_t si;
    for (;;) {
        int r = pidfd >= 0 ? waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED)
                           : waitid(P_PID, (id_t)pid, &si, WEXITED);
        if (r == 0 || errno != EINTR) return r;
    }
}

/* ---- the usual path: CLONE_VM | CLONE_VFORK ---- */

#if defined(__x86_64__)
#define HAVE_CLONE_VM 1

/* clone3(args, size); in the child, on the new stack: exit(fn(arg)). Returns the pid, or
 * -errno, in the parent. The child cannot return into C: its stack holds no frame to return
 * to. The kernel leaves every register but rax, rcx and r11 as it was, so fn and arg wait
 * in r8 and r9; the stack top from clone_args is page-aligned, so rsp is 16-byte aligned
 * before the call, as the ABI wants. */
long ring_clone3_vm_raw(struct ring_clone_args *args, size_t size, int (*fn)(void *), void *arg)
    __attribute__((visibility("hidden")));
__asm__(
    ".pushsection .text\n"
    ".globl ring_clone3_vm_raw\n"
    ".hidden ring_clone3_vm_raw\n"
    ".type ring_clone3_vm_raw, @function\n"
    ".p2align 4\n"
    "ring_clone3_vm_raw:\n"
    "    .cfi_startproc\n"
    "    movq %rdx, %r8\n"
    "    movq %rcx, %r9\n"
    "    movl $435, %eax\n" /* __NR_clone3 */
    "    syscall\n"
    "    testq %rax, %rax\n"
    "    jz 1f\n"
    "    ret\n"
    "1:\n"
    "    .cfi_undefined %rip\n" /* the child: the outermost frame */
    "    xorl %ebp, %ebp\n"
    "    movq %r9, %rdi\n"
    "    callq *%r8\n"
    "    movl %eax, %edi\n"
    "    movl $60, %eax\n" /* __NR_exit */
    "    syscall\n"
    "    hlt\n"
    "    .cfi_endproc\n"
    ".size ring_clone3_vm_raw, . - ring_clone3_vm_raw\n"
    ".popsection\n");

/* The child stack: one mapping, below it a PROT_NONE guard page, made once and reused. The
 * calling thread is suspended while a child runs on it, and the lock keeps two threads
 * (tests; the daemon has one) from sharing it. It only grows, when an environment or fd
 * map does not fit. Only the pages a child touched stay resident (a few KiB). */
#define CHILD_STACK_BASE (64 * 1024)
static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
static void *stack_mapping;
static size_t stack_mapping_size, stack_size;

/* A stack of at least `need` bytes (with the lock held), or NULL with errno. */
static void *child_stack(size_t need) {
    if (stack_mapping && stack_size >= need) return (char *)stack_mapping + stack_mapping_size - stack_size;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (need + page - 1) / page * page;
    void *m = mmap(NULL, size + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (mprotect((char *)m + page, size, PROT_READ | PROT_WRITE) < 0) {
        int e = errno;
        munmap(m, size + page);
        errno = e;
        return NULL;
    }
    if (stack_mapping) munmap(stack_mapping, stack_mapping_size);
    stack_mapping = m;
    stack_mapping_size = size + page;
    stack_size = size;
    return (char *)m + page;
}

static int child_entry(void *arg) {
    ring_child_main(arg);
}

/* clone3 arguments for a child with a pidfd, SIGCHLD at its exit and, with cgroup_fd >= 0,
 * born in that cgroup (CLONE_INTO_CGROUP); `flags` adds to CLONE_PIDFD. */
static void init_clone_args(struct ring_clone_args *args, uint64_t flags, int *pidfd, int cgroup_fd) {
    memset(args, 0, sizeof *args);
    args->flags = CLONE_PIDFD | flags;
    args->pidfd = (uint64_t)(uintptr_t)pidfd;
    args->exit_signal = SIGCHLD;
    if (cgroup_fd >= 0) {
        args->flags |= CLONE_INTO_CGROUP;
        args->cgroup = (uint64_t)cgroup_fd;
    }
}

/* One clone3 with CLONE_VM|CLONE_VFORK; returns the pid (the child has exec'd or exited
 * when this returns) or -1 with errno. */
static pid_t clone_vm(struct ring_child_ctx *ctx, void *stack, size_t size, int *pidfd, int cgroup_fd) {
    struct ring_clone_args args;
    init_clone_args(&args, CLONE_VM | CLONE_VFORK, pidfd, cgroup_fd);
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = size;
    long r = ring_clone3_vm_raw(&args, clone_args_size(cgroup_fd), child_entry, ctx);
    if (r < 0) {
        errno = (int)-r;
        return -1;
    }
    return (pid_t)r;
}

/* Returns the pid (report filled in by a child that failed), or -1 with errno: ENOSYS,
 * EINVAL, E2BIG, EPERM or ENOMEM mean "use a fallback". */
static pid_t spawn_shared_vm(const struct ring_spawn_request *req, int n_env, int *pidfd,
                             volatile struct ring_child_report *report) {
    int n_extra = req->n_extra_fds > 0 ? req->n_extra_fds : 0;
    size_t need = CHILD_STACK_BASE + (size_t)(n_env + 1) * sizeof(char *) + (size_t)(3 + n_extra) * sizeof(int);
    struct ring_child_ctx ctx = { .req = req, .n_env = n_env, .report = report, .report_fd = -1 };

    sigset_t old;
    block_all_signals(&old);
    pthread_mutex_lock(&stack_lock);
    pid_t pid = -1;
    int err = ENOMEM;
    void *stack = child_stack(need);
    if (stack) {
        pid = clone_vm(&ctx, stack, stack_size, pidfd, req->cgroup_fd);
        err = errno;
        if (pid < 0 && req->cgroup_fd >= 0 && (err == EINVAL || err == E2BIG)) {
            /* clone3 without CLONE_INTO_CGROUP (Linux 5.3-5.6): the child joins by itself. */
            ctx.join_cgroup = 1;
            pid = clone_vm(&ctx, stack, stack_size, pidfd, -1);
            err = errno;
        }
    }
    pthread_mutex_unlock(&stack_lock);
    restore_signals(&old);
    errno = err;
    return pid;
}
#endif

/* ---- the fallbacks: copy-on-write children, a pipe for the report ---- */

/* clone3 as fork with a pidfd. With cgroup_fd >= 0 the child is born in that cgroup
 * (CLONE_INTO_CGROUP). Returns the pid in the parent, 0 in the child. */
static pid_t clone_with_pidfd(int *pidfd, int cgroup_fd) {
    struct ring_clone_args args;
    init_clone_args(&args, 0, pidfd, cgroup_fd);
    return (pid_t)syscall(SYS_clone3, &args, clone_args_size(cgroup_fd));
}

/* Returns the pid and *pidfd with report filled in from the pipe, or -1 with *err_errno
 * and *err_stage (the parent's own failures). */
static pid_t spawn_forked(const struct ring_spawn_request *req, int n_env, int *pidfd_out,
                          struct ring_child_report *report, int *err_errno, const char **err_stage) {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0) {
        *err_errno = errno;
        *err_stage = "pipe";
        return -1;
    }
    /* Read by the child in its own copy of this frame. */
    struct ring_child_ctx ctx = { .req = req, .n_env = n_env, .report = NULL, .report_fd = pipefd[1] };

    sigset_t old;
    block_all_signals(&old);
    int pidfd = -1;
    pid_t pid = -1;
    errno = ENOSYS;
    if (use_clone3) {
        pid = clone_with_pidfd(&pidfd, req->cgroup_fd);
        if (pid < 0 && req->cgroup_fd >= 0 && (errno == EINVAL || errno == E2BIG)) {
            /* clone3 without CLONE_INTO_CGROUP (Linux 5.3-5.6): the child joins by itself. */
            ctx.join_cgroup = 1;
            pidfd = -1;
            pid = clone_with_pidfd(&pidfd, -1);
        }
    }
    if (pid < 0 && (errno == ENOSYS || errno == EPERM)) {
        /* No clone3 (old kernel, or a seccomp filter that refuses it): fork, then open a
         * pidfd. The child cannot be reaped by anyone else before pidfd_open since only we
         * wait for it, so the pid cannot be recycled in between. */
        ctx.join_cgroup = req->cgroup_fd >= 0;
        pidfd = -1;
        pid = fork();
    }
    if (pid == 0) {
        close(pipefd[0]);
        ring_child_main(&ctx);
    }
    int clone_errno = errno;
    restore_signals(&old);
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

    struct ring_child_report r;
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = read(pipefd[0], (char *)&r + got, sizeof r - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
    }
    close(pipefd[0]);
    if (got == sizeof r) {
        *report = r;
    } else if (got > 0) {
        /* The child died half-way through its report; nothing better to say. */
        report->err = EIO;
        report->stage = STAGE_EXEC;
    }
    *pidfd_out = pidfd;
    return pid;
}

/* ---- ring_spawn ---- */

int ring_spawn(const struct ring_spawn_request *req, pid_t *pid_out, int *pidfd_out,
               int *err_errno, const char **err_stage) {
    int n_env = 0;
    while (req->envp[n_env]) n_env++;

    struct ring_child_report report = { .err = 0, .stage = -1 };
    int pidfd = -1;
    pid_t pid = -1;
#ifdef HAVE_CLONE_VM
    if (use_clone_vm && use_clone3) {
        volatile struct ring_child_report slot = { .err = 0, .stage = -1 };
        pid = spawn_shared_vm(req, n_env, &pidfd, &slot);
        if (pid < 0 && errno != ENOSYS && errno != EINVAL && errno != E2BIG && errno != EPERM && errno != ENOMEM) {
            *err_errno = errno;
            *err_stage = "clone";
            return -1;
        }
        report.err = slot.err;
        report.stage = slot.stage;
    }
#endif
    if (pid < 0) {
        pidfd = -1;
        pid = spawn_forked(req, n_env, &pidfd, &report, err_errno, err_stage);
        if (pid < 0) return -1;
    }

    if (report.stage < 0) {
        *pid_out = pid;
        *pidfd_out = pidfd;
        return 0;
    }
    (void)reap(pid, pidfd);
    close(pidfd);
    *err_errno = report.err;
    *err_stage = report.stage < STAGE_COUNT ? stage_names[report.stage] : "exec";
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
    /* Pre-5.9 kernel: close one by one up to the fd limit (async-signal-safe; the raw
     * syscall, since the child calls this too, see spawn_child.c). */
    struct rlimit rl;
    unsigned int max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)UINT_MAX)
        max = (unsigned int)rl.rlim_cur;
    if (last >= max) last = max - 1;
    for (unsigned int fd = first; fd <= last && fd >= first; fd++) (void)syscall(SYS_close, (int)fd);
    return 0;
}
