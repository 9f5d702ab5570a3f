"""English: Dec. 24, 2026, 20:00 (Django's own says 8 p.m.)."""

TIME_FORMAT = "H:i"
DATETIME_FORMAT = "N j, Y, H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
