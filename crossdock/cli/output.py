"""Rendering for the CLI: Rich tables for people, JSON for scripts, errors without tracebacks."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from crossdock.core.errors import CrossdockError
from crossdock.core.loop import run as run_loop

T = TypeVar("T")
console = Console(soft_wrap=True)
err_console = Console(stderr=True)
STATE: dict[str, bool] = {"debug": False}


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; print a CrossdockError's message (no traceback unless --debug) and exit 1."""
    try:
        return run_loop(coro)
    except CrossdockError as exc:
        if STATE["debug"]:
            traceback.print_exc()
        err_console.print(f"[bold red]error[/] [dim]({exc.code})[/] {exc.message}")
        raise typer.Exit(1) from None
    except Exception as exc:
        if STATE["debug"]:
            raise
        err_console.print(f"[bold red]error[/] {type(exc).__name__}: {exc}\n[dim]Run with --debug for details.[/]")
        raise typer.Exit(1) from None


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def emit(
    rows: Sequence[BaseModel] | BaseModel,
    *,
    as_json: bool,
    columns: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Print one object or a list: JSON when asked, otherwise a table of `columns`."""
    if as_json:
        data = [_plain(r) for r in rows] if isinstance(rows, Sequence) else _plain(rows)
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    items = list(rows) if isinstance(rows, Sequence) else [rows]
    if not items:
        console.print("[dim]nothing found[/]")
        return
    cols = list(columns or items[0].model_dump().keys())
    table = Table(title=title, header_style="bold")
    for col in cols:
        table.add_column(col)
    for item in items:
        data = item.model_dump(mode="json")
        table.add_row(*["" if data.get(c) is None else str(data.get(c)) for c in cols])
    console.print(table)
