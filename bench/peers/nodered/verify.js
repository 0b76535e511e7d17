// Node-RED function node "verify": HMAC check on the raw body, then answer at once.
// Output 1 -> http response (200 / 401); output 2 -> "map" function (valid orders only).
const crypto = global.get("crypto");
const raw = msg.payload; // Buffer: the http-in node has skipBodyParsing (raw body) on
const sig = String(msg.req.headers["x-shopify-hmac-sha256"] || "");
const digest = crypto.createHmac("sha256", "__SECRET__").update(raw).digest("base64");
if (sig.length !== digest.length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(digest))) {
  msg.statusCode = 401;
  msg.payload = "bad hmac";
  return [msg, null];
}
const order = JSON.parse(raw.toString("utf8"));
msg.statusCode = 200;
msg.payload = "ok";
return [msg, { payload: order }];
