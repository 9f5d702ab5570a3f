from django.apps import AppConfig


class ExampleProjectConfig(AppConfig):
    """The project's own bits: home page, sign-up, demo data and its self-check commands."""

    name = "example_project"
    verbose_name = "Example project"
