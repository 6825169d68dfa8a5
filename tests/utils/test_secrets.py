"""Credentials never reach a log line, an alert or a printed line."""

from __future__ import annotations

import logging

import pytest

from components.utils import secrets


def test_passwords_in_uris_are_masked():
    text = "at http://alice:s3cret@mlflow:5000/api and postgresql://u:pw@db:5432/x"
    assert (
        secrets.redact(text)
        == "at http://alice:***@mlflow:5000/api and postgresql://u:***@db:5432/x"
    )


def test_a_token_as_user_info_and_a_slack_webhook_are_masked():
    token = "ghp_" + "a" * 20
    assert secrets.redact(f"https://{token}@host/x") == "https://***@host/x"
    hook = "https://hooks.slack.com/services/T000/B000/XXXXXXXX"
    assert secrets.redact(f"posting to {hook}") == "posting to https://hooks.slack.com/services/***"


def test_plain_uris_are_left_alone():
    for text in ("http://127.0.0.1:5000", "s3://bucket/key", "sqlite:////tmp/mlflow.db"):
        assert secrets.redact(text) == text


def test_clip_keeps_a_few_hundred_characters():
    clipped = secrets.clip("x" * 10_000_000)
    assert len(clipped) < 400 and clipped.endswith("(10000000 characters)")
    assert secrets.clip("short") == "short"


def test_the_log_filter_masks_every_record(caplog):
    logging.getLogger().addHandler(caplog.handler)
    secrets.install_log_redaction()
    logging.getLogger("mlflow.anything").warning("cannot reach %s", "http://bob:hunter2@x:5000")
    assert "hunter2" not in caplog.text and "http://bob:***@x:5000" in caplog.text


def test_a_registered_pattern_is_masked_keeping_its_first_group():
    text = "posted to https://teams.example.org/webhookb2/abcDEF123456 and https://x.org/keep"
    assert secrets.redact(text) == text
    secrets.register([r"(https://teams\.example\.org/webhookb2/)[A-Za-z0-9]{1,256}"])
    assert secrets.redact(text) == (
        "posted to https://teams.example.org/webhookb2/*** and https://x.org/keep"
    )
    # A pattern without a group is masked whole.
    secrets.register([r"tok_[a-z0-9]{12}"])
    assert secrets.redact("key tok_abcdef123456 used") == "key *** used"


def test_a_registered_variable_has_its_value_masked_as_it_is_when_redacting(monkeypatch):
    monkeypatch.setenv("TEST_SECRET_VARIABLE", "first-secret-value")
    secrets.register(environment=["TEST_SECRET_VARIABLE"])
    assert "TEST_SECRET_VARIABLE" in secrets.registered_environment()
    assert secrets.redact("sent with first-secret-value.") == "sent with ***."
    monkeypatch.setenv("TEST_SECRET_VARIABLE", "second-secret-value")
    assert secrets.redact("first-secret-value, second-secret-value") == ("first-secret-value, ***")
    # Too short to be a secret worth masking everywhere: "true" would mask half of every text.
    monkeypatch.setenv("TEST_SECRET_VARIABLE", "true")
    assert secrets.redact("true") == "true"
    monkeypatch.delenv("TEST_SECRET_VARIABLE")
    assert secrets.redact("nothing to mask") == "nothing to mask"


def test_a_pattern_that_is_no_regular_expression_is_refused_in_one_line():
    with pytest.raises(
        ValueError, match=r"^secret pattern '\(unclosed' is not a regular expression"
    ):
        secrets.register(["(unclosed"])


def test_a_users_alerter_declares_its_secrets_and_they_are_masked(monkeypatch, caplog):
    """Importing the user's class is enough: its declared pattern and variable are masked,
    in `redact` and in every log record."""
    from tests import user_alerters

    hook = "https://alerts.example.com/hooks/T0K3Nvalue123"
    assert secrets.redact(f"cannot post to {hook}") == (
        "cannot post to https://alerts.example.com/hooks/***"
    )
    private = "http://127.0.0.1:8123/private/path/token"
    monkeypatch.setenv(user_alerters.WEBHOOK_ENV, private)
    assert secrets.redact(f"cannot post to {private}: refused") == "cannot post to ***: refused"
    logging.getLogger().addHandler(caplog.handler)
    secrets.install_log_redaction()
    logging.getLogger("tests.user_alerters").warning("cannot reach %s", private)
    assert private not in caplog.text and "cannot reach ***" in caplog.text
