"""App configuration: system checks, the amount-validation receivers, and export jobs taking their files with them."""

from django.apps import AppConfig, apps
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class PgPayConfig(AppConfig):
    """Registers the system checks and connects the post_save amount check to every ledger model."""

    name = "django_pgpay"
    verbose_name = _("Payments")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
        from .jobs import delete_file
        from .models import AbstractTransaction, ExportJob
        from .signals import validate_confirmed_amount

        post_delete.connect(delete_file, sender=ExportJob, dispatch_uid="django_pgpay.jobs.delete_file")

        for model in apps.get_models():
            if issubclass(model, AbstractTransaction):
                post_save.connect(
                    validate_confirmed_amount,
                    sender=model,
                    dispatch_uid=f"django_pgpay.validate_amount.{model._meta.label_lower}",
                )
