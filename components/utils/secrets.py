"""Secrets: keep credentials out of logs, alerts, tags and printed lines."""

from __future__ import annotations

import logging
import os
import re
import typing as T

# `scheme://user:password@host` -> `scheme://user:***@host`; a token alone as user info too.
# Lengths are bounded so that a long text cannot make the patterns backtrack for minutes.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://)(?P<user>[^:/@\s]{1,256}):"
    r"(?P<secret>[^@/\s]{1,1024})@"
)
_TOKEN_ONLY = re.compile(r"(?P<scheme>https?://)(?P<token>[^:/@\s]{16,1024})@")
# Slack incoming webhooks carry their secret in the path. Known here, before any alerter is
# imported, so that a process that never loads the alerters still masks the most common one;
# the Slack alerter declares it too (`components.io.alerts`).
SLACK_WEBHOOK = r"(https://hooks\.slack(?:-gov)?\.com/services/)[A-Za-z0-9/_-]+"
MASK = "***"
# A secret value shorter than this is not masked: "1" or "true" would mask half of every text.
MIN_SECRET_CHARS = 8

# What `register` added: patterns whose matches are masked, and environment variables whose
# values are. The alerters (components.io.alerts) declare their own: utils knows no alerter.
_patterns: dict[str, re.Pattern[str]] = {SLACK_WEBHOOK: re.compile(SLACK_WEBHOOK)}
_environment: dict[str, None] = {}


def register(
    patterns: T.Iterable[str | re.Pattern[str]] = (), environment: T.Iterable[str] = ()
) -> None:
    """Mask more secrets in every text `redact` cleans from now on, in this process.

    Where a secret is defined (an alerter's webhook, a token), it is declared here, so that
    `redact` covers it without this module knowing who defines it.

    Args:
        patterns: regular expressions of secrets. A match is masked whole, except its first
            group when it has one (`(https://host/hooks/)[A-Za-z0-9]+` keeps the host part).
            Keep them bounded (`{1,1024}`, not `+` before a backtracking tail).
        environment: names of environment variables that hold secrets: their values, as set
            when a text is redacted, are masked wherever they appear.

    Raises:
        ValueError: a pattern is not a valid regular expression.
    """
    for pattern in patterns:
        compiled = pattern if isinstance(pattern, re.Pattern) else _compile(pattern)
        _patterns.setdefault(compiled.pattern, compiled)
    for name in environment:
        _environment.setdefault(str(name), None)


def registered_environment() -> tuple[str, ...]:
    """The names of the environment variables registered as secret, in order."""
    return tuple(_environment)


def _secret_values() -> set[str]:
    """The values the registered environment variables hold now, long enough to mask."""
    values = (os.environ.get(name, "").strip() for name in _environment)
    return {value for value in values if len(value) >= MIN_SECRET_CHARS}


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"secret pattern {pattern!r} is not a regular expression: {error}"
        ) from None


def _mask(match: re.Match[str]) -> str:
    """A match masked, its first group (the part that is no secret) kept when it has one."""
    kept = match.group(1) if match.re.groups else ""
    return f"{kept or ''}{MASK}"


def redact(text: str) -> str:
    """Mask the credentials in a text: in URIs, and the secrets declared with `register`.

    Passwords and tokens inside any URI; webhook paths and the values of secret environment
    variables, as the alerters declare them.

    Args:
        text: a message, a URI, an error's text.

    Returns:
        The text with `user:***@` for each password, and `***` for webhook secrets and for
        the values of the secret environment variables.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(text))
    text = _TOKEN_ONLY.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    for pattern in list(_patterns.values()):
        text = pattern.sub(_mask, text)
    # Longest first: a value that holds another is masked whole.
    for value in sorted(_secret_values(), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


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
