"""The tutorial's URLs (un-namespaced, as in the seeds), mounted under ``tutorial/`` by ``bench.urls``."""

from django.urls import path

from . import views

urlpatterns = [
    path("restaurant/<int:restaurant_id>/", views.RestaurantView.as_view(), name="restaurant-view"),
    path("booking/<int:restaurant_id>/<int:seat_id>/", views.BookingView.as_view(), name="booking"),
    path("pay/<str:status>/", views.PayView.as_view(), name="pay"),
    path("history/", views.BookingHistoryView.as_view(), name="history"),
    # 예약 내역 취소 URL
    path("cancel/<int:booking_id>/", views.BookingCancelView.as_view(), name="cancel"),
]
