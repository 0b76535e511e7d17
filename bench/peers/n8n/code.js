// n8n Code node "Verify and map" (mode: run once for all items).
// mapOrder() is prepended from bench/peers/mapping.js. The Webhook node keeps the
// raw body (options.rawBody) as binary "data" so the HMAC is checked on the exact bytes.
const crypto = require("crypto");
const item = $input.first();
const raw = Buffer.from(item.binary.data.data, "base64");
const sig = String(item.json.headers["x-shopify-hmac-sha256"] || "");
const digest = crypto.createHmac("sha256", "__SECRET__").update(raw).digest("base64");
if (sig.length !== digest.length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(digest))) {
  throw new Error("invalid Shopify HMAC");
}
const m = mapOrder(JSON.parse(raw.toString("utf8")));
return [{ json: { key: m.key, body: m.body } }];
