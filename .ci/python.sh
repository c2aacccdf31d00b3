#!/usr/bin/env bash
# CI preparation for the Python package: installs the Debian packages a
# fresh machine needs (python3, python3-venv, perl, make) and lints the
# bindings crate (not a default workspace member). The package itself is
# built once by .ci/run as users get it (scripts/build-wheel: the release
# manylinux wheel), and scripts/test-python, which scripts/test calls,
# installs that wheel alone into a NEW virtualenv (XLREG_PY_VENV,
# XLREG_PY_WHEEL) and runs pytest and `xlreg up` from it. Skips are
# failures there.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the Rust build needs (as in .ci/run), so this script also runs alone;
# perl and make build the vendored OpenSSL of the wheel (scripts/build-wheel).
missing=()
for pkg in pkg-config libssl-dev libsqlite3-dev perl make; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

# A Python with venv and pip (Debian splits them into python3-venv).
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
    echo "installing: python3 python3-venv"
    apt-get update -qq && apt-get install -y -qq python3 python3-venv
    PY=python3
fi
export PYTHON="$PY"

if [ ! -d "${XLREG_VECTORS:-../shared/spec/testdata}" ]; then
    echo "FAIL: reference vectors not found at ${XLREG_VECTORS:-../shared/spec/testdata}" >&2
    exit 1
fi

echo "== cargo clippy -p xlreg-python (not a default workspace member)"
cargo clippy --all-targets -p xlreg-python -- -D warnings
