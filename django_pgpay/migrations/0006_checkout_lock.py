from django.db import migrations, models

#: As django_pgpay.checkout_locks.SLOTS when this migration was written (a migration keeps its own copy).
SLOTS = 1024


def write_slots(apps, schema_editor):
    CheckoutLock = apps.get_model("django_pgpay", "CheckoutLock")
    CheckoutLock.objects.using(schema_editor.connection.alias).bulk_create(
        [CheckoutLock(slot=slot) for slot in range(SLOTS)], ignore_conflicts=True
    )


class Migration(migrations.Migration):
    dependencies = [
        ("django_pgpay", "0005_export_job_attempt"),
    ]

    operations = [
        migrations.CreateModel(
            name="CheckoutLock",
            fields=[
                ("slot", models.PositiveIntegerField(primary_key=True, serialize=False, verbose_name="slot")),
            ],
            options={
                "verbose_name": "checkout lock",
                "verbose_name_plural": "checkout locks",
            },
        ),
        migrations.RunPython(write_slots, migrations.RunPython.noop),
    ]
