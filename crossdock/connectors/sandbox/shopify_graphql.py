"""The few GraphQL Admin operations the Crossdock client uses, with Shopify's cost throttling.

There is no GraphQL parser here: an operation is recognised by its root field (`shop`,
`products`, `orders`, `inventorySetQuantities`), read from the query text. Each has a
requested cost computed the way Shopify does for connections (2 + `first` nodes), is charged
against the shop's cost bucket before running, and refunded the unused part afterwards. When the
bucket cannot cover the requested cost the answer is HTTP 200 with a `THROTTLED` error and
`actualQueryCost: null`, as the vendor's forum samples show.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from crossdock.connectors.sandbox.shopify_state import ShopifyAPIError, ShopStore

MAX_SINGLE_QUERY_COST = 1000
_ROOT_FIELD = re.compile(r"^\s*(?:(?:query|mutation)\b[^{]*)?\{\s*(\w+)", re.S)
_MUTATIONS = {"inventorySetQuantities"}


def _gid_id(gid: Any) -> int:
    try:
        return int(str(gid).rsplit("/", 1)[-1].split("?")[0])
    except ValueError:
        raise ShopifyAPIError(200, _error(f"Invalid global id '{gid}'", "argumentLiteralsIncompatible")) from None


def _error(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, **extra}}]}


def requested_cost(field: str, variables: Mapping[str, Any]) -> int:
    if field == "shop":
        return 1
    if field in ("products", "orders"):
        return 2 + int(variables.get("first") or 10)
    return 10  # mutations cost 10 points


def execute(store: ShopStore, body: Any) -> dict[str, Any]:
    """Run one GraphQL request body against `store`; always returns the 200 response body."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return _error("Parse error on input: expected a JSON object with a 'query' string", "parseError")
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        return _error("Variables must be a JSON object", "variablesInvalid")
    match = _ROOT_FIELD.match(body["query"])
    if not match:
        return _error("Parse error: no selection set found", "parseError")
    field = match.group(1)
    if field not in ("shop", "products", "orders", *_MUTATIONS):
        root = "Mutation" if body["query"].lstrip().startswith("mutation") else "QueryRoot"
        return _error(f"Field '{field}' doesn't exist on type '{root}'", "undefinedField")
    cost = requested_cost(field, variables)
    if cost > MAX_SINGLE_QUERY_COST:
        return _error(
            f"Query cost is {cost}, which exceeds the single query max cost limit ({MAX_SINGLE_QUERY_COST}).",
            "MAX_COST_EXCEEDED",
            cost=cost,
            maxCost=MAX_SINGLE_QUERY_COST,
        )
    with store.lock:
        store.graphql_requests += 1
    decision = store.graphql_bucket.take(cost)
    throttle = {
        "maximumAvailable": decision.maximum_available,
        "currentlyAvailable": int(decision.currently_available),
        "restoreRate": decision.restore_rate,
    }
    if not decision.allowed:
        with store.lock:
            store.graphql_throttled += 1
        return {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
                }
            ],
            "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": None, "throttleStatus": throttle}},
        }
    try:
        data, actual = _run(store, field, variables)
    except ShopifyAPIError as exc:
        store.graphql_bucket.refund(cost)
        return dict(exc.body)
    available = store.graphql_bucket.refund(cost - actual)
    throttle["currentlyAvailable"] = int(available)
    return {
        "data": data,
        "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": actual, "throttleStatus": throttle}},
    }


def _run(store: ShopStore, field: str, variables: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    if field == "shop":
        return {"shop": {"name": store.domain.split(".")[0], "myshopifyDomain": store.domain, "currencyCode": "USD"}}, 1
    if field == "inventorySetQuantities":
        return _inventory_set_quantities(store, variables), 10
    first = int(variables.get("first") or 10)
    after = variables.get("after")
    with store.lock:
        records = sorted(
            store.products.values() if field == "products" else store.orders.values(), key=lambda r: r["id"]
        )
    if after:
        records = [r for r in records if r["id"] > _gid_id(after)]
    page = records[:first]
    kind = "Product" if field == "products" else "Order"
    edges = [{"cursor": f"gid://shopify/{kind}/{r['id']}", "node": _node(kind, r)} for r in page]
    connection = {
        "edges": edges,
        "pageInfo": {"hasNextPage": len(records) > first, "endCursor": edges[-1]["cursor"] if edges else None},
    }
    return {field: connection}, 2 + len(page)


def _node(kind: str, record: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "Product":
        return {
            "id": record["admin_graphql_api_id"],
            "title": record["title"],
            "handle": record["handle"],
            "variants": {
                "nodes": [
                    {"id": v["admin_graphql_api_id"], "sku": v["sku"], "price": v["price"]} for v in record["variants"]
                ]
            },
        }
    return {
        "id": record["admin_graphql_api_id"],
        "name": record["name"],
        "totalPriceSet": {"shopMoney": {"amount": record["total_price"], "currencyCode": record["currency"]}},
    }


def _inventory_set_quantities(store: ShopStore, variables: Mapping[str, Any]) -> dict[str, Any]:
    payload = variables.get("input") or {}
    quantities = payload.get("quantities") if isinstance(payload, dict) else None
    if not isinstance(quantities, list) or not quantities:
        return {
            "inventorySetQuantities": {
                "inventoryAdjustmentGroup": None,
                "userErrors": [
                    {"field": ["input", "quantities"], "message": "Quantities can't be blank", "code": "INVALID"}
                ],
            }
        }
    changes: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    targets = []
    for i, q in enumerate(quantities):
        item, location = _gid_id(q.get("inventoryItemId")), _gid_id(q.get("locationId"))
        if not store.inventory_levels({item}, None):
            errors.append(
                {
                    "field": ["input", "quantities", str(i), "inventoryItemId"],
                    "message": "The specified inventory item could not be found.",
                    "code": "INVALID_INVENTORY_ITEM",
                }
            )
        targets.append((item, location, int(q.get("quantity", 0))))
    if not errors:  # all or nothing, like the real mutation
        for item, location, quantity in targets:
            before = next((lvl["available"] for lvl in store.inventory_levels({item}, {location})), 0)
            after = store.set_inventory(item, location, quantity)["available"]
            changes.append(
                {"name": payload.get("name", "available"), "delta": after - before, "quantityAfterChange": after}
            )
    group = {"reason": payload.get("reason", "correction"), "changes": changes} if not errors else None
    return {"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": errors}}
