from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_save


class CoreConfig(AppConfig):
    name = "core"

    def ready(self):
        from core.api import forget_tokens_of_user, forget_token_row

        # Cache invalidation only (no domain flow): a token revoked or expired in the admin, or a
        # user disabled, stops authenticating at once instead of after the token cache's TTL.
        post_save.connect(forget_token_row, sender="core.ApiToken", dispatch_uid="core.forget_token_row")
        post_save.connect(forget_tokens_of_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="core.forget_tokens_of_user")
