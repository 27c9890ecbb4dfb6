/* Shared by the two halves of spawning: spawn.c (the parent: clone, report, reap) and
 * spawn_child.c (the child: everything between clone and exec). Not exported to Swift. */
#pragma once

#include "ringshims.h"

/* The stages the child can fail in. Only the index travels back; the parent maps it to a
 * static string, so the report is two plain ints. */
enum ring_stage {
    STAGE_CGROUP,
    STAGE_SETSID,
    STAGE_DUP2,
    STAGE_CHDIR,
    STAGE_LISTEN_PID,
    STAGE_WATCHDOG_PID,
    STAGE_EXEC,
    STAGE_COUNT
};

/* What a child that failed before or at exec reports: errno and stage (-1: no report). */
struct ring_child_report {
    int err;
    int stage;
};

/* Everything the child gets from the parent. With CLONE_VM it is read in the parent's memory
 * (the parent is suspended until exec or exit); the child first copies it to its own stack
 * and writes nowhere in the parent's memory but *report. */
struct ring_child_ctx {
    const struct ring_spawn_request *req;
    /* the number of entries in req->envp (without the NULL): sizes the child's copy */
    int n_env;
    /* Where a failure is reported: the parent's result slot (CLONE_VM|CLONE_VFORK: the parent
     * reads it once the child is gone) or, when report is NULL, the write end of a CLOEXEC
     * pipe (the copy-on-write paths: exec closes it, so EOF without data means success). */
    volatile struct ring_child_report *report;
    int report_fd;
    /* 1: clone could not start the child in req->cgroup_fd, it must move itself there. */
    int join_cgroup;
};

/* The child side, from clone to exec: never returns. Only async-signal-safe calls; no
 * allocation; no writes to the parent's memory except through ctx->report. */
_Noreturn void ring_child_main(const struct ring_child_ctx *ctx);
