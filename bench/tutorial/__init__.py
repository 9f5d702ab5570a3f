"""The seed tutorial's booking, payment and cancel views (seeds 000/001), races kept: the benchmark's baseline.

Only ``bench/flash_sale.py`` mounts it (``bench.settings``); it is never part
of the package or the example project. The code is the tutorial's, adapted
only where it must be to run here: its models sit beside the example
project's restaurants and tables, and the PG calls go to the sandbox's Toss (its base URL and
made-up secret key come from the example project's ``toss`` gateway settings).
"""
