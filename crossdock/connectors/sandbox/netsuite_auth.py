"""OAuth 1.0a TBA verification for the NetSuite simulator: signature, timestamp window, nonce replay.

The base string is rebuilt from the request exactly as the client sent it (scheme, Host header,
raw path, query parameters) and compared in constant time. Every failure is NetSuite's generic
401 `INVALID_LOGIN` (the reason only shows in NetSuite's login audit trail, here in `reason`).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import Request

from crossdock.connectors.netsuite.oauth1 import (
    SIGNATURE_METHOD,
    hmac_sha256_signature,
    parse_authorization_header,
    signature_base_string,
)
from crossdock.connectors.sandbox.netsuite_state import Account, NSError

if TYPE_CHECKING:
    from crossdock.connectors.sandbox.netsuite import NetSuiteSimulator

REQUIRED = ("oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp", "oauth_nonce")


class InvalidLogin(NSError):
    def __init__(self, reason: str) -> None:
        super().__init__(
            401,
            "INVALID_LOGIN",
            "Invalid login attempt. For more details, see the Login Audit Trail in the NetSuite UI at "
            "Setup > Users/Roles > User Management > View Login Audit Trail.",
        )
        self.reason = reason


def request_url(request: Request) -> str:
    """The URL as the client sent it: the raw (still percent-encoded) path, never a re-encoding."""
    scope = request.scope
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else scope.get("root_path", "") + scope["path"]
    host = request.headers.get("host", "")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


def authenticate(sim: NetSuiteSimulator, request: Request) -> Account:
    try:
        params = parse_authorization_header(request.headers.get("authorization", ""))
    except ValueError as exc:
        raise InvalidLogin(f"malformed Authorization header: {exc}") from None
    missing = [name for name in (*REQUIRED, "oauth_signature", "realm") if not params.get(name)]
    if missing:
        raise InvalidLogin(f"missing {', '.join(missing)}")
    account = sim.accounts.get(params["realm"])
    if account is None:
        raise InvalidLogin("unknown realm (account id must be upper case with '_' for '-')")
    if params["oauth_signature_method"] != SIGNATURE_METHOD or params.get("oauth_version", "1.0") != "1.0":
        raise InvalidLogin("unsupported signature method or version")
    consumer_secret = account.consumers.get(params["oauth_consumer_key"])
    token_secret = account.tokens.get(params["oauth_token"])
    if consumer_secret is None or token_secret is None:
        raise InvalidLogin("unknown consumer key or token")
    try:
        timestamp = int(params["oauth_timestamp"])
    except ValueError:
        raise InvalidLogin("timestamp is not an integer") from None
    now = sim.now()
    if abs(now - timestamp) > sim.settings.timestamp_skew_s:
        raise InvalidLogin("timestamp outside the accepted window")
    url = request_url(request)
    signed = [(k, v) for k, v in params.items() if k not in ("realm", "oauth_signature")]
    query = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    expected = hmac_sha256_signature(
        signature_base_string(request.method, url, [*query, *signed]), consumer_secret, token_secret
    )
    if not hmac.compare_digest(expected.encode(), params["oauth_signature"].encode()):
        raise InvalidLogin("invalid signature")
    # Replay check only after the signature holds, so forged requests cannot burn real nonces.
    key = (params["oauth_consumer_key"], params["oauth_token"], params["oauth_nonce"], params["oauth_timestamp"])
    horizon = now - 2 * sim.settings.timestamp_skew_s
    if len(account.nonces) > 4096:
        for old in [k for k, seen in account.nonces.items() if seen < horizon]:
            del account.nonces[old]
    if key in account.nonces:
        raise InvalidLogin("nonce already used")
    account.nonces[key] = now
    return account
