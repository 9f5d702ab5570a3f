"""django-pgpay: take and refund payments through Korean PGs and Stripe from Django.

Public entry points live in their own modules (``django_pgpay.payments`` for the
operations, ``django_pgpay.models`` for the abstract models, ``django_pgpay.views``
for the view mixins); importing this package loads nothing from Django.
"""

__version__ = "0.1.0.dev0"
