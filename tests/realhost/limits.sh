#!/bin/bash
# Per-instance cgroup limits on a real host: pure cgroup v2 with systemd as PID 1 and a user
# manager that delegates memory, pids and cpu (the real-host VM, issue 10). Run as root inside
# the guest, once the user's ringmaster.service runs (boot1, after the install step):
#
#   bash tests/realhost/limits.sh          # RINGMASTER_USER=alice by default
#
# It adds conf.d/90-realhost-limits.toml to the user's config, `ringctl reload`s, checks what
# the kernel does with each limit, then removes the file and reloads again:
#   - memory-max = "64M": a child that keeps allocating is OOM-killed (oom_kill in the
#     service's memory.events), as a whole instance (memory.oom.group = 1), and restarted;
#     its exit reason is oom-kill (LastExitReason on D-Bus, RINGMASTER_EXIT_REASON= in the journal);
#   - pids-max = 64: a fork bomb stays at 64 processes while the daemon and the other
#     services are unaffected; it stops cleanly;
#   - cpu-max = "20%": a busy loop gets 20 % of a CPU, ± 5 %;
#   - memory-restart = "58M" (memory-high = "56M"): two instances that grow past it and stay
#     there are replaced gracefully (SIGTERM, reason memory-restart), one at a time.
# Prints one line per check ("ok NAME" or "FAIL NAME: why", the real-host suite's format, also
# appended to $REALHOST_OUT/checks.txt when set), then "limits: N passed, N failed" last.
# Exit 0 when every check passed, 1 otherwise.
set -u

USER_NAME=${RINGMASTER_USER:-alice}
uid=$(id -u "$USER_NAME") || { echo "limits: no user $USER_NAME"; echo "limits: 0 passed, 1 failed"; exit 1; }
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
runtime=/run/user/$uid
confd=$home/.config/ringmaster/conf.d
dropin=$confd/90-realhost-limits.toml
passed=0
failed=0

record() {
    printf '%s\n' "$1"
    if [[ -n ${REALHOST_OUT:-} ]]; then printf '%s\n' "$1" >> "$REALHOST_OUT/checks.txt"; fi
}
pass() { passed=$((passed + 1)); record "ok $1"; }
fail() { failed=$((failed + 1)); record "FAIL $1: $(printf '%s' "$2" | tr '\n' ' ' | cut -c1-600)"; }
# check NAME CMD...: passes when CMD exits 0; its output is the reason otherwise.
check() {
    local name=$1 out rc; shift
    out=$("$@" 2>&1); rc=$?
    if [[ $rc -eq 0 ]]; then pass "$name"; else fail "$name" "exit $rc: $out"; fi
    return $rc
}
# wait_for SECONDS CMD...: until CMD succeeds (every 0.1 s), at most SECONDS.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}
as_user() {
    runuser -u "$USER_NAME" -- env -i HOME="$home" USER="$USER_NAME" LOGNAME="$USER_NAME" SHELL=/bin/bash \
        PATH="$home/.local/bin:/usr/local/bin:/usr/bin:/bin" \
        XDG_RUNTIME_DIR="$runtime" DBUS_SESSION_BUS_ADDRESS="unix:path=$runtime/bus" "$@"
}
# field SERVICE KEY: one key of `ringctl status --json SERVICE` (pids space-separated).
field() {
    as_user ringctl status --json "$1" | python3 -c '
import json, sys
v = json.load(sys.stdin)[0][sys.argv[1]]
print(" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v))' "$2"
}
main_pid() { as_user systemctl --user show -p MainPID --value ringmaster.service; }
# value FILE KEY: the number after KEY in a flat-keyed cgroup file (memory.events, cpu.stat).
value() { awk -v k="$2" '$1 == k { print $2 }' "$1" 2>/dev/null; }
finish() {
    echo "limits: $passed passed, $failed failed"
    [[ $failed -eq 0 ]]
    exit
}

cg=/sys/fs/cgroup$(as_user systemctl --user show -p ControlGroup --value ringmaster.service)
echo "    ringmaster.service cgroup: $cg ($(cat "$cg/cgroup.controllers" 2>&1))"
services=$cg/services
if ! check "ringmaster.service runs, with a cgroup" test -d "$services"; then finish; fi
echo "    swap: $(tail -n +2 /proc/swaps | wc -l) device(s) (memory-max OOM-kills only once nothing is left to swap)"

# Everything else the user runs, to compare after the fork bomb.
others_before=$(as_user ringctl status --json | python3 -c '
import json, sys
print(sorted((s["name"], tuple(sorted(s["pids"]))) for s in json.load(sys.stdin)))')
daemon=$(main_pid)

install -d -o "$USER_NAME" -g "$USER_NAME" "$confd"
cat > "$dropin" <<'TOML'
# tests/realhost/limits.sh: removed again at its end
[services.limits-hog]
command = ["python3", "-c", "import time\nchunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))\n    time.sleep(0.002)\n"]
memory-max = "64M"
restart-delay = "1s"

[services.limits-bomb]
# A shell would exit at its first refused fork ("Cannot fork"); this one keeps trying.
command = ["python3", "-c", "import os, time\nwhile True:\n    try:\n        if os.fork() == 0:\n            time.sleep(1000)\n            os._exit(0)\n    except OSError:\n        time.sleep(0.01)\n"]
pids-max = 64
stop-timeout = "3s"

[services.limits-spin]
command = ["/bin/sh", "-c", "while :; do :; done"]
cpu-max = "20%"

[services.limits-calm]
command = ["sleep", "100000"]

[services.limits-grow]
# Each instance's first process grows its cgroup's memory.current past 59M, then holds it;
# the processes that replace them see their marker and only sleep.
instances = 2
command = ["python3", "-c", "import os, time\nmarker = '/tmp/limits-grow-' + os.environ['RINGMASTER_INSTANCE']\nhold = []\nif not os.path.exists(marker):\n    open(marker, 'w').close()\n    cg = '/sys/fs/cgroup' + open('/proc/self/cgroup').read().strip().split('::', 1)[1]\n    while int(open(cg + '/memory.current').read()) < 59 << 20:\n        hold.append(b'x' * (256 << 10))\ntime.sleep(100000)\n"]
memory-high = "56M"
memory-restart = "58M"
TOML
chown "$USER_NAME:$USER_NAME" "$dropin"
rm -f /tmp/limits-grow-0 /tmp/limits-grow-1
check "ringctl check accepts the limit keys" as_user ringctl check
check "ringctl reload adds the limit services" as_user ringctl reload
running() { [[ $(field "$1" state) == running ]]; }

# --- memory-max ---------------------------------------------------------------------------
hog=$services/limits-hog
wait_for 10 test -e "$hog/0/memory.max"
check "memory-max = 64M is in the instance's memory.max" test "$(cat "$hog/0/memory.max" 2>&1)" = 67108864
check "memory.oom.group = 1 in the instance's cgroup" test "$(cat "$hog/0/memory.oom.group" 2>&1)" = 1
oom_killed() { [[ $(value "$hog/memory.events" oom_kill) -ge 1 ]]; }
wait_for 30 oom_killed
check "the allocating child is OOM-killed (oom_kill $(value "$hog/memory.events" oom_kill) in memory.events)" oom_killed
restarted() { [[ $(field limits-hog restarts) -ge 1 ]]; }
wait_for 20 restarted
check "the OOM-killed instance is restarted (restarts: $(field limits-hog restarts))" restarted
# The reason, as the core gave it (memory.events oom_kill read at the exit): on D-Bus and in the
# daemon's journal entry of the exit.
hog_reason() {
    as_user busctl --user get-property io.ringmaster.Ringmaster1 /io/ringmaster/Ringmaster1/service/limits_2dhog \
        io.ringmaster.Ringmaster1.Service LastExitReason
}
check "LastExitReason of the OOM-killed service is oom-kill ($(hog_reason 2>&1))" test "$(hog_reason 2>&1)" = 's "oom-kill"'
oom_journal() {
    journalctl --no-pager -o json RINGMASTER_SERVICE=limits-hog RINGMASTER_EVENT=exited | grep -q '"RINGMASTER_EXIT_REASON":"oom-kill"'
}
wait_for 10 oom_journal
check "the journal's exited entry of the OOM kill has RINGMASTER_EXIT_REASON=oom-kill" oom_journal
as_user ringctl stop limits-hog > /dev/null 2>&1

# --- pids-max ------------------------------------------------------------------------------
bomb=$services/limits-bomb/0
check "pids-max = 64 is in the instance's pids.max" test "$(cat "$bomb/pids.max" 2>&1)" = 64
at_limit() { [[ $(cat "$bomb/pids.current" 2>/dev/null) -ge 64 ]]; }
# (A fork and exec take long in an emulated guest: ~1 s per process seen under TCG.)
wait_for 90 at_limit
check "the fork bomb reaches the limit (pids.current $(cat "$bomb/pids.current" 2>&1))" at_limit
refused_forks() { [[ $(value "$bomb/pids.events" max) -gt 0 ]]; }
wait_for 20 refused_forks
highest=0 lowest=1000000
for _ in $(seq 20); do
    n=$(cat "$bomb/pids.current" 2>/dev/null || echo 0)
    ((n > highest)) && highest=$n
    ((n < lowest)) && lowest=$n
    sleep 0.1
done
check "the fork bomb is held at 64 (pids.current over 2 s: $lowest to $highest)" \
    test "$lowest" -eq 64 -a "$highest" -eq 64
check "pids.events counts the refused forks (max $(value "$bomb/pids.events" max))" refused_forks
check "the daemon is unaffected (same MainPID, answers within 5 s)" \
    as_user bash -c '[[ $(systemctl --user show -p MainPID --value ringmaster.service) == "$1" ]] && timeout 5 ringctl status >/dev/null' \
    _ "$daemon"
wait_for 10 running limits-calm
calm=$(field limits-calm pids)
check "another new service starts and runs beside the bomb (limits-calm pid $calm)" running limits-calm
others_during=$(as_user ringctl status --json | python3 -c '
import json, sys
print(sorted((s["name"], tuple(sorted(s["pids"]))) for s in json.load(sys.stdin) if not s["name"].startswith("limits-")))')
check "the user's other services kept their processes" test "$others_during" = "$others_before"
as_user ringctl stop limits-bomb > /dev/null 2>&1
bomb_gone() { [[ ! -e $bomb/cgroup.procs ]] || ! grep -q . "$bomb/cgroup.procs"; }
wait_for 15 bomb_gone
check "ringctl stop ends the whole fork bomb" bomb_gone

# --- cpu-max -------------------------------------------------------------------------------
spin=$services/limits-spin/0
check "cpu-max = 20% is in the instance's cpu.max" test "$(cat "$spin/cpu.max" 2>&1)" = "20000 100000"
wait_for 10 running limits-spin
sleep 1
u0=$(value "$spin/cpu.stat" usage_usec); t0=$(date +%s%N)
sleep 5
u1=$(value "$spin/cpu.stat" usage_usec); t1=$(date +%s%N)
u0=${u0:-0} u1=${u1:-0}
share=$(awk -v du="$((u1 - u0))" -v dt="$(((t1 - t0) / 1000))" 'BEGIN { printf "%.3f", du / dt }')
check "a busy loop gets 20% ± 5% of a CPU (measured $share over 5 s)" \
    awk -v s="$share" 'BEGIN { exit !(s >= 0.15 && s <= 0.25) }'

# --- memory-restart ------------------------------------------------------------------------
grow=$services/limits-grow
check "memory-high = 56M is in the memory-restart instances' memory.high" \
    test "$(cat "$grow/0/memory.high" 2>&1) $(cat "$grow/1/memory.high" 2>&1)" = "58720256 58720256"
both_replaced() { [[ $(field limits-grow restarts) -ge 2 && $(field limits-grow state) == running ]]; }
# (Under TCG python takes seconds to start, and memory.high throttles the growth above 56M.)
wait_for 150 both_replaced
check "both instances that stayed above memory-restart = 58M are replaced (restarts: $(field limits-grow restarts))" both_replaced
grow_reason() {
    as_user busctl --user get-property io.ringmaster.Ringmaster1 /io/ringmaster/Ringmaster1/service/limits_2dgrow \
        io.ringmaster.Ringmaster1.Service LastExitReason
}
check "LastExitReason is memory-restart ($(grow_reason 2>&1))" test "$(grow_reason 2>&1)" = 's "memory-restart"'
# From the journal, in order: each replacement is graceful (its stop signal, reason
# memory-restart), and the second starts only once the first one's new process is up.
grow_story() {
    journalctl --no-pager -o json RINGMASTER_SERVICE=limits-grow | python3 -c '
import json, sys
seen = []
for line in sys.stdin:
    e = json.loads(line)
    ev = e.get("RINGMASTER_EVENT")
    if ev == "memory-restart":
        seen.append(("restart", e["MESSAGE"].split(":")[0].rsplit(".", 1)[1]))
    elif ev == "exited" and e.get("RINGMASTER_EXIT_REASON") == "memory-restart":
        seen.append(("exited", e["RINGMASTER_INSTANCE"], e.get("RINGMASTER_EXIT_CODE"), e.get("RINGMASTER_EXIT_STATUS")))
    elif ev == "spawned":
        seen.append(("spawned", e["RINGMASTER_INSTANCE"]))
print(seen)
restarts = [i for i, s in enumerate(seen) if s[0] == "restart"]
assert len(restarts) == 2, "two memory restarts"
first, second = seen[restarts[0]][1], seen[restarts[1]][1]
assert {first, second} == {"0", "1"}, "one of each instance"
between = seen[restarts[0]:restarts[1]]
assert ("exited", first, "killed", "15") in between, "the first goes by SIGTERM, reason memory-restart, before the second starts"
assert ("spawned", first) in between, "its replacement is up before the second goes"
assert ("exited", second, "killed", "15") in seen[restarts[1]:], "the second goes by SIGTERM, reason memory-restart"
'
}
wait_for 20 grow_story
check "the memory restarts are graceful and rolling, one instance at a time ($(grow_story 2>&1 | tail -c 400))" grow_story
as_user ringctl stop limits-grow > /dev/null 2>&1
rm -f /tmp/limits-grow-0 /tmp/limits-grow-1

# --- clean up -------------------------------------------------------------------------------
rm -f "$dropin"
check "ringctl reload removes the limit services" as_user ringctl reload
gone() { ! as_user ringctl status --json | grep -q '"limits-'; }
wait_for 20 gone
check "the limit services are gone" gone
finish
