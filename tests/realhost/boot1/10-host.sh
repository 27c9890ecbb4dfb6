# The host itself: what the private test session cannot give (docs/testing.md).
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"

check "systemd is PID 1" test "$(cat /proc/1/comm)" = systemd
expect_eq "the boot finished cleanly (systemctl is-system-running)" \
    "$(systemctl is-system-running 2>&1)" running
expect_eq "pure cgroup v2: /sys/fs/cgroup is cgroup2" "$(stat -fc %T /sys/fs/cgroup)" cgroup2fs
check "no cgroup v1 hierarchy mounted" bash -c '! awk '"'"'$3 == "cgroup" { found = 1 } END { exit !found }'"'"' /proc/mounts'
# Lingering: alice's manager runs from boot, without anyone logging in.
wait_for 60 systemctl is-active --quiet user@1000.service
check "alice lingers: user@1000.service is active with no session" \
    bash -c 'systemctl is-active --quiet user@1000.service && test -z "$(loginctl list-sessions --no-legend)"'
expect_eq "loginctl: alice Linger=yes" "$(loginctl show-user alice -p Linger --value 2>&1)" yes
controllers=$(cat /sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers 2>&1)
check "user@1000.service is delegated memory, pids and cpu ($controllers)" \
    bash -c 'for c in memory pids cpu; do grep -qw $c <<<"$1" || exit 1; done' _ "$controllers"
check "alice's user bus is up at $ALICE_RUNTIME/bus" test -S "$ALICE_RUNTIME/bus"
expect_eq "alice's runtime directory is hers alone (0700)" "$(stat -c '%a %U' $ALICE_RUNTIME)" "700 alice"
check "mallory has no user manager" bash -c '! systemctl is-active --quiet user@1001.service'
