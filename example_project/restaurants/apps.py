from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RestaurantsConfig(AppConfig):
    """The restaurant booking of seeds 000/001."""

    name = "restaurants"
    verbose_name = _("Restaurant bookings")
    default_auto_field = "django.db.models.BigAutoField"
