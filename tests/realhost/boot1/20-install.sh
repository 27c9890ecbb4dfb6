# The README's install path, as alice: `make install-user`, then
# `systemctl --user enable --now ringmaster` (with the socket unit, docs/install.md).
source "${REALHOST_SHARE:-/mnt/share}/tests/realhost/lib.sh"

# The project's own Makefile and mk/install.mk, run by alice in a copy of the source tree.
# The guest has no Swift toolchain: SWIFT is a stand-in that answers only
# `swift build … --show-bin-path` with where scripts/realhost put the release binaries.
rm -rf /home/alice/src
cp -r "$SHARE/src" /home/alice/src
chown -R alice:alice /home/alice/src
out=$(as_alice make -C /home/alice/src install-user SWIFT="$SHARE/tools/swift" 2>&1); rc=$?
echo "$out" | sed 's/^/    /'
expect_eq "make install-user as alice exits 0" "$rc" 0
for f in .local/bin/ringmasterd .local/bin/ringctl; do
    check "installed ~/$f (executable, alice's)" bash -c 'test -x "$1" && test "$(stat -c %U "$1")" = alice' _ /home/alice/$f
done
check "installed ~/.config/systemd/user/ringmaster.{service,socket}" \
    test -f /home/alice/.config/systemd/user/ringmaster.service -a -f /home/alice/.config/systemd/user/ringmaster.socket
expect_eq "install-user rewrote ExecStart= to ~/.local/bin/ringmasterd" \
    "$(grep '^ExecStart=' /home/alice/.config/systemd/user/ringmaster.service)" \
    "ExecStart=/home/alice/.local/bin/ringmasterd"

# alice's stack: web workers on the socket systemd holds (ringmaster.socket, FileDescriptorName=http),
# a unix socket ringmasterd binds itself in her runtime directory, and a service that never
# says READY=1 (started by hand in 50-cross-user.sh, where mallory tries to make it ready: not
# autostarted, since ringmasterd's own READY=1 waits for every autostart service).
install -d -o alice -g alice /home/alice/.config/ringmaster
install -o alice -g alice -m 644 "$SHARE/src/contrib/examples/httpworker.py" /home/alice/.config/ringmaster/httpworker.py
cat > /home/alice/.config/ringmaster/ringmaster.toml <<'TOML'
[sockets.http]
systemd = "http"

[sockets.private]
listen = "/run/user/1000/realhost-private.sock"

[services.web]
command = ["python3", "httpworker.py"]
instances = 2
sockets = ["http"]
ready = "notify"
environment = { PYTHONUNBUFFERED = "1" }
stop-timeout = "5s"

[services.pending]
command = ["sleep", "100000"]
ready = "notify"
autostart = false
sockets = ["private"]
stop-timeout = "2s"
TOML
chown alice:alice /home/alice/.config/ringmaster/ringmaster.toml

check "systemctl --user daemon-reload" as_alice systemctl --user daemon-reload
check "systemctl --user enable --now ringmaster.socket" as_alice systemctl --user enable --now ringmaster.socket
check "systemctl --user enable --now ringmaster (returns once READY=1)" as_alice systemctl --user enable --now ringmaster
expect_eq "ringmaster.service is active" "$(as_alice systemctl --user is-active ringmaster.service)" active
expect_eq "ringmaster.socket is active" "$(as_alice systemctl --user is-active ringmaster.socket)" active
expect_eq "both are enabled" "$(as_alice systemctl --user is-enabled ringmaster.service ringmaster.socket | tr '\n' ' ')" "enabled enabled "
