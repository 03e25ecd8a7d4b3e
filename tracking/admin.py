from django.contrib import admin

from core.admin import EpochMsDatesMixin
from tracking.models import (
    Dataset,
    Experiment,
    ExperimentTag,
    LatestMetric,
    LoggedModel,
    LoggedModelParam,
    LoggedModelTag,
    Metric,
    Param,
    Run,
    RunTag,
)


class ExperimentTagInline(admin.TabularInline):
    model = ExperimentTag
    extra = 0


@admin.register(Experiment)
class ExperimentAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ("id", "name", "lifecycle_stage", "owner", "artifact_location", "creation_time")
    list_filter = ("lifecycle_stage",)
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    inlines = [ExperimentTagInline]


class ParamInline(admin.TabularInline):
    model = Param
    extra = 0


class RunTagInline(admin.TabularInline):
    model = RunTag
    extra = 0


class LatestMetricInline(admin.TabularInline):
    model = LatestMetric
    extra = 0
    readonly_fields = ("key", "value", "is_nan", "timestamp", "step")


@admin.register(Run)
class RunAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ("run_uuid", "name", "experiment", "user_id", "owner", "status", "lifecycle_stage", "start_time")
    list_filter = ("status", "lifecycle_stage")
    search_fields = ("run_uuid", "name", "user_id")
    raw_id_fields = ("experiment", "owner")
    list_select_related = ("experiment", "owner")
    inlines = [ParamInline, RunTagInline, LatestMetricInline]


@admin.register(Metric)
class MetricAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    # History can hold millions of rows: no joins in the list, raw ids for the run.
    list_display = ("run_id", "key", "value", "step", "timestamp", "model_id")
    search_fields = ("run__run_uuid", "key", "model_id")
    raw_id_fields = ("run",)
    show_full_result_count = False


@admin.register(Dataset)
class DatasetAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ("name", "digest", "source_type", "experiment")
    search_fields = ("name", "digest")
    raw_id_fields = ("experiment",)


class LoggedModelTagInline(admin.TabularInline):
    model = LoggedModelTag
    extra = 0


class LoggedModelParamInline(admin.TabularInline):
    model = LoggedModelParam
    extra = 0


@admin.register(LoggedModel)
class LoggedModelAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ("model_id", "name", "experiment", "status", "lifecycle_stage", "creation_timestamp_ms")
    list_filter = ("status", "lifecycle_stage")
    search_fields = ("model_id", "name")
    raw_id_fields = ("experiment", "source_run", "owner")
    inlines = [LoggedModelTagInline, LoggedModelParamInline]
