"""Errors of the service, in OpenAI's JSON error shape::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "file", "code": "..."}}

The status says what kind of problem it is (400 a bad request, 401 a
missing or wrong API key, 404 an unknown route or model, 413 an upload or a
recording over the limits, 501 what this backend cannot do, 503 a full
queue or a service not ready yet, 504 a request over its time limit, 500
the service's own fault); the message names the problem and, where it
belongs to one form field, ``param`` names the field.

Nothing here needs torch.

Example
-------
>>> error = APIError(413, "file: 31.2 MB upload, at most 25 MB", param="file", code="file_too_large")
>>> error.body()
{'error': {'message': 'file: 31.2 MB upload, at most 25 MB', 'type': 'invalid_request_error', 'param': 'file', 'code': 'file_too_large'}}

Authors: speechbrain-w2vbert contributors
"""

from typing import Dict, Optional

__all__ = ["APIError", "error_type"]


def error_type(status: int) -> str:
    """OpenAI's error ``type`` of an HTTP status: ``invalid_request_error``
    for the client's errors (4xx), ``server_error`` otherwise.

    Example
    -------
    >>> error_type(400), error_type(503)
    ('invalid_request_error', 'server_error')
    """
    return "invalid_request_error" if 400 <= status < 500 else "server_error"


class APIError(Exception):
    """An error answer: HTTP ``status`` and OpenAI's error fields.

    Arguments
    ---------
    status : int
        HTTP status.
    message : str
        What is wrong, naming the request's file or field.
    param : str, optional
        The form field at fault.
    code : str, optional
        A short machine-readable code (``file_too_large``, ``invalid_api_key``...).
    headers : dict, optional
        Extra response headers (``WWW-Authenticate``, ``Retry-After``).
    """

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 headers: Optional[Dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}

    def body(self) -> Dict:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": error_type(self.status), "param": self.param,
                          "code": self.code}}
