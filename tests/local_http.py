"""A local HTTP server in a background thread, the base of the fake API servers of the tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LocalHttpServer:
    """Serve `HANDLER` on 127.0.0.1 (a free port) with the server as its class attribute `fake`.

    Subclasses set `HANDLER`, a BaseHTTPRequestHandler that routes requests to `self.fake`.
    """

    HANDLER: type[BaseHTTPRequestHandler]
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> Self:
        """Start serving in a background thread."""
        handler = type("Handler", (self.HANDLER,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The server's base URL (give it to a client as its host)."""
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"
