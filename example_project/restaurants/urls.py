from django.urls import path

from . import views

app_name = "restaurants"

urlpatterns = [
    path("", views.RestaurantListView.as_view(), name="list"),
    path("<int:pk>/", views.RestaurantDetailView.as_view(), name="detail"),
    path("seats/<int:seat_id>/book/", views.BookingView.as_view(), name="book"),
    path("bookings/", views.BookingHistoryView.as_view(), name="history"),
    # Where the PG sends the buyer back (django-pgpay's ReturnView, redirecting to the bookings).
    path("pay/<slug:alias>/return/", views.BookingReturnView.as_view(), name="return"),
    path("pay/<slug:alias>/fail/", views.BookingReturnView.as_view(failed=True), name="fail"),
]
