"""NetSuite SuiteTalk REST connector: OAuth 1.0a TBA signing, eid upsert, transforms, SuiteQL."""

from crossdock.connectors.netsuite.client import NetSuiteClient

__all__ = ["NetSuiteClient"]
