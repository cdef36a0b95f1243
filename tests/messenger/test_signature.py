"""messenger.signature: only a correct X-Hub-Signature-256 passes, and nothing raises."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from messenger.signature import signature_is_valid

SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
BODY = b'{"object":"page","entry":[{"id":"104728561934527","time":1732550460500,"messaging":[]}]}'


def sign(body: bytes, secret: str = SECRET, algorithm: str = "sha256") -> str:
    digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return f"{algorithm}={digest}"


def test_valid_signature() -> None:
    assert signature_is_valid(body=BODY, header=sign(BODY), app_secret=SECRET) is True


def test_valid_signature_in_upper_case_hex() -> None:
    header = "sha256=" + sign(BODY).removeprefix("sha256=").upper()

    assert signature_is_valid(body=BODY, header=header, app_secret=SECRET) is True


def test_valid_signature_of_an_empty_body() -> None:
    assert signature_is_valid(body=b"", header=sign(b""), app_secret=SECRET) is True


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(header: str | None) -> None:
    assert signature_is_valid(body=BODY, header=header, app_secret=SECRET) is False


def test_wrong_secret() -> None:
    header = sign(BODY, secret="another secret")

    assert signature_is_valid(body=BODY, header=header, app_secret=SECRET) is False


def test_tampered_body() -> None:
    tampered = BODY.replace(b"104728561934527", b"104728561934528")

    assert signature_is_valid(body=tampered, header=sign(BODY), app_secret=SECRET) is False


def test_sha1_only_is_refused_even_when_correct() -> None:
    assert signature_is_valid(body=BODY, header=sign(BODY, algorithm="sha1"), app_secret=SECRET) is False


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + "z" * 64,  # not hex
        "sha256=" + "ab" * 31,  # too short
        "sha256=" + "ab" * 33,  # too long
        "sha256=",
        "sha256",
        "SHA256=" + "ab" * 32,  # Meta's scheme is lower case
        "sha256:" + "ab" * 32,
        "sha256=" + "\u0663" * 64,  # non-ASCII digits
        "sha256=" + "ab" * 31 + "a ",  # space inside the digest
        "md5=" + "ab" * 32,
    ],
)
def test_malformed_header(header: str) -> None:
    assert signature_is_valid(body=BODY, header=header, app_secret=SECRET) is False


def test_digest_without_the_scheme_prefix() -> None:
    header = sign(BODY).removeprefix("sha256=")

    assert signature_is_valid(body=BODY, header=header, app_secret=SECRET) is False


def test_empty_secret_refuses_even_a_signature_made_with_it() -> None:
    assert signature_is_valid(body=BODY, header=sign(BODY, secret=""), app_secret="") is False


@pytest.mark.parametrize(
    ("body", "header", "app_secret"),
    [
        (BODY.decode(), sign(BODY), SECRET),  # a str body
        (BODY, sign(BODY).encode(), SECRET),  # a bytes header
        (BODY, sign(BODY), None),  # no secret configured
        (BODY, 42, SECRET),
    ],
)
def test_wrong_argument_types_give_false_instead_of_raising(
    body: object, header: object, app_secret: object
) -> None:
    valid = signature_is_valid(body=body, header=header, app_secret=app_secret)  # type: ignore[arg-type]

    assert valid is False
