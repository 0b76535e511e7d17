"""`flows.live_config`: a flow instance's current master-data parameters, read when the step runs.

Structural parameters are rendered into the pinned engine version. Maps that are master data (the
SKU map, location and item maps) are also read live by this step, so fixing the SKU map of an
instance and replaying a failed run from the step after it takes effect without an upgrade.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from crossdock.engine.actions import ActionContext, StepFailed
from crossdock.engine.models import Run
from crossdock.flows.models import FlowInstance

if TYPE_CHECKING:
    from crossdock.engine.core import Engine


def live_config_action(engine: Engine) -> Callable[[ActionContext, Any], Awaitable[Any]]:
    """The action: input `{defaults: {name: rendered value}}` → the same names, current values."""

    async def live_config(ctx: ActionContext, data: Any) -> Any:
        defaults = data.get("defaults") if isinstance(data, dict) else None
        if not isinstance(defaults, dict):
            raise StepFailed(
                "flows.live_config needs `defaults`: an object of parameter values.", category="validation"
            )
        async with engine.db.reads.connect() as conn:
            overrides = (
                await conn.execute(
                    select(FlowInstance.overrides)
                    .join(Run, Run.flow_id == FlowInstance.engine_flow_id)
                    .where(Run.id == ctx.run_id, FlowInstance.merchant_id == ctx.merchant_id)
                )
            ).scalar_one_or_none()
        current = overrides or {}
        return {name: current.get(name, value) for name, value in defaults.items()}

    return live_config
