"""The stylesheet and script of the admin pages django-pgpay adds or changes."""

from __future__ import annotations

from django import forms

#: The stylesheet and script of the order admin's pages (django_pgpay/static/django_pgpay/).
ADMIN_MEDIA = forms.Media(css={"all": ["django_pgpay/admin.css"]}, js=["django_pgpay/admin.js"])
