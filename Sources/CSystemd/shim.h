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
