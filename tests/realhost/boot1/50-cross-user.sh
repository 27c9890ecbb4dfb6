# mallory (uid 1001, a second real user on the same host) against alice's stack: every
# attempt refused, and nothing of alice's changed (daemon pid, states, pids, restarts).
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"
RINGCTL=$SHARE/bin/ringctl   # the same static binary alice has in ~/.local/bin

check "alice: ringctl start --no-block pending" as_alice ringctl start --no-block pending   # (it never says READY=1)
pending_started() { [[ $(service_field pending state) == starting && -n $(service_pids pending) ]]; }
wait_for 30 pending_started
check "pending runs and waits for READY=1 (starting)" pending_started

before=$(snapshot)
echo "$before" | sed 's/^/    before: /'
check "snapshot of alice's stack taken (daemon pid and services)" \
    bash -c '[[ $1 == ringmasterd=[1-9]* && $1 == *"web running 2"* ]]' _ "$before"

# D-Bus: alice's user bus lives in her 0700 runtime directory.
refused "mallory: connect() to alice's user bus $ALICE_RUNTIME/bus is refused" \
    as_mallory $SOCK connect-unix $ALICE_RUNTIME/bus
export MALLORY_ENV="DBUS_SESSION_BUS_ADDRESS=$ALICE_BUS XDG_RUNTIME_DIR=$ALICE_RUNTIME"
refused "mallory: ringctl status on alice's bus is refused" as_mallory $RINGCTL status
refused "mallory: ringctl stop web on alice's bus is refused" as_mallory $RINGCTL stop web
refused "mallory: ringctl kill web on alice's bus is refused" as_mallory $RINGCTL kill web
refused "mallory: busctl call StopService(web) on alice's bus is refused" \
    as_mallory busctl --address="$ALICE_BUS" call io.ringmaster.Ringmaster1 /io/ringmaster/Ringmaster1 \
        io.ringmaster.Ringmaster1.Manager StopService s web
refused "mallory: systemctl --user stop ringmaster on alice's manager is refused" \
    as_mallory systemctl --user stop ringmaster.service
unset MALLORY_ENV

# Sockets: the listening socket and ringmasterd's own unix socket.
worker=$(service_pids web | cut -d' ' -f1)
check "alice's web worker pid found ($worker)" test -n "$worker"
refused "mallory: listing /proc/$worker/fd of alice's worker is refused" as_mallory ls /proc/$worker/fd
refused "mallory: opening /proc/$worker/fd/3 (alice's listening socket) is refused" \
    as_mallory $SOCK open /proc/$worker/fd/3
refused "mallory: pidfd_getfd() of alice's listening socket is refused" as_mallory $SOCK pidfd-getfd $worker 3
refused "mallory: binding 127.0.0.1:8080 beside alice's socket (SO_REUSEPORT) is refused" \
    as_mallory $SOCK bind-tcp-reuseport 127.0.0.1 8080
check "ringmasterd bound alice's unix socket /run/user/1000/realhost-private.sock" \
    test -S /run/user/1000/realhost-private.sock
refused "mallory: connect() to alice's unix socket is refused" \
    as_mallory $SOCK connect-unix /run/user/1000/realhost-private.sock

# The journal: alice's entries are in user-1000.journal, which mallory cannot open.
probe=$(cat "$REALHOST_OUT/probe" 2>/dev/null)
check "the probe request of 30-stack.sh is known" test -n "$probe"
mallory_web=$(as_mallory journalctl -t web --no-pager 2>&1)
check "mallory: journalctl -t web shows none of alice's request lines" \
    bash -c '[[ -n $1 && $2 != *"$1"* ]]' _ "$probe" "$mallory_web"
mallory_uid=$(as_mallory journalctl _UID=1000 --no-pager 2>&1)
check "mallory: journalctl _UID=1000 shows none of alice's entries" \
    bash -c '[[ $1 != *"started (pid "* && $1 != *"$2"* ]]' _ "$mallory_uid" "$probe"
userjournal=$(ls /var/log/journal/*/user-1000.journal 2>/dev/null | head -n 1)
check "alice's journal file exists ($userjournal)" test -f "$userjournal"
refused "mallory: opening alice's journal file is refused" as_mallory $SOCK open "$userjournal"

after=$(snapshot)
expect_eq "nothing of alice's changed after the bus, socket and journal attempts" "$after" "$before"

# Notify sockets: NOTIFY_SOCKET of alice's instances, read as root from their environment.
notify_of() { tr '\0' '\n' < /proc/$1/environ | sed -n 's/^NOTIFY_SOCKET=//p'; }
pending=$(service_pids pending)
pending_notify=$(notify_of "$pending")
echo "    pending pid $pending: NOTIFY_SOCKET=$pending_notify"
check "pending's NOTIFY_SOCKET read from /proc/$pending/environ" test -n "$pending_notify"
sent=$(as_mallory $SOCK send-dgram "$pending_notify" $'READY=1\nSTATUS=mallory-was-here' 2>&1)
echo "    mallory's READY=1: $sent"
# A datagram after mallory's that ringmasterd accepts: from root, in pending's own cgroup
# (a message counts only from a process of the instance), staying alive until it is read.
# Once it shows, every datagram before it on that socket has been handled too.
barrier=root-barrier-$RANDOM
pending_cgroup=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/$pending/cgroup)
( echo $BASHPID > "$pending_cgroup/cgroup.procs" && exec $SOCK send-dgram-stay "$pending_notify" "STATUS=$barrier" 30 ) &
barrier_sender=$!
barrier_seen() { [[ $(service_field pending status_text) == "$barrier" ]]; }
wait_for 10 barrier_seen
kill "$barrier_sender" 2>/dev/null; wait "$barrier_sender" 2>/dev/null
expect_eq "root's STATUS= from pending's cgroup reached ringmasterd (the barrier)" "$(service_field pending status_text)" "$barrier"
expect_eq "mallory's READY=1 did not make pending ready (still starting)" "$(service_field pending state)" starting
refused "mallory: binding pending's NOTIFY_SOCKET address is refused" as_mallory $SOCK bind-dgram "$pending_notify"

# Squatting: mallory keeps trying to take a web instance's notify address while alice
# restarts web; the new instances must become ready, and mallory must receive nothing.
old_pids=$(service_pids web)
web_notify=$(notify_of "$worker")
echo "    web pid $worker: NOTIFY_SOCKET=$web_notify"
squat_out=$(mktemp)
as_mallory $SOCK squat "$web_notify" 8 > "$squat_out" 2>&1 &
squatter=$!
check "alice: ringctl restart web" as_alice ringctl restart web
restarted() {
    local now; now=$(service_pids web)
    [[ $(service_field web state) == running && $(wc -w <<<"$now") == 2 ]] || return 1
    for p in $now; do [[ " $old_pids " != *" $p "* ]] || return 1; done
}
wait_for 30 restarted
check "web restarted under mallory's squatting: 2 new instances ready" restarted
wait "$squatter"
squat=$(cat "$squat_out"); rm -f "$squat_out"
echo "    mallory's squatter: $squat"
check "mallory's squatter on the old notify address received no datagram" \
    bash -c '[[ $1 == *" datagrams=0"* ]]' _ "$squat"
check "alice's stack still answers HTTP" $SOCK http 8080 after-cross-user

# pending never becomes ready: stopped here, since ringmasterd answers a reload (READY=1
# after RELOADING=1) only once every wanted service has settled.
check "alice: ringctl stop pending" as_alice ringctl stop pending
pending_stopped() { [[ $(service_field pending state) == stopped ]]; }
wait_for 30 pending_stopped
check "pending stopped" pending_stopped
