#!/usr/bin/env bash
# Install the Debian packages django-pgpay's tests, docs and demo need.
# Idempotent: prints nothing and touches nothing when everything is present.
# Set PGPAY_SKIP_SYSTEM_DEPS=1 to skip (e.g. on a non-Debian machine that has
# the equivalents installed another way).
set -euo pipefail

if [[ "${PGPAY_SKIP_SYSTEM_DEPS:-0}" == "1" ]]; then
    exit 0
fi

PACKAGES=(
    fonts-nanum            # Hangul glyphs in invoice PDFs
    libharfbuzz-subset0    # fast font subsetting for WeasyPrint
    libpango-1.0-0         # WeasyPrint
    libpangoft2-1.0-0      # WeasyPrint
    chromium               # browser (e2e) tests; Playwright never downloads one
    poppler-utils          # pdftoppm: PDF pages to PNG in tests and artifacts
    libmariadb-dev         # headers to build mysqlclient (Django 6 needs >= 2.2.1)
    pkg-config             # mysqlclient's build finds libmariadb with it
    gettext                # msgfmt for the Korean catalogue
    redis-server           # tests/test_rq.py, tests/test_celery.py and make bench-scale start their own Redis
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: apt-get not found; install these by hand: ${missing[*]}" >&2
    exit 1
fi

SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    SUDO=(sudo)
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
install() {
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1
}
if ! install; then
    echo "system-deps: install failed, refreshing the package lists and retrying"
    "${SUDO[@]}" apt-get update -q >"$log" 2>&1
    if ! install; then
        cat "$log" >&2
        exit 1
    fi
fi
echo "system-deps: done"
