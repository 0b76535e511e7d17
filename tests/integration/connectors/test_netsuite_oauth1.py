"""OAuth 1.0a signing pinned to RFC 5849's worked example, plus NetSuite's realm and header format."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

import pytest

from crossdock.connectors.netsuite.oauth1 import (
    authorization_header,
    base_string_uri,
    hmac_sha256_signature,
    parse_authorization_header,
    percent_encode,
    query_parameters,
    realm_for,
    signature_base_string,
)

RFC_BASE_STRING = (
    "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D"
    "%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1"
    "%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7"
)


def test_signature_base_string_matches_rfc_5849_section_3_4_1_1() -> None:
    url = "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b"
    params = [
        *query_parameters(url),
        *parse_qsl("c2&a3=2+q", keep_blank_values=True),  # the form-encoded body of the example
        ("oauth_consumer_key", "9djdj82h48djs9d2"),
        ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131201"),
        ("oauth_nonce", "7d8f3e4a"),
    ]
    assert signature_base_string("post", url, params) == RFC_BASE_STRING


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("abcABC123-._~", "abcABC123-._~"),
        ("a b", "a%20b"),
        ("=%3D", "%3D%253D"),
        ("é", "%C3%A9"),
        ("a+b/c", "a%2Bb%2Fc"),
    ],
)
def test_percent_encoding_follows_rfc_3986_unreserved(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("HTTP://Example.COM:80/r%20v/X?id=123", "http://example.com/r%20v/X"),
        ("https://www.example.net:8080/?q=1", "https://www.example.net:8080/"),
        (
            "https://1234567-sb1.suitetalk.api.netsuite.com:443/services/rest",
            "https://1234567-sb1.suitetalk.api.netsuite.com/services/rest",
        ),
    ],
)
def test_base_string_uri(url: str, base: str) -> None:
    assert base_string_uri(url) == base


def test_realm_is_upper_case_with_underscores() -> None:
    assert realm_for("1234567-sb1") == "1234567_SB1"


def test_header_signature_is_hmac_sha256_over_the_base_string_with_both_secrets() -> None:
    url = "https://acct.example/services/rest/record/v1/customer?q=email%20IS%20%22a%40b.c%22&limit=5"
    header = authorization_header(
        "GET",
        url,
        realm="123_SB1",
        consumer_key="ck",
        consumer_secret="cs&1",
        token_id="tk",
        token_secret="ts",
        nonce="n0nce123",
        timestamp=1_700_000_000,
    )
    params = parse_authorization_header(header)
    assert params["realm"] == "123_SB1"
    assert params["oauth_signature_method"] == "HMAC-SHA256" and params["oauth_version"] == "1.0"
    signed = [(k, v) for k, v in params.items() if k not in ("realm", "oauth_signature")]
    base = signature_base_string("GET", url, [*query_parameters(url), *signed])
    assert "q%3Demail%2520IS%2520%2522a%2540b.c%2522" in base
    key = b"cs%261&ts"
    expected = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
    assert params["oauth_signature"] == expected == hmac_sha256_signature(base, "cs&1", "ts")


@pytest.mark.parametrize("bad", ["Bearer abc", "OAuth ", 'OAuth realm="x",oauth_nonce=abc', 'OAuth a="1",a="2"'])
def test_malformed_headers_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_authorization_header(bad)
