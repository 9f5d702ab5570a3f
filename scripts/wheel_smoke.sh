#!/usr/bin/env bash
# Wheel smoke test: install the wheel from dist/ into a new virtualenv, as a user
# would, and check that
#   1. every file tracked under django_pgpay/ is in the wheel, and every .po
#      catalogue has its compiled .mo beside it;
#   2. a brand-new `django-admin startproject` with an app subclassing the two
#      abstract models runs makemigrations, migrate and check, and leaves no
#      model change of django_pgpay's own without a migration.
# The generated project is kept in artifacts/wheel-smoke/ for inspection.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-/root/.pyenv/versions/3.13.0/bin/python3}
[[ -x "$PYTHON" ]] || PYTHON=python3
UV=${UV:-$ROOT/.tools/bin/uv}
OUT=${SMOKE_DIR:-$ROOT/artifacts/wheel-smoke}

shopt -s nullglob
wheels=("$ROOT"/dist/django_pgpay-*.whl)
shopt -u nullglob
if [[ ${#wheels[@]} -ne 1 ]]; then
    echo "wheel_smoke: expected exactly one wheel in dist/, found ${#wheels[@]}; run 'make build'" >&2
    exit 1
fi
WHEEL=${wheels[0]}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=$work/venv
rm -rf "$OUT"
mkdir -p "$OUT"

step() { printf '\n--- wheel smoke: %s\n' "$*"; }

step "install $(basename "$WHEEL") into a new virtualenv ($PYTHON)"
unset VIRTUAL_ENV
"$UV" venv -q --python "$PYTHON" "$venv"
VIRTUAL_ENV=$venv "$UV" pip install -q "$WHEEL"
PY=$venv/bin/python

step "wheel contents"
tracked=$work/tracked.txt
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -- django_pgpay >"$tracked"
else
    : >"$tracked"  # not a git checkout (an unpacked sdist): skip the comparison
fi
"$PY" - "$WHEEL" "$tracked" <<'PY'
import sys
import zipfile
from pathlib import PurePosixPath

wheel, tracked = sys.argv[1], sys.argv[2]
names = set(zipfile.ZipFile(wheel).namelist())
expected = {
    line.strip()
    for line in open(tracked, encoding="utf-8")
    if line.strip() and not line.strip().endswith((".pyc", ".pyo"))
}
problems = [f"missing from the wheel: {name}" for name in sorted(expected - names)]
for name in sorted(names):
    if name.endswith(".po") and name[:-3] + ".mo" not in names:
        problems.append(f"{name} has no compiled .mo beside it (run 'make messages')")
stray = sorted(n for n in names if n.startswith(("tests/", "example_project/", "docs/")))
problems += [f"does not belong in the wheel: {name}" for name in stray]
for problem in problems:
    print("  " + problem)
data = [n for n in names if n.startswith("django_pgpay/") and not n.endswith(".py")]
print(f"  {len(names)} files, {len(data)} of them data files under django_pgpay/")
sys.exit(1 if problems else 0)
PY

step "django-admin startproject shop + app bookings"
cd "$OUT"
"$venv/bin/django-admin" startproject shop
cd shop
"$PY" manage.py startapp bookings
cat >bookings/models.py <<'MODELS'
from django.db import models
from django_pgpay.models import AbstractOrder, AbstractTransaction
class Seat(models.Model):
    remain = models.PositiveIntegerField(default=1)
class Booking(AbstractOrder):
    seat = models.ForeignKey(Seat, on_delete=models.PROTECT)
class BookingTransaction(AbstractTransaction):
    order = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="transactions")
MODELS
cat >>shop/settings.py <<'SETTINGS'

# --- added by scripts/wheel_smoke.sh, as in the README's integration guide
INSTALLED_APPS += ["django_pgpay", "bookings"]
PGPAY = {
    "DEFAULT_GATEWAY": "fake",
    "GATEWAYS": {
        "fake": {"CLASS": "django_pgpay.gateways.fake.FakeGateway", "OPTIONS": {}},
    },
}
SETTINGS
cat >>shop/urls.py <<'URLS'

# --- added by scripts/wheel_smoke.sh
from django.urls import include  # noqa: E402

urlpatterns += [path("pay/", include("django_pgpay.urls"))]
URLS

step "django_pgpay is imported from the wheel, not a source tree"
"$PY" -c 'import django, django_pgpay, sys; print("  django", django.__version__, "| django_pgpay", django_pgpay.__version__, "from", django_pgpay.__file__); sys.exit(not django_pgpay.__file__.startswith(sys.prefix))'

step "makemigrations bookings"
"$PY" manage.py makemigrations bookings
step "migrate"
"$PY" manage.py migrate --noinput
step "check"
"$PY" manage.py check
step "no model change without a migration (makemigrations --check)"
"$PY" manage.py makemigrations --check --dry-run

echo
echo "wheel smoke: OK (project kept in ${OUT#"$ROOT"/})"
