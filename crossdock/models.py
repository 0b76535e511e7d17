"""Imports every domain's tables so `Base.metadata` is complete (migrations, test set-up)."""

from crossdock.connections import models as connection_models
from crossdock.engine import models as engine_models
from crossdock.governance import models as governance_models
from crossdock.identity import models as identity_models
from crossdock.tenants import models as tenant_models

__all__ = ["connection_models", "engine_models", "governance_models", "identity_models", "tenant_models"]
