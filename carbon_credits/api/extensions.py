"""Extensions bound to the app in ``create_app``: the error-shaped Api and the runtime."""

from __future__ import annotations

from flask import Response, current_app
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from carbon_credits.api.errors import http_exception_response
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import ErrorSchema


class JsonErrorApi(Api):  # type: ignore[misc]
    """flask-smorest's Api, answering HTTP errors in this service's one error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return http_exception_response(error)


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["carbon_credits"]
    return rt
