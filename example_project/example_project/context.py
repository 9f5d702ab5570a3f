"""Template context for every page: the cart's size and whether payments go to the sandbox."""

from django.conf import settings


def shop(request) -> dict:
    from shop.cart import Cart

    session = getattr(request, "session", None)
    return {
        "cart_count": Cart(session).count if session is not None else 0,
        "sandbox_on": bool(getattr(settings, "SANDBOX_GATEWAYS", None)),
        "sandbox_url": "/sandbox/" if getattr(settings, "SANDBOX", False) else "",
    }
