"""Fixtures for the tracking pages: a signed-in browser client and an experiment with runs."""

import pytest

from tests.ui import data


@pytest.fixture
def web(client, owner):
    """The Django test client, signed in as `owner`."""
    client.force_login(owner)
    return client


@pytest.fixture
def experiment(owner):
    return data.experiment(owner, "wine-quality")


@pytest.fixture
def run(owner, experiment):
    return data.run(owner, experiment, name="brave-fox-1", params={"alpha": "0.5", "model": "tree"},
                    metrics={"rmse": [0.9, 0.7, 0.55], "r2": [0.61]}, tags={"team": "ml"})
