# Packaging targets, included by the top-level Makefile (which defines GO,
# VERSION, LDFLAGS, BIN, DAEMON_BIN, COMPOSE_BIN and the `build` target:
# static, CGO_ENABLED=0 binaries).
#
#   make install   binaries, systemd unit, man pages and shell completions
#                  under DESTDIR/PREFIX: what `make` built, built first only
#                  when missing; ENGINE=podman adds the unit's drop-in that
#                  follows Podman (deploy/systemd/podman.conf)
#   make uninstall all of that, and the directories install created
#   make image     container image FROM scratch, built locally
#   make plugin    managed Docker plugin (docker plugin create + enable)
#
# Every path and name is a variable, so tests and packagers can build beside
# a running installation: make image IMAGE=x:y IMAGE_CTX=/tmp/ctx BIN=/tmp/b

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
# secretd-daemon and secretd-compose, which secretd execs: secretd looks
# for them beside itself, then in ../libexec/secretd from its directory, so
# this follows BINDIR (PREFIX/libexec/secretd by default).
LIBEXECDIR = $(dir $(BINDIR:%/=%))libexec/secretd
# systemd reads /usr/local/lib/systemd/system as well as /lib/systemd/system.
UNITDIR   ?= $(PREFIX)/lib/systemd/system
# The user manager's units (secretd --rootless), read from here too.
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
# The engine secretd follows: docker, or podman, which installs the
# drop-in of deploy/systemd/podman.conf in DROPINDIR.
ENGINE    ?= docker
DROPINDIR ?= $(UNITDIR)/secretd.service.d
MANDIR    ?= $(PREFIX)/share/man
# Man pages as `make docs` writes them (section from the file suffix): a
# shell pattern, expanded once `make docs` has run.
MANPAGES  ?= $(MANSRC)/*.[1-8]
# Where bash-completion, zsh and fish look for completions under PREFIX.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
# The bash-completion package's loader: bash completion needs it.
BASHCOMPLETION ?= /usr/share/bash-completion/bash_completion
# install records here the directories it had to create, so uninstall
# removes those once empty and no directory that was there before.
DIRLIST   ?= $(PREFIX)/share/secretd/installed-dirs
DOCKER    ?= docker

IMAGE     ?= secretd:$(VERSION)
IMAGE_CTX ?= deploy/image/build
PLUGIN    ?= secretd
PLUGIN_DIR ?= deploy/plugin/build
# The plugin's data root on the host (mount "data"); its API socket is
# PLUGIN_DATA/secretd.sock.
PLUGIN_DATA ?= /var/lib/secretd

.PHONY: install uninstall image plugin plugin-rootfs plugin-clean

# Built only when missing: `make` builds them as the user who has Go, and
# `sudo make install` installs them.
$(BIN) $(DAEMON_BIN) $(COMPOSE_BIN):
	$(MAKE) build
$(MANSRC)/secretd.1:
	$(MAKE) docs

install: $(BIN) $(DAEMON_BIN) $(COMPOSE_BIN) $(MANSRC)/secretd.1
	@case "$(ENGINE)" in docker|podman) ;; *) echo 'ENGINE=$(ENGINE): use ENGINE=docker (the default) or ENGINE=podman'; exit 1;; esac
	@for d in $(BINDIR) $(LIBEXECDIR) $(UNITDIR) $(USERUNITDIR) $(BASHCOMPDIR) $(ZSHCOMPDIR) $(FISHCOMPDIR) $(dir $(DIRLIST)) \
		$(if $(filter podman,$(ENGINE)),$(DROPINDIR)) \
		$$(for m in $(MANPAGES); do echo $(MANDIR)/man$${m##*.}; done); do \
		d=$${d%/}; while [ -n "$$d" ] && [ ! -d "$(DESTDIR)$$d" ]; do echo "$$d"; d=$${d%/*}; done; \
	done > $(BIN).dirs && \
	{ test ! -f "$(DESTDIR)$(DIRLIST)" || cat "$(DESTDIR)$(DIRLIST)" >> $(BIN).dirs; } && \
	sort -u $(BIN).dirs > $(BIN).dirs.new && rm -f $(BIN).dirs && \
	install -D -m 0644 $(BIN).dirs.new "$(DESTDIR)$(DIRLIST)" && rm -f $(BIN).dirs.new
	install -D -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/secretd
	install -D -m 0755 $(DAEMON_BIN) $(DESTDIR)$(LIBEXECDIR)/secretd-daemon
	install -D -m 0755 $(COMPOSE_BIN) $(DESTDIR)$(LIBEXECDIR)/secretd-compose
	sed 's|/usr/local/bin/secretd|$(BINDIR)/secretd|g' deploy/systemd/secretd.service > $(BIN).service
	install -D -m 0644 $(BIN).service $(DESTDIR)$(UNITDIR)/secretd.service
	sed 's|/usr/local/bin/secretd|$(BINDIR)/secretd|g' deploy/systemd/user/secretd.service > $(BIN).service
	install -D -m 0644 $(BIN).service $(DESTDIR)$(USERUNITDIR)/secretd.service
	rm -f $(BIN).service
	@if [ "$(ENGINE)" = podman ]; then \
		sed 's|/usr/local/bin/secretd|$(BINDIR)/secretd|g' deploy/systemd/podman.conf > $(BIN).conf && \
		echo "install -D -m 0644 deploy/systemd/podman.conf $(DESTDIR)$(DROPINDIR)/podman.conf" && \
		install -D -m 0644 $(BIN).conf $(DESTDIR)$(DROPINDIR)/podman.conf && rm -f $(BIN).conf; \
	fi
	@for m in $(MANPAGES); do \
		s=$${m##*.}; echo "install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
		install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} || exit 1; \
	done
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	$(BIN) completion bash > $(DESTDIR)$(BASHCOMPDIR)/secretd
	$(BIN) completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_secretd
	$(BIN) completion fish > $(DESTDIR)$(FISHCOMPDIR)/secretd.fish
	@test -f $(BASHCOMPLETION) || echo 'bash completion needs the bash-completion package: apt-get install bash-completion (zsh and fish need nothing more)'
	@test -n "$(DESTDIR)" || test "$(ENGINE)" = podman || echo 'installed $(BINDIR)/secretd; now: systemctl daemon-reload && systemctl enable --now secretd'
	@test -n "$(DESTDIR)" || test "$(ENGINE)" != podman || echo 'installed $(BINDIR)/secretd for Podman; name the driver in containers.conf (docs/podman.md), then: systemctl daemon-reload && systemctl enable --now podman.socket secretd'

# Removes what install installed, then the directories install created
# (deepest first) that are empty now: one that holds anything else stays.
uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/secretd-daemon $(DESTDIR)$(LIBEXECDIR)/secretd-compose
	rm -f $(DESTDIR)$(BINDIR)/secretd $(DESTDIR)$(UNITDIR)/secretd.service $(DESTDIR)$(USERUNITDIR)/secretd.service
	rm -f $(DESTDIR)$(DROPINDIR)/podman.conf
	rm -f $(DESTDIR)$(BASHCOMPDIR)/secretd $(DESTDIR)$(ZSHCOMPDIR)/_secretd $(DESTDIR)$(FISHCOMPDIR)/secretd.fish
	rm -f $(DESTDIR)$(MANDIR)/man[1-8]/secretd.[1-8] $(DESTDIR)$(MANDIR)/man[1-8]/secretd-*.[1-8]
	@if [ -f "$(DESTDIR)$(DIRLIST)" ]; then \
		dirs=$$(sort -r "$(DESTDIR)$(DIRLIST)") && rm -f "$(DESTDIR)$(DIRLIST)" && \
		printf '%s\n' "$$dirs" | while IFS= read -r d; do \
			rmdir "$(DESTDIR)$$d" 2>/dev/null && echo "rmdir $(DESTDIR)$$d"; \
		done; \
	fi; true

# The image holds one static binary only, secretd-daemon as /secretd: it
# runs the daemon without the exec a CLI start would add, and every client
# command too. Its build context holds nothing else, so nothing of the
# work tree reaches the engine.
image: build
	rm -rf $(IMAGE_CTX) && mkdir -p $(IMAGE_CTX)
	cp $(DAEMON_BIN) $(IMAGE_CTX)/secretd
	$(DOCKER) build --label org.opencontainers.image.version=$(VERSION) \
		-f deploy/image/Dockerfile -t $(IMAGE) $(IMAGE_CTX)

# A managed plugin: config.json plus the image's file system as rootfs.
# Replaces a plugin of the same name unless containers use it (then the
# engine refuses to disable it and make stops).
plugin: plugin-rootfs
	@if $(DOCKER) plugin inspect $(PLUGIN) >/dev/null 2>&1; then \
		echo "replacing plugin $(PLUGIN)"; \
		$(DOCKER) plugin disable $(PLUGIN) >/dev/null 2>&1 || true; \
		$(DOCKER) plugin rm $(PLUGIN) >/dev/null || exit 1; \
	fi
	install -d -m 0700 $(PLUGIN_DATA)
	$(DOCKER) plugin create $(PLUGIN) $(PLUGIN_DIR)
	$(DOCKER) plugin set $(PLUGIN) data.source=$(PLUGIN_DATA)
	$(DOCKER) plugin enable $(PLUGIN)
	@echo 'API: export SECRETD_HOST=unix://$(PLUGIN_DATA)/secretd.sock; containers: --mount type=volume,volume-driver=$(PLUGIN),dst=/run/secrets'

plugin-rootfs: image
	rm -rf $(PLUGIN_DIR) && mkdir -p $(PLUGIN_DIR)/rootfs
	cp deploy/plugin/config.json $(PLUGIN_DIR)/config.json
	id=$$($(DOCKER) create $(IMAGE)) && \
		{ $(DOCKER) export $$id | tar -x -C $(PLUGIN_DIR)/rootfs; rc=$$?; $(DOCKER) rm -f $$id >/dev/null; exit $$rc; }
	mkdir -p $(PLUGIN_DIR)/rootfs/run/docker/plugins $(PLUGIN_DIR)/rootfs/run/secretd/mounts \
		$(PLUGIN_DIR)/rootfs/var/lib/secretd $(PLUGIN_DIR)/rootfs/var/run

plugin-clean:
	rm -rf $(PLUGIN_DIR) $(IMAGE_CTX)
