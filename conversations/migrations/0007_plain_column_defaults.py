"""The database defaults of 0006 served a hand-written insert that the ORM's has replaced."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0006_inbound_column_defaults"),
    ]

    operations = [
        migrations.AlterField(
            model_name="message",
            name="error_code",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="message",
            name="error_detail",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="message",
            name="llm_model",
            field=models.CharField(blank=True, default="", max_length=128),
        ),
        migrations.AlterField(
            model_name="message",
            name="reaction",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
