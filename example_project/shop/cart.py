"""The cart, kept in the session: product id -> quantity.

Prices are never stored in the session: they are read from the products when
the cart is shown and copied into the order lines when the order is placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .models import Product

SESSION_KEY = "cart"
MAX_QUANTITY = 20


@dataclass(frozen=True)
class CartItem:
    """One product in the cart, with its current price."""

    product: Product
    quantity: int

    @property
    def total(self) -> Decimal:
        return self.product.price * self.quantity


class Cart:
    """The buyer's cart in ``request.session``."""

    def __init__(self, session):
        self.session = session
        raw = session.get(SESSION_KEY)
        self.quantities: dict[str, int] = {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}

    def _save(self) -> None:
        self.session[SESSION_KEY] = self.quantities
        self.session.modified = True

    def add(self, product: Product, quantity: int = 1) -> None:
        self.set(product, self.quantities.get(str(product.pk), 0) + quantity)

    def set(self, product: Product, quantity: int) -> None:
        """Set a line's quantity (0 removes it; at most :data:`MAX_QUANTITY`)."""
        quantity = max(0, min(int(quantity), MAX_QUANTITY))
        if quantity:
            self.quantities[str(product.pk)] = quantity
        else:
            self.quantities.pop(str(product.pk), None)
        self._save()

    def clear(self) -> None:
        self.quantities = {}
        self._save()

    def remove(self, product_id) -> None:
        """Take a product out of the cart by its id, on sale or not (a deleted product's line too)."""
        if self.quantities.pop(str(product_id), None) is not None:
            self._save()

    def items(self) -> list[CartItem]:
        """The lines; products no longer on sale are dropped from the cart (the header's count with them)."""
        products = Product.objects.filter(pk__in=[int(k) for k in self.quantities if k.isdigit()], is_active=True).in_bulk()
        gone = [k for k in self.quantities if not (k.isdigit() and int(k) in products)]
        if gone:
            # They stayed in the session: the header said "Cart 3" over an empty cart, for good.
            for k in gone:
                self.quantities.pop(k)
            self._save()
        return [CartItem(products[int(k)], q) for k, q in self.quantities.items()]

    @property
    def count(self) -> int:
        return sum(self.quantities.values())

    def __len__(self) -> int:
        return len(self.quantities)
