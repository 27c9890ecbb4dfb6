# The stack as alice uses it: web workers answering on the socket systemd holds, ringctl
# status, and the logs in the journal where the README says they are.
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"

status=$(as_alice ringctl status 2>&1); rc=$?
echo "$status" | sed 's/^/    /'
expect_eq "ringctl status as alice exits 0" "$rc" 0
expect_eq "ringctl status: web is running 2 of 2" \
    "$(service_field web state) $(service_field web running)" "running 2"
expect_eq "ringctl status: pending is not autostarted (stopped)" "$(service_field pending state)" stopped

# The socket systemd listens on is the one the workers accept on.
probe=realhost-probe-$RANDOM$RANDOM
reply=$($SOCK http 8080 "$probe" 2>&1); rc=$?
echo "    $reply"
check "a web worker answers on 127.0.0.1:8080 (ringmaster.socket's ListenStream=)" \
    bash -c '[[ $1 == 0 && $2 == *service=web* ]]' _ "$rc" "$reply"
listener=$(ss -Hltnp 'sport = :8080' 2>&1)
echo "    $listener"
check "the listening socket on :8080 is held by systemd --user (alice's manager) itself" \
    grep -q '("systemd",' <<<"$listener"

# Logs: ringmasterd's in alice's journal under its unit, the workers' under their identifier.
first_pid=$(service_pids web | cut -d' ' -f1)
wait_for 10 bash -c "runuser -u alice -- journalctl --user -u ringmaster --no-pager | grep -q 'started (pid $first_pid)'"
journal_unit=$(as_alice journalctl --user -u ringmaster --no-pager 2>&1)
check "journalctl --user -u ringmaster as alice shows ringmasterd starting web (pid $first_pid)" \
    grep -q "started (pid $first_pid)" <<<"$journal_unit"
wait_for 10 bash -c "runuser -u alice -- journalctl -t web --no-pager | grep -q '$probe'"
journal_web=$(as_alice journalctl -t web --no-pager 2>&1)
check "journalctl -t web as alice shows the worker's request line for /$probe" \
    grep -q "GET /$probe" <<<"$journal_web"
echo "$probe" > "$REALHOST_OUT/probe"
