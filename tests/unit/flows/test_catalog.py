"""The template catalog: every template renders for both ERPs into a definition the engine accepts."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from crossdock.connectors.actions import ALL_ACTIONS
from crossdock.engine.actions import ActionRegistry, builtin_actions
from crossdock.engine.definitions import validate_definition, walk
from crossdock.flows.catalog import TemplateError, catalog, get_template, render, validate_overrides
from crossdock.flows.commerce import register_commerce_actions
from crossdock.flows.diff import definition_diff, param_diff

TEMPLATES = [
    "credit_hold_routing", "fulfillment_delay_alert", "fulfillment_export", "inventory_sync",
    "invoice_three_way_match", "order_cancel_sync", "order_import", "payout_reconciliation",
    "price_catalog_sync", "refund_to_credit_memo", "return_rma",
]  # fmt: skip


def registry() -> ActionRegistry:
    """The engine's built-ins, commerce.* and the real connector action specs (never called here)."""

    class _Engine:
        actions = builtin_actions()

    engine = _Engine()
    register_commerce_actions(engine)  # type: ignore[arg-type]
    for action in ALL_ACTIONS:
        engine.actions.register(action.spec(None))  # type: ignore[arg-type]
    return engine.actions


def literal_inputs(flow: Any, reg: ActionRegistry) -> list[tuple[str, str, set[str], type[BaseModel]]]:
    """(path, action, literal input keys, input schema) of every connector action step."""
    found = []
    for path, step in walk(flow.steps, "steps"):
        if getattr(step, "type", None) != "action" or step.action not in reg:  # type: ignore[attr-defined]
            continue
        schema = reg.get(step.action).input_schema  # type: ignore[attr-defined]
        if schema is not None and isinstance(step.input, dict):  # type: ignore[attr-defined]
            found.append((path, step.action, set(step.input), schema))  # type: ignore[attr-defined]
    return found


def bindings_of(name: str, version: int) -> dict[str, str]:
    return {b.role: f"con_{b.role}" for b in get_template(name, version).bindings}


def test_the_catalog_holds_every_canonical_template() -> None:
    assert sorted(catalog()) == TEMPLATES
    assert sorted(catalog()["order_import"]) == [1, 2]


@pytest.mark.parametrize("erp", ["businesscentral", "netsuite"])
@pytest.mark.parametrize(("name", "version"), [(n, v) for n in TEMPLATES for v in sorted(catalog()[n])])
def test_each_template_renders_to_a_valid_definition(name: str, version: int, erp: str) -> None:
    template = get_template(name, version)
    overrides = {"erp": erp} if template.param("erp") else {}
    reg = registry()

    definition = render(template, overrides, bindings_of(name, version))
    flow = validate_definition(definition, actions=reg.__contains__)
    # Every literal input names only fields of the action's input schema, and all its required ones.
    for path, action, keys, schema in literal_inputs(flow, reg):
        fields = {f.alias or n for n, f in schema.model_fields.items()} | set(schema.model_fields)
        required = {n for n, f in schema.model_fields.items() if f.is_required()}
        assert keys <= fields, (path, action, keys - fields)
        assert required <= keys, (path, action, required - keys)

    text = str(definition)
    assert "${" not in text and "x-when" not in text
    actions = [s.action for _p, s in walk(flow.steps, "steps") if s.type == "action"]  # type: ignore[attr-defined]
    other_erp = {"businesscentral": "netsuite.", "netsuite": "businesscentral."}[erp]
    assert not [a for a in actions if a.startswith(other_erp)]
    assert all(c["category"] for c in template.cases)
    assert all(p.description for p in template.params)


def test_order_import_renders_the_chosen_erp_and_params() -> None:
    t = get_template("order_import", 1)
    d = render(
        t,
        {"erp": "netsuite", "price_tolerance_pct": 2.5, "credit_approvers": ["partner_admin"]},
        bindings_of("order_import", 1),
    )
    steps = {s["id"]: s for s in d["steps"]}
    assert steps["items"]["action"] == "netsuite.find_items"
    assert steps["items"]["input"]["connection"] == "con_erp"
    assert steps["prices"]["input"]["tolerance_pct"] == "2.5"
    assert steps["credit_gate"]["then"][0]["approvers"] == ["partner_admin"]
    assert steps["credit_gate"]["then"][0]["timeout_s"] == 172800
    assert d["triggers"][0] == {
        "type": "webhook",
        "name": "orders_create",
        "verifier": "shopify",
        "connection_id": "con_storefront",
        "topic": "orders/create",
    }
    no_prices = render(t, {"check_prices": False}, bindings_of("order_import", 1))
    assert "prices" not in {s["id"] for s in no_prices["steps"]}


def test_optional_bindings_drop_their_steps() -> None:
    t = get_template("order_import", 1)
    with_chat = render(t, {}, {"storefront": "a", "erp": "b", "chat": "c"})
    without = render(t, {}, {"storefront": "a", "erp": "b"})
    gate = lambda d: [s["id"] for s in next(x for x in d["steps"] if x["id"] == "discount_gate")["then"]]  # noqa: E731
    assert gate(with_chat) == ["discount_notice", "discount_approval"]
    assert gate(without) == ["discount_approval"]


def test_overrides_are_validated_with_exact_paths() -> None:
    t = get_template("order_import", 1)
    with pytest.raises(TemplateError) as exc:
        validate_overrides(
            t, {"erp": "sap", "price_tolerance_pct": "x", "sku_map": {"A": True}, "colour": "red", "countries": "US"}
        )
    assert exc.value.errors == [
        {"path": "overrides.erp", "problem": "must be one of businesscentral, netsuite"},
        {"path": "overrides.price_tolerance_pct", "problem": "'x' is not a decimal number"},
        {"path": "overrides.sku_map", "problem": "value of 'A' must be a string or an integer"},
        {
            "path": "overrides.colour",
            "problem": "unknown parameter (known: erp, sku_map, check_prices, price_tolerance_pct, max_tax_rate_pct, countries, discount_threshold_pct, credit_approvers, discount_approvers, approval_timeout_s, writeback_note, netsuite_discount_item)",
        },
        {"path": "overrides.countries", "problem": "must be a list of strings"},
    ]
    assert validate_overrides(t, {"discount_threshold_pct": 12, "approval_timeout_s": 60}) == {
        "discount_threshold_pct": "12",
        "approval_timeout_s": 60,
    }
    with pytest.raises(TemplateError) as neg:
        validate_overrides(t, {"approval_timeout_s": True, "discount_threshold_pct": "-1"})
    assert neg.value.errors == [
        {"path": "overrides.approval_timeout_s", "problem": "must be an integer"},
        {"path": "overrides.discount_threshold_pct", "problem": "must be a finite number ≥ 0"},
    ]


def test_cron_params_are_checked() -> None:
    t = get_template("inventory_sync", 1)
    with pytest.raises(TemplateError) as exc:
        validate_overrides(t, {"schedule": "every minute"})
    assert exc.value.errors == [
        {"path": "overrides.schedule", "problem": "'every minute' is not a valid cron expression"}
    ]


def test_upgrade_diff_of_order_import_v1_to_v2() -> None:
    v1, v2 = get_template("order_import", 1), get_template("order_import", 2)
    overrides = {"discount_threshold_pct": "5", "writeback_note": False}
    assert param_diff(v1, v2, overrides) == {
        "added": [{"name": "notify_imported", "default": False}],
        "removed": [{"name": "writeback_note", "overridden": True, "value": False}],
        "defaulted": [{"name": "price_tolerance_pct", "from": "1.0", "to": "2.0"}],
        "kept": {"discount_threshold_pct": "5"},
    }
    b = {"storefront": "a", "erp": "b", "chat": "c"}
    diff = definition_diff(render(v1, overrides, b), render(v2, {"discount_threshold_pct": "5"}, b))
    assert diff == {
        "steps_added": ["decide/writeback"],
        "steps_removed": [],
        "steps_changed": ["prices"],
        "triggers_changed": False,
        "output_changed": False,
    }


def test_unknown_template_and_version_are_not_found() -> None:
    from crossdock.core.errors import NotFound

    with pytest.raises(NotFound):
        get_template("order_export")
    with pytest.raises(NotFound):
        get_template("order_import", 9)
