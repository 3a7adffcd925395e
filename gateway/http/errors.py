"""The API's error shape: `{"error": {"code", "message", "fields"}}`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from core.errors import FieldValueError


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, fields: dict[str, str] | None = None,
        *, headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.fields, headers=self.headers)


def error_response(
    status: int, code: str, message: str, fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return web.json_response(body, status=status, headers=headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def from_validation(exc: ValidationError, *, where: str) -> ApiError:
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, FieldValueError):
            name, message = cause.field, str(cause)
        else:
            # a query parameter is named as it is written (`status`, not `status.1`), with the bad value
            loc = [p for p in err["loc"] if not (where == "query parameters" and isinstance(p, int))]
            name = ".".join(str(p) for p in loc) or where
            message = err["msg"].removeprefix("Value error, ")
            if where == "query parameters" and isinstance(err.get("input"), str):
                message += f" (got {err['input'][:80]!r})"
        fields[name] = message
    summary = "; ".join(f"{name}: {message}" for name, message in fields.items())
    return ApiError(422, "validation_failed", f"invalid {where}: {summary}" if summary else f"invalid {where}", fields)
