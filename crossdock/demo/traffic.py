"""The demo's traffic generator: a storefront day compressed into minutes, through the real webhook path.

Orders arrive as signed Shopify `orders/create` webhooks (`ShopifySimulator.deliver_webhook`, HMAC
with the merchant's secret) at `POST /hooks/shopify/{connection}`, at a rate that follows a diurnal
curve (quiet nights, busy afternoons) with occasional bursts. Some orders carry an injected problem
(`orders.plan_order`), some are delivered twice with the same event id, and throttling storms make
the ERP simulator answer 429 for a while. Behind the orders come the warehouse (ShipStation ships
Aurora's imported orders and sends SHIP_NOTIFY), refunds (`refunds/create`), returns
(`return.requested`) and stock changes (`inventory.changed`). The same seed replays the same day.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from crossdock.connectors.sandbox.faults import FaultPlan
from crossdock.connectors.sandbox.server import Sandbox
from crossdock.connectors.sandbox.shopify_fulfillment import create_refund
from crossdock.demo import sandbox as sb
from crossdock.demo.orders import OrderPlan, plan_order
from crossdock.demo.provision import DemoWorld

log = logging.getLogger("crossdock.demo.traffic")
SHOPS = {"aurora": (sb.AURORA_SHOP, sb.AURORA_WEBHOOK_SECRET), "cobalt": (sb.COBALT_SHOP, sb.COBALT_WEBHOOK_SECRET)}


@dataclass
class TrafficConfig:
    """How much traffic, and how it is shaped."""

    rate: float = 1.5  # orders per second, averaged over a demo day
    seed: int = 7
    day_seconds: float = 240.0  # one storefront day lasts this long
    problem_rate: float = 0.06
    duplicate_rate: float = 0.03
    burst_chance: float = 0.15  # chance per 10-second slot of a 3× burst
    max_orders: int | None = None  # stop after this many (tests); None runs until stopped
    id_offset: int = 0  # shifts order ids and numbers so a restart never reuses them
    concurrency: int = 16  # webhook deliveries in flight
    storm_requests: int = 12  # 429s per throttling storm
    ship_every_s: float = 5.0  # warehouse wave interval
    ship_share: float = 0.4  # imported orders shipped per wave (ShipStation allows 40 calls/min)
    refund_share: float = 0.08  # shipped orders later refunded
    return_share: float = 0.05  # shipped orders later returned
    inventory_every_s: float = 20.0  # ERP stock change events (0: never)
    side_traffic: bool = True  # shipments, refunds, returns, stock changes (each also below)
    shipments: bool = True
    refunds: bool = True
    returns: bool = True
    stock_changes: bool = True


@dataclass
class TrafficStats:
    """What the generator has done so far (read by the live panel)."""

    orders_sent: int = 0
    duplicates_sent: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    delivery_failures: int = 0
    storms: int = 0
    shipments: int = 0
    refunds: int = 0
    returns: int = 0
    stock_changes: int = 0
    started_at: float = field(default_factory=time.monotonic)
    done: bool = False


def diurnal(phase: float) -> float:
    """Relative order rate at `phase` (0..1) of the day: 0.3 at night, 1.7 at the afternoon peak, mean 1."""
    return 0.3 + 1.4 * math.sin(math.pi * (phase % 1.0)) ** 2


class TrafficGenerator:
    """Places the demo's orders and the warehouse, refund, return and stock events behind them."""

    def __init__(self, world: DemoWorld, sandbox: Sandbox, catalog: sb.DemoCatalog, config: TrafficConfig) -> None:
        self.world = world
        self.sandbox = sandbox
        self.catalog = catalog
        self.config = config
        self.stats = TrafficStats()
        self.plans: list[OrderPlan] = []
        self.shipped: set[str] = set()
        self._rng = random.Random(f"crossdock-demo-traffic:{config.seed}")
        self._slots = asyncio.Semaphore(config.concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None

    # -- the day ------------------------------------------------------------------------------------
    def rate_at(self, elapsed: float) -> float:
        """Orders per second `elapsed` seconds into the demo: the diurnal curve times any burst."""
        cfg = self.config
        slot = int(elapsed // 10)
        burst = 3.0 if random.Random(f"burst:{cfg.seed}:{slot}").random() < cfg.burst_chance else 1.0
        # the demo starts in the morning (phase 0.25), so there is traffic from the first second
        return cfg.rate * diurnal(0.25 + elapsed / cfg.day_seconds) * burst

    async def run(self) -> None:
        """Send orders until `max_orders` (or until cancelled); side traffic runs alongside."""
        self._http = httpx.AsyncClient(timeout=30)
        side = [asyncio.create_task(self._warehouse())] if self.config.side_traffic else []
        if (
            self.config.side_traffic
            and self.config.inventory_every_s > 0
            and "inventory_sync" in self.world.flows.get("aurora", {})
        ):
            side.append(asyncio.create_task(self._stock_changes()))
        try:
            index = 0
            start = time.monotonic()
            next_at = start
            while self.config.max_orders is None or index < self.config.max_orders:
                now = time.monotonic()
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                plan = plan_order(
                    index,
                    self.catalog,
                    seed=self.config.seed,
                    problem_rate=self.config.problem_rate,
                    duplicate_rate=self.config.duplicate_rate,
                    id_offset=self.config.id_offset,
                )
                self.plans.append(plan)
                await self._slots.acquire()
                self._spawn(self._place(plan))
                index += 1
                next_at += self._rng.expovariate(max(self.rate_at(next_at - start), 0.01))
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            self.stats.done = True
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await self._http.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- orders -------------------------------------------------------------------------------------
    async def _place(self, plan: OrderPlan) -> None:
        try:
            shop, _secret = SHOPS[plan.merchant]
            self.sandbox.shopify.shop(shop).add_order(plan.order)
            if plan.problem == "throttling":
                self._storm(plan.merchant)
            if plan.problem:
                self.stats.problems[plan.problem] += 1
            await self.deliver(plan.merchant, "orders/create", plan.order, plan.event_id)
            self.stats.orders_sent += 1
            if plan.duplicate:
                await self.deliver(plan.merchant, "orders/create", plan.order, plan.event_id)
                self.stats.duplicates_sent += 1
        finally:
            self._slots.release()

    def _storm(self, merchant: str) -> None:
        """The ERP answers 429 to its next requests (the client backs off and retries)."""
        erp = self.sandbox.businesscentral if merchant == "aurora" else self.sandbox.netsuite
        erp.faults.set(FaultPlan(throttle_burst=self.config.storm_requests))
        self.stats.storms += 1

    async def deliver(self, merchant: str, topic: str, payload: dict[str, Any], event_id: str) -> bool:
        """A signed Shopify webhook to the merchant's intake URL, as Shopify sends it (no retries here)."""
        shop, secret = SHOPS[merchant]
        conn = self.world.connections[merchant]["shopify"]
        delivery = await self.sandbox.shopify.deliver_webhook(
            f"{self.world.api_url}/hooks/shopify/{conn}",
            topic,
            payload,
            secret=secret,
            event_id=event_id,
            shop_domain=shop,
            retry_delays=(0.5, 1.0, 2.0),
        )
        if not delivery.delivered:
            self.stats.delivery_failures += 1
            log.warning("webhook %s %s was not accepted: %s", topic, event_id, delivery.attempts[-1].error)
        return delivery.delivered

    # -- warehouse, refunds, returns ---------------------------------------------------------------
    def _imported_aurora_orders(self) -> list[dict[str, Any]]:
        try:
            return self.sandbox.businesscentral.records(sb.BC_COMPANY_ID, "salesOrders")
        except Exception:  # the company is seeded at start; be robust to a reset sandbox
            return []

    async def _warehouse(self) -> None:
        """Every wave, ShipStation ships some imported Aurora orders; some are later refunded or returned."""
        if not self.config.shipments or "fulfillment_export" not in self.world.flows.get("aurora", {}):
            return
        by_id = {p.order_id: p for p in self.plans}
        while True:
            await asyncio.sleep(self.config.ship_every_s)
            by_id.update({p.order_id: p for p in self.plans[len(by_id) :]})
            for so in self._imported_aurora_orders():
                order_id = str(so.get("externalDocumentNumber") or "")
                plan = by_id.get(order_id)
                if plan is None or order_id in self.shipped:
                    continue
                if random.Random(f"ship:{self.config.seed}:{order_id}").random() > self.config.ship_share:
                    self.shipped.add(order_id)  # shipped outside the demo's view
                    continue
                self.shipped.add(order_id)
                await self._ship(plan)
                roll = random.Random(f"after:{self.config.seed}:{order_id}").random()
                if roll < self.config.refund_share and self.config.refunds:
                    await self._refund(plan)
                elif roll < self.config.refund_share + self.config.return_share and self.config.returns:
                    await self._return(plan, str(so.get("customerNumber") or ""))

    async def _ship(self, plan: OrderPlan) -> None:
        order = plan.order
        address = order["shipping_address"]
        ship_to = {
            "name": address["name"], "street1": address["address1"], "city": address["city"],
            "state": address["province_code"], "postalCode": address["zip"], "country": address["country_code"],
        }  # fmt: skip
        ss = self.sandbox.shipstation
        placed = ss.upsert_order(
            {
                "orderNumber": order["name"],
                "orderKey": plan.order_id,
                "orderDate": order["created_at"],
                "orderStatus": "awaiting_shipment",
                "billTo": ship_to,
                "shipTo": ship_to,
                "customerEmail": order["email"],
                "items": [
                    {"lineItemKey": str(li["id"]), "sku": li["sku"], "name": li["name"], "quantity": li["quantity"],
                     "unitPrice": float(li["price"])}
                    for li in order["line_items"]
                ],
            }
        )  # fmt: skip
        shipment = ss.ship(placed["orderId"])
        resource_url = (
            f"{self.world.sandbox_url}/shipstation/shipments?batchId={shipment['batchNumber']}"
            "&includeShipmentItems=False"
        )
        await ss.send_ship_notify(resource_url)
        self.stats.shipments += 1

    async def _refund(self, plan: OrderPlan) -> None:
        store = self.sandbox.shopify.shop(sb.AURORA_SHOP)
        line = plan.order["line_items"][0]
        refund = create_refund(
            store, int(plan.order_id), {"refund_line_items": [{"line_item_id": line["id"], "quantity": 1}]}
        )
        await self.deliver("aurora", "refunds/create", refund, f"demo-refund-{refund['id']}")
        self.stats.refunds += 1

    async def _return(self, plan: OrderPlan, customer_number: str) -> None:
        if "return_rma" not in self.world.flows.get("aurora", {}):
            return
        line = plan.order["line_items"][-1]
        payload = {
            "return_id": f"R{plan.order['order_number']}",
            "order_id": plan.order_id,
            "order_number": plan.order["name"],
            "email": plan.order["email"],
            "customer_id": plan.order["customer"]["id"],
            "customer_number": customer_number,
            "reason": self._rng.choice(["wrong size", "changed mind", "arrived damaged"]),
            "lines": [
                {"line_item_id": line["id"], "sku": line["sku"], "quantity": line["quantity"],
                 "unit_price": line["price"]}
            ],
        }  # fmt: skip
        await self.publish("aurora", "return.requested", payload, f"demo-return-{payload['return_id']}")
        self.stats.returns += 1

    async def _stock_changes(self) -> None:
        """The ERP's stock moves: a few SKUs at a time, now and then an implausible drop (held for review)."""
        tick = 0
        while True:
            await asyncio.sleep(self.config.inventory_every_s)
            tick += 1
            rng = random.Random(f"stock:{self.config.seed}:{tick}")
            levels = [
                {"sku": v["sku"], "available": rng.randint(0, 5) if tick % 6 == 0 else rng.randint(40, 400),
                 "location": "MAIN"}
                for v in rng.sample(self.catalog.aurora, k=3)
            ]  # fmt: skip
            await self.publish(
                "aurora", "inventory.changed", {"levels": levels}, f"demo-stock-{self.config.id_offset}-{tick}"
            )
            self.stats.stock_changes += 1

    async def publish(self, merchant: str, name: str, payload: dict[str, Any], key: str) -> None:
        """`POST /v1/events` as the partner's operator would."""
        assert self._http is not None
        token = self.world.tenants.tokens.get("partner_admin", "")
        body = {"merchant_id": self.world.merchant(merchant), "name": name, "payload": payload, "idempotency_key": key}
        try:
            resp = await self._http.post(
                f"{self.world.api_url}/v1/events", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            if resp.status_code >= 400:
                log.warning("event %s was refused: %s %s", name, resp.status_code, resp.text[:200])
        except httpx.HTTPError as exc:
            log.warning("event %s could not be sent: %s", name, exc)
