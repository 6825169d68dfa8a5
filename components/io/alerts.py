"""Alerts service: tell people how a job or pipeline went."""

from __future__ import annotations

import abc
import email.utils
import functools
import http.client
import json
import logging
import os
import time
import typing as T
import urllib.parse

import pydantic as pdt

from components.utils import factories, secrets

logger = logging.getLogger(__name__)
# Starts the line in which the pipeline's exit step says whether its alert reached its
# destination (`delivered by SlackAlerter`, `NOT delivered by SlackAlerter: <cause>`).
DELIVERY_MARK = "Alert delivery: "

Status = T.Literal["SUCCEEDED", "FAILED", "RUNNING", "CANCELED"]

# Between a logged alert's message and its facts (see ConsoleAlerter).
FACTS_SEPARATOR = "|"
# Names the alerter without a code change: a KIND, `package.module:Class`, or the JSON
# `{"type": ..., "config": {...}}` (see `from_environment`).
ALERTER_ENV = "LIFECYCLE_ALERTER"
# Where the Slack alerter finds its webhook URL, unless configured otherwise.
SLACK_WEBHOOK_ENV = "SLACK_WEBHOOK_URL"


class Alerter(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Send an alert made of a title, a message, key fields and a status.

    Implementations must never raise: an alert that cannot be delivered is logged, and the job or
    pipeline keeps the outcome it had.

    A kind declares its secrets (`SECRET_ENVIRONMENT`, `SECRET_PATTERNS`): `secrets.redact`
    masks them in every log line and alert of the process once the class is defined, and the
    notify step's Kubernetes Secret maps the variables (`pipelines.dags.settings`). A kind says
    whether it is the default for an environment (`chosen_for`).
    """

    KIND: str
    # Environment variables holding the kind's secrets (a webhook URL, a token); their values
    # are masked wherever they appear, and a cluster sets them from the alerters' Secret.
    SECRET_ENVIRONMENT: T.ClassVar[tuple[str, ...]] = ()
    # Regular expressions of the kind's secrets inside a text (a webhook's secret path); a
    # first group, when there is one, is kept (see `secrets.register`).
    SECRET_PATTERNS: T.ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: T.Any) -> None:
        """Register the secrets a kind declares as soon as it is defined.

        A user's class, imported by its path, is masked like the project's own.
        """
        super().__pydantic_init_subclass__(**kwargs)
        secrets.register(cls.SECRET_PATTERNS, cls.SECRET_ENVIRONMENT)

    def model_post_init(self, context: T.Any, /) -> None:
        """Register the secret variables this instance reads (its config may name others)."""
        secrets.register(environment=self.secret_environment())

    def secret_environment(self) -> tuple[str, ...]:
        """The environment variables this alerter reads secrets from.

        Returns:
            The kind's `SECRET_ENVIRONMENT`; a kind whose config names another variable adds it.
        """
        return self.SECRET_ENVIRONMENT

    @classmethod
    def chosen_for(cls, environ: T.Mapping[str, str]) -> bool:
        """Whether this kind is the default alerter in an environment (see `ALERTERS.choose`).

        Args:
            environ: the environment variables (`os.environ`).

        Returns:
            False: a kind that can be the default says when (the Slack alerter: its webhook is
            set).
        """
        return False

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
        the step's headline that a local run prints (see `pipelines.local.console`), the facts
        follow.
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
    SECRET_ENVIRONMENT: T.ClassVar[tuple[str, ...]] = (SLACK_WEBHOOK_ENV,)
    # A webhook URL anywhere in a text, with no environment to read it from.
    SECRET_PATTERNS: T.ClassVar[tuple[str, ...]] = (secrets.SLACK_WEBHOOK,)

    webhook_url_env: str = SLACK_WEBHOOK_ENV
    ui_base_url: str | None = None
    max_attempts: int = pdt.Field(default=4, ge=1)
    max_backoff_seconds: float = pdt.Field(default=30.0, ge=0)
    timeout_seconds: float = pdt.Field(default=10.0, gt=0)
    channel_hint: str | None = None

    @classmethod
    def chosen_for(cls, environ: T.Mapping[str, str]) -> bool:
        """The default alerter when its webhook variable is set and not empty.

        Args:
            environ: the environment variables (`os.environ`).
        """
        return bool(environ.get(SLACK_WEBHOOK_ENV, "").strip())

    def secret_environment(self) -> tuple[str, ...]:
        """The webhook's variable: the configured one, and the default's."""
        return tuple(dict.fromkeys((*self.SECRET_ENVIRONMENT, self.webhook_url_env)))

    def notify(self, title, message, fields=None, status="SUCCEEDED", link=None) -> bool:
        """Post the alert to the webhook, retrying what may pass; log it when there is none."""
        url = os.environ.get(self.webhook_url_env, "").strip()
        if not url:
            _log_no_webhook(self.webhook_url_env)
            return ConsoleAlerter().notify(title, message, fields, status, link)
        if not url.lower().startswith(("https://", "http://")):
            # urllib's "unknown url type" would name the variable's value, which is a secret.
            logger.error(
                "Slack alert %r not delivered: %s is not an http(s) URL (a Slack webhook's "
                "starts with https://hooks.slack.com/)",
                title,
                self.webhook_url_env,
            )
            return False
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
    """The alerter the environment asks for, never failing (see `from_environment`).

    An alert must still go out when the alerter asked for cannot be built: the reason is
    logged as an error, and alerts go to the log.

    Returns:
        The alerter of LIFECYCLE_ALERTER, else the registered kind chosen for the environment
        (a SlackAlerter when SLACK_WEBHOOK_URL is set and not empty), else a ConsoleAlerter.
    """
    try:
        return from_environment()
    except factories.FactoryError as error:
        logger.error("%s; alerts go to the log instead", secrets.redact(str(error)))
    except Exception as error:  # a user's class may fail in any way: the alert matters more
        text = f"{ALERTER_ENV}: {type(error).__name__}: {error}"
        logger.error("%s; alerts go to the log instead", secrets.redact(text))
    return ConsoleAlerter()


def from_environment(environ: T.Mapping[str, str] | None = None) -> Alerter:
    """Build the alerter an environment asks for.

    LIFECYCLE_ALERTER, when set, names it: a KIND (`SlackAlerter`), a user's class
    (`mypackage.alerts:TeamsAlerter`), or a JSON `{"type": ..., "config": {...}}` (a config
    with a KIND is taken too). Unset or empty, each registered kind says whether it is chosen
    for the environment (`ALERTERS.choose`), else the log (ConsoleAlerter). Secrets are not
    given here: a kind reads them from its own environment variables.

    Args:
        environ: the environment variables; `os.environ` if None.

    Returns:
        The alerter.

    Raises:
        FactoryError: LIFECYCLE_ALERTER names no alerter (unknown KIND, no subclass of
            Alerter, bad JSON, invalid option); one line saying what is wrong and what is
            allowed.
    """
    environ = os.environ if environ is None else environ
    given = environ.get(ALERTER_ENV, "").strip()
    if not given:
        return ALERTERS.choose(environ).model_validate({})
    try:
        return ALERTERS.build(_spec(given))
    except factories.FactoryError as error:
        raise factories.FactoryError(f"{ALERTER_ENV}: {error}") from None


def _spec(given: str) -> dict[str, T.Any]:
    """LIFECYCLE_ALERTER's value as an alerter's config; JSON when it opens with a brace."""
    if not given.startswith("{"):
        return {"KIND": given}
    try:
        spec = json.loads(given)
    except ValueError as error:
        # The value may hold a secret: the message says where it breaks, not what it holds.
        raise factories.FactoryError(
            f"not valid JSON ({error}); give a KIND, "
            f'package.module:Class or {{"type": KIND, "config": {{...}}}}'
        ) from None
    if not isinstance(spec, dict):  # `{` opens an object or nothing valid: kept for mypy
        raise factories.FactoryError("a JSON value must be an object")
    return spec


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


# The registry of alerters: a KIND, `{type, config}` or a user's `package.module:Class`; the
# default is the first kind chosen for the environment (`chosen_for`), else the log.
ALERTERS = factories.Factory(
    "alerter", Alerter, (ConsoleAlerter, SlackAlerter), fallback=ConsoleAlerter
)


# A job's alerter field: an instance, or a config built by the registry.
AlerterKind = T.Annotated[pdt.SerializeAsAny[Alerter], pdt.BeforeValidator(ALERTERS.coerce)]


def secret_environment(
    kinds: T.Iterable[type[Alerter]] | None = None,
) -> tuple[str, ...]:
    """The environment variables that hold the alerters' secrets, each once, in order.

    What the notify step's Kubernetes Secret maps (`pipelines.dags.settings`).

    Args:
        kinds: the alerter classes; the registered kinds if None.
    """
    chosen = ALERTERS.kinds.values() if kinds is None else kinds
    return tuple(dict.fromkeys(name for kind in chosen for name in kind.SECRET_ENVIRONMENT))
