"""App configuration of the payment sandbox (``INSTALLED_APPS += ["django_pgpay.sandbox"]``)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SandboxConfig(AppConfig):
    """Registers the sandbox's system checks; starts nothing (the worker starts on the first sandbox request)."""

    name = "django_pgpay.sandbox"
    label = "pgpay_sandbox"
    verbose_name = _("Payment sandbox")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
