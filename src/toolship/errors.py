"""One exception tree for everything toolship raises on purpose.

::

    ToolshipError                  (500 unless a subclass says otherwise)
    ├── InvalidRequest             400  refused input; the message says what and how to fix
    │   └── ResourcesUnavailable   400  the task asks for more than this deployment can ever give
    ├── Unauthorized               401  no or wrong token
    ├── Forbidden                  403  token valid, action not allowed
    ├── NotFound                   404  unknown task id
    ├── Conflict                   409  a remote worker reports on an attempt that is over
    ├── TooManyRequests            429  over a quota or the rate limit; the message says which
    ├── ConfigError                      settings that cannot work (raised at start-up)
    ├── RuntimeUnavailable               the container engine cannot be used
    ├── StagingError                     an input could not be fetched or an output not delivered
    ├── BuildFailed                      a service's image did not build (the SDK raises it)
    └── ServerUnavailable                the CLI/SDK cannot reach or start a server

The HTTP status lives on the class (``status_code``) so the API maps errors in
one place and the SDK can map a response back to the same class.
"""

from __future__ import annotations

__all__ = [
    "BuildFailed",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "ResourcesUnavailable",
    "RuntimeUnavailable",
    "ServerUnavailable",
    "StagingError",
    "TooManyRequests",
    "ToolshipError",
    "Unauthorized",
]


class ToolshipError(Exception):
    """Base of every error toolship raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidRequest(ToolshipError):
    status_code = 400


class ResourcesUnavailable(InvalidRequest):
    pass


class Unauthorized(ToolshipError):
    status_code = 401


class Forbidden(ToolshipError):
    status_code = 403


class NotFound(ToolshipError):
    status_code = 404


class Conflict(ToolshipError):
    status_code = 409


class TooManyRequests(ToolshipError):
    status_code = 429


class ConfigError(ToolshipError):
    pass


class RuntimeUnavailable(ToolshipError):
    pass


class StagingError(ToolshipError):
    pass


class BuildFailed(ToolshipError):
    pass


class ServerUnavailable(ToolshipError):
    status_code = 503


BY_STATUS: dict[int, type[ToolshipError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: TooManyRequests,
    413: InvalidRequest,  # a body over the server's limit
    503: ServerUnavailable,
}
