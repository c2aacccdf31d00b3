#!/usr/bin/env bash
# CI preparation for the Python package: installs the Debian packages a
# fresh machine needs (python3, python3-venv) and lints the bindings crate
# (not a default workspace member). The package itself is built from the
# clean clone in a NEW virtualenv (`pip install ./python[test]`, maturin
# from PyPI) by scripts/test-python, which scripts/test calls; .ci/run
# points XLREG_PY_VENV at a fresh directory. Skips are failures there.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the Rust build needs (as in .ci/run), so this script also runs alone.
missing=()
for pkg in pkg-config libssl-dev libsqlite3-dev; do
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
