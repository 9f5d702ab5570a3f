from django.urls import path

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.ProductListView.as_view(), name="products"),
    path("cart/", views.CartView.as_view(), name="cart"),
    path("cart/add/<int:product_id>/", views.CartAddView.as_view(), name="cart-add"),
    path("cart/update/<int:product_id>/", views.CartUpdateView.as_view(), name="cart-update"),
    path("orders/", views.OrderListView.as_view(), name="orders"),
    path("orders/new/", views.OrderCreateView.as_view(), name="order-create"),
    # slug: an order number's characters only (a NUL in the URL was a 500 on PostgreSQL).
    path("orders/<slug:order_number>/", views.OrderDetailView.as_view(), name="order"),
    path("orders/<slug:order_number>/pay/", views.OrderPaymentView.as_view(), name="pay"),
    # Where the PG sends the buyer back (django-pgpay's ReturnView, redirecting to the order).
    path("pay/<slug:alias>/return/", views.ShopOrderReturnView.as_view(), name="return"),
    path("pay/<slug:alias>/fail/", views.ShopOrderReturnView.as_view(failed=True), name="fail"),
]
