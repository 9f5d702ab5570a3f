"""Calls the shop makes to its own address, answered in this process (no server, no socket).

The gateways call the sandbox over HTTP at ``settings.SITE_URL`` (PortOne's
``payments/prepare``, Toss's confirm, Stripe's Checkout Session ...), and the
sandbox posts its webhooks back to the shop there. A management command that
walks the shop while no server runs (``demo_check``, ``demo_orders``) wraps
its work in :func:`served_in_process`: every ``requests`` call to that address
is answered by Django's test client in this process; any other goes out as
usual.
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock
from urllib.parse import urlsplit

import requests
from django.test import Client


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` transport that answers requests to this server with Django's test client (no socket)."""

    def __init__(self, host: str):
        super().__init__()
        self.client = Client(HTTP_HOST=host)

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        skip = {"host", "content-length", "content-type"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        body = request.body.encode() if isinstance(request.body, str) else (request.body or b"")
        answer = self.client.generic(request.method, path, data=body, content_type=request.headers.get("Content-Type", ""), headers=headers)
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = requests.structures.CaseInsensitiveDict(answer.items())
        response._content = answer.content
        response.encoding = answer.charset
        response.url = request.url
        response.request = request
        response.reason = answer.reason_phrase
        return response

    def close(self):
        pass


@contextmanager
def served_in_process(site_url: str):
    """While inside, every ``requests`` call to ``site_url`` is answered by :class:`InProcessAdapter`."""
    adapter = InProcessAdapter(urlsplit(site_url).netloc)
    original = requests.Session.get_adapter

    def get_adapter(session, url):
        return adapter if url.startswith(site_url + "/") else original(session, url)

    with mock.patch.object(requests.Session, "get_adapter", get_adapter):
        yield
