from django.contrib import admin
from django.urls import include, path

from tests.testapp.views import BookingHistoryView, BookingView, CartCheckoutView, GuestBookingView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("pay/", include("django_pgpay.urls")),
    path("sandbox/", include("django_pgpay.sandbox.urls")),
    path("book/<int:seat_id>/", BookingView.as_view(), name="book"),
    path("book/<int:seat_id>/<slug:alias>/", BookingView.as_view(), name="book-with"),
    path("guest/<int:seat_id>/<slug:alias>/", GuestBookingView.as_view(), name="guest-book"),
    path("history/", BookingHistoryView.as_view(), name="history"),
    path("shop/<int:product_id>/<int:quantity>/<slug:alias>/", CartCheckoutView.as_view(), name="shop-checkout"),
]
