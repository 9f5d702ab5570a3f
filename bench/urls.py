"""The example project's URLs, with the tutorial's views under ``tutorial/``."""

from django.urls import include, path

from example_project.urls import urlpatterns as example_urlpatterns

urlpatterns = [*example_urlpatterns, path("tutorial/", include("bench.tutorial.urls"))]
