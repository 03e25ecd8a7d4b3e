"""The one narrow function the registry asks before a direct stage transition.

A no-op for now: every direct transition is allowed. The approvals work makes it
raise (PermissionDenied / InvalidState with a clear message) when a stage needs an
approved request.
"""


def check_direct_transition(*, version, stage: str, user) -> None:
    return None
