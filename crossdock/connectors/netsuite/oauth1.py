"""OAuth 1.0a (RFC 5849) HMAC-SHA256 request signing for NetSuite token-based authentication (TBA).

The signature base string is `METHOD&enc(base URI)&enc(sorted, encoded parameters)`, where the
parameters are the `oauth_*` values plus the query string (never a JSON body), and the key is
`enc(consumer secret)&enc(token secret)`. The simulator verifies with the same functions, and the
tests pin `signature_base_string` to RFC 5849's own worked example.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

SIGNATURE_METHOD = "HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def percent_encode(value: str) -> str:
    """RFC 5849 §3.6: UTF-8, then escape everything except ALPHA / DIGIT / '-' '.' '_' '~'."""
    return quote(value, safe="-._~")


def realm_for(account_id: str) -> str:
    """NetSuite's realm: the account id upper-cased with '-' turned into '_' (e.g. 1234567_SB1)."""
    return account_id.upper().replace("-", "_")


def base_string_uri(url: str) -> str:
    """RFC 5849 §3.4.1.2: lower-case scheme and host, default port dropped, path as sent, no query."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{parts.port}"
    return f"{scheme}://{host}{parts.path or '/'}"


def normalized_parameters(params: Iterable[tuple[str, str]]) -> str:
    """RFC 5849 §3.4.1.3.2: encode names and values, sort by name then value, join with '&'."""
    encoded = sorted((percent_encode(k), percent_encode(v)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in encoded)


def signature_base_string(method: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    return "&".join(
        [method.upper(), percent_encode(base_string_uri(url)), percent_encode(normalized_parameters(params))]
    )


def hmac_sha256_signature(base_string: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def query_parameters(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def authorization_header(
    method: str,
    url: str,
    *,
    realm: str,
    consumer_key: str,
    consumer_secret: str,
    token_id: str,
    token_secret: str,
    nonce: str | None = None,
    timestamp: int | None = None,
) -> str:
    """The `Authorization: OAuth ...` value for a request to `url` (query string included)."""
    oauth = {
        "oauth_consumer_key": consumer_key,
        "oauth_token": token_id,
        "oauth_signature_method": SIGNATURE_METHOD,
        "oauth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "oauth_nonce": nonce or secrets.token_hex(16),
        "oauth_version": "1.0",
    }
    base = signature_base_string(method, url, [*query_parameters(url), *oauth.items()])
    oauth["oauth_signature"] = hmac_sha256_signature(base, consumer_secret, token_secret)
    fields = [f'realm="{realm}"'] + [f'{k}="{percent_encode(v)}"' for k, v in oauth.items()]
    return "OAuth " + ",".join(fields)


def parse_authorization_header(value: str) -> dict[str, str]:
    """The parameters of an `OAuth k="v", ...` header (values percent-decoded); ValueError if malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "oauth" or not rest.strip():
        raise ValueError("not an OAuth authorization header")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, quoted = part.strip().partition("=")
        if not sep or len(quoted) < 2 or not (quoted.startswith('"') and quoted.endswith('"')):
            raise ValueError(f"malformed OAuth parameter {part.strip()!r}")
        if name in params:
            raise ValueError(f"duplicate OAuth parameter {name!r}")
        params[name] = unquote(quoted[1:-1])
    return params
