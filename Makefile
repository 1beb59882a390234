# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# `make run` needs fodns and what it imports; `make test` adds the test tools
# (pytest, mypy, ruff, moto for a Route53 emulator, Playwright for the dashboard,
# certbot with lego's DNS providers for the ACME DNS-01 test).
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
# Debian packages the test suite drives for real, installed by `make test` only
# when missing (with sudo when not root):
#   bind9-dnsutils  dig, which the README's walk-through runs as written
#   systemd         systemd-analyze, which checks systemd/fodns.service
#   knot nsd        real secondaries that pull zone transfers from fodns
#   chromium        the browser the dashboard tests drive
#   sqlite3         the backup and restore of docs/backup.md, run as written
#   nftables        nft, which checks the firewall rules of docs/secondaries.md
#   pebble unbound  Let's Encrypt's test ACME server and a recursive resolver for
#                   the end-to-end test of ACME DNS-01 through fodns
#                   (tests/test_acme_e2e.py; its ACME client, certbot with lego's
#                   acme-dns provider, comes from PyPI: Debian's lego 4.9.1 is
#                   built without that provider)
# Installing unbound must start no system resolver (its init script would also
# run unbound-anchor, which fetches the root trust anchor from the internet), so
# the install runs under a /usr/sbin/policy-rc.d that denies every service
# start (exit 101, Debian's documented way: invoke-rc.d(8) and
# deb-systemd-invoke(1) ask it first), put back as it was afterwards.
DEB_TEST_PACKAGES := bind9-dnsutils systemd knot nsd chromium sqlite3 nftables \
	pebble unbound
POLICY_RC := /usr/sbin/policy-rc.d

.PHONY: run test lint typecheck bench deps-debian clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(RUN_STAMP) $(TEST_STAMP)

run: $(RUN_STAMP)
	$(BIN)/fodns serve

deps-debian:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make test: installing the Debian packages the tests drive:$$missing"; \
	  echo "  (dig for the README, systemd-analyze for the unit, knot and nsd as"; \
	  echo "   secondaries, chromium for the dashboard, sqlite3 and nft for the"; \
	  echo "   backup guide and firewall rules, pebble and unbound for the"; \
	  echo "   ACME DNS-01 end-to-end test; no service is started; see the Makefile)"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  saved=""; if [ -e $(POLICY_RC) ]; then \
	    saved=$$(mktemp) && $$SUDO cp -p $(POLICY_RC) $$saved; fi; \
	  restore() { if [ -n "$$saved" ]; then $$SUDO cp -p $$saved $(POLICY_RC); \
	    $$SUDO rm -f $$saved; else $$SUDO rm -f $(POLICY_RC); fi; }; \
	  trap restore EXIT; \
	  printf '#!/bin/sh\n# make test: no service starts while its packages install\nexit 101\n' \
	    | $$SUDO tee $(POLICY_RC) >/dev/null && $$SUDO chmod 755 $(POLICY_RC); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

# The suite starts some seven hundred fodns processes. Where PYTHONDONTWRITEBYTECODE
# is set (as in the image we build and test on), Python never caches the bytecode of
# this checkout, so each of them would compile the package from source again (0.3 s
# of CPU apiece); compiling it once here lets them all read the cache. An installed
# fodns is compiled by pip.
test: $(TEST_STAMP) deps-debian
	$(BIN)/ruff check fodns tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m compileall -q fodns tests benchmarks
	$(BIN)/pytest

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) var build *.egg-info
