"""Live checks behind `crossdock connection test`: reach the system, authenticate, read one thing.

Each probe makes one or two cheap read calls with a short retry policy and turns any failure into a
diagnosis that says which check failed and what to fix, never a traceback.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel

from crossdock.connectors.base import ProbeResult
from crossdock.connectors.errors import ConnectorError, FailureCategory, FailureKind
from crossdock.connectors.transport import RetryPolicy

PROBE_RETRY = RetryPolicy(max_attempts=2, base_delay_s=0.2, max_delay_s=1.0, max_retry_after_s=5.0)

_ADVICE = {
    FailureKind.AUTH: "check the credentials and the app's permissions",
    FailureKind.CONFIG: "check the connection's configuration",
    FailureKind.TRANSIENT: "the system is unreachable or throttling; check the URL and try again",
    FailureKind.DATA: "the system answered but rejected the request",
}


async def _check(name: str, call: Callable[[], Awaitable[str]]) -> dict[str, Any]:
    try:
        return {"name": name, "ok": True, "detail": await call()}
    except ConnectorError as exc:
        return {
            "name": name,
            "ok": False,
            "detail": f"{exc.message} ({_ADVICE.get(exc.kind, 'see details')})",
            "kind": str(exc.kind),
            "category": str(exc.category),
            "status": exc.status,
        }
    except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
        return {"name": name, "ok": False, "detail": f"{type(exc).__name__}: {exc}"}


def _result(title: str, checks: list[dict[str, Any]]) -> ProbeResult:
    failed = [c for c in checks if not c["ok"]]
    if failed:
        return ProbeResult(False, f"{title}: {failed[0]['name']} failed — {failed[0]['detail']}", checks)
    return ProbeResult(True, f"{title}: reachable and authenticated.", checks)


async def probe_shopify(config: BaseModel, secrets: BaseModel) -> ProbeResult:
    from crossdock.connectors.shopify.client import ShopifyClient

    cfg: Any = config
    sec: Any = secrets
    url = cfg.base_url or f"https://{cfg.shop_domain}"
    async with ShopifyClient(url, sec.access_token, api_version=cfg.api_version, retry=PROBE_RETRY) as shop:

        async def shop_name() -> str:
            data = await shop.graphql("{ shop { name } }")
            return f"shop {data.get('data', data).get('shop', {}).get('name', '?')!r} answered"

        return _result("Shopify", [await _check("authenticate and read the shop", shop_name)])


async def probe_businesscentral(config: BaseModel, secrets: BaseModel) -> ProbeResult:
    from crossdock.connectors.businesscentral.client import BusinessCentralClient

    cfg: Any = config
    sec: Any = secrets
    client = BusinessCentralClient(
        cfg.base_url,
        cfg.tenant,
        cfg.environment,
        cfg.company_id,
        sec.client_id,
        sec.client_secret,
        token_url=cfg.token_url,
        retry=PROBE_RETRY,
    )
    async with client:

        async def company() -> str:
            companies = await client.list_companies()
            ids = {c.get("id") for c in companies}
            if cfg.company_id not in ids:
                raise ConnectorError(
                    f"company {cfg.company_id} is not among the {len(ids)} companies visible",
                    kind=FailureKind.CONFIG,
                    category=FailureCategory.NOT_FOUND,
                    system="businesscentral",
                )
            return f"company {cfg.company_id} found ({len(ids)} visible)"

        return _result("Business Central", [await _check("token, then list companies", company)])


async def probe_netsuite(config: BaseModel, secrets: BaseModel) -> ProbeResult:
    from crossdock.connectors.netsuite.client import NetSuiteClient

    cfg: Any = config
    sec: Any = secrets
    client = NetSuiteClient(
        cfg.base_url,
        cfg.account_id,
        sec.consumer_key,
        sec.consumer_secret,
        sec.token_id,
        sec.token_secret,
        retry=PROBE_RETRY,
    )
    async with client:

        async def query() -> str:
            rows = 0
            async for _row in client.suiteql("SELECT id FROM customer", page_size=1):
                rows += 1
                break
            return f"signed SuiteQL query answered ({rows} row read)"

        return _result("NetSuite", [await _check("OAuth 1.0a signature and SuiteQL", query)])


async def probe_shipstation(config: BaseModel, secrets: BaseModel) -> ProbeResult:
    from crossdock.connectors.shipstation.client import ShipStationClient

    cfg: Any = config
    sec: Any = secrets
    async with ShipStationClient(sec.api_key, sec.api_secret, base_url=cfg.base_url, retry=PROBE_RETRY) as client:

        async def orders() -> str:
            async for _order in client.list_orders(page_size=1):
                return "orders endpoint answered"
            return "orders endpoint answered (no orders yet)"

        return _result("ShipStation", [await _check("basic auth and list orders", orders)])


async def probe_http(config: BaseModel, secrets: BaseModel) -> ProbeResult:
    cfg: Any = config
    sec: Any = secrets
    headers: dict[str, str] = {}
    auth: tuple[str, str] | None = None
    if cfg.auth == "bearer" and sec.token:
        headers["Authorization"] = f"Bearer {sec.token}"
    elif cfg.auth == "header" and cfg.header_name and sec.token:
        headers[cfg.header_name] = sec.token
    elif cfg.auth == "basic":
        auth = (sec.username or "", sec.password or "")

    async def get() -> str:
        async with httpx.AsyncClient(timeout=cfg.timeout_s) as http:
            resp = await http.get(cfg.base_url, headers=headers, auth=auth)
        if resp.status_code in (401, 403):
            raise ConnectorError(
                f"{cfg.base_url} answered {resp.status_code}",
                kind=FailureKind.AUTH,
                category=FailureCategory.AUTH,
                system="http",
                status=resp.status_code,
            )
        return f"{cfg.base_url} answered {resp.status_code}"

    return _result("HTTP", [await _check("reach the base URL", get)])


async def probe_smtp(config: BaseModel, secrets: BaseModel) -> ProbeResult:
    cfg: Any = config
    sec: Any = secrets

    def handshake() -> str:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=10) as smtp:
            smtp.ehlo()
            if cfg.starttls and smtp.has_extn("starttls"):
                smtp.starttls()
                smtp.ehlo()
            if sec.username:
                smtp.login(sec.username, sec.password or "")
            return f"{cfg.host}:{cfg.port} accepted EHLO" + (" and login" if sec.username else "")

    async def run() -> str:
        return await asyncio.to_thread(handshake)

    return _result("SMTP", [await _check("connect and greet", run)])


PROBES = {
    "shopify": probe_shopify,
    "businesscentral": probe_businesscentral,
    "netsuite": probe_netsuite,
    "shipstation": probe_shipstation,
    "http": probe_http,
    "smtp": probe_smtp,
}
