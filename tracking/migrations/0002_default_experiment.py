from django.db import migrations


def create_default_experiment(apps, schema_editor):
    Experiment = apps.get_model("tracking", "Experiment")
    if not Experiment.objects.filter(pk=0).exists():
        # MLflow clients log to experiment "0" when none is set.
        Experiment.objects.create(pk=0, name="Default", artifact_location="mlflow-artifacts:/0")


class Migration(migrations.Migration):
    dependencies = [("tracking", "0001_initial")]

    operations = [migrations.RunPython(create_default_experiment, migrations.RunPython.noop)]
