"""A user's own alerters, outside the project's packages, loaded by import path in tests."""

from __future__ import annotations

import json
import logging
import os
import typing as T
import urllib.error
import urllib.request

import pydantic as pdt

from components.io import alerts
from components.utils import secrets

logger = logging.getLogger(__name__)

# The variable holding the webhook URL, which carries its token: a secret.
WEBHOOK_ENV = "USER_WEBHOOK_URL"
# A webhook of the user's service anywhere in a text: `https://alerts.example.com/hooks/TOKEN`.
WEBHOOK_PATTERN = r"(https?://alerts\.example\.com/hooks/)[A-Za-z0-9_-]{1,256}"


class WebhookAlerter(alerts.Alerter, frozen=True):
    """Post an alert as JSON `{title, message, status, facts, link}` to a webhook.

    It declares no KIND: named by its import path, it keeps the path as its KIND. Its secrets
    are declared for `secrets.redact`: the variable with the URL, and the URL's shape.

    Args:
        url: the webhook URL; empty: the value of `url_env`.
        url_env: the environment variable holding the URL when `url` is empty.
        timeout_seconds: socket timeout of the request.
    """

    SECRET_ENVIRONMENT: T.ClassVar[tuple[str, ...]] = (WEBHOOK_ENV,)
    SECRET_PATTERNS: T.ClassVar[tuple[str, ...]] = (WEBHOOK_PATTERN,)

    url: str = ""
    url_env: str = WEBHOOK_ENV
    timeout_seconds: float = pdt.Field(default=5.0, gt=0)

    def secret_environment(self) -> tuple[str, ...]:
        """The declared variable, and the configured one."""
        return tuple(dict.fromkeys((*self.SECRET_ENVIRONMENT, self.url_env)))

    def notify(self, title, message, fields=None, status="SUCCEEDED", link=None) -> bool:
        """Post the alert once; True when the webhook answered 2xx, never raising."""
        url = self.url or os.environ.get(self.url_env, "").strip()
        if not url:
            logger.warning("no webhook URL (%s unset): alert written to the log", self.url_env)
            return alerts.ConsoleAlerter().notify(title, message, fields, status, link)
        facts = {str(key): str(value) for key, value in (fields or {}).items()}
        body = {"title": title, "message": message, "status": status, "facts": facts}
        request = urllib.request.Request(
            url,
            data=json.dumps({**body, "link": link}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                answered = response.status
        except urllib.error.HTTPError as error:
            answered = error.code
        except OSError as error:  # an alert must never break the job it reports
            logger.error("webhook alert %r not delivered: %s", title, secrets.redact(str(error)))
            return False
        if not 200 <= answered < 300:
            logger.error("webhook alert %r not delivered: HTTP %d", title, answered)
            return False
        # The URL in a log line, as a careless alerter might write it: it is declared secret,
        # so the log's redaction masks it (the tests check that it does).
        logger.info("webhook alert %r delivered to %s", title, url)
        return True


class NotAnAlerter(pdt.BaseModel):
    """Has a notify method, but is no Alerter."""

    KIND: str = "NotAnAlerter"

    def notify(self, *args: T.Any, **kwargs: T.Any) -> bool:
        """Never called: the registry refuses the class."""
        raise AssertionError("built although not an Alerter")


class BrokenAlerter(alerts.Alerter, frozen=True):
    """An alerter whose construction fails in the user's own code, not in its fields."""

    @pdt.model_validator(mode="after")
    def _fails(self) -> BrokenAlerter:
        raise RuntimeError("the user's alerter cannot start")

    def notify(self, title, message, fields=None, status="SUCCEEDED", link=None) -> bool:
        """Never called: it cannot be built."""
        raise AssertionError("built although broken")
