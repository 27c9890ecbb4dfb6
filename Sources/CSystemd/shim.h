#pragma once
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-id128.h>

/* The address of sd_bus_object_vtable_format cannot be taken from Swift. */
static inline const void *csd_bus_object_vtable_format(void) {
    return &sd_bus_object_vtable_format;
}

/* siginfo_t keeps si_pid/si_status inside unions that Swift reaches only awkwardly. */
#include <signal.h>
static inline pid_t csd_siginfo_pid(const siginfo_t *si) { return si->si_pid; }
static inline int csd_siginfo_status(const siginfo_t *si) { return si->si_status; }
