"""A local payment sandbox: emulated PGs that speak each PG's real wire protocol.

Opt in with::

    INSTALLED_APPS += ["django_pgpay.sandbox"]
    urlpatterns += [path("sandbox/", include("django_pgpay.sandbox.urls"))]
    PGPAY_SANDBOX = {
        "TOSS": {"SECRET_KEYS": [...], "CLIENT_KEYS": [...], "WEBHOOK_URL": "..."},
        "STRIPE": {"SECRET_KEYS": ["sk_test_..."], "WEBHOOK_SECRET": "whsec_...", "WEBHOOK_URL": "..."},
    }

and point a gateway's base URL at ``http://HOST/sandbox/toss`` (Toss Payments),
``http://HOST/sandbox/stripe`` (Stripe), ``http://HOST/sandbox/portone`` (PortOne)
or ``http://HOST/sandbox/bootpay/v2`` (Bootpay). The app
refuses to run with ``DEBUG = False`` unless ``PGPAY["SANDBOX_ALLOW_WITHOUT_DEBUG"]``
is true. See ``docs/sandbox.rst``.
"""
