"""A local HTTP server that answers as Slack's incoming webhook does, for tests."""

from __future__ import annotations

import dataclasses
import http.server
import json
import socket
import threading
import typing as T

# One scripted answer: (status, text body) or (status, text body, extra headers).
Answer = tuple[int, str] | tuple[int, str, T.Mapping[str, str]]

OK: Answer = (200, "ok")


@dataclasses.dataclass(frozen=True)
class ReceivedRequest:
    """One request the fake webhook received.

    Attributes:
        path: the request path, e.g. "/services/T000/B000/secret".
        headers: the request headers.
        body: the JSON body, parsed; None when it was not JSON.
        raw: the body as received.
    """

    path: str
    headers: dict[str, str]
    body: T.Any
    raw: bytes


class SlackWebhookServer:
    """A threaded webhook on 127.0.0.1 with a free port, answering from a script.

    Answers are taken from the script in order; once it runs out, every request gets
    (200, "ok"). Bodies are text/plain like Slack's: `ok`, `no_service`, `invalid_payload`,
    `rate_limited`, `internal_error`.

    Example:
        with SlackWebhookServer() as slack:
            slack.script([(429, "rate_limited", {"Retry-After": "1"}), (500, "internal_error")])
            monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
            ...
            assert slack.requests[-1].body["blocks"][0]["type"] == "header"
    """

    # The path looks like a real webhook's: it is the secret tests check never reaches a log.
    PATH = "/services/T0TEST000/B0TEST000/s3cr3tW3bh00kT0k3n"

    def __init__(self, path: str = PATH) -> None:
        """Create the server (not started until `start` or `with`).

        Args:
            path: the webhook path; requests to any other path get 404 no_service.
        """
        self.path = path
        self._answers: list[Answer] = []
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The webhook URL to put in SLACK_WEBHOOK_URL."""
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def script(self, answers: T.Iterable[Answer]) -> SlackWebhookServer:
        """Replace the answers still to give, in order.

        Args:
            answers: e.g. [(429, "rate_limited", {"Retry-After": "1"}), (200, "ok")].

        Returns:
            The server, for chaining.
        """
        with self._lock:
            self._answers = list(answers)
        return self

    def reset(self) -> None:
        """Forget the requests received and the answers still scripted."""
        with self._lock:
            self._answers.clear()
            self._requests.clear()

    def start(self) -> SlackWebhookServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        # A short poll interval makes `stop` quick: shutdown waits for the loop's next poll.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> SlackWebhookServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answer(self, request: ReceivedRequest) -> Answer:
        with self._lock:
            self._requests.append(request)
            if request.path != self.path:
                return (404, "no_service")
            return self._answers.pop(0) if self._answers else OK

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                request = ReceivedRequest(self.path, dict(self.headers.items()), body, raw)
                status, text, *extra = server._answer(request)
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: T.Any) -> None:
                # The access log holds the secret path: keep it out of captured output.
                pass

        return Handler


def closed_port_url(path: str = SlackWebhookServer.PATH) -> str:
    """A webhook URL on 127.0.0.1 where nothing listens, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
