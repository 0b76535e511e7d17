"""Map every failure to the one error shape `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crossdock.core.errors import CrossdockError, ErrorCode
from crossdock.core.logging import request_id_var

log = logging.getLogger("crossdock.web")

_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.BAD_REQUEST,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
}


def error_response(status: int, code: str, message: str, details: Any = None, headers: Any = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


async def _crossdock_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrossdockError)
    headers = None
    retry_after = exc.details.get("retry_after") if isinstance(exc.details, dict) else None
    if retry_after is not None:
        headers = {"Retry-After": str(int(retry_after))}
    return error_response(exc.http_status, str(exc.code), exc.message, exc.details, headers)


async def _validation_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        err = next(e for e in errors if e.get("type") == "json_invalid")
        detail = err.get("ctx", {}).get("error", "invalid JSON")
        return error_response(400, ErrorCode.MALFORMED_JSON, f"The request body is not valid JSON: {detail}.")
    problems = [
        {"path": _loc(tuple(e.get("loc", ()))), "problem": e.get("msg", ""), "type": e.get("type")} for e in errors
    ]
    summary = "; ".join(f"{p['path']}: {p['problem']}" for p in problems[:5])
    return error_response(422, ErrorCode.VALIDATION, f"The request is not valid: {summary}.", {"errors": problems})


async def _http_error(_req: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.BAD_REQUEST)
    message = str(exc.detail) if exc.detail else "Request failed."
    if exc.status_code == 404 and message == "Not Found":
        message = "No such endpoint. See /docs for the API."
    return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    rid = request_id_var.get()
    return error_response(
        500, ErrorCode.INTERNAL, f"Internal error. Quote request id {rid} when reporting it.", {"request_id": rid}
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(CrossdockError, _crossdock_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
