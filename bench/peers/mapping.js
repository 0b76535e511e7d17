// Reference order mapping, JavaScript port of bench/harness/orders.py:map_order.
// Injected verbatim into the n8n Code node and the Node-RED function node by
// the harness (bench/harness/peers.py), so both peers run exactly this code.
function mapOrder(order) {
  const cents = (s) => Math.round(parseFloat(s) * 100);
  const money = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, "0")}`;
  let subtotal = 0;
  let discount = 0;
  const lines = order.line_items.map((li) => {
    const lineTotal = cents(li.price) * li.quantity;
    subtotal += lineTotal;
    for (const a of li.discount_allocations || []) discount += cents(a.amount);
    return {
      sku: li.sku,
      description: li.title,
      quantity: li.quantity,
      unit_price: li.price,
      line_total: money(lineTotal),
    };
  });
  const c = order.customer || {};
  return {
    key: `shopify-order-${order.id}`,
    body: {
      external_id: String(order.id),
      order_number: order.name,
      order_date: order.created_at,
      customer_email: order.email,
      customer_name: `${c.first_name || ""} ${c.last_name || ""}`.trim(),
      currency: order.currency,
      lines,
      subtotal: money(subtotal),
      discount: money(discount),
      total: money(subtotal - discount),
    },
  };
}
