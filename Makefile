# SPDX-License-Identifier: GPL-2.0-or-later
# vmchannel: top level.  Only delegates; each directory has its own Makefile.
#
#   make           build vmchanneld, the test tools and vmchannel.ko for every
#                  supported guest kernel
#   make check     everything CI runs; ends with "N passed, N failed"
#   make demo      boot a guest with channels hello and clipboard, round trips
#   make e2e       only the end-to-end tests
#   make soak      [SEED=N] [DURATION=30m] the randomized lifecycle soak on the
#                  debug kernel (userspace-tests/soak/run; docs/testing.md)
#   make bench     the benchmark (bench/run), results in bench/results/
#   make bench-smoke  one small run of each benchmark figure
#   make install   [DESTDIR= PREFIX= KREL=] see Makefile.install and docs/agents.md
#   make deb       the Debian packages in build/deb (scripts/build-deb), lintian-checked
#   make uninstall the same files, removed
#   make clean

.PHONY: all host tools modules check unit e2e soak bench bench-smoke demo deb clean

all: host tools modules

host:
	$(MAKE) -C host

tools:
	$(MAKE) -C userspace-tests/tools

modules:
	scripts/build-modules

unit:
	$(MAKE) -C userspace-tests/unit check

e2e: host tools
	userspace-tests/e2e/run.sh

check:
	scripts/check

SEED ?= $(shell date -u +%Y%m%d%H%M)
DURATION ?= 30m
soak: host
	userspace-tests/soak/run --seed $(SEED) --duration $(DURATION)

bench: host tools
	bench/run

bench-smoke: host tools
	bench/report --self-test
	bench/run --smoke --out build/bench

demo:
	scripts/demo

deb:
	scripts/build-deb

include Makefile.install

clean:
	$(MAKE) -C host clean
	$(MAKE) -C userspace-tests/tools clean
	$(MAKE) -C userspace-tests/unit clean
	$(MAKE) -C userspace-tests/soak clean
	rm -rf build
