"""URLs of the example project.

=========================  ===================================================
``/``                      home: the two shops, the sandbox, the admin
``/restaurants/...``       the restaurant booking (seeds 000/001)
``/shop/...``              the cart shop (seeds 002/003)
``/pay/...``               django-pgpay: webhooks (``pay/<alias>/webhook/``),
                           cancel (``pay/cancel/<number>/``), generic return URLs
``/sandbox/...``           the payment sandbox (with DEBUG only)
``/accounts/...``          log in, log out, sign up
``/admin/``                orders, ledgers, webhook deliveries, seats, products
=========================  ===================================================
"""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("restaurants/", include("restaurants.urls")),
    path("shop/", include("shop.urls")),
    path("pay/", include("django_pgpay.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.SignupView.as_view(), name="signup"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]

if settings.SANDBOX:
    urlpatterns += [path("sandbox/", include("django_pgpay.sandbox.urls"))]
