// The shop page: pick a shopper, watch their page arrive over server-sent events, click to change it.
// Everything comes from this service (no CDN); the page never reloads: each update re-renders from the stream.
"use strict";

const BANNERS = {
  bestsellers: () => "Our bestsellers",
  complete_the_look: (c) => `Complete the look: ${c}`,
  new_arrivals: (c) => `New arrivals in ${c}`,
  sale: (c) => `Sale: ${c} at up to 40% off`,
  free_shipping: (c) => `Free shipping on ${c} today`,
  we_miss_you: (c) => `We miss you: your ${c} are waiting`,
  welcome: (c) => `Welcome! Start with our ${c}`,
};
const COLOURS = ["#c9a27e", "#7e9cc9", "#c97e9a", "#8fc97e", "#c9c07e", "#9a7ec9", "#7ec9c2", "#c97e7e"];
const PROFILE_FIELDS = ["recency_days", "frequency", "monetary", "sessions_7d", "sessions_30d", "views_per_session",
                        "cart_adds", "engagement_score"];

let source = null;
let current = null;      // the last page rendered
let clickedAt = null;    // performance.now() of the last click, until its update arrives
let updates = 0;

const $ = (id) => document.getElementById(id);
const fmt = (v) => (v === null || v === undefined) ? "–" : (typeof v === "number" ? Number(v.toPrecision(4)) : v);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

async function post(url, body) {
  const response = await fetch(url, {method: "POST", headers: {"content-type": "application/json"},
                                     body: JSON.stringify(body)});
  return response.json();
}

function colour(category) {
  let h = 0;
  for (const ch of category) h = (h * 31 + ch.charCodeAt(0)) % COLOURS.length;
  return COLOURS[h];
}

function act(type, product) {
  if (!current) return;
  clickedAt = performance.now();
  post(`/api/customers/${current.customer_id}/actions`,
       {type, product_id: product.product_id, session_id: current.session_id, dwell_seconds: 20});
}

function render(page) {
  current = page;
  updates += 1;
  const banner = $("banner");
  banner.textContent = (BANNERS[page.banner] || (() => page.banner))(page.banner_category || "");
  banner.className = page.experience === "personalized" ? "" : "default";
  banner.dataset.banner = page.banner;
  const products = $("products");
  products.replaceChildren(...page.products.map((p) => {
    const cart = el("button", {"data-testid": "add-to-cart"}, "Add to cart");
    cart.addEventListener("click", (e) => { e.stopPropagation(); act("add_to_cart", p); });
    const swatch = el("div", {"class": "swatch"});
    swatch.style.background = colour(p.category);  // set through the DOM: the page's CSP forbids inline styles
    const card = el("div", {"class": "card", "data-testid": "product", "data-product": p.product_id,
                            "data-category": p.category},
                    swatch,
                    el("div", {"class": "category"}, p.category),
                    el("div", {}, `#${p.product_id} · ${p.price_tier} · €${p.price.toFixed(2)}`), cart);
    card.addEventListener("click", () => act("product_view", p));
    return card;
  }));
  $("p-customer").textContent = `${page.customer_id}${page.known ? "" : " (new visitor)"}`;
  $("p-arm").textContent = page.arm;
  $("p-segment").textContent = page.segment;
  $("p-reason").textContent = page.reason;
  $("p-propensity").textContent = fmt(page.propensity);
  $("p-model").textContent = page.model_version || "unavailable";
  $("p-updates").textContent = String(updates);
  $("contributions").replaceChildren(...page.contributions.map((c) =>
    el("tr", {}, el("td", {}, c.feature), el("td", {"class": "num"}, String(fmt(c.value))),
       el("td", {"class": "num"}, (c.contribution >= 0 ? "+" : "") + c.contribution.toFixed(3)))));
  const profile = page.profile || {};
  $("profile").replaceChildren(...PROFILE_FIELDS.concat(Object.keys(profile).filter((k) => k.startsWith("affinity_")))
    .map((k) => el("tr", {}, el("td", {}, k), el("td", {"class": "num", "data-field": k}, String(fmt(profile[k]))))));
  if (clickedAt !== null) {
    $("p-latency").textContent = `${(performance.now() - clickedAt).toFixed(1)} ms (click → new page)`;
    clickedAt = null;
  }
  $("panel").classList.remove("changed"); void $("panel").offsetWidth; $("panel").classList.add("changed");
}

function watch(customerId) {
  if (source) source.close();
  updates = 0;
  $("why").textContent = "";
  $("connection").textContent = "connecting…";
  // EventSource reconnects by itself and sends Last-Event-ID: the service replays what was missed.
  source = new EventSource(`/api/customers/${customerId}/stream`);
  source.addEventListener("open", () => { $("connection").textContent = "live"; });
  source.addEventListener("error", () => { $("connection").textContent = "reconnecting…"; });
  source.addEventListener("page", (message) => render(JSON.parse(message.data)));
}

async function start() {
  const examples = await (await fetch("/api/examples")).json();
  const select = $("customer");
  for (const [segment, ids] of Object.entries(examples.segments)) {
    const group = el("optgroup", {label: segment});
    ids.forEach((id) => group.append(el("option", {value: id}, `Customer ${id}`)));
    select.append(group);
  }
  select.append(el("option", {value: examples.new_visitor}, "New visitor"));
  select.addEventListener("change", () => watch(select.value));
  $("explain").addEventListener("click", async () => {
    if (!current) return;
    $("why").textContent = "explaining…";
    const answer = await (await fetch(`/api/customers/${current.customer_id}/explanation`)).json();
    $("why").textContent = answer.why || `no explanation (${answer.reason})`;
  });
  watch(select.value);
}

start();
