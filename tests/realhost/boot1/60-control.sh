# systemctl --user reload / restart / stop, as alice, with their effects; then socket
# activation: a connection to the stopped stack's socket starts it again. The stack is left
# running (enabled, web scaled to 3) for the reboot (boot2/).
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"
config=/home/alice/.config/ringmaster/ringmaster.toml
none_alive() { local p; for p in "$@"; do [[ -d /proc/$p ]] && return 1; done; return 0; }

main1=$(main_pid); web1=$(service_pids web); pending1=$(service_pids pending)
echo "    before: ringmasterd $main1, web $web1, pending $pending1"

# reload: an instances-only change scales web, nothing else is touched.
sed -i 's/^instances = 2$/instances = 3/' "$config"
check "the config now asks for 3 web instances" grep -qx 'instances = 3' "$config"
check "systemctl --user reload ringmaster" as_alice systemctl --user reload ringmaster
scaled() { [[ $(service_field web state) == running && $(service_field web running) == 3 ]]; }
wait_for 30 scaled
check "reload: web scaled to 3 running" scaled
expect_eq "reload: the same ringmasterd (MainPID)" "$(main_pid)" "$main1"
web2=$(service_pids web)
check "reload: web's 2 instances from before still run (scaled, not restarted)" \
    bash -c 'for p in $1; do [[ " $2 " == *" $p "* ]] || exit 1; done' _ "$web1" "$web2"
expect_eq "reload: pending untouched (stopped, no pid)" "$(service_field pending state) [$(service_pids pending)]" "stopped [$pending1]"

# restart: a new ringmasterd, every instance new.
check "systemctl --user restart ringmaster" as_alice systemctl --user restart ringmaster
main2=$(main_pid)
check "restart: a new ringmasterd (MainPID $main1 -> $main2)" bash -c '[[ $1 -gt 0 && $1 != "$2" ]]' _ "$main2" "$main1"
check "restart: none of the old web workers is left" none_alive $web2
wait_for 30 scaled
check "restart: web back with 3 running" scaled
check "restart: the new workers answer HTTP" $SOCK http 8080 after-restart

# stop: everything of ringmasterd's goes; systemd keeps listening on the socket.
web3=$(service_pids web)
cg=$(as_alice systemctl --user show -p ControlGroup --value ringmaster.service)
check "systemctl --user stop ringmaster" as_alice systemctl --user stop ringmaster.service
expect_eq "stop: ringmaster.service is inactive" "$(as_alice systemctl --user is-active ringmaster.service)" inactive
check "stop: no web worker is left" none_alive $web3
check "stop: nothing left in the daemon's cgroup $cg" \
    bash -c '[[ ! -d /sys/fs/cgroup$1 ]] || [[ -z $(find /sys/fs/cgroup$1 -name cgroup.procs -exec cat {} +) ]]' _ "$cg"
expect_eq "stop: ringmaster.socket still listens" "$(as_alice systemctl --user is-active ringmaster.socket)" active

# socket activation: the first connection starts ringmaster.service, and a worker answers it.
reply=$($SOCK http 8080 activation 2>&1); rc=$?
echo "    $reply"
check "socket activation: a connection to the stopped stack is answered by a web worker" \
    bash -c '[[ $1 == 0 && $2 == *service=web* ]]' _ "$rc" "$reply"
wait_for 60 as_alice systemctl --user is-active --quiet ringmaster.service
expect_eq "socket activation: ringmaster.service is active again" \
    "$(as_alice systemctl --user is-active ringmaster.service)" active
wait_for 30 scaled
check "socket activation: web running 3 again" scaled
