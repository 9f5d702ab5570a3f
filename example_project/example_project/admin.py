"""The webhook delivery log in the admin, unless django-pgpay's own admin registers it already."""

from django.contrib import admin

from django_pgpay.models import WebhookEvent

from .admin_support import WebhookEventAdmin

if not admin.site.is_registered(WebhookEvent):
    admin.site.register(WebhookEvent, WebhookEventAdmin)
