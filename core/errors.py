"""One error family for the whole server, carrying MLflow's error codes.

Services raise these; the API layer turns them into MLflow's error JSON
(`{"error_code", "message"}`) with the status the real MLflow server uses,
and HTML views show the message on the page.
"""

import json

# error_code -> HTTP status, as the real MLflow 3.18 server maps them.
STATUS_BY_CODE = {
    "INVALID_PARAMETER_VALUE": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "BAD_REQUEST": 400,
    "INVALID_STATE": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "NOT_FOUND": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "RESOURCE_CONFLICT": 409,
    "ABORTED": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "REQUEST_LIMIT_EXCEEDED": 429,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
}


class MlflowError(Exception):
    error_code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, error_code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if error_code:
            self.error_code = error_code
        self.status = status or STATUS_BY_CODE.get(self.error_code, 500)

    def to_json(self) -> dict:
        return {"error_code": self.error_code, "message": self.message}


class InvalidParameter(MlflowError):
    error_code = "INVALID_PARAMETER_VALUE"


class AlreadyExists(MlflowError):
    error_code = "RESOURCE_ALREADY_EXISTS"


class DoesNotExist(MlflowError):
    error_code = "RESOURCE_DOES_NOT_EXIST"


class PermissionDenied(MlflowError):
    error_code = "PERMISSION_DENIED"


class Unauthenticated(MlflowError):
    error_code = "UNAUTHENTICATED"


class InvalidState(MlflowError):
    """A request that conflicts with the object's current state (e.g. a deleted run)."""

    error_code = "INVALID_STATE"


class Conflict(MlflowError):
    error_code = "RESOURCE_CONFLICT"


class EndpointNotFound(MlflowError):
    error_code = "ENDPOINT_NOT_FOUND"


class NotImplementedByServer(MlflowError):
    """An MLflow feature this server does not offer (multipart and presigned transfers): 501."""

    error_code = "NOT_IMPLEMENTED"


def missing_parameter(name: str) -> InvalidParameter:
    return InvalidParameter(
        f"Missing value for required parameter '{name}'. "
        "See the API docs for more information about request parameters."
    )


def invalid_value(name: str, value) -> InvalidParameter:
    return InvalidParameter(
        f"Invalid value {render_value(value)} for parameter '{name}' supplied:  "
        f"Hint: Value was of type '{type(value).__name__}'. "
        "See the API docs for more information about request parameters."
    )


def render_value(value) -> str:
    """The value as mlflow.utils.validation.invalid_value writes it: compact JSON, keys sorted
    (a string arrives quoted: `Invalid value "5" for parameter 'tags' supplied`)."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)
