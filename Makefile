# Two commands set up a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the test suite drives for real (dig for the walk-through,
# systemd-analyze for the unit, knotd and nsd as secondaries pulling zone
# transfers, chromium for the dashboard tests, sqlite3 for the backup and restore
# of docs/backup.md, nft to check the firewall rules of docs/secondaries.md).
# Installed only when missing.
DEB_TEST_PACKAGES := bind9-dnsutils systemd knot nsd chromium sqlite3 nftables

.PHONY: run test lint typecheck bench deps-debian clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/fodns serve

deps-debian:
	@missing=""; for p in $(DEB_TEST_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

test: $(STAMP) deps-debian
	$(BIN)/ruff check fodns tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) var build *.egg-info
