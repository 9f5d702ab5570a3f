from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("pgpay_sandbox", "0002_sandboxtoken"),
    ]

    operations = [
        migrations.AddField(
            model_name="sandboxidempotency",
            name="fingerprint",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
