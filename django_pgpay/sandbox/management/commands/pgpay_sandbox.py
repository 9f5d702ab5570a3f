"""``manage.py pgpay_sandbox``: inspect and drive the payment sandbox from a shell.

::

    manage.py pgpay_sandbox status                 # clock, payments, outbox, faults
    manage.py pgpay_sandbox deliver [--due] [ID ...]
    manage.py pgpay_sandbox tick                   # time-based changes + due webhooks, once
    manage.py pgpay_sandbox worker [--poll 0.5]    # the same in a loop (Ctrl-C stops)
    manage.py pgpay_sandbox clock --advance 660 | --reset
    manage.py pgpay_sandbox fault toss confirm timeout_after [--times 1] [--match KEY] [--param delay=3]
    manage.py pgpay_sandbox faults [--clear]
    manage.py pgpay_sandbox action toss deposit payment_key=tsbx...
    manage.py pgpay_sandbox reset
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from ... import control


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: list[str]) -> dict:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"expected name=value, got {item!r}")
        result[name] = _value(value)
    return result


class Command(BaseCommand):
    help = "Inspect and drive the payment sandbox (django_pgpay.sandbox)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        sub.add_parser("status", help="clock, recent payments, outbox and armed faults")
        deliver = sub.add_parser("deliver", help="send pending webhooks now")
        deliver.add_argument("ids", nargs="*", type=int)
        deliver.add_argument("--due", action="store_true", help="only those due (respect delays and retries)")
        sub.add_parser("tick", help="apply time-based changes and send due webhooks, once")
        worker = sub.add_parser("worker", help="tick in a loop until interrupted")
        worker.add_argument("--poll", type=float, default=None)
        clock = sub.add_parser("clock", help="move the sandbox clock")
        clock.add_argument("--advance", type=float, help="seconds forward")
        clock.add_argument("--reset", action="store_true", help="back to real time")
        fault = sub.add_parser("fault", help="arm a fault")
        fault.add_argument("pg")
        fault.add_argument("operation")
        fault.add_argument("kind")
        fault.add_argument("--times", type=int, default=1)
        fault.add_argument("--match", default="")
        fault.add_argument("--param", action="append", default=[], help="name=value (JSON values allowed)")
        faults = sub.add_parser("faults", help="list armed faults")
        faults.add_argument("--clear", action="store_true")
        action = sub.add_parser("action", help="run a PG action, e.g. toss deposit payment_key=...")
        action.add_argument("pg")
        action.add_argument("action")
        action.add_argument("params", nargs="*", metavar="name=value")
        sub.add_parser("reset", help="forget everything the sandbox holds")

    def handle(self, *args, what, **options):
        getattr(self, f"do_{what}")(**options)

    def _dump(self, data) -> None:
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str))

    def do_status(self, **options):
        self._dump(control.state())

    def do_deliver(self, ids, due, **options):
        results = control.deliver_due_webhooks() if due else control.deliver_webhooks(ids or None)
        for r in results:
            self.stdout.write(f"#{r.webhook_id} {r.event_type}: {r.status_code or r.error} -> {r.status}")
        self.stdout.write(f"{len(results)} attempt(s)")

    def do_tick(self, **options):
        self._dump(control.tick())

    def do_worker(self, poll, **options):
        from ...worker import Worker

        interval = Worker(poll).poll
        self.stdout.write(f"Sandbox worker: ticking every {interval} s (Ctrl-C stops)")
        try:
            while True:
                counts = control.tick()
                if counts["changed"] or counts["attempts"]:
                    self.stdout.write(json.dumps(counts))
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("stopped")

    def do_clock(self, advance, reset, **options):
        if reset:
            control.set_clock_offset(timedelta(0))
        if advance:
            control.advance_clock(seconds=advance)
        self.stdout.write(control.now().isoformat())

    def do_fault(self, pg, operation, kind, times, match, param, **options):
        try:
            fault = control.arm_fault(pg, operation, kind, times=times, match=match, **_pairs(param))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self._dump(control.describe_fault(fault))

    def do_faults(self, clear, **options):
        from ... import faults

        if clear:
            self.stdout.write(f"cleared {control.clear_faults()}")
            return
        self._dump([control.describe_fault(f) for f in faults.armed()])

    def do_action(self, pg, action, params, **options):
        from ...base import ApiError

        try:
            self._dump(control.act(pg, action, **_pairs(params)))
        except (KeyError, TypeError, ApiError) as exc:
            raise CommandError(str(getattr(exc, "message", None) or exc)) from exc

    def do_reset(self, **options):
        control.reset()
        self.stdout.write("sandbox reset")
