"""Secrets: keep credentials out of logs, alerts, tags and printed lines."""

from __future__ import annotations

import logging
import re

# `scheme://user:password@host` -> `scheme://user:***@host`; a token alone as user info too.
# Lengths are bounded so that a long text cannot make the patterns backtrack for minutes.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)(?P<user>[^:/@\s]{1,256}):"
    r"(?P<secret>[^@/\s]{1,1024})@"
)
_TOKEN_ONLY = re.compile(r"(?P<scheme>https?://)(?P<token>[^:/@\s]{16,1024})@")
# Slack incoming webhooks carry their secret in the path.
_SLACK = re.compile(r"(https://hooks\.slack(?:-gov)?\.com/services/)[A-Za-z0-9/_-]+")
MASK = "***"


def redact(text: str) -> str:
    """Mask the credentials inside any URI in a text (passwords, tokens, webhook paths).

    Args:
        text: a message, a URI, an error's text.

    Returns:
        The text with `user:***@` for each password and `***` for webhook secrets.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(text))
    text = _TOKEN_ONLY.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _SLACK.sub(lambda m: f"{m[1]}{MASK}", text)


def clip(text: str, limit: int = 300) -> str:
    """At most `limit` characters of a text from outside (an HTTP answer), redacted.

    Args:
        text: the text.
        limit: the most characters kept.
    """
    text = str(text)
    if len(text) <= limit:
        return redact(text)
    # Redact a little more than is kept, so that a credential cut in half is still masked.
    return f"{redact(text[: limit + 2048])[:limit]}... ({len(text)} characters)"


class RedactingFilter(logging.Filter):
    """A logging filter that masks credentials in every record, MLflow's own included."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the record's message once, redacted; always keep the record."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    """Attach the redacting filter to every handler of the root logger (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
