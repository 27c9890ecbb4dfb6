# cgroup v2 delegation: ringmasterd's unit is delegated (Delegate=yes), its cgroup has the
# memory, pids and cpu controllers available, and every instance runs in a sub-cgroup of it.
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"

expect_eq "ringmaster.service has Delegate=yes" \
    "$(as_alice systemctl --user show -p Delegate --value ringmaster.service)" yes
cg=$(as_alice systemctl --user show -p ControlGroup --value ringmaster.service)
echo "    ControlGroup=$cg"
dir=/sys/fs/cgroup$cg
controllers=$(cat "$dir/cgroup.controllers" 2>&1)
check "the daemon's cgroup has memory, pids and cpu available ($controllers)" \
    bash -c 'for c in memory pids cpu; do grep -qw $c <<<"$1" || exit 1; done' _ "$controllers"
owner=$(stat -c %U "$dir" 2>&1)
expect_eq "the daemon's cgroup directory is alice's to manage" "$owner" alice

# Each web instance in its own sub-cgroup under the daemon's cgroup.
seen=""
for pid in $(service_pids web); do
    rel=$(sed -n 's/^0:://p' /proc/$pid/cgroup)
    echo "    web pid $pid: $rel"
    check "web pid $pid runs in a sub-cgroup of $cg" bash -c '[[ $1 == "$2"/?* ]]' _ "$rel" "$cg"
    check "web pid $pid's sub-cgroup lists it in cgroup.procs" grep -qx "$pid" "/sys/fs/cgroup$rel/cgroup.procs"
    ic=$(cat "/sys/fs/cgroup$rel/cgroup.controllers" 2>&1)
    check "web pid $pid's cgroup has memory, pids and cpu enabled down to it ($ic)" \
        bash -c 'for c in memory pids cpu; do grep -qw $c <<<"$1" || exit 1; done' _ "$ic"
    seen+="$rel"$'\n'
done
expect_eq "the two web instances have two distinct cgroups" "$(sort -u <<<"${seen%$'\n'}" | grep -c .)" 2
# ringmasterd itself is not in the delegated root with the instances (cgroup v2's
# no-internal-processes rule would forbid enabling controllers for them).
daemon=$(main_pid)
daemon_cg=$(sed -n 's/^0:://p' /proc/$daemon/cgroup)
echo "    ringmasterd pid $daemon: $daemon_cg"
check "ringmasterd runs in a leaf of its own cgroup, not in the delegated root" \
    bash -c '[[ $1 == "$2"/?* ]]' _ "$daemon_cg" "$cg"
