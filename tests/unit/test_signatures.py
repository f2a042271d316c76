"""Webhook signatures: HMAC-SHA256 of the raw body, in the forms Jira and QTest send."""

from __future__ import annotations

import hashlib
import hmac
import logging

from api.security import RedactSecrets
from integrations.signatures import same_token, signature, verify_jira, verify_qtest

SECRET = "jira-shared-secret"
BODY = b'{"webhookEvent":"jira:issue_updated","issue":{"key":"OBJ-603"}}'


def test_the_signature_is_the_lowercase_hex_hmac_sha256_of_the_body() -> None:
    """The signature is what any HMAC-SHA256 library computes over the raw bytes."""
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, BODY) == expected


def test_jira_accepts_its_sha256_prefixed_header_in_either_case() -> None:
    """Jira's ``X-Hub-Signature: sha256=<hex>`` verifies, whatever the hex digits' case."""
    assert verify_jira(SECRET, BODY, f"sha256={signature(SECRET, BODY)}")
    assert verify_jira(SECRET, BODY, f"sha256={signature(SECRET, BODY).upper()}")


def test_jira_refuses_a_missing_wrong_or_differently_hashed_signature() -> None:
    """No header, a bare hex without its algorithm, another secret or a sha1 are refused."""
    good = signature(SECRET, BODY)
    assert not verify_jira(SECRET, BODY, None)
    assert not verify_jira(SECRET, BODY, good)
    assert not verify_jira(SECRET, BODY, f"sha256={signature('another', BODY)}")
    assert not verify_jira(SECRET, BODY, "sha1=" + hashlib.sha1(BODY).hexdigest())


def test_a_changed_body_no_longer_verifies() -> None:
    """One byte more in the body breaks the signature made over the original."""
    header = f"sha256={signature(SECRET, BODY)}"
    assert not verify_jira(SECRET, BODY + b" ", header)


def test_qtest_accepts_bare_and_prefixed_hex() -> None:
    """QTest's ``x-qtest-signature`` verifies as bare hex and with a ``sha256=`` prefix."""
    assert verify_qtest(SECRET, BODY, signature(SECRET, BODY))
    assert verify_qtest(SECRET, BODY, "sha256=" + signature(SECRET, BODY))
    assert not verify_qtest(SECRET, BODY, None)
    assert not verify_qtest(SECRET, BODY, "not hex at all \u00e9")


def test_a_url_token_must_equal_the_configured_one() -> None:
    """The URL token matches only itself; none and non-ASCII tokens are refused."""
    assert same_token("t0ken", "t0ken")
    assert not same_token("t0ken", "t0ken ")
    assert not same_token("t0ken", None)
    assert not same_token("t0ken", "t\u00f6ken")


def test_the_access_log_never_shows_a_url_token() -> None:
    """An access log line of ``/v1/webhooks/qtest?token=…`` prints the token masked."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/v1/webhooks/qtest?a=1&token=s3cr3t&b=2", "1.1", 202),
        None,
    )

    RedactSecrets().filter(record)

    assert "s3cr3t" not in record.getMessage()
    assert "/v1/webhooks/qtest?a=1&token=***&b=2" in record.getMessage()
