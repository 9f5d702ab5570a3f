"""Date and time formats of the example shops (``FORMAT_MODULE_PATH``): one clock everywhere.

Django's Korean formats write times as ``오후 8:00`` while the shops' time
chips say ``20:00``; here every time is on the 24-hour clock, in both
languages. Only what differs from Django's own formats is set.
"""
