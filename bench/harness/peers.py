"""The peer systems: ceiling (aiohttp), Celery + Redis, Node-RED and n8n.

Each builds its commands/config from the run context; n8n and Node-RED get
their flow generated here from the JavaScript snippets in ``bench/peers/``
(the mapping itself is ``bench/peers/mapping.js``, shared by both). Node
packages come from ``bench/peers/install.sh`` into ``bench/.peers/``.
"""

from __future__ import annotations

import json
import re
import shutil

from .systems import BENCH, PEERS_DIR, PYTHON, ProcSystem, RunContext, free_port, pg_available, pg_recreate, pg_settings

PEER_SRC = BENCH / "peers"


def _js(name: str, secret: str) -> str:
    return (PEER_SRC / name).read_text().replace("__SECRET__", secret)


class Ceiling(ProcSystem):
    """Minimal non-durable aiohttp verifier/mapper/poster (bench/harness/ceiling.py)."""

    name = "ceiling"
    description = "aiohttp, 1 process, no storage: verify, ack, map, POST"

    def launch(self, ctx: RunContext) -> None:
        self.spawn(
            [PYTHON, "-m", "harness.ceiling", "--port", ctx.port, "--erp", ctx.erp_url],
            env=self.base_env(PYTHONPATH=str(BENCH)),
            cwd=BENCH,
        )
        self.webhook_url = f"http://127.0.0.1:{ctx.port}/webhooks/shopify"


class CeleryPeer(ProcSystem):
    """FastAPI/uvicorn webhook -> Celery task (worker -c 2) -> httpx POST; own Redis."""

    name = "celery"
    description = "uvicorn+FastAPI enqueue, Celery prefork -c 2, non-durable Redis"
    install_peers = ("celery",)

    def unavailable(self) -> str | None:
        if not shutil.which("redis-server"):
            return "redis-server not installed"
        try:
            import celery  # noqa: F401
        except ImportError:
            return "celery not installed (pip install -e '.[bench]')"
        return None

    def launch(self, ctx: RunContext) -> None:
        redis_port = free_port()
        # A dedicated, non-durable Redis: nothing on disk, counted with the system.
        self.spawn(
            [
                "redis-server",
                "--port",
                redis_port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                ctx.workdir,
                "--loglevel",
                "warning",
            ],
            cwd=ctx.workdir,
        )
        env = self.base_env(
            BENCH_ERP_URL=ctx.erp_url,
            BENCH_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            PYTHONPATH=str(PEER_SRC / "celery"),
        )
        cwd = PEER_SRC / "celery"
        self.spawn(
            [
                PYTHON,
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                ctx.port,
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=cwd,
        )
        self.spawn(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "tasks",
                "worker",
                "-c",
                "2",
                "-P",
                "prefork",
                "--loglevel",
                "warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench-{ctx.run_id}@localhost",
            ],
            env=env,
            cwd=cwd,
        )
        self.webhook_url = f"http://127.0.0.1:{ctx.port}/webhooks/shopify"


class NodeRed(ProcSystem):
    """Node-RED 4: http in (raw body) -> verify fn -> [http response, map fn -> http request]."""

    name = "nodered"
    description = "Node-RED 4, http in -> function -> http request (answers right after verify)"
    install_peers = ("nodered",)
    home = PEERS_DIR / "nodered"

    def unavailable(self) -> str | None:
        if not (self.home / "node_modules/node-red/red.js").exists():
            return "Node-RED not installed (bench/peers/install.sh nodered)"
        return None

    def flow(self, ctx: RunContext) -> list[dict]:
        tab = "bench_tab"
        return [
            {"id": tab, "type": "tab", "label": "Shopify orders to ERP"},
            {
                "id": "in",
                "type": "http in",
                "z": tab,
                "name": "Shopify webhook",
                "url": "/webhooks/shopify",
                "method": "post",
                "upload": False,
                "skipBodyParsing": True,
                "swaggerDoc": "",
                "wires": [["verify"]],
            },
            {
                "id": "verify",
                "type": "function",
                "z": tab,
                "name": "verify HMAC",
                "func": _js("nodered/verify.js", ctx.secret),
                "outputs": 2,
                "wires": [["respond"], ["map"]],
            },
            {
                "id": "respond",
                "type": "http response",
                "z": tab,
                "name": "ack",
                "statusCode": "",
                "headers": {},
                "wires": [],
            },
            {
                "id": "map",
                "type": "function",
                "z": tab,
                "name": "map to sales order",
                "func": _js("mapping.js", ctx.secret) + "\n" + _js("nodered/map.js", ctx.secret),
                "outputs": 1,
                "wires": [["post"]],
            },
            {
                "id": "post",
                "type": "http request",
                "z": tab,
                "name": "POST to ERP",
                "method": "POST",
                "ret": "txt",
                "paytoqs": "ignore",
                "url": ctx.erp_url,
                "persist": True,
                "insecureHTTPParser": False,
                "authType": "",
                "senderr": False,
                "headers": [],
                "wires": [[]],
            },
        ]

    def launch(self, ctx: RunContext) -> None:
        user_dir = ctx.workdir / "userdir"
        user_dir.mkdir()
        (user_dir / "flows.json").write_text(json.dumps(self.flow(ctx)))
        self.spawn(
            [
                "node",
                self.home / "node_modules/node-red/red.js",
                "--settings",
                PEER_SRC / "nodered/settings.js",
                "--userDir",
                user_dir,
                "flows.json",
            ],
            env=self.base_env(PORT=str(ctx.port), NODE_ENV="production"),
            cwd=user_dir,
        )
        self.webhook_url = f"http://127.0.0.1:{ctx.port}/webhooks/shopify"


class N8n(ProcSystem):
    """n8n 1.110.1: Webhook (raw body, respond on receipt) -> Code -> HTTP Request."""

    install_peers = ("n8n",)
    home = PEERS_DIR / "n8n"
    workflow_id = "CrossdockBench01"
    workflow_name = "Shopify orders to ERP"
    start_timeout = 180.0

    def __init__(self, name: str, postgres: bool) -> None:
        super().__init__()
        self.name = name
        self.postgres = postgres
        self.dbname = "bench_n8n"
        self.description = f"n8n 1.110.1 on {'PostgreSQL' if postgres else 'SQLite'}"
        self.cpu_comms = ("postgres",) if postgres else ()

    def unavailable(self) -> str | None:
        if not (self.home / "node_modules/n8n/bin/n8n").exists():
            return "n8n not installed (bench/peers/install.sh n8n)"
        return pg_available() if self.postgres else None

    def workflow(self, ctx: RunContext) -> dict:
        code = _js("mapping.js", ctx.secret) + "\n" + _js("n8n/code.js", ctx.secret)
        return {
            "id": self.workflow_id,
            "name": self.workflow_name,
            "active": False,
            "settings": {"executionOrder": "v1"},
            "nodes": [
                {
                    "id": "1b9c6f2e-0000-4000-8000-000000000001",
                    "name": "Shopify webhook",
                    "type": "n8n-nodes-base.webhook",
                    "typeVersion": 2,
                    "position": [0, 0],
                    "webhookId": "6f0c8a34-0000-4000-8000-00000000beef",
                    "parameters": {
                        "httpMethod": "POST",
                        "path": "shopify-orders",
                        "responseMode": "onReceived",
                        "options": {"rawBody": True},
                    },
                },
                {
                    "id": "1b9c6f2e-0000-4000-8000-000000000002",
                    "name": "Verify and map",
                    "type": "n8n-nodes-base.code",
                    "typeVersion": 2,
                    "position": [220, 0],
                    "parameters": {"mode": "runOnceForAllItems", "language": "javaScript", "jsCode": code},
                },
                {
                    "id": "1b9c6f2e-0000-4000-8000-000000000003",
                    "name": "POST to ERP",
                    "type": "n8n-nodes-base.httpRequest",
                    "typeVersion": 4.2,
                    "position": [440, 0],
                    "parameters": {
                        "method": "POST",
                        "url": ctx.erp_url,
                        "sendHeaders": True,
                        "headerParameters": {"parameters": [{"name": "Idempotency-Key", "value": "={{ $json.key }}"}]},
                        "sendBody": True,
                        "specifyBody": "json",
                        "jsonBody": "={{ JSON.stringify($json.body) }}",
                        "options": {},
                    },
                },
            ],
            "connections": {
                "Shopify webhook": {"main": [[{"node": "Verify and map", "type": "main", "index": 0}]]},
                "Verify and map": {"main": [[{"node": "POST to ERP", "type": "main", "index": 0}]]},
            },
        }

    def env(self, ctx: RunContext) -> dict[str, str]:
        env = self.base_env(
            N8N_USER_FOLDER=str(ctx.workdir),
            N8N_PORT=str(ctx.port),
            N8N_LISTEN_ADDRESS="127.0.0.1",
            N8N_HOST="127.0.0.1",
            N8N_PROTOCOL="http",
            N8N_DIAGNOSTICS_ENABLED="false",
            N8N_VERSION_NOTIFICATIONS_ENABLED="false",
            N8N_TEMPLATES_ENABLED="false",
            N8N_PERSONALIZATION_ENABLED="false",
            N8N_HIRING_BANNER_ENABLED="false",
            N8N_LICENSE_AUTO_RENEW_ENABLED="false",
            N8N_DIAGNOSTICS_CONFIG_FRONTEND="",
            N8N_DIAGNOSTICS_CONFIG_BACKEND="",
            EXTERNAL_FRONTEND_HOOKS_URLS="",
            N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS="true",
            N8N_GRACEFUL_SHUTDOWN_TIMEOUT="5",
            NODE_FUNCTION_ALLOW_BUILTIN="crypto",
            N8N_LOG_LEVEL="info",
            N8N_LOG_OUTPUT="console",
            NODE_ENV="production",
        )
        if self.postgres:
            pg = pg_settings()
            env.update(
                DB_TYPE="postgresdb",
                DB_POSTGRESDB_HOST=pg["host"],
                DB_POSTGRESDB_PORT=pg["port"],
                DB_POSTGRESDB_USER=pg["user"],
                DB_POSTGRESDB_PASSWORD=pg["password"],
                DB_POSTGRESDB_DATABASE=self.dbname,
            )
        return env

    def launch(self, ctx: RunContext) -> None:
        if self.postgres:
            pg_recreate(self.dbname)
        env = self.env(ctx)
        n8n = self.home / "node_modules/n8n/bin/n8n"
        wf = ctx.workdir / "workflow.json"
        wf.write_text(json.dumps(self.workflow(ctx)))
        self.run_cmd(["node", n8n, "import:workflow", f"--input={wf}"], env=env, cwd=ctx.workdir)
        self.run_cmd(
            ["node", n8n, "update:workflow", f"--id={self.workflow_id}", "--active=true"],
            env=env,
            cwd=ctx.workdir,
        )
        self.spawn(["node", n8n, "start"], env=env, cwd=ctx.workdir)
        self.webhook_url = f"http://127.0.0.1:{ctx.port}/webhook/shopify-orders"

    def ready(self) -> bool:
        text = self.log_text()
        return bool(re.search(r"Activated workflow .*" + re.escape(self.workflow_name), text))

    def cleanup(self) -> None:
        if self.postgres:
            try:
                pg_recreate(self.dbname, drop_only=True)
            except Exception:
                pass
