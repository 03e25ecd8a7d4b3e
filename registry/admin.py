from django.contrib import admin

from core.admin import EpochMsDatesMixin
from registry.models import (
    Event,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelAlias,
    RegisteredModelTag,
    Stage,
    StageTransition,
)


class ReadOnlyAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    """History and outbox rows are written by the services only."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RegisteredModelTagInline(admin.TabularInline):
    model = RegisteredModelTag
    extra = 0


class RegisteredModelAliasInline(admin.TabularInline):
    model = RegisteredModelAlias
    extra = 0
    raw_id_fields = ["version"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "last_version", "creation_timestamp", "last_updated_timestamp"]
    search_fields = ["name", "description"]
    readonly_fields = ["last_version", "creation_timestamp", "last_updated_timestamp"]
    raw_id_fields = ["owner"]
    inlines = [RegisteredModelTagInline, RegisteredModelAliasInline]


class ModelVersionTagInline(admin.TabularInline):
    model = ModelVersionTag
    extra = 0


@admin.register(ModelVersion)
class ModelVersionAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ["registered_model", "version", "current_stage", "status", "user_id", "creation_timestamp"]
    list_filter = ["current_stage", "status"]
    search_fields = ["registered_model__name", "run_id", "model_id", "source"]
    list_select_related = ["registered_model"]
    raw_id_fields = ["registered_model", "creator", "source_run"]
    # Stage changes go through transition_model_version_stage (history, events, guard), never a form.
    readonly_fields = [
        "registered_model", "version", "current_stage", "status", "status_message", "storage_path", "size_bytes",
        "file_count", "checksum", "flavors", "signature", "creation_timestamp", "last_updated_timestamp",
    ]
    inlines = [ModelVersionTagInline]


@admin.register(Stage)
class StageAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ["name", "order", "built_in", "description"]
    ordering = ["order", "id"]

    def get_readonly_fields(self, request, obj=None):
        return ["name", "built_in"] if obj is not None and obj.built_in else ["built_in"]

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.built_in:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(StageTransition)
class StageTransitionAdmin(ReadOnlyAdmin):
    list_display = ["version", "from_stage", "to_stage", "user", "timestamp", "is_system", "request_id"]
    list_filter = ["to_stage", "is_system"]
    list_select_related = ["version__registered_model", "user"]
    search_fields = ["version__registered_model__name"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "model_name", "version", "actor", "created", "dispatched_at", "attempts"]
    list_filter = ["type"]
    list_select_related = ["actor"]
    search_fields = ["model_name", "type"]
