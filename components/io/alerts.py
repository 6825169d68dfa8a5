"""Alerts service: tell people how a job or pipeline went."""

from __future__ import annotations

import abc
import email.utils
import functools
import http.client
import logging
import os
import time
import typing as T
import urllib.parse

import pydantic as pdt

from components.utils import factories, secrets

logger = logging.getLogger(__name__)

Status = T.Literal["SUCCEEDED", "FAILED", "RUNNING", "CANCELED"]

# Between a logged alert's message and its facts (see ConsoleAlerter).
FACTS_SEPARATOR = "|"


class Alerter(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Send an alert made of a title, a message, key fields and a status.

    Implementations must never raise: an alert that cannot be delivered is logged, and the job or
    pipeline keeps the outcome it had.
    """

    KIND: str

    @abc.abstractmethod
    def notify(
        self,
        title: str,
        message: str,
        fields: T.Mapping[str, T.Any] | None = None,
        status: Status = "SUCCEEDED",
        link: str | None = None,
    ) -> bool:
        """Send one alert.

        Args:
            title: short headline, e.g. "InferenceJob succeeded".
            message: one or a few sentences for a human.
            fields: key facts shown beside the message (rows, metrics, model version).
            status: the state being reported.
            link: where to see more (a Kubeflow run page), when known.

        Returns:
            True when the alert was delivered.
        """


class ConsoleAlerter(Alerter, frozen=True):
    """Write alerts to the log (the default when no webhook is configured)."""

    KIND: T.Literal["ConsoleAlerter"] = "ConsoleAlerter"

    def notify(self, title, message, fields=None, status="SUCCEEDED", link=None) -> bool:
        """Log the alert: an error for a failure, information otherwise.

        The line reads `[STATUS] title: message | key=value, ...`: the message's first line is
        the step's headline that a local run prints (see `pipelines.console`), the facts follow.
        """
        facts = ", ".join(f"{key}={value}" for key, value in (fields or {}).items())
        level = logging.ERROR if status == "FAILED" else logging.INFO
        logger.log(
            level,
            "[%s] %s: %s%s%s",
            status,
            title,
            message,
            f" {FACTS_SEPARATOR} {facts}" if facts else "",
            f" <{link}>" if link else "",
        )
        return True


# Slack's Block Kit limits: https://docs.slack.dev/reference/block-kit/blocks
HEADER_MAX_CHARS = 150
SECTION_MAX_CHARS = 3000
FIELD_MAX_CHARS = 2000
FIELDS_PER_SECTION = 10

STATUS_EMOJIS: dict[str, str] = {
    "SUCCEEDED": ":white_check_mark:",
    "FAILED": ":x:",
    "RUNNING": ":hourglass_flowing_sand:",
    "CANCELED": ":no_entry_sign:",
}

# slack_sdk's WebhookClient logs the full webhook URL (at DEBUG, and at INFO when it retries), and
# the URL is the secret: hand it a logger that never emits, and log outcomes here instead.
_silent_sdk_logger = logging.Logger("slack_sdk.webhook.silenced", level=logging.CRITICAL + 1)
_silent_sdk_logger.disabled = True


class SlackAlerter(Alerter, frozen=True):
    """Post alerts to a Slack incoming webhook as Block Kit messages.

    The webhook URL is a secret: it is read from the environment at each `notify`, never stored
    in a field, logged or put in an error message. Without it, alerts go to the log instead.

    Rate limits (429, honouring Retry-After), server errors (5xx) and connection errors are
    retried with exponential backoff; other answers (404 no_service, 400 invalid_payload,
    403 invalid_token) will not get better by retrying and fail at once.

    Args:
        webhook_url_env: name of the environment variable holding the webhook URL.
        ui_base_url: base URL of the Kubeflow UI, for callers that build run links.
        max_attempts: most requests sent for one alert, retries included.
        max_backoff_seconds: longest wait between attempts, Retry-After included.
        timeout_seconds: socket timeout of one request.
        channel_hint: channel name sent as `channel`; only legacy webhooks honour it, app
            webhooks always post to the channel chosen when the app was installed.
    """

    KIND: T.Literal["SlackAlerter"] = "SlackAlerter"

    webhook_url_env: str = "SLACK_WEBHOOK_URL"
    ui_base_url: str | None = None
    max_attempts: int = pdt.Field(default=4, ge=1)
    max_backoff_seconds: float = pdt.Field(default=30.0, ge=0)
    timeout_seconds: float = pdt.Field(default=10.0, gt=0)
    channel_hint: str | None = None

    def notify(self, title, message, fields=None, status="SUCCEEDED", link=None) -> bool:
        """Post the alert to the webhook, retrying what may pass; log it when there is none."""
        url = os.environ.get(self.webhook_url_env, "").strip()
        if not url:
            _log_no_webhook(self.webhook_url_env)
            return ConsoleAlerter().notify(title, message, fields, status, link)
        try:
            payload = self.payload(title, message, fields, status, link)
            return self._post(url, payload, title)
        except Exception as error:  # an alert must never break the job it reports
            logger.error(
                "Slack alert %r not delivered: %s",
                title,
                _redact(f"{type(error).__name__}: {error}", url),
            )
            return False

    def payload(
        self,
        title: str,
        message: str,
        fields: T.Mapping[str, T.Any] | None = None,
        status: Status = "SUCCEEDED",
        link: str | None = None,
    ) -> dict[str, T.Any]:
        """Build the webhook payload: Block Kit blocks and a plain-text fallback.

        Args:
            title: short headline.
            message: text for a human (mrkdwn).
            fields: key facts, shown as `*key*` over `value`, ten per section.
            status: the state being reported, shown with an emoji in the header.
            link: where to see more, shown in a context line under the message.

        Returns:
            The JSON-serializable body to post.
        """
        emoji = STATUS_EMOJIS.get(status, ":grey_question:")
        header = f"{emoji} {title} · {status}"
        blocks: list[dict[str, T.Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _truncate(header, HEADER_MAX_CHARS),
                    "emoji": True,
                },
            }
        ]
        if message.strip():  # Slack rejects a section with empty text
            blocks.append(_mrkdwn_section(_escape(message)))
        facts = [
            {
                "type": "mrkdwn",
                "text": _truncate(f"*{_escape(str(key))}*\n{_escape(str(value))}", FIELD_MAX_CHARS),
            }
            for key, value in (fields or {}).items()
        ]
        for start in range(0, len(facts), FIELDS_PER_SECTION):
            blocks.append({"type": "section", "fields": facts[start : start + FIELDS_PER_SECTION]})
        if link:
            blocks.append(
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"<{link}|Open the run>"}],
                }
            )
        # The fallback shows in notifications and in clients that cannot render blocks.
        fallback = f"[{status}] {title}: {message}" + (f" <{link}>" if link else "")
        payload: dict[str, T.Any] = {
            "text": _truncate(fallback, SECTION_MAX_CHARS),
            "blocks": blocks,
        }
        if self.channel_hint:
            payload["channel"] = self.channel_hint
        return payload

    def _post(self, url: str, payload: dict[str, T.Any], title: str) -> bool:
        """Post the payload, retrying what can get better; True when Slack answered 200 ok."""
        # Imported when an alert is posted, not at every step's start (a quarter of a second).
        from slack_sdk.webhook import WebhookClient

        # Retries are ours: slack_sdk's handlers ignore 502/504 and timeouts, do not cap
        # Retry-After, and log the URL when they retry.
        client = WebhookClient(
            url, timeout=self.timeout_seconds, logger=_silent_sdk_logger, retry_handlers=[]
        )
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                response = client.send_dict(payload)
            except (OSError, http.client.HTTPException) as error:
                # URLError, ConnectionRefusedError and TimeoutError are all OSErrors.
                outcome = _redact(f"{type(error).__name__}: {error}", url)
            else:
                if response.status_code == 200 and response.body == "ok":
                    logger.info("Slack alert %r delivered", title)
                    return True
                # An answer is the other side's text: a few hundred characters are enough.
                outcome = f"HTTP {response.status_code} {secrets.clip(repr(response.body))}"
                retryable = response.status_code == 429 or response.status_code >= 500
                if not retryable:
                    logger.error("Slack alert %r not delivered: %s (not retried)", title, outcome)
                    return False
                if response.status_code == 429:
                    retry_after = _retry_after_seconds(response.headers)
            if attempt == self.max_attempts:
                break
            delay = min(
                retry_after if retry_after is not None else 2.0 ** (attempt - 1),
                self.max_backoff_seconds,
            )
            logger.warning(
                "Slack alert %r: %s on attempt %d of %d, retrying in %.2fs",
                title,
                outcome,
                attempt,
                self.max_attempts,
                delay,
            )
            time.sleep(delay)
        logger.error(
            "Slack alert %r not delivered: %s after %d attempts", title, outcome, self.max_attempts
        )
        return False


def default_alerter() -> Alerter:
    """Choose the alerter from the environment.

    Returns:
        A SlackAlerter when SLACK_WEBHOOK_URL is set and not empty, else a ConsoleAlerter.
    """
    if os.environ.get("SLACK_WEBHOOK_URL", "").strip():
        return SlackAlerter()
    return ConsoleAlerter()


@functools.cache
def _log_no_webhook(env_name: str) -> None:
    """Say once per process why alerts go to the log rather than to Slack."""
    logger.info("no Slack webhook configured (%s unset): alert written to the log", env_name)


def _truncate(text: str, limit: int) -> str:
    """Cut text to Slack's limit, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Escape mrkdwn control characters, so that `<class 'X'>` in an error stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn_section(text: str) -> dict[str, T.Any]:
    """A section block holding one mrkdwn text, cut to Slack's limit."""
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _truncate(text, SECTION_MAX_CHARS)},
    }


def _retry_after_seconds(headers: T.Mapping[str, T.Any]) -> float | None:
    """Read Retry-After (seconds or an HTTP date) from a response's headers, if present."""
    value = next((str(v) for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _redact(text: str, url: str) -> str:
    """Remove the webhook URL, and its secret path, from a text bound for the log."""
    path = urllib.parse.urlsplit(url).path
    text = text.replace(url, "<webhook>")
    return text.replace(path, "/<redacted>") if len(path) > 1 else text


AlerterKind = ConsoleAlerter | SlackAlerter
# The registry of alerters: a KIND, `{type, config}` or a user's `package.module:Class`.
ALERTERS = factories.Factory("alerter", Alerter, (ConsoleAlerter, SlackAlerter))
