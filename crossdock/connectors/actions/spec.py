"""How a typed connector action is declared and turned into an engine `ActionSpec`.

A `ConnectorAction` names its system, its input and output schemas, what makes its effect happen
once (`idempotency`, documented and shown in the action's description) and a handler
`async (ctx, pooled_client, input_model) -> output`. The wrapper validates the input, leases the
connection's pooled client (merchant and system checked), routes the client's rate hook to
`ctx.acquire`, and lets `ConnectorError`s through unchanged: the engine retries kind=transient and
keeps the category of the others for the exception desk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crossdock.connectors.actions.pool import ConnectorPool, PooledClient, current_acquire
from crossdock.engine.actions import ActionContext, ActionSpec

Handler = Callable[[ActionContext, PooledClient, Any], Awaitable[BaseModel]]


class ActionInput(BaseModel):
    """Base of every connector action input: the connection to use plus typed fields."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    connection: str = Field(min_length=1, max_length=40, description="Id of the connection (`con_...`) to use.")


class ActionOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ConnectorAction:
    """One typed engine action of a connector."""

    name: str
    system: str
    input: type[ActionInput]
    output: type[BaseModel]
    handler: Handler
    idempotency: str
    description: str
    effect: bool = True

    def spec(self, pool: ConnectorPool) -> ActionSpec:
        action = self

        async def run(ctx: ActionContext, payload: Any) -> Any:
            data = action.input.model_validate(payload)
            token = current_acquire.set(ctx.acquire)
            try:
                async with pool.lease(data.connection, merchant_id=ctx.merchant_id, system=action.system) as conn:
                    result = await action.handler(ctx, conn, data)
            finally:
                current_acquire.reset(token)
            return result.model_dump(mode="json")

        return ActionSpec(
            name=self.name,
            fn=run,
            input_schema=self.input,
            output_schema=self.output,
            effect=self.effect,
            description=f"{self.description} Idempotency: {self.idempotency}.",
        )


def digest(value: str, size: int = 24) -> str:
    """A short stable hex digest (markers and derived external ids)."""
    return hashlib.sha256(value.encode()).hexdigest()[:size]
