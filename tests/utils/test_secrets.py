"""Credentials never reach a log line, an alert or a printed line."""

from __future__ import annotations

import logging

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
