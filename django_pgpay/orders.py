"""Finding an order by its order number, whichever concrete order model holds it.

A project may have several order models (bookings and cart orders, say). PGs
know an order only by the order number we sent them (Toss ``orderId``,
PortOne ``merchant_uid``) and a webhook URL is registered once per PG account,
so every URL of django-pgpay names an order by its **order number** alone, and
:func:`find_order` searches each concrete subclass of
:class:`~django_pgpay.models.AbstractOrder` (one indexed query per model).

Order numbers must therefore be unique across the project's order models.
The generated ones are (14 random letters and digits); a shop that sets its own
should give each model its own prefix. When two models do hold the same number,
:func:`find_order` refuses to choose and raises :class:`OperationRefused`
(``AMBIGUOUS_ORDER``): nothing is ever applied to a guess.

A URL may also name the model (``cancel/<app_label.model>/<order_number>/``,
as ``{% pgpay_cancel_form %}`` renders it): :func:`order_model_named` reads
the label, and the order is then looked for in that model alone (one query
however many order models the project has).

Views take an ``order_models`` attribute (model classes or ``"app_label.Model"``
labels) to restrict the search, e.g. ``CancelView.as_view(order_models=["shop.Booking"])``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.apps import apps
from django.utils.translation import gettext_lazy as _

from .exceptions import ConfigurationError, OperationRefused
from .models import ORDER_NUMBER_RE, AbstractOrder

_ORDER_NUMBER = re.compile(ORDER_NUMBER_RE)


def order_models(only: Iterable | None = None) -> list[type[AbstractOrder]]:
    """The concrete (non-proxy) order models of the project, or those named in ``only``.

    ``only`` holds model classes or ``"app_label.Model"`` labels (the model
    name in any case, as Django's ``apps.get_model`` reads it). A model
    named twice (``--model shop.Booking --model shop.booking``) is listed once,
    where it was first named, so a command never does its work twice.
    """
    if only is not None:
        models = []
        for entry in only:
            model = apps.get_model(entry) if isinstance(entry, str) else entry
            if not (isinstance(model, type) and issubclass(model, AbstractOrder)) or model._meta.abstract:
                raise ConfigurationError(f"{entry!r} is not a concrete AbstractOrder subclass.")
            if model not in models:
                models.append(model)
        return models
    return [model for model in apps.get_models() if issubclass(model, AbstractOrder) and not model._meta.abstract and not model._meta.proxy]


def order_model_named(label, only: Iterable | None = None) -> type[AbstractOrder] | None:
    """The order model whose ``app_label.model_name`` is ``label`` (any case), among ``only`` when given; else None.

    For labels that come from a URL: anything that is not the label of a
    concrete order model (of those allowed) is None, never an error.
    """
    if not isinstance(label, str):
        return None
    label = label.lower()
    return next((model for model in order_models(only) if model._meta.label_lower == label), None)


def find_order(order_number: str, *, gateway: str | None = None, models: Iterable | None = None):
    """The order with ``order_number`` (paying through ``gateway`` when given), or None.

    Raises :class:`OperationRefused` (``AMBIGUOUS_ORDER``) when more than one
    model holds the number.
    """
    if not isinstance(order_number, str) or not _ORDER_NUMBER.match(order_number):
        return None
    found = []
    for model in order_models(models):
        queryset = model._base_manager.filter(order_number=order_number)
        if gateway is not None:
            queryset = queryset.filter(gateway=gateway)
        order = queryset.first()
        if order is not None:
            found.append(order)
    if len(found) > 1:
        raise OperationRefused(_("More than one order has this number; nothing was done."), code="AMBIGUOUS_ORDER")
    return found[0] if found else None
