"""The test suite's URLs plus the sandbox tests' receiver and shop pages."""

from django.urls import path

from tests.urls import urlpatterns as base

from . import pages

urlpatterns = [
    *base,
    path("test-receiver/", pages.webhook, name="test-receiver"),
    path("test-receiver/bootpay/", pages.bootpay_webhook, name="test-receiver-bootpay"),
    path("shop/checkout/", pages.checkout, name="shop-checkout"),
    path("shop/success/", pages.success, name="shop-success"),
    path("shop/fail/", pages.fail, name="shop-fail"),
]
