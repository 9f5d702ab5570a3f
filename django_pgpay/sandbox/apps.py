"""App configuration of the payment sandbox (``INSTALLED_APPS += ["django_pgpay.sandbox"]``)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SandboxConfig(AppConfig):
    """Registers the sandbox's system checks and the receiver that keeps the server's own origin.

    Starts nothing: the webhook worker starts on the first sandbox request.
    """

    name = "django_pgpay.sandbox"
    label = "pgpay_sandbox"
    verbose_name = _("Payment sandbox")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import request_started

        from . import checks  # noqa: F401  (registers the checks)
        from .conf import remember_origin

        # A relative WEBHOOK_URL needs this server's address when no request is at hand.
        request_started.connect(remember_origin, dispatch_uid="pgpay_sandbox.remember_origin")
