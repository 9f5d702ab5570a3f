"""URLs of django-pgpay: mount with ``path("pay/", include("django_pgpay.urls"))``.

Routes are added by the views that serve them (return, cancel, webhook and
invoice routes); the shop's own pages stay in the shop's URLconf.

* ``<alias>/return/``: the PG's success URL (:class:`~django_pgpay.views.ReturnView`)
* ``<alias>/fail/``: the PG's fail URL
* ``<alias>/webhook/``: webhook deliveries (:class:`~django_pgpay.views.WebhookView`)
* ``<alias>/attempt/``: the buyer's window reports a payment id (:class:`~django_pgpay.views.AttemptView`)
* ``cancel/<app_label.model>/<order_number>/``: POST a cancel
  (:class:`~django_pgpay.views.CancelView`; what ``{% pgpay_cancel_form %}`` renders:
  the order is looked for in that model only); ``cancel/<order_number>/`` searches
  every order model
* ``invoice/<app_label.model>/<order_number>/``: the order's PDF invoice, for its owner or
  staff (:class:`~django_pgpay.views.InvoiceView`; needs the ``pdf`` extra; what
  ``{% pgpay_invoice_url order %}`` gives: the order is looked for in that model only);
  ``invoice/<order_number>/`` searches every order model
"""

from django.urls import path

from .views import AttemptView, CancelView, InvoiceView, ReturnView, WebhookView

app_name = "django_pgpay"

urlpatterns: list = [
    path("<slug:alias>/return/", ReturnView.as_view(), name="return"),
    path("<slug:alias>/fail/", ReturnView.as_view(failed=True), name="fail"),
    path("<slug:alias>/webhook/", WebhookView.as_view(), name="webhook"),
    path("<slug:alias>/attempt/", AttemptView.as_view(), name="attempt"),
    path("cancel/<str:model>/<str:order_number>/", CancelView.as_view(), name="cancel"),
    path("cancel/<str:order_number>/", CancelView.as_view(), name="cancel"),
    path("invoice/<str:model>/<str:order_number>/", InvoiceView.as_view(), name="invoice"),
    path("invoice/<str:order_number>/", InvoiceView.as_view(), name="invoice"),
]
