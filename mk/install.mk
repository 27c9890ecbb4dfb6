# Installing Ringmaster (included by the Makefile). Build first (`make build`, as yourself),
# then one of:
#
#   make install-user      per-user: binaries to ~/.local/bin, units to ~/.config/systemd/user
#   sudo make install      system-wide: binaries to $(BINDIR), user units to $(USERUNITDIR),
#                          where every user's systemd finds them
#   make uninstall-user / sudo make uninstall
#
# then `systemctl --user enable --now ringmaster` (docs/install.md). Neither install target
# builds: `sudo make install` would otherwise run the build as root and leave root-owned
# files in your build directory. Both rewrite ExecStart= in ringmaster.service to where they
# put ringmasterd.
#
#   PREFIX=/usr/local       (system-wide)  BINDIR=$(PREFIX)/bin  USERUNITDIR=$(PREFIX)/lib/systemd/user
#   USER_BINDIR=~/.local/bin (per-user)    USER_UNITDIR=$(XDG_CONFIG_HOME)/systemd/user (~/.config/…)
#   DESTDIR=                staged installs (packaging): prepended to every path written,
#                           never to the ExecStart= path

PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
USERUNITDIR  ?= $(PREFIX)/lib/systemd/user
USER_BINDIR  ?= $(HOME)/.local/bin
USER_UNITDIR ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/systemd/user
DESTDIR      ?=
INSTALL      ?= install

INSTALL_PROGRAMS := ringmasterd ringctl
INSTALL_UNITS    := ringmaster.service ringmaster.socket

.PHONY: install uninstall install-user uninstall-user

# $(call ringmaster_install,BINDIR,UNITDIR)
define ringmaster_install
	@bin="$$($(SWIFT) build $(SWIFTPM) $(RELEASE) --show-bin-path)" && [ -n "$$bin" ] \
	    || { echo "make install: cannot tell where \`$(SWIFT) build $(SWIFTPM) $(RELEASE)\` puts its binaries" >&2; exit 1; }; \
	for p in $(INSTALL_PROGRAMS); do \
	    [ -x "$$bin/$$p" ] || { echo "make install: $$bin/$$p is missing: run \`make build\` first (as yourself, not root)" >&2; exit 1; }; \
	done; \
	set -x; \
	$(INSTALL) -d "$(DESTDIR)$(1)" "$(DESTDIR)$(2)"; \
	for p in $(INSTALL_PROGRAMS); do $(INSTALL) -m 755 "$$bin/$$p" "$(DESTDIR)$(1)/$$p"; done; \
	sed 's|^ExecStart=[^ ]*ringmasterd|ExecStart=$(1)/ringmasterd|' units/ringmaster.service > "$(DESTDIR)$(2)/ringmaster.service.tmp"; \
	chmod 644 "$(DESTDIR)$(2)/ringmaster.service.tmp"; \
	mv -f "$(DESTDIR)$(2)/ringmaster.service.tmp" "$(DESTDIR)$(2)/ringmaster.service"; \
	$(INSTALL) -m 644 units/ringmaster.socket "$(DESTDIR)$(2)/ringmaster.socket"
	@echo "installed. Next: systemctl --user enable --now ringmaster"
	@echo "(upgrading a running one: systemctl --user daemon-reload && systemctl --user restart ringmaster)"
endef

# $(call ringmaster_uninstall,BINDIR,UNITDIR)
define ringmaster_uninstall
	@if [ -z "$(DESTDIR)" ] && systemctl --user is-enabled ringmaster.service >/dev/null 2>&1; then \
	    echo "make uninstall: note: ringmaster.service is still enabled; run: systemctl --user disable --now ringmaster ringmaster.socket" >&2; \
	fi
	rm -f $(foreach p,$(INSTALL_PROGRAMS),"$(DESTDIR)$(1)/$(p)") $(foreach u,$(INSTALL_UNITS),"$(DESTDIR)$(2)/$(u)")
endef

install:
	$(call ringmaster_install,$(BINDIR),$(USERUNITDIR))

uninstall:
	$(call ringmaster_uninstall,$(BINDIR),$(USERUNITDIR))

install-user:
	$(call ringmaster_install,$(USER_BINDIR),$(USER_UNITDIR))

uninstall-user:
	$(call ringmaster_uninstall,$(USER_BINDIR),$(USER_UNITDIR))
