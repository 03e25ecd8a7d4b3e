from django.contrib import admin

from core.admin import EpochMsDatesMixin
from monitoring.models import AuditRecord, Webhook, WebhookDelivery


@admin.register(AuditRecord)
class AuditRecordAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    """Read-only: the audit chain is append-only, even for administrators."""

    list_display = ("seq", "type", "model_name", "version", "actor_name", "created")
    list_filter = ("type",)
    search_fields = ("model_name", "actor_name")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Webhook)
class WebhookAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ("id", "flavor", "name", "url", "model_name", "status", "consecutive_failures")
    exclude = ("secret_encrypted", "authorization_encrypted")
    readonly_fields = ("flavor", "events", "creation_timestamp", "last_updated_timestamp")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ("id", "event_name", "model_name", "status", "attempts", "created_at")
    list_filter = ("status",)

    def has_change_permission(self, request, obj=None):
        return False
