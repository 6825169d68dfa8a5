"""Tests for the alerts service, posting over real HTTP to a local Slack-like webhook."""

from __future__ import annotations

import json
import logging
import re
import time

import pydantic as pdt
import pytest

from components.io import alerts
from components.utils import factories, secrets
from tests.io.slack_server import SlackWebhookServer, closed_port_url

pytestmark = pytest.mark.integration

TITLE = "InferenceJob succeeded"
FIELDS = {"rows": 1200, "model": "wine-quality", "version": "7"}
LINK = "http://kubeflow.local/#/runs/details/abc"
FAST = {"max_backoff_seconds": 0.01, "timeout_seconds": 2.0}


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch):
    """A running fake webhook, set in SLACK_WEBHOOK_URL, with proxies out of the way."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SlackWebhookServer() as server:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url)
        yield server


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture):
    """Capture every record at DEBUG, so that a leak at any level is seen."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_secret(url: str, logs: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture):
    """The webhook URL, or its secret path, shows in no log record and no output."""
    captured = capsys.readouterr()
    secret = SlackWebhookServer.PATH
    for text in (logs.text, captured.out, captured.err):
        assert url not in text
        assert secret not in text


def test_success_posts_header_message_fields_and_link(slack, logs, capsys):
    alerter = alerts.SlackAlerter(**FAST)
    delivered = alerter.notify(TITLE, "Scored the batch.", FIELDS, "SUCCEEDED", LINK)
    assert delivered is True
    [request] = slack.requests
    assert request.headers["Content-Type"].startswith("application/json")
    blocks = request.body["blocks"]
    header = blocks[0]
    assert header["type"] == "header"
    assert TITLE in header["text"]["text"] and "SUCCEEDED" in header["text"]["text"]
    assert ":white_check_mark:" in header["text"]["text"]
    assert blocks[1]["text"]["text"] == "Scored the batch."
    texts = [field["text"] for block in blocks for field in block.get("fields", [])]
    assert texts == ["*rows*\n1200", "*model*\nwine-quality", "*version*\n7"]
    assert any(LINK in str(block) for block in blocks if block["type"] == "context")
    assert TITLE in request.body["text"]
    assert_no_secret(slack.url, logs, capsys)


def test_failure_shows_the_error_escaped(slack, logs, capsys):
    message = "Task validate failed: <class 'SchemaError'> column 'age' & 3 rows"
    assert alerts.SlackAlerter(**FAST).notify("Pipeline failed", message, status="FAILED")
    blocks = slack.requests[0].body["blocks"]
    assert ":x:" in blocks[0]["text"]["text"] and "FAILED" in blocks[0]["text"]["text"]
    assert blocks[1]["text"]["text"] == (
        "Task validate failed: &lt;class 'SchemaError'&gt; column 'age' &amp; 3 rows"
    )
    assert_no_secret(slack.url, logs, capsys)


def test_texts_are_cut_to_slack_limits(slack):
    assert alerts.SlackAlerter(**FAST).notify("T" * 400, "m" * 5000, {"k": "v" * 3000})
    blocks = slack.requests[0].body["blocks"]
    assert len(blocks[0]["text"]["text"]) == alerts.HEADER_MAX_CHARS
    assert len(blocks[1]["text"]["text"]) == alerts.SECTION_MAX_CHARS
    assert len(blocks[2]["fields"][0]["text"]) == alerts.FIELD_MAX_CHARS
    assert len(slack.requests[0].body["text"]) <= alerts.SECTION_MAX_CHARS


def test_more_than_ten_fields_are_split_into_sections(slack):
    fields = {f"metric_{i}": i for i in range(23)}
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Many facts.", fields)
    sections = [block for block in slack.requests[0].body["blocks"] if "fields" in block]
    assert [len(section["fields"]) for section in sections] == [10, 10, 3]
    assert sections[2]["fields"][-1]["text"] == "*metric_22*\n22"


def test_rate_limit_waits_for_retry_after_then_delivers(slack, logs, capsys):
    slack.script([(429, "rate_limited", {"Retry-After": "1"})])
    alerter = alerts.SlackAlerter(max_backoff_seconds=5.0, timeout_seconds=2.0)
    start = time.monotonic()
    assert alerter.notify(TITLE, "Scored.", FIELDS) is True
    assert time.monotonic() - start >= 1.0
    assert len(slack.requests) == 2
    assert slack.requests[0].body == slack.requests[1].body
    assert "429" in logs.text and "rate_limited" in logs.text
    assert_no_secret(slack.url, logs, capsys)


def test_retry_after_is_capped_by_max_backoff(slack):
    slack.script([(429, "rate_limited", {"Retry-After": "120"})])
    start = time.monotonic()
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.") is True
    assert time.monotonic() - start < 5
    assert len(slack.requests) == 2


def test_server_error_is_retried_then_delivered(slack, logs, capsys):
    slack.script([(500, "internal_error"), (503, "service_unavailable")])
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.") is True
    assert len(slack.requests) == 3
    assert_no_secret(slack.url, logs, capsys)


def test_server_error_forever_gives_up_after_max_attempts(slack, logs, capsys):
    slack.script([(500, "internal_error")] * 10)
    assert alerts.SlackAlerter(max_attempts=3, **FAST).notify(TITLE, "Scored.") is False
    assert len(slack.requests) == 3
    assert "500" in logs.text and "internal_error" in logs.text
    assert "after 3 attempts" in logs.text
    assert_no_secret(slack.url, logs, capsys)


@pytest.mark.parametrize(
    ("status", "body"), [(404, "no_service"), (400, "invalid_payload"), (403, "invalid_token")]
)
def test_client_error_is_not_retried(slack, logs, capsys, status, body):
    slack.script([(status, body)])
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.") is False
    assert len(slack.requests) == 1
    [error] = [record for record in logs.records if record.levelno == logging.ERROR]
    assert str(status) in error.getMessage() and body in error.getMessage()
    assert_no_secret(slack.url, logs, capsys)


def test_ok_status_with_another_body_is_a_failure(slack, logs):
    slack.script([(200, "something_else")])
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.") is False
    assert "something_else" in logs.text


def test_connection_refused_gives_up_after_max_attempts(monkeypatch, logs, capsys):
    url = closed_port_url()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    assert alerts.SlackAlerter(max_attempts=3, **FAST).notify(TITLE, "Scored.") is False
    assert logs.text.count("attempt") == 3  # two retry warnings and the final error
    assert "after 3 attempts" in logs.text
    assert_no_secret(url, logs, capsys)


def test_invalid_url_is_reported_without_the_url(monkeypatch, logs, capsys):
    url = "ftp://hooks.example/services/T0TEST000/B0TEST000/s3cr3tW3bh00kT0k3n"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", url)
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.") is False
    assert "not delivered" in logs.text
    assert_no_secret(url, logs, capsys)


def test_without_webhook_the_alert_goes_to_the_log(slack, monkeypatch, logs, capsys):
    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    alerts._log_no_webhook.cache_clear()
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.", FIELDS, link=LINK) is True
    assert slack.requests == []
    assert "no Slack webhook configured (SLACK_WEBHOOK_URL unset)" in logs.text
    assert TITLE in logs.text and "rows=1200" in logs.text and LINK in logs.text
    logs.clear()
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Again.") is True
    assert "no Slack webhook configured" not in logs.text  # said once per process
    assert "Again." in logs.text


def test_empty_webhook_is_like_no_webhook(slack, monkeypatch, logs):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "")
    assert alerts.SlackAlerter(**FAST).notify(TITLE, "Scored.") is True
    assert slack.requests == []
    assert TITLE in logs.text


def test_the_url_is_never_in_the_alerter(slack):
    alerter = alerts.SlackAlerter()
    assert slack.url not in repr(alerter) and slack.url not in alerter.model_dump_json()


def test_alerter_config_is_strict():
    with pytest.raises(pdt.ValidationError):
        alerts.SlackAlerter(webhook_url="http://example")
    with pytest.raises(pdt.ValidationError):
        alerts.SlackAlerter(max_attempts=0)
    assert pdt.TypeAdapter(alerts.AlerterKind).validate_python({"KIND": "SlackAlerter"}) == (
        alerts.SlackAlerter()
    )


def test_default_alerter_follows_the_environment(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/x")
    assert isinstance(alerts.default_alerter(), alerts.SlackAlerter)
    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    assert isinstance(alerts.default_alerter(), alerts.ConsoleAlerter)


# The registry of alerters.

USER = "tests.user_alerters"
WEBHOOK = f"{USER}:WebhookAlerter"


def test_the_field_takes_a_kind_a_type_and_config_or_a_users_class():
    from components.jobs.notification import NotificationJob

    assert NotificationJob(pipeline="p", alerter="SlackAlerter").alerter == alerts.SlackAlerter()
    spelled = {"type": "SlackAlerter", "config": {"max_attempts": 2}}
    assert NotificationJob(pipeline="p", alerter=spelled).alerter == alerts.SlackAlerter(
        max_attempts=2
    )
    job = NotificationJob(pipeline="p", alerter={"KIND": WEBHOOK, "url": "http://127.0.0.1:9"})
    assert type(job.alerter).__name__ == "WebhookAlerter" and job.alerter.KIND == WEBHOOK
    # What a job dumps builds the same alerter again, where a step runs.
    dumped = job.model_dump()["alerter"]
    assert dumped["url"] == "http://127.0.0.1:9"
    assert NotificationJob(pipeline="p", alerter=dumped).alerter == job.alerter
    assert NotificationJob(pipeline="p", alerter=alerts.ConsoleAlerter()).alerter == (
        alerts.ConsoleAlerter()
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("TeamsAlerter", "unknown alerter type 'TeamsAlerter'"),
        ("SlackAlerte", "unknown alerter type 'SlackAlerte' (did you mean: SlackAlerter?)"),
        (f"{USER}:NotAnAlerter", f"alerter type '{USER}:NotAnAlerter' is not a subclass of"),
        ({"KIND": f"{USER}:NotAnAlerter"}, "is not a subclass of components.io.alerts:Alerter"),
    ],
)
def test_the_field_refuses_an_unknown_kind_or_a_wrong_base_in_one_line(given, expected):
    from components.jobs import base
    from components.jobs.notification import NotificationJob

    with pytest.raises(pdt.ValidationError) as raised:
        NotificationJob(pipeline="p", alerter=given)
    line = base.describe_errors("NotificationJob", raised.value)
    assert "\n" not in line
    assert line.startswith("invalid NotificationJob settings: alerter: ")
    assert expected in line
    assert "allowed: 'ConsoleAlerter', 'SlackAlerter', or the import path" in line


def test_a_users_class_that_cannot_be_imported_is_named():
    with pytest.raises(factories.FactoryError, match=r"cannot import module 'nowhere'"):
        alerts.ALERTERS.build({"type": "nowhere:Alerter"})
    with pytest.raises(factories.FactoryError, match=rf"module '{USER}' has no 'Missing'"):
        alerts.ALERTERS.build({"type": f"{USER}:Missing"})


@pytest.mark.parametrize(
    ("environ", "chosen"),
    [
        ({}, alerts.ConsoleAlerter),
        ({"SLACK_WEBHOOK_URL": "http://127.0.0.1:9/services/x"}, alerts.SlackAlerter),
        ({"SLACK_WEBHOOK_URL": "  "}, alerts.ConsoleAlerter),
        ({"SLACK_WEBHOOK_URL": ""}, alerts.ConsoleAlerter),
        ({"OTHER_WEBHOOK_URL": "http://127.0.0.1:9/x"}, alerts.ConsoleAlerter),
    ],
)
def test_the_registry_chooses_by_environment(environ, chosen):
    assert alerts.ALERTERS.choose(environ) is chosen
    assert type(alerts.from_environment(environ)) is chosen


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SlackAlerter", alerts.SlackAlerter()),
        ("  ConsoleAlerter ", alerts.ConsoleAlerter()),
        (
            '{"type": "SlackAlerter", "config": {"max_attempts": 2}}',
            alerts.SlackAlerter(max_attempts=2),
        ),
        ('{"type": "SlackAlerter"}', alerts.SlackAlerter()),
        ('{"KIND": "SlackAlerter", "timeout_seconds": 3}', alerts.SlackAlerter(timeout_seconds=3)),
    ],
)
def test_lifecycle_alerter_names_a_kind_or_a_json_config(value, expected):
    # LIFECYCLE_ALERTER wins over the kind the environment would choose.
    environ = {"LIFECYCLE_ALERTER": value, "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/x"}
    assert alerts.from_environment(environ) == expected  # pydantic compares the types too


def test_lifecycle_alerter_names_a_users_class_by_its_import_path():
    by_path = alerts.from_environment({"LIFECYCLE_ALERTER": WEBHOOK})
    assert type(by_path).__name__ == "WebhookAlerter" and by_path.KIND == WEBHOOK
    spec = json.dumps({"type": WEBHOOK, "config": {"url_env": "MY_HOOK", "timeout_seconds": 1}})
    configured = alerts.from_environment({"LIFECYCLE_ALERTER": spec})
    assert (configured.url_env, configured.timeout_seconds) == ("MY_HOOK", 1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Teams", r"^LIFECYCLE_ALERTER: unknown alerter type 'Teams'; allowed: 'ConsoleAlerter', "),
        (
            f"{USER}:NotAnAlerter",
            r"^LIFECYCLE_ALERTER: alerter type .* is not a subclass of .*allowed",
        ),
        ('{"type": "SlackAlerter",', r"^LIFECYCLE_ALERTER: not valid JSON \(.*\); give a KIND, "),
        ('{"config": {}}', r"^LIFECYCLE_ALERTER: a alerter config needs a KIND; allowed: "),
        (
            '{"type": "SlackAlerter", "config": {"max_attempts": 0}}',
            r"^LIFECYCLE_ALERTER: invalid SlackAlerter: max_attempts: Input should be greater",
        ),
        (
            '{"type": "SlackAlerter", "config": {"webhook": "https://hooks.slack.com/services/T/B/s3cr3t"}}',
            r"^LIFECYCLE_ALERTER: invalid SlackAlerter: webhook: unknown option \(did you mean: "
            r"webhook_url_env\?\); its options: webhook_url_env, ",
        ),
        (
            '{"type": "SlackAlerter", "config": [1]}',
            r"^LIFECYCLE_ALERTER: alerter 'SlackAlerter': 'config' must be a mapping",
        ),
        ("[1, 2]", r"^LIFECYCLE_ALERTER: unknown alerter type '\[1, 2\]'"),
    ],
)
def test_lifecycle_alerter_refuses_a_bad_value_in_one_line(value, expected):
    with pytest.raises(factories.FactoryError) as raised:
        alerts.from_environment({"LIFECYCLE_ALERTER": value})
    message = str(raised.value)
    assert "\n" not in message
    assert re.search(expected, message), message
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("Teams", "LIFECYCLE_ALERTER: unknown alerter type 'Teams'; allowed: 'ConsoleAlerter'"),
        (
            f"{USER}:BrokenAlerter",
            "LIFECYCLE_ALERTER: RuntimeError: the user's alerter cannot start",
        ),
    ],
)
def test_default_alerter_logs_a_refused_value_and_alerts_to_the_log(monkeypatch, logs, value, said):
    monkeypatch.setenv("LIFECYCLE_ALERTER", value)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:9/services/x")
    alerter = alerts.default_alerter()
    assert type(alerter) is alerts.ConsoleAlerter
    [error] = [record for record in logs.records if record.levelno == logging.ERROR]
    assert error.getMessage().startswith(said)
    assert error.getMessage().endswith("; alerts go to the log instead")
    assert alerter.notify(TITLE, "Still told.", status="FAILED")
    assert "Still told." in logs.text


def test_the_alerters_declare_their_secrets():
    assert alerts.secret_environment() == ("SLACK_WEBHOOK_URL",)
    assert alerts.SlackAlerter(webhook_url_env="TEAM_HOOK").secret_environment() == (
        "SLACK_WEBHOOK_URL",
        "TEAM_HOOK",
    )
    assert alerts.ConsoleAlerter().secret_environment() == ()
    from tests import user_alerters

    assert alerts.secret_environment([alerts.SlackAlerter, user_alerters.WebhookAlerter]) == (
        "SLACK_WEBHOOK_URL",
        "USER_WEBHOOK_URL",
    )


def test_a_configured_webhook_variable_is_masked_once_the_alerter_is_built(monkeypatch):
    hook = "http://127.0.0.1:9/team/hook/0123456789abcdef"
    monkeypatch.setenv("TEAM_HOOK_FOR_MASKING", hook)
    assert secrets.redact(f"posting to {hook}") == f"posting to {hook}"
    alerts.SlackAlerter(webhook_url_env="TEAM_HOOK_FOR_MASKING")
    assert secrets.redact(f"posting to {hook}") == "posting to ***"


# A user's alerter, posting over real HTTP.


def test_a_users_webhook_alerter_posts_json_and_checks_the_answer(slack, monkeypatch, logs, capsys):
    from tests import user_alerters

    monkeypatch.setenv(user_alerters.WEBHOOK_ENV, slack.url)
    secrets.install_log_redaction()  # as a job's logging starts (services.LoggerService)
    alerter = alerts.ALERTERS.build({"type": WEBHOOK})
    assert alerter.notify(TITLE, "Scored the batch.", FIELDS, "SUCCEEDED", LINK) is True
    [request] = slack.requests
    assert request.body == {
        "title": TITLE,
        "message": "Scored the batch.",
        "status": "SUCCEEDED",
        "facts": {"rows": "1200", "model": "wine-quality", "version": "7"},
        "link": LINK,
    }
    # Its careless log line names the URL: declared secret, it is masked.
    assert f"webhook alert {TITLE!r} delivered to ***" in logs.text
    slack.script([(500, "internal_error")])
    assert alerter.notify(TITLE, "Again.") is False
    assert "HTTP 500" in logs.text
    assert_no_secret(slack.url, logs, capsys)
