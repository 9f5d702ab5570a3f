"""Test-only pages around the sandbox: a webhook receiver and a tiny shop.

The receiver keeps what it gets in memory (no database writes from the
server thread), answers with the statuses a test queues, and the shop pages
load the sandbox's SDK exactly as a shop's checkout template loads Toss's.
"""

from __future__ import annotations

import json
import threading
from collections import deque

from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt


class Receiver:
    """What the shop's webhook endpoint received."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.deliveries: list[dict] = []
            self.answers: deque[int] = deque()
            self.replies: deque[tuple[int, bytes]] = deque()

    def reply_next(self, *replies: tuple[int, bytes]) -> None:
        """Answer the next Bootpay deliveries with these (status, body) pairs (then 200 ``{"success": true}``)."""
        with self.lock:
            self.replies.extend(replies)

    def record_bootpay(self, request) -> tuple[int, bytes]:
        with self.lock:
            status, body = self.replies.popleft() if self.replies else (200, b'{"success": true}')
            self.deliveries.append(
                {"headers": dict(request.headers), "raw": request.body, "json": json.loads(request.body), "answered": status, "body": body}
            )
            return status, body

    def answer_next(self, *statuses: int) -> None:
        """Answer the next deliveries with these statuses (then 200)."""
        with self.lock:
            self.answers.extend(statuses)

    def record(self, request) -> int:
        with self.lock:
            status = self.answers.popleft() if self.answers else 200
            self.deliveries.append(
                {
                    "headers": dict(request.headers),
                    "raw": request.body,
                    "json": _json(request.body),
                    "answered": status,
                }
            )
            return status

    def bodies(self, event_type: str | None = None) -> list[dict]:
        with self.lock:
            found = [d["json"] for d in self.deliveries]
        if event_type is None:
            return found
        return [b for b in found if b.get("eventType", "DEPOSIT_CALLBACK" if "secret" in b else None) == event_type]


def _json(body: bytes):
    """The JSON body, or None for a form (PortOne V1 can send its webhooks as a form)."""
    try:
        return json.loads(body)
    except ValueError:
        return None


receiver = Receiver()


@csrf_exempt
def webhook(request):
    return HttpResponse("OK" if (status := receiver.record(request)) == 200 else "NO", status=status, content_type="text/plain")


@csrf_exempt
def bootpay_webhook(request):
    """A shop's Bootpay webhook endpoint that answers as told (default: 200 ``{"success": true}``)."""
    status, body = receiver.record_bootpay(request)
    return HttpResponse(body, status=status, content_type="application/json")


CHECKOUT = """<!DOCTYPE html>
<html lang="ko"><head><meta charset="utf-8"><title>Test shop checkout</title>
<script src="{sdk}"></script></head>
<body>
<h1>Test shop</h1>
<div id="payment-method"></div><div id="agreement"></div>
<button id="buy">Buy</button>
<pre id="error"></pre>
<script>
const params = {params};
const tossPayments = TossPayments(params.clientKey);
async function buyWithWindow() {{
  const payment = tossPayments.payment({{customerKey: TossPayments.ANONYMOUS}});
  await payment.requestPayment({{
    method: params.method,
    amount: {{currency: "KRW", value: params.amount}},
    orderId: params.orderId,
    orderName: params.orderName,
    successUrl: window.location.origin + "{success}",
    failUrl: window.location.origin + "{fail}",
    customerName: "김토스",
    customerEmail: "buyer@example.com",
  }});
}}
let widgets = null;
async function setUpWidgets() {{
  widgets = tossPayments.widgets({{customerKey: "customer-123"}});
  await widgets.setAmount({{currency: "KRW", value: params.amount}});
  await Promise.all([
    widgets.renderPaymentMethods({{selector: "#payment-method", variantKey: "DEFAULT"}}),
    widgets.renderAgreement({{selector: "#agreement", variantKey: "AGREEMENT"}}),
  ]);
}}
async function buyWithWidgets() {{
  await widgets.requestPayment({{
    orderId: params.orderId,
    orderName: params.orderName,
    successUrl: window.location.origin + "{success}",
    failUrl: window.location.origin + "{fail}",
    customerName: "김토스",
  }});
}}
if (params.flow === "widget") setUpWidgets();
document.getElementById("buy").addEventListener("click", function () {{
  (params.flow === "widget" ? buyWithWidgets() : buyWithWindow()).catch(function (error) {{
    document.getElementById("error").textContent = error.code + ": " + error.message;
  }});
}});
</script></body></html>"""


def checkout(request):
    from django.conf import settings

    params = {
        "clientKey": request.GET.get("clientKey") or settings.PGPAY_SANDBOX["TOSS"]["CLIENT_KEYS"][0],
        "orderId": request.GET.get("orderId", ""),
        "orderName": request.GET.get("orderName", "한우 오마카세 2인"),
        "amount": int(request.GET.get("amount", "15000")),
        "method": request.GET.get("method", "CARD"),
        "flow": request.GET.get("flow", "payment"),
    }
    html = CHECKOUT.format(
        sdk=reverse("pgpay_sandbox:toss-sdk"),
        params=json.dumps(params),
        success=reverse("shop-success"),
        fail=reverse("shop-fail"),
    )
    return HttpResponse(html)


LANDING = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1 id="landing">{title}</h1><pre id="query">{query}</pre></body></html>"""


def success(request):
    return HttpResponse(LANDING.format(title="Shop: payment authenticated", query=_escape(request.META.get("QUERY_STRING", ""))))


def fail(request):
    return HttpResponse(LANDING.format(title="Shop: payment failed", query=_escape(request.META.get("QUERY_STRING", ""))))


def _escape(text: str) -> str:
    from django.utils.html import escape

    return escape(text)
