"""The cart shop of seeds 002/003, on django-pgpay's views.

products → cart (in the session) → "Place order" (recipient, address, PG) →
the order's page → Pay (django-pgpay's ``CheckoutMixin``) → the PG's payment
window → back to the order's page, PAID, with full and partial cancel forms.

Unlike the tutorial, the order keeps the prices it was placed with (the cart
holds only quantities), the payment page is reached by POST only, the order
belongs to its buyer (others get a 404) and the amount the PG reports is
checked against the order before it is confirmed.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView

from django_pgpay import checkout_forms
from django_pgpay.status import OrderStatus
from django_pgpay.views import CheckoutMixin
from example_project.paging import FirstPagePaginator
from example_project.payment import ShopReturnUrlsMixin, ShopReturnView, default_alias, gateway_choices

from .cart import MAX_QUANTITY, Cart
from .models import CartLine, CartOrder, Product


class ProductListView(ListView):
    """``/shop/``: what is on sale."""

    template_name = "shop/product_list.html"
    context_object_name = "products"
    queryset = Product.objects.filter(is_active=True)


class CartAddView(View):
    """``POST /shop/cart/add/<product_id>/``: put a product in the cart."""

    http_method_names = ["post"]

    def post(self, request, product_id):
        product = get_object_or_404(Product, pk=product_id, is_active=True)
        back = redirect("shop:cart" if request.POST.get("next") == "cart" else "shop:products")
        quantity = typed_quantity(request, "1")
        if quantity == 0:
            messages.error(request, _("Enter a quantity from 1 to %(max)s.") % {"max": MAX_QUANTITY})
        if not quantity:
            return back
        cart = Cart(request.session)
        before = cart.quantities.get(str(product.pk), 0)
        cart.add(product, quantity)
        if before + quantity > MAX_QUANTITY:
            capped(request, product)
        messages.success(request, _("%(product)s is in your cart.") % {"product": product.name})
        return back


def typed_quantity(request, default: str) -> int | None:
    """The form's quantity as a whole number, or None (with a message saying what to type) when it is not one."""
    raw = request.POST.get("quantity", default).strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 6:
        return int(raw)
    # "1e2", "-1", "2.5", "": never read as 0 (it removed the line) or as 1 without a word. Nor
    # thousands of digits: int() refuses more than 4,300 of them (a 500, found by an attack review).
    messages.error(request, _("Enter a quantity from 0 to %(max)s.") % {"max": MAX_QUANTITY})
    return None


def capped(request, product) -> None:
    messages.warning(request, _("At most %(max)s of %(product)s per order.") % {"max": MAX_QUANTITY, "product": product.name})


class CartUpdateView(View):
    """``POST /shop/cart/update/<product_id>/``: change a quantity (0 removes the product)."""

    http_method_names = ["post"]

    def post(self, request, product_id):
        cart = Cart(request.session)
        product = Product.objects.filter(pk=product_id).first()
        if product is None:
            if str(product_id) not in cart.quantities:
                raise Http404("no such product")
            cart.remove(product_id)  # a product deleted since it was put in the cart: its line can go
            return redirect("shop:cart")
        quantity = typed_quantity(request, "0")
        if quantity is not None:
            if quantity > MAX_QUANTITY:
                capped(request, product)
            cart.set(product, quantity)
        return redirect("shop:cart")


class OrderForm(forms.Form):
    """Who receives the order, where, and which PG takes the payment."""

    recipient = forms.CharField(label=_("Recipient"), max_length=100)
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False)
    address = forms.CharField(label=_("Delivery address"), max_length=200)
    gateway = forms.ChoiceField(label=_("Pay with"), widget=forms.RadioSelect)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = gateway_choices("shop")
        self.fields["gateway"].choices = [
            (c["alias"], f"{c['name']} ({gettext('sandbox')})" if c["sandbox"] else c["name"]) for c in choices
        ]
        self.fields["gateway"].initial = default_alias("shop")


class CartView(TemplateView):
    """``/shop/cart/``: the cart, and the order form under it."""

    template_name = "shop/cart.html"

    def get_context_data(self, form=None, **kwargs):
        context = super().get_context_data(**kwargs)
        items = Cart(self.request.session).items()
        user = self.request.user
        initial = {"recipient": (user.get_full_name() or user.get_username()) if user.is_authenticated else ""}
        context.update(items=items, total=sum((i.total for i in items), 0), form=form or OrderForm(initial=initial))
        return context


class OrderCreateView(LoginRequiredMixin, View):
    """``POST /shop/orders/new/``: the cart becomes an order (READY) with its lines; the cart empties.

    The form carries a checkout token (``{% pgpay_checkout_token %}``) that the
    order records. The buyer's orders are placed one at a time (their user row
    is locked): the same form posted again, by a double click (whose second
    request read the cart before the first emptied it) or by the back button,
    lands on the order it made instead of placing the cart a second time.
    """

    http_method_names = ["post"]

    def post(self, request):
        cart = Cart(request.session)
        token = checkout_forms.clean(request.POST.get(checkout_forms.FIELD))
        with transaction.atomic():
            list(get_user_model()._base_manager.select_for_update().filter(pk=request.user.pk).values_list("pk", flat=True))
            placed = checkout_forms.orders_recording(CartOrder.objects.filter(user=request.user), token)
            if placed:
                # The cart is left as it is: emptied by the first post, or holding what was added since.
                messages.info(request, _("This order was placed already; nothing more was ordered."))
                return redirect(placed[0])
            return self.place(request, cart, token)

    def place(self, request, cart, token):
        """The cart as a new order (inside the buyer's lock), or the page saying what is missing."""
        items = cart.items()
        if not items:
            messages.warning(request, _("Your cart is empty."))
            return redirect("shop:products")
        form = OrderForm(request.POST)
        if not form.is_valid():
            return self.invalid(request, form)
        first = items[0].product.name
        name = first if len(items) == 1 else gettext("%(first)s and %(count)d more") % {"first": first, "count": len(items) - 1}
        order = CartOrder(
            user=request.user,
            gateway=form.cleaned_data["gateway"],
            amount=sum(i.total for i in items),
            order_name=name[:100],
            recipient=form.cleaned_data["recipient"],
            phone=form.cleaned_data["phone"],
            address=form.cleaned_data["address"],
            buyer_name=form.cleaned_data["recipient"],
            buyer_email=request.user.email or "",
            buyer_phone=form.cleaned_data["phone"],
        )
        if token is not None:
            checkout_forms.record(order, token)
        order.save()
        CartLine.objects.bulk_create(
            CartLine(order=order, product=i.product, name=i.product.name, unit_price=i.product.price, quantity=i.quantity) for i in items
        )
        cart.clear()
        return redirect(order)

    def invalid(self, request, form):
        view = CartView()
        view.setup(request)
        return view.render_to_response(view.get_context_data(form=form), status=400)


class BuyerOrderMixin(LoginRequiredMixin):
    """The order named in the URL, if it is the visitor's (staff see every order); else 404."""

    def get_order(self) -> CartOrder:
        order = get_object_or_404(CartOrder.objects.prefetch_related("lines"), order_number=self.kwargs["order_number"])
        if not order.is_owned_by(self.request.user):
            raise Http404("no such order")
        return order


class OrderListView(LoginRequiredMixin, ListView):
    """``/shop/orders/``: the buyer's orders."""

    template_name = "shop/order_list.html"
    context_object_name = "orders"
    paginate_by = 20
    paginator_class = FirstPagePaginator  # a buyer with one page of them: no COUNT query

    def get_queryset(self):
        return CartOrder.objects.filter(user=self.request.user).prefetch_related("lines").order_by("-created", "-pk")


class OrderDetailView(BuyerOrderMixin, DetailView):
    """``/shop/orders/<number>/``: lines, status, Pay (while payable) or Cancel (once paid), the ledger."""

    template_name = "shop/order_detail.html"
    context_object_name = "order"

    def get_object(self, queryset=None):
        return self.get_order()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        order = self.object
        context["payable"] = order.status == OrderStatus.READY and order.expires_at and order.expires_at > timezone.now()
        context["transactions"] = order.transactions.order_by("created", "pk")
        return context


class OrderPaymentView(BuyerOrderMixin, ShopReturnUrlsMixin, CheckoutMixin, TemplateView):
    """``POST /shop/orders/<number>/pay/``: django-pgpay's checkout for an order placed already.

    The order was created (with its lines and PG) by :class:`OrderCreateView`;
    here it is only looked up, and the payment window of its PG is shown.
    """

    order_model = CartOrder
    url_namespace = "shop"
    template_name = "payment_window.html"
    extra_context = {"held": "order"}  # the window says the order is kept, not a place

    def get(self, request, *args, **kwargs):
        return redirect("shop:order", order_number=kwargs["order_number"])

    def get_or_create_order(self):
        return self.get_order(), False

    def post(self, request, *args, **kwargs):
        order = self.get_order()
        if order.status != OrderStatus.READY or not order.expires_at or order.expires_at <= timezone.now():
            messages.warning(request, _("This order cannot be paid any more."))
            return HttpResponseRedirect(order.get_absolute_url())
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["back_url"] = reverse("shop:order", args=[self.kwargs["order_number"]])
        return context


class ShopOrderReturnView(ShopReturnView):
    """The PG sends the buyer back here; after a payment, on to the order's page."""

    order_models = [CartOrder]
    fallback_url_name = "shop:orders"
    success_message = _("Payment complete: thank you for your order.")

    def order_url(self, order) -> str:
        return order.get_absolute_url() if order is not None else reverse("shop:orders")

    def get_retry_url(self, order) -> str:
        # The order's page, with its Pay button while the order is held.
        return order.get_absolute_url()
