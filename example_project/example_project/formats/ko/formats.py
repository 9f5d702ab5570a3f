"""Korean: 2026년 12월 24일 20:00 (Django's own says 오후 8:00)."""

DATE_FORMAT = "Y년 n월 j일"
TIME_FORMAT = "H:i"
DATETIME_FORMAT = "Y년 n월 j일 H:i"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
