#!/usr/bin/env bash
# CI for the Python package: installs the Debian packages a fresh machine
# needs (python3, python3-venv), then builds the package from this clean
# clone in a NEW virtualenv (`pip install ./python[test]`, maturin from
# PyPI) and runs the pytest suite with skips turned into failures.
# Any failure to build the extension fails CI; nothing here is optional.
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

export XLREG_PY_VENV="${XLREG_PY_VENV:-$(mktemp -d)/venv}"
exec scripts/test-python "$@"
