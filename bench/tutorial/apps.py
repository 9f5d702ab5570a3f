from django.apps import AppConfig


class TutorialConfig(AppConfig):
    """The seed tutorial's booking app (benchmark baseline only)."""

    name = "bench.tutorial"
    label = "tutorial"
    default_auto_field = "django.db.models.BigAutoField"
