"""Factory functions that build test data through the real services."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

PASSWORD = "correct horse battery staple"


def user(username: str, *, is_superuser: bool = False, password: str = PASSWORD, groups: list[str] = ()):
    User = get_user_model()
    obj, created = User.objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com", "is_superuser": is_superuser, "is_staff": is_superuser}
    )
    if created:
        obj.set_password(password)
        obj.save()
    for name in groups:
        obj.groups.add(Group.objects.get_or_create(name=name)[0])
    return obj


def grant(obj, level: str, *, user=None, group: str | None = None):
    """Give a user (or a group, by name) exactly `level` on a registered model or experiment."""
    from approvals.services import grant_permission

    group_obj = Group.objects.get_or_create(name=group)[0] if group else None
    grant_permission(obj=obj, level=level, user=user, group=group_obj)
    return obj
