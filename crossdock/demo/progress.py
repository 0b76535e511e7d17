"""The demo's live progress: a read-only snapshot of runs, cases and approvals, and its Rich panel.

The snapshot is one grouped count per table (runs by flow and status, cases by state and category,
open approvals), taken with the platform's system scope about once a second, so it stays cheap
while the traffic generator and the workers write.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select

from crossdock.bootstrap import Container
from crossdock.cases.models import Case
from crossdock.core.context import Actor
from crossdock.demo.provision import DemoWorld
from crossdock.demo.traffic import TrafficStats
from crossdock.engine.models import Run, Wait

SYSTEM = Actor.system()


@dataclass
class Snapshot:
    runs: dict[str, Counter[str]] = field(default_factory=dict)  # template -> status -> count
    cases: Counter[str] = field(default_factory=Counter)  # state -> count
    open_by_category: Counter[str] = field(default_factory=Counter)
    approvals_waiting: int = 0

    def total(self, status: str) -> int:
        return sum(c[status] for c in self.runs.values())


async def snapshot(container: Container, world: DemoWorld) -> Snapshot:
    names = {flow: template for flows in world.flows.values() for template, flow in flows.items()}
    snap = Snapshot()
    async with container.db.session(SYSTEM.scope) as s:
        rows = await s.execute(select(Run.flow_id, Run.status, func.count()).group_by(Run.flow_id, Run.status))
        for flow_id, status, count in rows:
            template = names.get(flow_id, "other")
            snap.runs.setdefault(template, Counter())[status] += count
        for state, category, count in await s.execute(
            select(Case.state, Case.category, func.count()).group_by(Case.state, Case.category)
        ):
            snap.cases[state] += count
            if state in ("open", "in_progress"):
                snap.open_by_category[category] += count
        snap.approvals_waiting = int(
            await s.scalar(select(func.count()).select_from(Wait).where(Wait.kind == "approval", Wait.status == "open"))
            or 0
        )
    return snap


def render(snap: Snapshot, stats: TrafficStats | None, world: DemoWorld) -> Panel:
    """The live panel: traffic, runs per template, cases, approvals, and where to look."""
    head = Table.grid(padding=(0, 3))
    if stats is not None:
        elapsed = max(time.monotonic() - stats.started_at, 1e-6)
        problems = ", ".join(f"{k} {v}" for k, v in sorted(stats.problems.items())) or "none yet"
        head.add_row(
            Text(f"orders sent {stats.orders_sent}  ({stats.orders_sent / elapsed:.1f}/s)", style="bold"),
            f"duplicates {stats.duplicates_sent}",
            f"storms {stats.storms}",
            f"shipped {stats.shipments}  refunds {stats.refunds}  returns {stats.returns}",
        )
        head.add_row(Text(f"problems injected: {problems}", style="dim"), "", "", "")
    else:
        head.add_row(Text("traffic off (--no-traffic)", style="dim"))

    runs = Table(title="runs", title_justify="left", header_style="bold", expand=False)
    for column in ("template", "succeeded", "running", "queued", "waiting", "needs_attention"):
        runs.add_column(column, justify="right" if column != "template" else "left")
    for template in sorted(snap.runs):
        c = snap.runs[template]
        runs.add_row(
            template, str(c["succeeded"]), str(c["running"]), str(c["queued"]), str(c["waiting"]),
            str(c["needs_attention"]),
        )  # fmt: skip

    desk = Table.grid(padding=(0, 3))
    desk.add_row(
        Text(f"cases open {snap.cases['open'] + snap.cases['in_progress']}", style="bold yellow"),
        Text(f"resolved {snap.cases['resolved']}", style="green"),
        f"ignored {snap.cases['ignored']}",
        Text(f"approvals waiting {snap.approvals_waiting}", style="bold magenta"),
    )
    if snap.open_by_category:
        desk.add_row(
            Text("open by category: " + ", ".join(f"{k} {v}" for k, v in snap.open_by_category.most_common()), "dim")
        )
    token = world.tenants.tokens.get("partner_operator", "<partner_operator token>")
    api = world.api_url
    hints = Text.assemble(
        ("Look: ", "bold"), f"{api}/docs   sandbox {world.sandbox_url}   logs .crossdock/demo.log\n",
        ("Cases: ", "bold"), f'curl -H "Authorization: Bearer {token}" "{api}/v1/cases?state=open"\n',
        ("Approvals: ", "bold"), f'curl -H "Authorization: Bearer {token}" "{api}/v1/waits?status=open"\n',
        ("Decide: ", "bold"),
        f"curl -X POST -H \"Authorization: Bearer {token}\" -H 'content-type: application/json' "
        f"-d '{{\"decision\": \"approved\"}}' {api}/v1/approvals/WAIT_ID/decide",
    )  # fmt: skip
    parts: list[object] = [head, runs, desk, hints]
    if world.skipped:
        parts.append(Text("not in the demo yet: " + ", ".join(sorted(world.skipped)), style="red"))
    return Panel(Group(*parts), title="Crossdock demo — live", border_style="blue")  # type: ignore[arg-type]


def summary_line(snap: Snapshot, stats: TrafficStats | None) -> str:
    """One plain line for logs and non-terminal output."""
    sent = stats.orders_sent if stats else 0
    return (
        f"demo: orders sent {sent}, runs succeeded {snap.total('succeeded')}, waiting {snap.total('waiting')}, "
        f"needs_attention {snap.total('needs_attention')}, cases open {snap.cases['open'] + snap.cases['in_progress']}"
        f", resolved {snap.cases['resolved']}, approvals waiting {snap.approvals_waiting}"
    )
