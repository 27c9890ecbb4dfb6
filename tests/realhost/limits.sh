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
#   - memory-restart = "58M" (memory-high = "56M"): three HTTP workers on one shared socket,
#     ready (READY=1) and serving first, then growing past it and staying there, are replaced
#     gracefully (SIGTERM, status 0, reason memory-restart), one at a time (the next once the
#     previous one's new process is ready), with new pids, the service running throughout,
#     while a client's requests on the socket, before, during and after, all are answered.
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

[sockets.limits-http]
listen = "127.0.0.1:18480"

[services.limits-grow]
# HTTP workers on one shared socket (limits-grow.py, written below): ready (READY=1) and
# serving first; then the first process of each instance grows past memory-restart and holds
# it. Started by the memory-restart section, once the client is about to run.
instances = 3
sockets = ["limits-http"]
ready = "notify"
autostart = false
command = ["python3", "limits-grow.py"]
memory-high = "56M"
memory-restart = "58M"
# httpworker.py ends by itself on SIGTERM once its request in hand is answered (status 0); a
# SIGKILL after stop-timeout would not be graceful: room for the emulated guest.
stop-timeout = "30s"
TOML
chown "$USER_NAME:$USER_NAME" "$dropin"
# The memory-restart worker: contrib/examples/httpworker.py (installed beside the config by
# the install step) with, in the first process of each instance only, a second process that
# grows the instance's cgroup memory.current past memory-restart once the server has sent
# READY=1 and answered GROW_AFTER requests, then holds it. (Growing before READY=1 is throttled
# above memory-high before the instance is ready, and memory-restart only watches ready
# instances. Growing in a thread of the server is throttled holding Python's lock: the server
# then crawls, and misses its stop-timeout.) The grower dies with the server (PR_SET_PDEATHSIG).
# The processes that replace them see their marker and only serve.
worker=$home/.config/ringmaster/limits-grow.py
cat > "$worker" <<'PY'
import ctypes, os, signal, time
import httpworker

GROW_AFTER = 5
TARGET = 59 << 20
marker = "/tmp/limits-grow-" + os.environ["RINGMASTER_INSTANCE"]
grows = not os.path.exists(marker)
go = None
if grows:
    open(marker, "w").close()
    r, go = os.pipe()
    server = os.getpid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)    # PR_SET_PDEATHSIG
        if os.getppid() != server:
            os._exit(0)
        os.closerange(3, r)
        os.closerange(r + 1, 4096)
        if not os.read(r, 1):                          # the server ended before its word
            os._exit(0)
        cg = "/sys/fs/cgroup" + open("/proc/self/cgroup").read().strip().split("::", 1)[1]
        hold = []
        said = False
        print("limits-grow pid={} growing".format(os.getpid()), flush=True)
        while int(open(cg + "/memory.current").read()) < TARGET and len(hold) < 512:
            hold.append(b"x" * (256 << 10))
            if not said and int(open(cg + "/memory.current").read()) > 58 << 20:
                print("limits-grow pid={} memory.current past memory-restart (58M)".format(os.getpid()), flush=True)
                said = True
        print("limits-grow pid={} memory.current at {}: holding it".format(
            os.getpid(), open(cg + "/memory.current").read().strip()), flush=True)
        while True:
            time.sleep(3600)
    os.close(r)
served = 0
answer = httpworker.Handler.do_GET


def do_GET(self):
    global served, go
    answer(self)
    served += 1
    if go is not None and served == GROW_AFTER:
        os.write(go, b"g")
        os.close(go)
        go = None


httpworker.Handler.do_GET = do_GET
httpworker.main()
PY
chown "$USER_NAME:$USER_NAME" "$worker"
rm -f /tmp/limits-grow-0 /tmp/limits-grow-1 /tmp/limits-grow-2
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
# (The busy loop is done: its 20 % of a CPU would only slow the emulated guest down.)
as_user ringctl stop limits-spin > /dev/null 2>&1
grow=$services/limits-grow
# One `ringctl status --json` per look: "state running restarts pid pid pid".
grow_now() {
    as_user ringctl status --json limits-grow | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
print(s["state"], s["running"], s["restarts"], *sorted(s["pids"]))'
}
all_ready() { read -r state ready _ <<<"$(grow_now)"; [[ $state == running && $ready == 3 ]]; }
check "ringctl start limits-grow (3 HTTP workers on one shared socket, ready = notify)" as_user ringctl start limits-grow
wait_for 60 all_ready
check "the 3 workers are ready, none replaced yet ($(grow_now 2>&1))" \
    bash -c '[[ $(cut -d" " -f1-3 <<<"$1") == "running 3 0" ]]' _ "$(grow_now 2>&1)"
check "memory-high = 56M is in the memory-restart instances' memory.high" \
    test "$(cat "$grow/0/memory.high" "$grow/1/memory.high" "$grow/2/memory.high" 2>&1 | tr '\n' ' ')" = "58720256 58720256 58720256 "
old_pids=$(grow_now | cut -d' ' -f4-)

# A client on the shared socket for the whole time, from before the workers grow (they grow
# only once they have answered some of its requests) to after the last replacement is ready:
# one request after another (HTTP/1.0, a new connection each), loopback only, at most 20,000
# requests and 400 s. Every request that is refused, cut or not answered "200" within 30 s is
# a failure.
rm -f /tmp/limits-client.stop /tmp/limits-client.json
python3 - > /tmp/limits-client.log 2>&1 <<'PY' &
import json, os, socket, time
ok = failed = 0
errors, by_pid = [], {}
first = last = None
start = time.time()
told = None     # /tmp/limits-client.stop: the pids to hear from before stopping (at most 20 s more)
while ok + failed < 20000 and time.time() - start < 400:
    if told is None and os.path.exists("/tmp/limits-client.stop"):
        told = (time.time(), open("/tmp/limits-client.stop").read().split())
    if told and (all(p in by_pid and by_pid[p][2] > told[0] for p in told[1]) or time.time() - told[0] > 20):
        break
    try:
        with socket.create_connection(("127.0.0.1", 18480), timeout=30) as s:
            s.sendall(b"GET /limits-client HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        if not reply.startswith(b"HTTP/1.0 200"):
            raise OSError("reply %r" % reply[:60])
        now = time.time()
        pid = reply.split(b"pid=", 1)[1].split()[0].decode()
        seen = by_pid.setdefault(pid, [0, now, now])
        seen[0] += 1
        seen[2] = now
        ok += 1
        first = first or now
        last = now
    except (OSError, IndexError) as e:
        failed += 1
        errors.append("%.3f %s" % (time.time(), e))
    time.sleep(0.01)
json.dump({"ok": ok, "failed": failed, "errors": errors[:5], "first": first, "last": last,
           "seconds": time.time() - start, "by_pid": by_pid}, open("/tmp/limits-client.json", "w"))
PY
client=$!

# Until the 3 have been replaced and the 3 new processes are ready, the service's state at
# every look (the others serve meanwhile: it must stay running).
states=" "
replaced() {
    local now; now=$(grow_now) || return 1
    read -r state ready restarts _ <<<"$now"
    [[ $states == *" $state "* ]] || states="$states$state "
    [[ $restarts -ge 3 && $ready == 3 && $state == running ]]
}
deadline=$((SECONDS + 300))
until replaced; do ((SECONDS >= deadline)) && break; sleep 0.2; done
after=$(grow_now)
new_pids=$(cut -d' ' -f4- <<<"$after")
check "each of the 3 workers that stayed above memory-restart = 58M is replaced once, all ready again ($after)" \
    bash -c '[[ $(cut -d" " -f1-3 <<<"$1") == "running 3 3" ]]' _ "$after"
check "the service stayed running throughout (states seen:$states)" test "$states" = " running "
check "3 new processes ($old_pids -> $new_pids)" python3 -c '
import sys
old, new = set(sys.argv[1].split()), set(sys.argv[2].split())
sys.exit(not (len(old) == 3 and len(new) == 3 and not old & new))' "$old_pids" "$new_pids"
grow_reason() {
    as_user busctl --user get-property io.ringmaster.Ringmaster1 /io/ringmaster/Ringmaster1/service/limits_2dgrow \
        io.ringmaster.Ringmaster1.Service LastExitReason
}
check "LastExitReason is memory-restart ($(grow_reason 2>&1))" test "$(grow_reason 2>&1)" = 's "memory-restart"'

# The client stops once each new process has answered it (or 20 s later).
echo "$new_pids" > /tmp/limits-client.stop
wait "$client"
echo "    client: $(head -c 600 /tmp/limits-client.json) $(head -c 300 /tmp/limits-client.log)"

# From the journal, in order: each replacement is graceful (its stop signal, reason
# memory-restart, exit status 0), and the next starts only once the previous one's new
# process is ready; the seconds from each memory-restart to that instance's new process ready.
grow_story() {
    journalctl --no-pager -o json RINGMASTER_SERVICE=limits-grow | python3 -c '
import json, sys
seen = []
for line in sys.stdin:
    e = json.loads(line)
    ev, t = e.get("RINGMASTER_EVENT"), int(e["__REALTIME_TIMESTAMP"]) / 1e6
    if ev == "memory-restart":
        seen.append(("restart", e["MESSAGE"].split(":")[0].rsplit(".", 1)[1], "", t))
    elif ev == "exited" and e.get("RINGMASTER_EXIT_REASON") == "memory-restart":
        seen.append(("exited", e["RINGMASTER_INSTANCE"], e.get("RINGMASTER_EXIT_CODE") + " " + e.get("RINGMASTER_EXIT_STATUS", "?"), t))
    elif ev == "spawned":
        seen.append(("spawned", e["RINGMASTER_INSTANCE"], "", t))
    elif ev == "instance-state" and e["MESSAGE"].endswith("-> running"):
        seen.append(("ready", e["RINGMASTER_INSTANCE"], "", t))
restarts = [i for i, s in enumerate(seen) if s[0] == "restart"]
assert len(restarts) == 3, "three memory restarts: %r" % [s[:3] for s in seen][-20:]
order = [seen[i][1] for i in restarts]
assert sorted(order) == ["0", "1", "2"], "one of each instance: %r" % order
took = []
for k, i in enumerate(restarts):
    inst, t0 = seen[i][1], seen[i][3]
    upto = restarts[k + 1] if k + 1 < len(restarts) else len(seen)
    between = [(s[0], s[1], s[2]) for s in seen[i:upto]]
    assert ("exited", inst, "exited 0") in between, "%s goes on its stop signal, status 0, reason memory-restart, before the next: %r" % (inst, between)
    assert ("spawned", inst, "") in between, "%s: its new process is spawned before the next goes: %r" % (inst, between)
    ready = [s[3] for s in seen[i:upto] if s[:2] == ("ready", inst)]
    assert ready, "%s: its new process is ready before the next goes: %r" % (inst, between)
    took.append("%s %.1f s" % (inst, ready[0] - t0))
print("instances", " then ".join(order), "; memory-restart to new process ready:", ", ".join(took))
'
}
wait_for 20 grow_story
check "the memory restarts are graceful and rolling, one instance at a time ($(grow_story 2>&1 | tail -c 400))" grow_story
client_result() {
    python3 -c '
import json, sys
c = json.load(open("/tmp/limits-client.json"))
restarts = [float(t) for t in sys.argv[1].split()]
old, new = sys.argv[2].split(), sys.argv[3].split()
by = c["by_pid"]
print("%d answered, %d failed in %.0f s, per pid %s, errors %s" % (c["ok"], c["failed"], c["seconds"],
      {p: n for p, (n, _, _) in by.items()}, c["errors"]))
assert c["failed"] == 0, "failed requests"
assert len(restarts) == 3 and c["first"] < min(restarts) and c["last"] > max(restarts), "answers before the first and after the last memory restart"
assert all(p in by for p in old), "each old process answered (it was ready and served before it grew)"
assert all(p in by for p in new), "each new process answers"
' "$1" "$old_pids" "$new_pids"
}
restart_times=$(journalctl --no-pager -o json RINGMASTER_SERVICE=limits-grow RINGMASTER_EVENT=memory-restart | python3 -c '
import json, sys
print(" ".join(str(int(json.loads(l)["__REALTIME_TIMESTAMP"]) / 1e6) for l in sys.stdin))')
check "no failed request on the shared socket before, during and after the 3 memory restarts ($(client_result "$restart_times" 2>&1 | tail -c 400))" \
    client_result "$restart_times"
as_user ringctl stop limits-grow > /dev/null 2>&1
rm -f /tmp/limits-grow-0 /tmp/limits-grow-1 /tmp/limits-grow-2 /tmp/limits-client.stop "$worker"

# --- clean up -------------------------------------------------------------------------------
rm -f "$dropin"
check "ringctl reload removes the limit services" as_user ringctl reload
gone() { ! as_user ringctl status --json | grep -q '"limits-'; }
wait_for 20 gone
check "the limit services are gone" gone
finish
