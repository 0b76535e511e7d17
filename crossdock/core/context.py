"""Who is acting and where: the context every service operation receives."""

from __future__ import annotations

from dataclasses import dataclass, field

from crossdock.core.tenancy import Scope

ALL_PERMISSIONS = "*"


@dataclass(frozen=True)
class Actor:
    """The principal behind an operation, the scope it acts in, and the request it came from."""

    principal_type: str  # "user" | "service_account" | "system"
    principal_id: str
    scope: Scope
    request_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls, request_id: str | None = None) -> Actor:
        """Crossdock itself (bootstrap, seeding, the engine): unrestricted."""
        return cls("system", "system", Scope.everything(), request_id, frozenset({ALL_PERMISSIONS}))

    def holds(self, permission: str) -> bool:
        return permission in self.permissions or ALL_PERMISSIONS in self.permissions

    def with_scope(self, scope: Scope) -> Actor:
        return Actor(self.principal_type, self.principal_id, scope, self.request_id, self.permissions)
