"""Shopify connector: the Admin API client and incoming-webhook verification."""

from crossdock.connectors.shopify.client import DEFAULT_API_VERSION, RestPacer, ShopifyClient
from crossdock.connectors.shopify.webhooks import ShopifyWebhook, verify_shopify_webhook
from crossdock.connectors.transport import RetryPolicy

__all__ = [
    "DEFAULT_API_VERSION",
    "RestPacer",
    "RetryPolicy",
    "ShopifyClient",
    "ShopifyWebhook",
    "verify_shopify_webhook",
]
