"""The built-in connectors' connection schemas (config is stored plain, secrets encrypted)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crossdock.connectors.base import ConnectorRegistry, ConnectorSpec
from crossdock.connectors.probes import PROBES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ShopifyConfig(_Strict):
    shop_domain: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$", examples=["aurora.myshopify.com"])
    api_version: str = Field("2025-07", pattern=r"^\d{4}-\d{2}$")
    base_url: str | None = Field(None, description="Override of https://{shop_domain} (the sandbox uses this).")
    webhook_max_age_s: float | None = Field(
        86_400, description="Reject deliveries whose X-Shopify-Triggered-At is older (stale payloads)."
    )


class ShopifySecrets(_Strict):
    access_token: str = Field(min_length=1)
    webhook_secrets: list[str] = Field(min_length=1, description="App client secret(s); newest first for rotation.")


class BusinessCentralConfig(_Strict):
    tenant: str
    environment: str = "production"
    company_id: str
    base_url: str = "https://api.businesscentral.dynamics.com"
    token_url: str | None = Field(None, description="Override of the Microsoft identity token endpoint.")


class BusinessCentralSecrets(_Strict):
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)


class NetSuiteConfig(_Strict):
    account_id: str = Field(pattern=r"^[0-9A-Za-z_-]+$", examples=["1234567_SB1"])
    base_url: str | None = Field(None, description="Override of https://{account}.suitetalk.api.netsuite.com.")


class NetSuiteSecrets(_Strict):
    consumer_key: str
    consumer_secret: str
    token_id: str
    token_secret: str


class ShipStationConfig(_Strict):
    base_url: str = "https://ssapi.shipstation.com"


class ShipStationSecrets(_Strict):
    api_key: str
    api_secret: str
    webhook_token: str = Field(min_length=16, description="Secret path token authenticating unsigned webhooks.")


class HttpConfig(_Strict):
    base_url: str
    auth: Literal["none", "bearer", "basic", "header"] = "none"
    header_name: str | None = Field(None, description="Header carrying the secret when auth = header.")
    timeout_s: float = Field(10, gt=0, le=300)


class HttpSecrets(_Strict):
    token: str | None = None
    username: str | None = None
    password: str | None = None


class SmtpConfig(_Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class SmtpSecrets(_Strict):
    username: str | None = None
    password: str | None = None


class ChatConfig(_Strict):
    flavor: Literal["slack", "teams"] = "slack"


class ChatSecrets(_Strict):
    webhook_url: str = Field(pattern=r"^https?://")


BUILTIN_SPECS = [
    ConnectorSpec("shopify", "Shopify Admin API", ShopifyConfig, ShopifySecrets, webhook_kind="shopify"),
    ConnectorSpec(
        "businesscentral", "Dynamics 365 Business Central API v2.0", BusinessCentralConfig, BusinessCentralSecrets
    ),
    ConnectorSpec("netsuite", "NetSuite SuiteTalk REST", NetSuiteConfig, NetSuiteSecrets),
    ConnectorSpec("shipstation", "ShipStation V1", ShipStationConfig, ShipStationSecrets, webhook_kind="shipstation"),
    ConnectorSpec("http", "Generic HTTP", HttpConfig, HttpSecrets),
    ConnectorSpec("smtp", "Email (SMTP)", SmtpConfig, SmtpSecrets),
    ConnectorSpec("chat", "Chat webhook (Slack/Teams)", ChatConfig, ChatSecrets),
]


def default_registry() -> ConnectorRegistry:
    registry = ConnectorRegistry()
    for spec in BUILTIN_SPECS:
        probe = PROBES.get(spec.system)
        registry.register(replace(spec, probe=probe) if probe else spec)
    registry.load_entry_points()
    return registry
