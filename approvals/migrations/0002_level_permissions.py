"""The permission rows of every level on registered models and experiments.

registry/tracking declare read/edit/manage in their Meta; the two registry levels in between
(Databricks' CAN_MANAGE_STAGING_VERSIONS / CAN_MANAGE_PRODUCTION_VERSIONS) are governance's and
are created here, so guardian's admin and the permissions API can grant them.
"""

from django.db import migrations

LEVELS = {
    ("registry", "registeredmodel"): [
        ("read_registeredmodel", "CAN_READ"),
        ("edit_registeredmodel", "CAN_EDIT"),
        ("manage_staging_versions_registeredmodel", "CAN_MANAGE_STAGING_VERSIONS"),
        ("manage_production_versions_registeredmodel", "CAN_MANAGE_PRODUCTION_VERSIONS"),
        ("manage_registeredmodel", "CAN_MANAGE"),
    ],
    ("tracking", "experiment"): [
        ("read_experiment", "CAN_READ"),
        ("edit_experiment", "CAN_EDIT"),
        ("manage_experiment", "CAN_MANAGE"),
    ],
}


def create_permissions(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for (app_label, model), rows in LEVELS.items():
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        for codename, name in rows:
            Permission.objects.get_or_create(content_type=content_type, codename=codename, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_permissions, migrations.RunPython.noop)]
