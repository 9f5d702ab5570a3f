"""A call log of the sandbox's Toss API, for the benchmark: what reached the PG, refused or not.

The sandbox keeps what a PG keeps (payments, their approvals and refunds); it
does not keep the calls it refused (a second confirm of one payment, a cancel
of a cancelled one). This middleware appends one line per API call to a file
of its own process under ``BENCH_PG_LOG_DIR``: method, path, status, the
payment key or order id, and the Idempotency-Key (or ``-``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings

API = "/sandbox/toss/v1/payments/"


class PgCallLog:
    """Middleware: log each call to ``/sandbox/toss/v1/payments/...`` (confirm, cancel, lookups)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._file = None

    def _out(self):
        if self._file is None:
            folder = Path(settings.BENCH_PG_LOG_DIR)
            folder.mkdir(parents=True, exist_ok=True)
            self._file = open(folder / f"pg-{os.getpid()}.log", "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
        return self._file

    def __call__(self, request):
        if not settings.BENCH_PG_LOG_DIR or not request.path.startswith(API):
            return self.get_response(request)
        body = request.body  # read before the view does
        response = self.get_response(request)
        rest = request.path[len(API) :]
        if rest == "confirm":
            operation, target = "confirm", _field(body, "paymentKey")
        elif rest.endswith("/cancel"):
            operation, target = "cancel", rest[: -len("/cancel")]
        else:
            operation, target = "lookup", rest
        line = json.dumps(
            {
                "op": operation,
                "method": request.method,
                "key": target,
                "status": response.status_code,
                "idempotency": request.headers.get("Idempotency-Key", ""),
            }
        )
        out = self._out()
        out.write(line + "\n")
        out.flush()
        return response


def _field(body: bytes, name: str) -> str:
    try:
        return str(json.loads(body or b"{}").get(name, ""))
    except (ValueError, AttributeError):
        return ""
