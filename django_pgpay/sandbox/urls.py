"""URLs of the sandbox: mount with ``path("sandbox/", include("django_pgpay.sandbox.urls"))``.

Each emulated PG lives under its name (``sandbox/toss/...``); the dashboard
is ``sandbox/`` and the control API ``sandbox/control/...``.
"""

from django.urls import include, path

from . import views
from .base import emulators

app_name = "pgpay_sandbox"

urlpatterns = [
    path("", views.dashboard, name="index"),
    path("dashboard/action", views.dashboard_action, name="dashboard-action"),
    path("control/", views.control_state, name="control"),
    path("control/reset", views.control_reset, name="control-reset"),
    path("control/clock", views.control_clock, name="control-clock"),
    path("control/faults", views.control_faults, name="control-faults"),
    path("control/webhooks", views.control_webhooks, name="control-webhooks"),
    path("control/webhooks/deliver", views.control_deliver, name="control-deliver"),
    path("control/webhooks/release", views.control_release, name="control-release"),
    path("control/tick", views.control_tick, name="control-tick"),
    path("control/<str:pg>/<str:action>", views.control_action, name="control-action"),
]
urlpatterns += [path(f"{pg.name}/", include(pg.urlpatterns())) for pg in emulators()]
