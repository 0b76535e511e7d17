"""What went wrong, in the desk's terms: a `Failure` built from a failed run or a raise_case request.

The trace key groups failures with the same cause for the same merchant into one case. The cause is:
- for connection, auth and rate-limit failures, the external system (one outage is one case, whichever
  flow or step hit it);
- otherwise the flow, the step (foreach indexes dropped, so `lines[3].lookup` and `lines[7].lookup`
  are one step) and the most specific detail known: the vendor code, the `trace`, `sku` or
  `vendor_code` a raise_case step gives in its data, or the error message with ids masked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from crossdock.connectors.errors import FailureCategory as C

CATEGORIES = frozenset(str(c) for c in C)
SYSTEM_WIDE = frozenset({C.AUTH, C.CONNECTION, C.RATE_LIMIT})
_IDS = re.compile(r"\b[a-z]+_[0-9A-Z]{26}\b|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_INDEX = re.compile(r"\[\d+\]")
_AMOUNT_KEYS = ("amount", "total_price", "total", "grand_total")


@dataclass
class Failure:
    """One occurrence of a problem, ready to be grouped into a case."""

    partner_id: str | None
    merchant_id: str
    category: str
    message: str
    cause: str
    run_id: str | None = None
    generation: int = 0
    step_path: str | None = None
    flow_id: str | None = None
    payload: Any = None
    error: dict[str, Any] = field(default_factory=dict)
    amount: float | None = None
    severity: str | None = None

    @property
    def trace_key(self) -> str:
        raw = f"{self.merchant_id}|{self.category}|{self.cause}"
        return hashlib.sha256(raw.encode()).hexdigest()[:40]

    @property
    def title(self) -> str:
        label = self.category.replace("_", " ").capitalize()
        where = f" at {self.step_path}" if self.step_path else ""
        return f"{label}{where}: {self.message}"[:300]


def classify(error: dict[str, Any]) -> str:
    """The taxonomy category of a run error; transient failures that ran out of retries are connection
    problems unless they were throttling (rate_limit)."""
    raw = str(error.get("category") or "")
    if raw in CATEGORIES:
        return raw
    kind = error.get("kind")
    if kind == "transient" or raw == "timeout":
        return C.CONNECTION
    if kind == "auth":
        return C.AUTH
    return C.UNKNOWN


def normalize_message(message: str) -> str:
    return " ".join(_IDS.sub("#", message.lower()).split())[:200]


def _cause(category: str, error: dict[str, Any], flow_id: str | None, step: str | None, detail: Any) -> str:
    if category in SYSTEM_WIDE:
        return f"system:{error.get('system') or 'unknown'}"
    where = _INDEX.sub("[]", step or "")
    return f"{flow_id}|{where}|{detail}"


def amount_of(payload: Any) -> float | None:
    """The money amount a routing rule's `min_amount` compares with: `amount`/`total_price`/... of the
    payload, or of its `order`."""
    for holder in (payload, payload.get("order") if isinstance(payload, dict) else None):
        if not isinstance(holder, dict):
            continue
        for key in _AMOUNT_KEYS:
            try:
                return float(holder[key])
            except (KeyError, TypeError, ValueError):
                continue
    return None


def failure_from_run(run: Any, journal_tail: Sequence[Any] = ()) -> Failure:
    """The failure of a run that ended in needs_attention (`run.error` as the engine wrote it)."""
    error = dict(run.error or {})
    failed = [j for j in journal_tail if j.status == "failed"]
    step = error.get("step") or (failed[-1].step_path if failed else None)
    if failed and not error.get("category") and failed[-1].error:
        error = {**failed[-1].error, **error}
    category = classify(error)
    message = str(error.get("message") or "The run needs attention.")
    detail = error.get("vendor_code") or normalize_message(message)
    return Failure(
        partner_id=run.partner_id,
        merchant_id=run.merchant_id,
        category=category,
        message=message,
        cause=_cause(category, error, run.flow_id, step, detail),
        run_id=run.id,
        generation=run.generation,
        step_path=step,
        flow_id=run.flow_id,
        payload=run.input,
        error=error,
        amount=amount_of(run.input),
    )


def failure_from_request(run: Any, request: dict[str, Any]) -> Failure:
    """The failure a `raise_case` step reports (a policy hold or a flow-detected problem)."""
    data = request.get("data")
    extra = data if isinstance(data, dict) else {}
    category = str(request.get("category") or C.UNKNOWN)[:40]
    message = str(request.get("message") or "A run needs attention.")
    detail = extra.get("trace") or extra.get("sku") or extra.get("vendor_code") or normalize_message(message)
    step = str(request.get("step_path") or "")
    error = {"type": "CaseRaised", "kind": "case", "category": category, "message": message, "data": data}
    return Failure(
        partner_id=run.partner_id,
        merchant_id=run.merchant_id,
        category=category,
        message=message,
        cause=_cause(category, error, run.flow_id, step, detail),
        run_id=run.id,
        generation=run.generation,
        step_path=step or None,
        flow_id=run.flow_id,
        payload=run.input,
        error=error,
        amount=amount_of(extra) if amount_of(extra) is not None else amount_of(run.input),
        severity=str(request.get("severity") or "") or None,
    )
