"""ShipStation (V1) connector: the API client and webhook parsing."""

from crossdock.connectors.shipstation.client import DEFAULT_BASE_URL, ShipStationClient
from crossdock.connectors.shipstation.webhooks import ShipStationNotification, parse_ship_notify

__all__ = ["DEFAULT_BASE_URL", "ShipStationClient", "ShipStationNotification", "parse_ship_notify"]
