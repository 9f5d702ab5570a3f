"""``manage.py demo_data``: restaurants with tables and seats, and products, for the demo.

Idempotent: what exists is kept as it is (places already booked stay booked),
what is missing is added, so it runs on every ``make demo``. Seats are made for
the coming ``--days`` days, so a demo database stays bookable as time passes.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from restaurants.models import Restaurant, Seat, Table
from shop.models import Product

RESTAURANTS = [
    {
        "name": "을지로 한우집",
        "address": "서울특별시 중구 을지로 123",
        "description": "숯불에 굽는 1++ 한우 오마카세. 그날 가장 좋은 부위를 셰프가 골라 굽습니다.",
        "colors": "#ff8a65 #bf360c",
        "tables": [("창가 2인석", 30000, 4), ("프라이빗 룸 6인", 100000, 1)],
    },
    {
        "name": "성수 파스타 공방",
        "address": "서울특별시 성동구 성수이로 45",
        "description": "매일 뽑는 생면 파스타와 내추럴 와인.",
        "colors": "#ffd54f #f57f17",
        "tables": [("바 좌석", 20000, 6), ("테라스 4인석", 40000, 2)],
    },
    {
        "name": "제주 해녀의 부엌",
        "address": "제주특별자치도 제주시 구좌읍 해맞이해안로 12",
        "description": "해녀가 그날 잡은 해산물로 차리는 코스.",
        "colors": "#4fc3f7 #01579b",
        "tables": [("공연석", 50000, 8)],
    },
]

#: Times of day a seat is offered (Korean time).
TIMES = (time(12, 0), time(18, 0), time(20, 0))

PRODUCTS = [
    ("제주 유기농 녹차 50g", "제주에서 처음 딴 유기농 녹차.", 12000, "#a5d6a7 #2e7d32"),
    ("콜롬비아 원두 200g", "콜롬비아 원두, 미디엄 로스트.", 15000, "#bcaaa4 #4e342e"),
    ("핸드드립 세트", "드리퍼, 필터, 500ml 서버 세트.", 39000, "#ffcc80 #e65100"),
    ("도자기 머그컵", "손으로 빚은 350ml 도자기 머그.", 9000, "#b0bec5 #37474f"),
    ("수제 쿠키 박스", "주문받은 뒤 굽는 버터 쿠키 12개.", 18000, "#f8bbd0 #ad1457"),
    ("꿀 유자차 500g", "꿀에 재운 유자차.", 16000, "#fff59d #f9a825"),
    # Seed 004's 10,000 won payment, cancelled 3,000 then the rest.
    ("선물 카드 1만원", "상점에서 쓰는 1만원 선물 카드.", 10000, "#ce93d8 #6a1b9a"),
]


class Command(BaseCommand):
    help = "Load the demo restaurants, seats and products (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=5, help="Offer seats for this many days from tomorrow (default 5).")

    @transaction.atomic
    def handle(self, *args, **options):
        counts = {"restaurants": 0, "tables": 0, "seats": 0, "products": 0}
        today = timezone.localdate()
        zone = timezone.get_current_timezone()
        for spec in RESTAURANTS:
            restaurant, created = Restaurant.objects.get_or_create(
                name=spec["name"],
                defaults={"address": spec["address"], "description": spec["description"], "colors": spec["colors"]},
            )
            counts["restaurants"] += created
            for name, price, capacity in spec["tables"]:
                table, created = Table.objects.get_or_create(restaurant=restaurant, name=name, defaults={"price": Decimal(price)})
                counts["tables"] += created
                for day in range(1, options["days"] + 1):
                    for at in TIMES:
                        moment = datetime.combine(today + timedelta(days=day), at).replace(tzinfo=zone)
                        _seat, created = Seat.objects.get_or_create(
                            table=table, datetime=moment, defaults={"capacity": capacity, "remain": capacity}
                        )
                        counts["seats"] += created
        for name, description, price, colors in PRODUCTS:
            _product, created = Product.objects.get_or_create(
                name=name, defaults={"description": description, "price": Decimal(price), "colors": colors}
            )
            counts["products"] += created
        added = ", ".join(f"{count} {what}" for what, count in counts.items())
        self.stdout.write(f"Demo data: added {added}.")
