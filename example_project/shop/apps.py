from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ShopConfig(AppConfig):
    """The cart shop of seeds 002/003."""

    name = "shop"
    verbose_name = _("Shop")
    default_auto_field = "django.db.models.BigAutoField"
