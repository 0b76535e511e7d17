"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from crossdock import __version__
from crossdock.core.migrate import current_revision, head_revision
from crossdock.web.deps import ContainerDep
from crossdock.web.errors import error_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers.")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/readyz", summary="Readiness: the database answers and is migrated to head.", response_model=None)
async def readyz(c: ContainerDep) -> dict[str, str] | Response:
    try:
        async with c.db.reads.connect() as conn:
            await conn.execute(text("SELECT 1"))
        current = await current_revision(c.db.reads)
    except Exception as exc:
        return error_response(503, "unavailable", f"The database is not reachable: {type(exc).__name__}.")
    head = head_revision()
    if current != head:
        return error_response(
            503,
            "unavailable",
            f"The database is at migration {current}, not {head}; run `crossdock db upgrade`.",
            {"current": current, "head": head},
        )
    return {"status": "ready", "database": c.db.dialect, "migration": current or ""}


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(c: ContainerDep) -> Response:
    return Response(generate_latest(c.metrics.registry), media_type=CONTENT_TYPE_LATEST)
