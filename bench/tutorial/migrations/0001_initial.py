import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("restaurants", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="AvailableSeat",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("datetime", models.DateTimeField()),
                ("remain", models.IntegerField(default=0)),
                ("restaurant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="restaurants.restaurant")),
                ("table", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="restaurants.table")),
            ],
        ),
        migrations.CreateModel(
            name="Booking",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("order_number", models.CharField(max_length=64)),
                ("price", models.DecimalField(decimal_places=0, max_digits=12)),
                (
                    "status",
                    models.CharField(
                        choices=[("READY", "결제대기"), ("PAID", "결제완료"), ("CANCELED", "취소")], default="READY", max_length=16
                    ),
                ),
                ("pg_transaction_number", models.CharField(blank=True, default="", max_length=200)),
                ("paid_at", models.DateTimeField(blank=True, null=True)),
                ("canceled_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("restaurant", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="restaurants.restaurant")),
                ("seat", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="tutorial.availableseat")),
                ("table", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="restaurants.table")),
                ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to=settings.AUTH_USER_MODEL)),
            ],
        ),
    ]
