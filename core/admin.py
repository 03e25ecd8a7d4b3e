from django.contrib import admin
from django.db.models import BigIntegerField

from core.models import ApiToken, SsoIdentity
from core.pages import ms_to_datetime

# MLflow's timestamps are milliseconds since the epoch in BigIntegerFields with these names.
EPOCH_MS_FIELDS = {
    "creation_timestamp", "last_updated_timestamp", "timestamp", "start_time", "end_time", "creation_time",
    "last_update_time", "creation_timestamp_ms", "last_updated_timestamp_ms", "created", "decided_timestamp",
}


def epoch_ms_column(field: str):
    """A list_display column showing the epoch-ms `field` as a date (sortable by the field)."""

    def column(obj):
        return ms_to_datetime(getattr(obj, field)) or "—"

    column.__name__ = f"{field}_date"
    column.short_description = field.replace("_", " ").removesuffix(" ms")
    column.admin_order_field = field
    return column


class EpochMsDatesMixin:
    """Admin lists show epoch-ms timestamps as dates, not 13-digit numbers."""

    def get_list_display(self, request):
        fields = {f.name: f for f in self.model._meta.fields}
        return [
            epoch_ms_column(name) if isinstance(name, str) and name in EPOCH_MS_FIELDS and isinstance(fields.get(name), BigIntegerField)
            else name
            for name in super().get_list_display(request)
        ]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    readonly_fields = ["prefix", "token_hash", "created_at", "last_used_at"]


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Deleting a row unlinks the user from the provider: the next SSO sign-in of that subject is refused
    (the username is taken) unless the user is renamed or removed too."""

    list_display = ["user", "subject", "issuer", "created_at", "last_sign_in_at"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["issuer", "subject", "created_at", "last_sign_in_at"]
