#!/usr/bin/env bash
# Set up the example project and serve it (`make demo`), or set it up and prove
# it works without serving (`make demo-check`, used by CI).
#
#   scripts/demo.sh serve|check
#
# PYTHON               interpreter with django-pgpay installed (make passes .venv's)
# DEMO_ADMIN_PASSWORD  password for the superuser "admin"; generated when unset
# DEMO_ADDR            where runserver listens (default 127.0.0.1:8000)
# EXAMPLE_SITE_URL     the server's own URL (default http://$DEMO_ADDR); the Toss
#                      gateway reaches the sandbox on this same server through it
#
# `serve` uses example_project/db.sqlite3 (kept between runs; the demo data is
# added only where missing). `check` works on a throwaway database, so it never
# touches your demo's bookings. Other settings: example_project/example_project/settings.py.
set -euo pipefail

mode=${1:-serve}
case "$mode" in serve|check) ;; *) echo "usage: $0 serve|check" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
ADDR=${DEMO_ADDR:-127.0.0.1:8000}
export EXAMPLE_SITE_URL=${EXAMPLE_SITE_URL:-http://$ADDR}
cd "$ROOT/example_project"

if [[ "$mode" == check ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    export DATABASE_URL="sqlite:///$scratch/demo-check.sqlite3"
    # No background webhook thread in a process that only checks.
    export SANDBOX_WEBHOOK_DELIVERY=manual
    # The example's models and migrations agree.
    "$PY" manage.py makemigrations --check --dry-run restaurants shop
fi

"$PY" manage.py migrate --noinput -v 0
"$PY" manage.py check
"$PY" manage.py demo_data

if [[ -z "${DEMO_ADMIN_PASSWORD:-}" ]]; then
    DEMO_ADMIN_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')
fi
export DEMO_ADMIN_PASSWORD

# Create or refresh the superuser; the password travels in the environment,
# not on a command line.
"$PY" manage.py shell -v 0 -c '
import os
from django.contrib.auth import get_user_model
User = get_user_model()
user, created = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
user.is_active = user.is_staff = user.is_superuser = True
user.set_password(os.environ["DEMO_ADMIN_PASSWORD"])
user.save()
print("Superuser admin", "created" if created else "refreshed")
'

if [[ "$mode" == check ]]; then
    # The demo data is idempotent: a second run adds nothing.
    again=$("$PY" manage.py demo_data)
    echo "$again"
    [[ "$again" == "Demo data: added 0 restaurants, 0 tables, 0 seats, 0 products." ]] || { echo "demo_data is not idempotent" >&2; exit 1; }
    # Every page, the admin login, a booking, a sold-out seat and a cart order,
    # through Django's test client (rolled back).
    "$PY" manage.py demo_check
fi

cat <<BANNER

  ┌──────────────────────────────────────────────────────────────────────
  │ django-pgpay example shop (payments: the sandbox on this server)
  │
  │   Shop:      $EXAMPLE_SITE_URL/
  │   Sandbox:   $EXAMPLE_SITE_URL/sandbox/      (payments, webhooks, faults)
  │   Admin:     $EXAMPLE_SITE_URL/admin/
  │   User:      admin
  │   Password:  $DEMO_ADMIN_PASSWORD
  │
  │   Book a table: Restaurants → a time → Proceed to payment → Pay,
  │   then Pay on the sandbox's payment page. Cancel it in My bookings.
  │   Pick the PG on the booking page or in the cart: Toss, PortOne (V1, V2)
  │   and Bootpay in both shops, Stripe in the cart shop (docs/example.rst).
  └──────────────────────────────────────────────────────────────────────

BANNER

if [[ "$mode" == serve ]]; then
    # runserver is threaded: the gateway's calls to the sandbox and the
    # sandbox's webhooks back to the shop are served while a page waits.
    exec "$PY" manage.py runserver "$ADDR"
fi
