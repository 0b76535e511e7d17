// Node-RED function node "map": mapOrder() is prepended from bench/peers/mapping.js.
const m = mapOrder(msg.payload);
return {
  payload: m.body,
  headers: { "Content-Type": "application/json", "Idempotency-Key": m.key },
};
