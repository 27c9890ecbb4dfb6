# After the reboot: alice never logs in, yet lingering brings her user manager, and with it
# ringmaster.socket and ringmaster.service (enabled in boot 1), back with what she left.
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"

wait_for 60 systemctl is-active --quiet user@1000.service
check "after the reboot user@1000.service is active, with no session" \
    bash -c 'systemctl is-active --quiet user@1000.service && test -z "$(loginctl list-sessions --no-legend)"'
wait_for 60 bash -c "runuser -u alice -- env XDG_RUNTIME_DIR=$ALICE_RUNTIME systemctl --user is-active --quiet ringmaster.service"
expect_eq "ringmaster.service came back by itself" "$(as_alice systemctl --user is-active ringmaster.service)" active
expect_eq "ringmaster.socket came back by itself" "$(as_alice systemctl --user is-active ringmaster.socket)" active
scaled() { [[ $(service_field web state) == running && $(service_field web running) == 3 ]]; }
wait_for 30 scaled
check "web runs 3 instances, as reloaded before the reboot" scaled
check "a web worker answers HTTP" $SOCK http 8080 after-reboot
expect_eq "the boot before is in the journal (persistent)" "$(journalctl --list-boots --no-pager | grep -cE '^ *-?[0-9]+ ')" 2
probe=$(cat /mnt/results/boot1/probe 2>/dev/null)
check "boot 1's probe request is known ($probe)" test -n "$probe"
check "alice: journalctl -t web -b -1 shows boot 1's request line" \
    bash -c 'runuser -u alice -- journalctl -t web -b -1 --no-pager | grep -q "GET /$1"' _ "$probe"
check "alice: journalctl --user -u ringmaster -b -1 shows boot 1's ringmasterd" \
    bash -c 'runuser -u alice -- journalctl --user -u ringmaster -b -1 --no-pager | grep -q "started (pid "'
expect_eq "ringctl status as alice exits 0" "$(as_alice ringctl status >/dev/null 2>&1; echo $?)" 0
