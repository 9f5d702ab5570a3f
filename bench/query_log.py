"""A per-request SQL log of the shop, for ``bench/flash_sale.py --verbose``: where a request's time goes.

With ``BENCH_QUERY_LOG_DIR`` set, every request appends one JSON line to a file of its own
process: method, path, status, the number of SQL statements, the seconds spent in them and in
the whole request, the CPU seconds of the request's thread, and (with ``BENCH_QUERY_SQL=1``) the statements themselves,
each with its milliseconds (wall time, as the request's thread saw it). The benchmark
groups the lines by step and prints them next to the tutorial's. With ``BENCH_PROFILE=1`` each
request also runs under cProfile (timing CPU: time.thread_time), its statistics added to ``prof-<pid>-<path>.pstats`` there
(read them with ``python -m pstats``; run with ``--in-flight 1``, one request at a time).
"""

from __future__ import annotations

import cProfile
import json
import os
import re
import time
from pathlib import Path

from django.db import connection


class QueryLog:
    """Middleware: count (and optionally keep) the SQL statements of each request."""

    def __init__(self, get_response):
        self.get_response = get_response
        self._file = None
        self.folder = os.environ.get("BENCH_QUERY_LOG_DIR", "")
        self.keep_sql = os.environ.get("BENCH_QUERY_SQL") == "1"
        self.profile = os.environ.get("BENCH_PROFILE") == "1"
        self.profiles: dict[str, cProfile.Profile] = {}
        if self.folder:
            Path(self.folder).mkdir(parents=True, exist_ok=True)

    def _out(self):
        if self._file is None:
            self._file = open(Path(self.folder) / f"sql-{os.getpid()}.log", "a", encoding="utf-8")  # noqa: SIM115 - lives with the process
        return self._file

    def __call__(self, request):
        if not self.folder:
            return self.get_response(request)
        statements = []

        def count(execute, sql, params, many, context):
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                statements.append((sql if self.keep_sql else "", time.perf_counter() - began))

        began, cpu = time.perf_counter(), time.thread_time()
        name = f"{request.method}-" + re.sub(r"[^a-z]+", "_", re.sub(r"\d+|tsbx\w+", "N", request.path)).strip("_")
        profile = self.profiles.setdefault(name, cProfile.Profile(time.thread_time)) if self.profile else None
        with connection.execute_wrapper(count):
            if profile is not None:
                profile.enable()
            try:
                response = self.get_response(request)
            finally:
                if profile is not None:
                    profile.disable()
                    profile.dump_stats(Path(self.folder) / f"prof-{os.getpid()}-{name}.pstats")
        line = {
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "queries": len(statements),
            "sql_seconds": round(sum(s for _, s in statements), 6),
            "seconds": round(time.perf_counter() - began, 6),
            "cpu_seconds": round(time.thread_time() - cpu, 6),  # this thread's CPU: Python and the client side of SQL
        }
        if self.keep_sql:
            line["sql"] = [[q, round(s * 1000, 3)] for q, s in statements]  # each statement and its milliseconds
        out = self._out()
        out.write(json.dumps(line) + "\n")
        out.flush()
        return response
