from django.db import migrations

BUILT_IN = [("None", 0, "Not in any stage yet."), ("Staging", 10, "Being validated."),
            ("Production", 20, "Serving."), ("Archived", 30, "Retired.")]


def seed(apps, schema_editor):
    Stage = apps.get_model("registry", "Stage")
    for name, order, description in BUILT_IN:
        Stage.objects.update_or_create(name=name, defaults={"order": order, "description": description, "built_in": True})


def unseed(apps, schema_editor):
    apps.get_model("registry", "Stage").objects.filter(built_in=True).delete()


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
