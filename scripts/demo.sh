#!/usr/bin/env bash
# Set up the example project and serve it (`make demo`), or set it up and prove
# it works without serving (`make demo-check`, used by CI). One line per step;
# a step's own output is shown only when it fails.
#
#   scripts/demo.sh serve|setup|check      (setup: serve's steps without serving)
#
# PYTHON               interpreter with django-pgpay installed (make passes .venv's)
# DEMO_ADMIN_PASSWORD  the superuser "admin"'s password. Unset: the one kept in
#                      example_project/.demo-admin-password (git-ignored), made up
#                      on the first run. Set: it replaces the kept one.
# DEMO_PASSWORD_FILE   where that password is kept (default example_project/.demo-admin-password)
# DEMO_ADDR            where runserver listens (default 127.0.0.1:8000)
# EXAMPLE_SITE_URL     the server's own URL (default http://$DEMO_ADDR); the
#                      gateways reach the sandbox on this same server through it
#
# `serve` uses example_project/db.sqlite3 (kept between runs; the demo data is
# added only where missing). `check` works on a throwaway database, so it never
# touches your demo's bookings or the kept password. Other settings:
# example_project/example_project/settings.py.
set -euo pipefail

mode=${1:-serve}
case "$mode" in serve|setup|check) ;; *) echo "usage: $0 serve|setup|check" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
ADDR=${DEMO_ADDR:-127.0.0.1:8000}
export EXAMPLE_SITE_URL=${EXAMPLE_SITE_URL:-http://$ADDR}
PASSWORD_FILE=${DEMO_PASSWORD_FILE:-$ROOT/example_project/.demo-admin-password}
PASSWORD_GIVEN=${DEMO_ADMIN_PASSWORD:+yes}
cd "$ROOT/example_project"

STEP_OUTPUT=""
# step "what is done" command...: one line, "ok" and the time, or the command's output and exit.
step() {
    local label=$1
    shift
    local start=$SECONDS
    printf '  %-52s ' "$label"
    if STEP_OUTPUT=$("$@" 2>&1); then
        local took=$((SECONDS - start))
        if ((took > 1)); then printf 'ok (%d s)\n' "$took"; else printf 'ok\n'; fi
    else
        local rc=$?
        printf 'FAILED\n\n%s\n' "$STEP_OUTPUT" >&2
        exit "$rc"
    fi
}

echo "django-pgpay example shop ($mode)"

if [[ "$mode" == check ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    export DATABASE_URL="sqlite:///$scratch/demo-check.sqlite3"
    # No background webhook thread in a process that only checks.
    export SANDBOX_WEBHOOK_DELIVERY=manual
    step "models and migrations agree" "$PY" manage.py makemigrations --check --dry-run restaurants shop
fi

step "database migrated" "$PY" manage.py migrate --noinput -v 0
step "system checks pass" "$PY" manage.py check --fail-level WARNING
[[ "$STEP_OUTPUT" == *"no issues"* ]] || printf '%s\n' "$STEP_OUTPUT" | sed 's/^/    /'
step "demo restaurants, seats and products" "$PY" manage.py demo_data
echo "    ${STEP_OUTPUT##*$'\n'}"

# The admin's password: given, kept from an earlier run, or made up once and kept.
if [[ "$mode" == check ]]; then
    DEMO_ADMIN_PASSWORD=${DEMO_ADMIN_PASSWORD:-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')}
elif [[ -n "${DEMO_ADMIN_PASSWORD:-}" ]]; then
    (umask 077 && printf '%s\n' "$DEMO_ADMIN_PASSWORD" >"$PASSWORD_FILE")
elif [[ -s "$PASSWORD_FILE" ]]; then
    DEMO_ADMIN_PASSWORD=$(<"$PASSWORD_FILE")
else
    DEMO_ADMIN_PASSWORD=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')
    (umask 077 && printf '%s\n' "$DEMO_ADMIN_PASSWORD" >"$PASSWORD_FILE")
fi
export DEMO_ADMIN_PASSWORD

# Create or refresh the superuser; the password travels in the environment,
# not on a command line.
step "superuser admin" "$PY" manage.py shell -v 0 -c '
import os
from django.contrib.auth import get_user_model
User = get_user_model()
user, created = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
user.is_active = user.is_staff = user.is_superuser = True
user.set_password(os.environ["DEMO_ADMIN_PASSWORD"])
user.save()
print("created" if created else "password set")
'

# A demo buyer's orders, made through the shop and the sandbox, so that the admin has some to
# export, print and refund; the command delivers the sandbox's webhooks itself, at its end.
step "sample orders for the admin" env SANDBOX_WEBHOOK_DELIVERY=manual "$PY" manage.py demo_orders
echo "    ${STEP_OUTPUT##*$'\n'}"

if [[ "$mode" == check ]]; then
    step "sample orders added once only" env SANDBOX_WEBHOOK_DELIVERY=manual "$PY" manage.py demo_orders
    [[ "${STEP_OUTPUT##*$'\n'}" == "Sample orders: kept (the demo buyer has orders)." ]] || { echo "demo_orders is not idempotent: $STEP_OUTPUT" >&2; exit 1; }
    # The demo data is idempotent: a second run adds nothing.
    step "demo data added once only" "$PY" manage.py demo_data
    [[ "$STEP_OUTPUT" == "Demo data: added 0 restaurants, 0 tables, 0 seats, 0 products." ]] || { echo "demo_data is not idempotent: $STEP_OUTPUT" >&2; exit 1; }
    # Every page, the admin login, a booking, a sold-out seat and a cart order,
    # through Django's test client (rolled back).
    step "every page, a booking and an order (demo_check)" "$PY" manage.py demo_check
fi

if [[ "$mode" != check ]]; then
    kept="kept in ${PASSWORD_FILE#"$ROOT"/}"
    [[ -n "$PASSWORD_GIVEN" ]] && kept="from DEMO_ADMIN_PASSWORD, now kept"
else
    kept="this check's own"
fi

cat <<BANNER

  ┌──────────────────────────────────────────────────────────────────────
  │ django-pgpay example shop (payments: the sandbox on this server)
  │
  │   Shop:      $EXAMPLE_SITE_URL/
  │   Sandbox:   $EXAMPLE_SITE_URL/sandbox/      (payments, webhooks, faults)
  │   Admin:     $EXAMPLE_SITE_URL/admin/
  │   User:      admin
  │   Password:  $DEMO_ADMIN_PASSWORD   ($kept;
  │              DEMO_ADMIN_PASSWORD=... make demo sets another)
  │   Orders:    demo-buyer's samples in the admin (paid, refunded,
  │              waiting for a transfer): export, invoices, refunds;
  │              as the buyer: log in as demo-buyer, same password
  │
  │   Book a table: Restaurants → a time → Proceed to payment → Pay,
  │   then Pay in the sandbox's payment window. Cancel it in My bookings.
  │   Pick the PG on the booking page or in the cart: Toss, PortOne (V1, V2)
  │   and Bootpay in both shops, Stripe in the cart shop (docs/example.rst).
  └──────────────────────────────────────────────────────────────────────

BANNER

if [[ "$mode" == serve ]]; then
    echo "  Serving on http://$ADDR/ (Ctrl-C stops it); requests and payments are logged below."
    echo
    # runserver is threaded: the gateway's calls to the sandbox and the
    # sandbox's webhooks back to the shop are served while a page waits.
    # Checks ran above; its own banner would only repeat the address.
    exec "$PY" manage.py runserver --skip-checks -v 0 "$ADDR"
fi
