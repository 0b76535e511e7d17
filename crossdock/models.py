"""Imports every domain's tables so `Base.metadata` is complete (migrations, test set-up)."""

from crossdock.cases import models as case_models
from crossdock.connections import models as connection_models
from crossdock.engine import models as engine_models
from crossdock.flows import models as flow_models  # noqa: F401
from crossdock.governance import models as governance_models
from crossdock.identity import models as identity_models
from crossdock.tenants import models as tenant_models

__all__ = ["case_models", "connection_models", "engine_models", "governance_models", "identity_models", "tenant_models"]
