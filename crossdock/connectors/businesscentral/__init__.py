"""Dynamics 365 Business Central API v2.0 connector: OAuth2 client credentials, OData, ETag-safe writes."""

from crossdock.connectors.businesscentral.client import BusinessCentralClient, SalesOrderUpsert, odata_string

__all__ = ["BusinessCentralClient", "SalesOrderUpsert", "odata_string"]
