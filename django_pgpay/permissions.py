"""Who may act on an order: its buyer, and staff through Django permissions.

One rule for the views, the admin and the docs (``docs/security.rst``):

=====================  =====================================================
action                 allowed to
=====================  =====================================================
see the order, invoice the buyer; staff with the model's *view* (or *change*)
                       permission
cancel, refund         the buyer; staff with the order model's *refund*
                       permission: :meth:`AbstractOrder.get_refund_permission`
                       (the model's *change* permission unless the model
                       names another)
=====================  =====================================================

Being ``is_staff`` grants nothing by itself: a staff account with no
permissions cannot refund or read another buyer's order. Inactive users are
nobody. Whether a buyer may cancel at all (and until when) is the shop's rule:
override :meth:`~django_pgpay.views.CancelMixin.get_order` or the order's
``is_cancelable``.
"""

from __future__ import annotations

from django.contrib.auth import get_permission_codename


def _active(user) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)


def is_buyer(user, order) -> bool:
    """``user`` is the order's buyer (the account that checked out)."""
    return _active(user) and order.user_id is not None and order.user_id == user.pk


def model_permission(model, action: str) -> str:
    """``"app_label.<action>_<model>"`` of an order model (``action`` is view, change ...)."""
    opts = model._meta
    return f"{opts.app_label}.{get_permission_codename(action, opts)}"


def is_declared(permission: str) -> bool:
    """Whether a model declares ``permission`` (``"app_label.codename"``): a default one or one of ``Meta.permissions``.

    Read from the models, not the database (the permissions table is filled by
    ``migrate``, after the checks that use this). A permission made only by a
    data migration is not seen: its check can be silenced.
    """
    from django.apps import apps

    app_label, _dot, codename = str(permission).partition(".")
    try:
        models = apps.get_app_config(app_label).get_models()
    except LookupError:
        return False
    for model in models:
        opts = model._meta
        if codename in {get_permission_codename(action, opts) for action in opts.default_permissions}:
            return True
        if codename in {name for name, _label in opts.permissions}:
            return True
    return False


def undeclared_warnings(permissions: dict, obj=None) -> list:
    """Warnings (``django_pgpay.W013``) for each ``{where: permission}`` that no model declares.

    A misspelled permission is held by nobody: staff silently lose the
    operation (only superusers keep it).
    """
    from django.core import checks

    return [
        checks.Warning(
            f"{where} = {permission!r} is a permission no model declares: no staff user can have it.",
            hint='Name an existing one ("app_label.codename"), or declare it in the model\'s Meta.permissions.',
            obj=obj,
            id="django_pgpay.W013",
        )
        for where, permission in permissions.items()
        if permission and not is_declared(permission)
    ]


def refund_permission(model) -> str:
    """The permission a staff user needs to cancel or refund orders of ``model``."""
    getter = getattr(model, "get_refund_permission", None)
    return getter() if getter is not None else model_permission(model, "change")


def staff_may_refund(user, model) -> bool:
    """May ``user`` give money back on orders of ``model`` (as staff, whoever the buyer is)?"""
    return _active(user) and user.has_perm(refund_permission(model))


def staff_may_view(user, model) -> bool:
    """May ``user`` see orders of ``model`` and their invoices (as staff)?"""
    return _active(user) and (user.has_perm(model_permission(model, "view")) or user.has_perm(model_permission(model, "change")))


def may_refund(user, order) -> bool:
    """May ``user`` cancel or refund ``order``? Its buyer, or staff with the refund permission."""
    return is_buyer(user, order) or staff_may_refund(user, type(order))


def may_view(user, order) -> bool:
    """May ``user`` see ``order``'s details and invoice? Its buyer, or staff with the view permission."""
    return is_buyer(user, order) or staff_may_view(user, type(order))


# --- the buyer's token on the PG's return URL --------------------------------------

#: Query parameter of the return, fail and attempt URLs that carries :func:`buyer_token`.
BUYER_TOKEN_PARAM = "pgpay_t"
_TOKEN_SALT = "django_pgpay.buyer-token"


def buyer_token(order_number: str) -> str:
    """A signature of ``order_number`` the checkout puts on the URLs the PG sends the buyer back to.

    Whoever comes back with it is the browser that checked out (a phone's
    payment app may return in another browser, without the buyer's session).
    Only such a request, or the buyer's own session, makes the shop call the
    PG about a READY order: a stranger who knows an order number cannot.
    Signed with ``SECRET_KEY`` (Django's signing, salted for this use).
    """
    from django.core import signing

    return signing.Signer(salt=_TOKEN_SALT).signature(order_number)


def has_buyer_token(order_number: str, token) -> bool:
    """True when ``token`` is :func:`buyer_token` of ``order_number`` (compared in constant time)."""
    from django.utils.crypto import constant_time_compare

    return isinstance(token, str) and 0 < len(token) <= 200 and constant_time_compare(token, buyer_token(order_number))


def may_pay(request, order) -> bool:
    """May ``request`` make the shop call the PG about ``order``? Its buyer's session, or the checkout's token."""
    if is_buyer(getattr(request, "user", None), order):
        return True
    return has_buyer_token(order.order_number, request.GET.get(BUYER_TOKEN_PARAM) or request.POST.get(BUYER_TOKEN_PARAM))


__all__ = [
    "BUYER_TOKEN_PARAM",
    "buyer_token",
    "has_buyer_token",
    "is_buyer",
    "may_pay",
    "may_refund",
    "may_view",
    "model_permission",
    "refund_permission",
    "staff_may_refund",
    "staff_may_view",
]
