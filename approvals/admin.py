"""Governance in Django admin: stage policies (editable), requests, reviews, comments and activities
(read-only: they change only through the workflow services), and guardian's object-permission
pages on registered models and experiments (the "Object permissions" button on their change page).
"""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.contrib.auth.models import Permission
from guardian.admin import AdminGroupObjectPermissionsForm, AdminUserObjectPermissionsForm, GuardedModelAdminMixin

from core.admin import EpochMsDatesMixin
from approvals import checks
from approvals.models import (
    Activity,
    Comment,
    Evaluation,
    EvaluationDataset,
    ExperimentGroupPermission,
    ExperimentUserPermission,
    RegisteredModelGroupPermission,
    RegisteredModelUserPermission,
    Review,
    SigningIdentity,
    StagePolicy,
    TransitionRequest,
    VersionSignature,
)
from core import permissions as perms
from core.errors import MlflowError
from registry.models import RegisteredModel
from tracking.models import Experiment


class ReadOnlyAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _level_choices(obj) -> list[tuple[str, str]]:
    """(codename, "Can manage Production versions") for each level of the object's scheme, the
    Permission rows made sure of (guardian assigns by codename)."""
    scheme = perms.scheme_for(obj)
    for level in scheme.levels:
        perms.permission_for(scheme, level)
    return [(scheme.codename(level), perms.level_label(level)) for level in scheme.levels]


class _LevelChoices:
    """Guardian's per-user/per-group form offers our levels only (not Django's add/change/delete/view)."""

    def get_obj_perms_field_choices(self):
        return _level_choices(self.obj)


class LevelUserForm(_LevelChoices, AdminUserObjectPermissionsForm):
    pass


class LevelGroupForm(_LevelChoices, AdminGroupObjectPermissionsForm):
    pass


class LevelPermissionsAdminMixin(GuardedModelAdminMixin):
    """Guardian's "Object permissions" pages in our terms: one column per level, with its readable name
    (the default lists every Django permission of the model, which also overflows the page)."""

    obj_perms_manage_template = "admin/stagegate/obj_perms_manage.html"

    def get_obj_perms_base_context(self, request, obj):
        context = super().get_obj_perms_base_context(request, obj)
        labels = dict(_level_choices(obj))
        scheme = perms.scheme_for(obj)
        rows = {p.codename: p for p in Permission.objects.filter(
            content_type__app_label=obj._meta.app_label, codename__in=list(labels))}
        model_perms = []
        for codename in (scheme.codename(level) for level in scheme.levels):
            permission = rows[codename]
            permission.name = labels[codename]
            model_perms.append(permission)
        context["model_perms"] = model_perms
        return context

    def get_obj_perms_manage_user_form(self, request):
        return LevelUserForm

    def get_obj_perms_manage_group_form(self, request):
        return LevelGroupForm


def _guard(model_class):
    """Give the already-registered admin of `model_class` guardian's object-permission pages."""
    current = admin.site._registry.get(model_class)
    base = type(current) if current is not None else admin.ModelAdmin
    if current is not None:
        admin.site.unregister(model_class)
    guarded = type(f"Guarded{base.__name__}", (LevelPermissionsAdminMixin, base), {})
    admin.site.register(model_class, guarded)


_guard(RegisteredModel)
_guard(Experiment)


class StagePolicyForm(admin.ModelAdmin.form):
    def clean_checks(self):
        try:
            return checks.validate_checks(self.cleaned_data.get("checks") or [])
        except MlflowError as error:
            raise ValidationError(error.message) from None

    def clean_stage(self):
        from registry.services import canonical_stage

        try:
            return canonical_stage(self.cleaned_data.get("stage"))
        except MlflowError as error:
            raise ValidationError(error.message) from None


@admin.register(StagePolicy)
class StagePolicyAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    form = StagePolicyForm
    list_display = ["stage", "model", "requires_approval", "min_approvals", "approver_level", "allow_self_approval"]
    list_filter = ["stage", "requires_approval"]
    search_fields = ["model__name", "stage"]
    raw_id_fields = ["model"]
    readonly_fields = ["updated_by", "creation_timestamp", "last_updated_timestamp"]

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser may exempt a model's policy from the global one (approvals.services.set_stage_policy).
        extra = [] if request.user.is_superuser else ["exempt_from_global"]
        return [*self.readonly_fields, *extra]

    def save_model(self, request, obj, form, change):
        from tracking.models import now_ms

        obj.updated_by = request.user
        obj.last_updated_timestamp = now_ms()
        super().save_model(request, obj, form, change)


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0
    can_delete = False
    readonly_fields = ["reviewer", "reviewer_name", "decision", "comment", "creation_timestamp"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TransitionRequest)
class TransitionRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "model", "version", "from_stage", "to_stage", "requester_name", "status", "creation_timestamp"]
    list_filter = ["status", "to_stage"]
    search_fields = ["model__name", "requester_name", "comment"]
    list_select_related = ["model", "version"]
    inlines = [ReviewInline]


@admin.register(Comment)
class CommentAdmin(EpochMsDatesMixin, admin.ModelAdmin):
    list_display = ["id", "version", "user_name", "creation_timestamp"]
    search_fields = ["text", "user_name", "version__registered_model__name"]
    raw_id_fields = ["version", "user"]
    readonly_fields = ["user_name", "creation_timestamp", "last_updated_timestamp"]


@admin.register(Activity)
class ActivityAdmin(ReadOnlyAdmin):
    list_display = ["id", "activity_type", "version", "from_stage", "to_stage", "user_name", "creation_timestamp"]
    list_filter = ["activity_type"]
    list_select_related = ["version__registered_model"]


for grant_model in (RegisteredModelUserPermission, RegisteredModelGroupPermission, ExperimentUserPermission, ExperimentGroupPermission):
    admin.site.register(
        grant_model,
        type(f"{grant_model.__name__}Admin", (admin.ModelAdmin,), {
            "list_display": ["content_object", "user" if "User" in grant_model.__name__ else "group", "permission"],
            "raw_id_fields": ["content_object"],
            "list_select_related": ["content_object", "permission"],
        }),
    )


class SigningIdentityForm(admin.ModelAdmin.form):
    def clean(self):
        data = super().clean()
        kind, pem = data.get("kind"), (data.get("pem") or "").strip()
        if kind in (SigningIdentity.KEY, SigningIdentity.CERTIFICATE):
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                if kind == SigningIdentity.KEY:
                    load_pem_public_key(pem.encode())
                else:
                    x509.load_pem_x509_certificates(pem.encode())
            except ValueError as exc:
                raise ValidationError({"pem": f"Not a PEM {kind}: {exc}"}) from None
        elif not data.get("identity") or not data.get("oidc_issuer"):
            raise ValidationError("A Sigstore identity needs the identity and its OIDC issuer.")
        return data


@admin.register(SigningIdentity)
class SigningIdentityAdmin(admin.ModelAdmin):
    """The signers `signed_by` checks may name, kept by admins (approvals.signing)."""

    form = SigningIdentityForm
    list_display = ["name", "kind", "identity", "enabled"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["creation_timestamp"]


@admin.register(VersionSignature)
class VersionSignatureAdmin(ReadOnlyAdmin):
    list_display = ["version", "status", "signer", "method", "verified_timestamp"]
    list_filter = ["status"]
    list_select_related = ["version__registered_model"]


@admin.register(EvaluationDataset)
class EvaluationDatasetAdmin(ReadOnlyAdmin):
    list_display = ["name", "model", "task", "target", "row_count", "digest"]
    list_select_related = ["model"]


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ["id", "version", "dataset", "status", "trigger", "creation_timestamp"]
    list_filter = ["status", "trigger"]
    list_select_related = ["version__registered_model", "dataset"]
