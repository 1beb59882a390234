"""The one exception root, so callers can catch everything fodns raises on purpose."""


class FodnsError(Exception):
    """Root of every error fodns raises deliberately; `status` is the HTTP status it maps to,
    and `field`, when set, names the request field the error is about."""

    status = 500
    code = "internal"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(FodnsError):
    """The configuration (file or flags) cannot be used; the message names the key."""

    status = 400
    code = "bad_config"


class ZoneFileError(FodnsError):
    """A zone file cannot be loaded; the message names the file, line and problem."""

    status = 400
    code = "bad_zone"


class ListenError(FodnsError):
    """A listen address cannot be bound (in use, not local, not permitted)."""


class Invalid(FodnsError):
    """Bad input; `field` names what was wrong (HTTP 400)."""

    status = 400
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class NotFound(FodnsError):
    """No such app, group or zone (HTTP 404)."""

    status = 404
    code = "not_found"


class Conflict(FodnsError):
    """The change breaks a rule of groups (HTTP 409): a label taken, a reference held."""

    status = 409
    code = "conflict"


class StoreUnavailable(FodnsError):
    """The database did not take a write (locked, full, read-only): nothing changed (HTTP 503)."""

    status = 503
    code = "store_unavailable"


class Forbidden(FodnsError):
    """The token is valid but may not do this (HTTP 403): `scope` names what it lacks
    (a scope such as "write", or the name pattern the resource falls outside of)."""

    status = 403
    code = "forbidden"

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope
