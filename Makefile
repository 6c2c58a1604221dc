# Palaver: `make run` serves, `make test` checks and tests everything.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
export UV_LINK_MODE ?= copy

.PHONY: run test check format install bootstrap browser-deps serve-deps service-deps node-deps bench clean

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv

install: bootstrap
	@$(UV) sync --frozen --quiet

run: install
	$(UV) run --frozen palaver migrate
	exec $(UV) run --frozen palaver serve

check: install
	$(UV) run --frozen ruff format --check src tests benchmarks
	$(UV) run --frozen ruff check src tests benchmarks
	$(UV) run --frozen mypy

format: install
	$(UV) run --frozen ruff format src tests benchmarks
	$(UV) run --frozen ruff check --fix src tests benchmarks

# Debian's Chromium drives the browser tests; Playwright never downloads its own.
browser-deps:
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "color emoji"; } || { \
		echo "installing Debian's chromium and a colour emoji font for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null) \
		|| echo "WARNING: could not install chromium: browser tests will fail under CI"; }

# Debian's nginx fronts two Palaver nodes in tests/ops/test_nginx.py (run as the test
# user from a temporary prefix; the system service is never used), and pg_dump and
# pg_restore back `palaver backup` and `restore` in tests/ops/test_backup.py.
service-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		echo "installing Debian's nginx for the load-balancer tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null) \
		|| echo "WARNING: could not install nginx: nginx tests will fail under CI"; }
	@command -v pg_dump >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_dump >/dev/null 2>&1 || { \
		echo "installing Debian's postgresql-client for the backup tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null) \
		|| echo "WARNING: could not install postgresql-client: backup tests will fail under CI"; }

# socket.io-client for the Socket.IO compatibility tests (tests/compat/node, versions
# pinned by its package-lock.json; node_modules is not committed).
node-deps:
	@[ -d tests/compat/node/node_modules/socket.io-client ] || { \
		command -v npm >/dev/null 2>&1 && (cd tests/compat/node && npm ci --no-audit --no-fund --silent) \
		|| echo "WARNING: could not install socket.io-client: Node.js compatibility tests will fail"; }

test: check browser-deps service-deps node-deps
	$(UV) run --frozen pytest $(PYTEST_ARGS)

bench: install
	$(UV) run --frozen palaver bench

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache tests/compat/node/node_modules
