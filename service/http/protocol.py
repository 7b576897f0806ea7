"""The HTTP/1.1 protocol of ``descent serve``: uvicorn's httptools protocol, with problem+json 400s.

A request uvicorn cannot parse never reaches the application: the protocol itself answers 400 and
closes the connection. uvicorn writes that answer as plain text; this protocol writes the same
answer as the problem document every other error is.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import BadRequest
from service.http.problems import PROBLEM_MEDIA_TYPE


def bad_request_body(reason: str) -> bytes:
    """The problem document of a request the server could not parse (no path: ``instance`` is empty)."""
    detail = f"the request is not valid HTTP/1.1 ({reason.rstrip('.').lower()}); the connection is closed"
    return orjson.dumps(
        {
            "type": BadRequest("").type,
            "title": BadRequest.title,
            "status": BadRequest.status,
            "detail": detail,
            "instance": "",
        }
    )


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering unparseable requests with problem+json."""

    def send_400_response(self, msg: str) -> None:
        body = bad_request_body(msg)
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
