"""The tracking admin pages render (list, search, change) for a superuser."""

import pytest

from tracking import services

pytestmark = pytest.mark.django_db


def test_admin_pages(client, admin, owner):
    experiment = services.create_experiment(user=owner, name="adm")
    run = services.create_run(user=owner, experiment=experiment, run_name="r")
    services.log_batch(run=run, metrics=[{"key": "m", "value": 1, "timestamp": 1}], params=[{"key": "p", "value": "v"}])
    model = services.create_logged_model(user=owner, experiment=experiment, name="lm", source_run=run)
    client.force_login(admin)
    for url in [
        "/admin/tracking/experiment/",
        "/admin/tracking/experiment/?q=adm",
        f"/admin/tracking/experiment/{experiment.pk}/change/",
        "/admin/tracking/run/",
        "/admin/tracking/run/?q=r",
        f"/admin/tracking/run/{run.pk}/change/",
        "/admin/tracking/metric/",
        "/admin/tracking/loggedmodel/",
        f"/admin/tracking/loggedmodel/{model.pk}/change/",
        "/admin/tracking/dataset/",
    ]:
        assert client.get(url).status_code == 200, url
