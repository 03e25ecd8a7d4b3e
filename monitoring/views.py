"""Monitoring pages: webhooks (list, create, edit, test, delete), the delivery log (filters, redeliver),
the audit log (chain state, filters, JSON Lines export), watches and point-in-time history."""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseForbidden, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core import permissions as perms
from core.errors import DoesNotExist, InvalidParameter, MlflowError, PermissionDenied
from monitoring import access, audit, catalog, services
from monitoring.models import AuditRecord, Watch, Webhook, WebhookDelivery
from registry import access as registry_access


def _fail(error: MlflowError):
    if isinstance(error, DoesNotExist):
        raise Http404(error.message)
    return HttpResponseForbidden(error.message)


# --------------------------------------------------------------------------- webhooks


class WebhookForm(forms.Form):
    flavor = forms.ChoiceField(label="API style", choices=Webhook.FLAVORS, initial=Webhook.MLFLOW)
    name = forms.CharField(max_length=63, required=False, help_text="Required for MLflow-style webhooks.")
    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        # Prompt and budget events are accepted on MLflow's API for compatibility but never fire here.
        choices=[
            ("MLflow-style", [(n, n) for n in catalog.MLFLOW_EVENT_NAMES if n.split(".")[0] in catalog.MODEL_ENTITIES]),
            ("Databricks-style", [(n, n) for n in catalog.DATABRICKS_EVENTS]),
            ("Databricks-style, Stagegate only", [(n, n) for n in catalog.EXTRA_EVENTS]),
        ],
        widget=forms.CheckboxSelectMultiple,
        help_text="Pick names of the webhook's style: MLflow-style names for MLflow-style webhooks, upper-case ones for Databricks-style.",
    )
    model_name = forms.CharField(max_length=256, required=False, help_text="Empty: registry-wide (administrators only).")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                             help_text="Signs every delivery. Stored encrypted, never shown; leave empty to keep.")
    status = forms.ChoiceField(choices=Webhook.STATUSES, initial=Webhook.ACTIVE)


EVENT_GROUP_HELP = {
    "MLflow-style": "For MLflow-style webhooks (MLflow's event names, X-MLflow-Signature).",
    "Databricks-style": "For Databricks-style webhooks (Databricks' event names, X-Databricks-Signature).",
    "Databricks-style, Stagegate only": "Also for Databricks-style webhooks: request decisions, deletions and alias changes.",
}


def _event_groups(form) -> list[dict]:
    """The events checkboxes grouped by style, with what is ticked (the bound value, else the initial one)."""
    chosen = set(form["events"].value() or [])
    return [{"label": label, "help": EVENT_GROUP_HELP.get(label, ""), "events": [(name, name in chosen) for name, _ in options]}
            for label, options in form.fields["events"].choices]


def _webhook_rows(user):
    return access.webhooks_visible_to(user).order_by("-creation_timestamp")


@require_http_methods(["GET", "POST"])
def webhook_list(request):
    """Admins: every webhook; model managers: the webhooks of their models. POST creates one."""
    form = WebhookForm(request.POST or None, initial={"model_name": request.GET.get("model", "")})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            hook = services.create_webhook(
                user=request.user, flavor=d["flavor"], name=d["name"], url=d["url"], events=d["events"],
                model_name=d["model_name"] or None, description=d["description"], secret=d["secret"] or None,
                status=d["status"],
            )
        except (InvalidParameter, PermissionDenied, DoesNotExist) as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Webhook created.")
            if request.htmx:  # a new page, not a page swapped into the form
                return HttpResponseClientRedirect(reverse("monitoring:webhook_detail", args=[hook.pk]))
            return redirect("monitoring:webhook_detail", webhook_id=hook.pk)
    ctx = {"webhooks": _webhook_rows(request.user), "form": form, "event_groups": _event_groups(form), "nav_section": "webhooks",
           "is_admin": access.is_admin(request.user)}
    if request.htmx and request.method == "POST":
        return render(request, "monitoring/webhook_list.html#webhook-form", ctx)
    return render(request, "monitoring/webhook_list.html", ctx)


@require_http_methods(["GET", "POST"])
def webhook_detail(request, webhook_id):
    try:
        hook = access.get_webhook_for_user(request.user, webhook_id)
    except MlflowError as error:
        return _fail(error)
    initial = {"flavor": hook.flavor, "name": hook.name, "url": hook.url, "events": hook.events, "model_name": hook.model_name,
               "description": hook.description, "status": hook.status}
    form = WebhookForm(request.POST or None, initial=initial)
    form.fields["flavor"].disabled = True
    form.fields["model_name"].disabled = True
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.update_webhook(
                user=request.user, webhook_id=hook.pk, flavor=hook.flavor, name=d["name"], url=d["url"], events=d["events"],
                description=d["description"], secret=d["secret"] or None, status=d["status"],
            )
        except (InvalidParameter, PermissionDenied, DoesNotExist) as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Webhook saved.")
            return redirect("monitoring:webhook_detail", webhook_id=hook.pk)
    deliveries = hook.deliveries.order_by("-created_at", "-id")[:20]
    ctx = {"hook": hook, "form": form, "event_groups": _event_groups(form), "deliveries": deliveries, "nav_section": "webhooks"}
    return render(request, "monitoring/webhook_detail.html", ctx)


@require_POST
def webhook_test(request, webhook_id):
    try:
        delivery = services.send_test_event(user=request.user, webhook_id=webhook_id, event_name=request.POST.get("event") or None)
    except MlflowError as error:
        if isinstance(error, InvalidParameter):
            messages.error(request, error.message)
            return redirect("monitoring:webhook_detail", webhook_id=webhook_id)
        return _fail(error)
    ok = delivery.status == WebhookDelivery.DELIVERED
    text = f"Test event sent: HTTP {delivery.last_status_code}" if delivery.last_status_code else f"Test event failed: {delivery.last_error}"
    if request.htmx:
        return render(request, "monitoring/webhook_detail.html#test-result", {"ok": ok, "text": text, "delivery": delivery})
    (messages.success if ok else messages.error)(request, text)
    return redirect("monitoring:webhook_detail", webhook_id=webhook_id)


@require_POST
def webhook_delete(request, webhook_id):
    try:
        hook = access.get_webhook_for_user(request.user, webhook_id)
        services.delete_webhook(user=request.user, webhook_id=webhook_id, flavor=hook.flavor)
    except MlflowError as error:
        return _fail(error)
    messages.success(request, "Webhook deleted; its delivery log is kept.")
    return redirect("monitoring:webhook_list")


# --------------------------------------------------------------------------- deliveries


def _visible_deliveries(user):
    hooks = access.webhooks_visible_to(user).values("pk")
    qs = WebhookDelivery.objects.select_related("webhook")
    if access.is_admin(user):
        return qs
    return qs.filter(webhook_id__in=hooks)


@require_GET
def delivery_list(request):
    qs = _visible_deliveries(request.user)
    f = {k: request.GET.get(k, "").strip() for k in ("webhook", "status", "event", "model")}
    if f["webhook"]:
        qs = qs.filter(webhook_id=f["webhook"]) if _is_uuid(f["webhook"]) else qs.none()
    if f["status"]:
        qs = qs.filter(status=f["status"].upper())
    if f["event"]:
        qs = qs.filter(event_name=f["event"])
    if f["model"]:
        qs = qs.filter(model_name=f["model"])
    page = Paginator(qs.order_by("-created_at", "-id"), 50).get_page(request.GET.get("page"))
    ctx = {"page": page, "filters": f, "statuses": [s for s, _ in WebhookDelivery.STATUSES], "nav_section": "webhooks"}
    if request.htmx:
        return render(request, "monitoring/delivery_list.html#delivery-table", ctx)
    return render(request, "monitoring/delivery_list.html", ctx)


def _is_uuid(value) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


@require_GET
def delivery_detail(request, delivery_id):
    try:
        delivery = access.get_delivery_for_user(request.user, delivery_id)
    except MlflowError as error:
        return _fail(error)
    return render(request, "monitoring/delivery_detail.html",
                  {"delivery": delivery, "attempts": delivery.attempt_log.all(), "nav_section": "webhooks"})


@require_POST
def delivery_redeliver(request, delivery_id):
    try:
        delivery = services.redeliver(user=request.user, delivery_id=delivery_id)
    except MlflowError as error:
        return _fail(error)
    delivery.refresh_from_db()
    if request.htmx:
        return render(request, "monitoring/delivery_list.html#delivery-row", {"d": delivery})
    messages.success(request, "Redelivery queued (same delivery id).")
    return redirect(request.POST.get("next") or reverse("monitoring:delivery_detail", args=[delivery.pk]))


# --------------------------------------------------------------------------- audit


class _Q:
    def __init__(self, data):
        self.data = data

    def get(self, key):
        return (self.data.get(key) or "").strip() or None


@require_GET
def audit_log(request):
    if not access.is_admin(request.user):
        return HttpResponseForbidden("Only administrators may read the audit log.")
    filters = {k: request.GET.get(k, "") for k in ("model", "user", "type", "since", "until")}
    try:
        from monitoring.api import filter_audit

        qs = filter_audit(AuditRecord.objects.all(), _Q(request.GET))
        error = ""
    except InvalidParameter as exc:
        qs, error = AuditRecord.objects.none(), exc.message
    page = Paginator(qs.order_by("-seq", "-id"), 50).get_page(request.GET.get("page"))
    ctx = {"page": page, "filters": filters, "error": error, "nav_section": "audit", "query": request.GET.urlencode()}
    if request.htmx:
        return render(request, "monitoring/audit_log.html#audit-table", ctx)
    ctx["verdict"], ctx["verified_at"] = _chain_state(force=request.GET.get("verify") == "1")
    return render(request, "monitoring/audit_log.html", ctx)


def _chain_state(*, force: bool):
    """The chain's verdict, re-walked at most once a minute while the head does not move (a walk
    reads every record); `?verify=1` walks it now."""
    from django.core.cache import cache
    from django.utils import timezone

    from monitoring.models import AuditHead

    head = AuditHead.objects.filter(pk=1).values_list("seq", "hash").first()
    cached = cache.get("monitoring:audit-verdict")
    if not force and cached and cached[0] == head:
        return cached[1], cached[2]
    verdict, now = audit.verify(), timezone.now()
    cache.set("monitoring:audit-verdict", (head, verdict, now), 60)
    return verdict, now


@require_GET
def audit_export(request):
    if not access.is_admin(request.user):
        return HttpResponseForbidden("Only administrators may export the audit log.")
    try:
        from monitoring.api import filter_audit

        qs = filter_audit(AuditRecord.objects.all(), _Q(request.GET))
    except InvalidParameter as exc:
        return HttpResponse(exc.message, status=400)
    response = StreamingHttpResponse(audit.export_lines(qs), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="stagegate-audit.jsonl"'
    return response


# --------------------------------------------------------------------------- watches and history (model page partials)


def _model_or_404(user, name):
    try:
        return registry_access.get_registered_model_for_user(user, name)
    except DoesNotExist as error:
        raise Http404(error.message) from None


@require_http_methods(["GET", "POST"])
def model_watch(request, name):
    """GET: the watch button partial (for the model page to include). POST: watch/unwatch."""
    model = _model_or_404(request.user, name)
    if request.method == "POST":
        if request.POST.get("action") == "unwatch":
            services.unwatch_model(user=request.user, name=name)
        else:
            services.watch_model(user=request.user, name=name)
        if not request.htmx:
            return redirect(request.POST.get("next") or reverse("monitoring:watch_list"))
    ctx = {"model": model, "watching": services.is_watching(user=request.user, model=model)}
    return render(request, "monitoring/model_watch.html#watch-button" if request.htmx else "monitoring/model_watch.html", ctx)


@require_GET
def watch_list(request):
    watches = Watch.objects.filter(user=request.user).select_related("model").order_by("model__name")
    return render(request, "monitoring/watch_list.html", {"watches": watches, "nav_section": "models"})


@require_http_methods(["GET", "POST"])
def model_history(request, name):
    """Point in time: which version held a stage or alias at a time; POST requests a rollback."""
    model = _model_or_404(request.user, name)
    q = {k: request.GET.get(k, "").strip() for k in ("stage", "alias", "at")}
    answer, error = None, ""
    if request.method == "POST":
        try:
            result = services.request_rollback(
                user=request.user, name=name, stage=request.POST.get("stage") or None, alias=request.POST.get("alias") or None,
                comment=request.POST.get("comment", ""),
            )
        except MlflowError as exc:
            error = exc.message
        else:
            messages.success(request, f"Rollback requested: version {result['version']}.")
            if not request.htmx:
                return redirect(reverse("monitoring:model_history", args=[model.name]))
    elif q["at"] and (q["stage"] or q["alias"]):
        try:
            ts = services.parse_timestamp(q["at"])
            if q["alias"]:
                answer = {"kind": "alias", "holder": services.alias_at(user=request.user, name=name, alias=q["alias"], timestamp=ts)}
            else:
                answer = {"kind": "stage", "holders": services.stage_at(user=request.user, name=name, stage=q["stage"], timestamp=ts)}
        except MlflowError as exc:
            error = exc.message
    from registry.services import stage_names

    stages = [s for s in stage_names() if s != "None"]
    ctx = {"model": model, "q": q, "answer": answer, "error": error, "nav_section": "models", "stages": stages, "tab": "history",
           "can_manage": perms.at_least(perms.effective_level(request.user, model), perms.CAN_MANAGE)}
    if request.htmx:
        return render(request, "monitoring/model_history.html#point-in-time", ctx)
    return render(request, "monitoring/model_history.html", ctx)
