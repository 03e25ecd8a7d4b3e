"""The Evaluation panel in a real browser: htmx loads it into the version page, the re-run button
swaps it in place with the new (manual) evaluation, and the model page lists its datasets."""

import pytest

from approvals import evaluation
from approvals.models import Evaluation
from registry import services as registry
from tests.approvals.evaluation_helpers import holdout_csv, wine_files, write_files

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_evaluation_panel_rerun_in_place(signed_in_page, owner):
    registry.create_registered_model(name="lr_wine_quality", user=owner)
    registry.create_model_version(name="lr_wine_quality", source=write_files(wine_files(2)[0]), user=owner)
    evaluation.attach_evaluation_dataset(user=owner, model_name="lr_wine_quality", name="wine-holdout", target="quality",
                                         task="regression", data=holdout_csv(), filename="wine-holdout.csv")
    page = signed_in_page(owner)
    page.goto("/models/lr_wine_quality/versions/1/")
    panel = page.locator("#evaluation-panel")
    panel.get_by_text("Not evaluated on this dataset yet.").wait_for()
    page.click("#rerun-evaluation")
    panel.get_by_text("(manual)").wait_for(timeout=120_000)
    assert "rmse (lower is better)" in panel.inner_text() and page.url.endswith("/models/lr_wine_quality/versions/1/")
    assert Evaluation.objects.get().status == "SUCCEEDED"
    page.goto("/models/lr_wine_quality/")
    page.locator("#model-datasets .dataset-row").get_by_text("wine-holdout").wait_for()
