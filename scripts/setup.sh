#!/usr/bin/env bash
# Sets up everything atp-notebook needs on a Debian 12 machine, as root, and brings the lab up.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again (each step checks first).
set -euo pipefail

ATP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ATP_VENV:-$ATP_ROOT/.venv}"

if [ "$(id -u)" != 0 ]; then
    echo "setup: run as root (the lab starts libvirtd, sshd and QEMU)" >&2
    exit 1
fi

# What pip needs to build libvirt-python and the C codecs (liblz4-dev: the LZ4 blocks); the
# lab's own packages come from `atp-lab up`.
build_deps=(python3 python3-venv python3-dev gcc pkg-config libvirt-dev liblz4-dev)
# OCR for screen assertions: tesserocr (pip) brings libtesseract, Debian the English model
ocr_deps=(tesseract-ocr-eng)
# What the benchmarks need beyond the venv: spice-gtk through GObject introspection, the
# anchor of bench_spice, run by the system python3 (bench/spice_gtk_connect.py).
bench_deps=(python3-gi gir1.2-spiceclientglib-2.0)
# bench_screen's OCR anchor: pytesseract runs the tesseract program
bench_deps+=(tesseract-ocr)
# What tests/browser drives through Playwright: Debian's chromium (Playwright's own browser
# download is never used)
browser_deps=(chromium)
missing=()
for pkg in "${build_deps[@]}" "${ocr_deps[@]}" "${bench_deps[@]}" "${browser_deps[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qx installed \
        || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON="${ATP_PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: $PYTHON is older than 3.11" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml, setup.py or a C source changed since the last install.
stamp="$VENV/.atp-installed"
stale=""
if [ ! -f "$stamp" ] || [ "$ATP_ROOT/pyproject.toml" -nt "$stamp" ] \
    || [ "$ATP_ROOT/setup.py" -nt "$stamp" ] \
    || [ -n "$(find "$ATP_ROOT/atp_notebook" \( -name '*.c' -o -name '*.h' \) -newer "$stamp" -print -quit)" ]; then
    stale=1
fi
if [ -n "$stale" ]; then
    echo "setup: installing atp-notebook and its test tools into $VENV"
    "$VENV/bin/pip" install --disable-pip-version-check -e "$ATP_ROOT[dev]" \
        > "$VENV/pip-install.log" 2>&1 || {
        tail -30 "$VENV/pip-install.log" >&2
        echo "setup: pip install failed; full log in $VENV/pip-install.log" >&2
        exit 1
    }
    "$VENV/bin/python" -c 'import atp_notebook, libvirt' >/dev/null
    touch "$stamp"
fi

"$VENV/bin/atp-lab" up
