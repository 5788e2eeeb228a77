"""OpenAI-style error responses, and the handlers that make every failure one.

Every error the server returns has the body OpenAI clients parse:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "top_p", "code": null}}

Decision a reader may question: malformed JSON and fields that fail
validation both answer 400 (as OpenAI does), not FastAPI's default 422, so a
client sees one status for "your request is wrong" whatever the parser
stage; the failing field's path goes in ``param``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

# HTTP status -> OpenAI error type.
_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    503: "server_error",
}


class APIError(Exception):
    """An error answered with an OpenAI-style body.

    Args:
        status: HTTP status code.
        message: What went wrong, for the user.
        param: The request field at fault, if any.
        code: A machine-readable code (e.g. ``"model_not_found"``).
        type: The error type; by default derived from ``status``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error")

    def body(self) -> dict:
        """The JSON body ``{"error": {...}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        """The HTTP response carrying :meth:`body`."""
        return JSONResponse(self.body(), status_code=self.status)


def _validation_error(exc: RequestValidationError) -> APIError:
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return APIError(400, f"invalid JSON body: {first.get('msg')}", code="invalid_json")
    param = ".".join(location) or None
    message = first.get("msg", "invalid request")
    return APIError(400, f"{param}: {message}" if param else message, param=param)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with an OpenAI-style body."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's only 400 of this kind: a body it could not decode (e.g. invalid UTF-8).
        code = "invalid_json" if exc.status_code == 400 else None
        return APIError(exc.status_code, str(exc.detail), code=code).response()

    # Other exceptions: forgather.serve.middleware.AnswerEveryError (keeps the connection).
