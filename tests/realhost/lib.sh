# Sourced by every tests/realhost/boot*/NN-*.sh (run by guest-run inside the VM, as root).
#
# A check is one line in $REALHOST_OUT/checks.txt: "ok NAME" or "FAIL NAME: why". Only the
# functions below write it, and each check is one call. Nothing here exits: a test file goes
# on after a failed check (later checks may then fail too, each saying why).

: "${REALHOST_OUT:?run by tests/realhost/guest-run}"
SHARE=${REALHOST_SHARE:-/mnt/share}
HERE=$SHARE/tests/realhost
SOCK="python3 $HERE/sock.py"
ALICE_UID=1000
MALLORY_UID=1001
ALICE_RUNTIME=/run/user/$ALICE_UID
ALICE_BUS=unix:path=$ALICE_RUNTIME/bus
CURRENT_FILE=${BASH_SOURCE[1]##*/}

_record() {  # _record ok|FAIL NAME [WHY]
    local line="$1 $2"
    [[ $1 == FAIL ]] && line+=": $(printf '%s' "$3" | tr '\n' ' ' | cut -c1-600)"
    printf '%s\n' "$line" >> "$REALHOST_OUT/checks.txt"
    printf '%s\n' "$line"
}
pass() { _record ok "$1"; }
fail() { _record FAIL "$1" "$2"; }

# Every command a check runs is bounded: a hang is a failed check, not a stuck suite.
CMD_TIMEOUT=${REALHOST_CMD_TIMEOUT:-240}
bounded() {  # bounded CMD...: a shell function runs as is (its own commands are bounded)
    if [[ $(type -t "$1") == function ]]; then "$@"; else timeout -k 5 "$CMD_TIMEOUT" "$@"; fi
}

# check NAME CMD...: passes when CMD exits 0; its output is the reason otherwise.
check() {
    local name=$1 out rc; shift
    out=$(bounded "$@" 2>&1); rc=$?
    if [[ $rc -eq 0 ]]; then pass "$name"; else fail "$name" "exit $rc: $out"; fi
    return $rc
}

# refused NAME CMD...: passes when CMD exits non-zero (the attempt was refused), but not
# when it was cut by the timeout (exit 124: nothing was refused then).
refused() {
    local name=$1 out rc; shift
    out=$(bounded "$@" 2>&1); rc=$?
    if [[ $rc -eq 124 ]]; then fail "$name" "timed out after ${CMD_TIMEOUT} s: $out"; return 1; fi
    if [[ $rc -ne 0 ]]; then pass "$name"; echo "    ($out)" | head -c 300; echo
    else fail "$name" "it succeeded: $out"; fi
    [[ $rc -ne 0 ]]
}

# expect_eq NAME GOT WANT
expect_eq() {
    if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1" "got [$2], want [$3]"; fi
    [[ "$2" == "$3" ]]
}

# wait_for SECONDS CMD...: until CMD succeeds (every 0.1 s), at most SECONDS. Status of the last try.
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS >= deadline)) && return 1
        sleep 0.1
    done
}

# The environment a user's shell would have (no login session: alice lingers).
as_alice() {
    timeout -k 5 "$CMD_TIMEOUT" runuser -u alice -- env -i HOME=/home/alice USER=alice LOGNAME=alice SHELL=/bin/bash \
        PATH=/home/alice/.local/bin:/usr/local/bin:/usr/bin:/bin \
        XDG_RUNTIME_DIR=$ALICE_RUNTIME DBUS_SESSION_BUS_ADDRESS=$ALICE_BUS "$@"
}
# mallory has no session and no user manager; MALLORY_ENV adds variables (e.g. alice's bus).
as_mallory() {
    timeout -k 5 "$CMD_TIMEOUT" runuser -u mallory -- env -i HOME=/home/mallory USER=mallory LOGNAME=mallory SHELL=/bin/bash \
        PATH=/usr/local/bin:/usr/bin:/bin ${MALLORY_ENV:-} "$@"
}

# What must not change under an attack: the daemon's pid, and per service its state, pids,
# restarts and status text (not uptime, CPU or memory).
snapshot() {
    local main
    main=$(main_pid)
    printf 'ringmasterd=%s\n' "$main"
    as_alice ringctl status --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    print(s["name"], s["state"], s["running"], sorted(s["pids"]), s["restarts"], s["status_text"])'
}

# Pids of a service's running instances (as alice sees them).
service_pids() {
    as_alice ringctl status --json "$1" | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    print(" ".join(str(p) for p in s["pids"]))'
}
service_field() {  # service_field NAME FIELD
    as_alice ringctl status --json "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]
v = s[sys.argv[1]]
print("" if v is None else v)' "$2"
}
main_pid() { as_alice systemctl --user show -p MainPID --value ringmaster.service; }
