// daifa console: a page over the admin API (/api/v1) with the operator's
// own token. Everything from the server is rendered as text (textContent),
// never as markup: order data comes from ERPs and suppliers.
"use strict";

const I18N = {
  zh: {
    "nav.overview": "总览", "nav.suppliers": "供应商", "nav.orders": "订单", "nav.dead": "死信",
    "nav.plugins": "插件", "nav.routing": "路由策略", "nav.alerts": "告警", "nav.audit": "审计",
    "logout": "退出", "login.title": "登录 daifa 控制台", "login.token": "API 令牌", "login.go": "登录",
    "login.bad": "令牌无效或已吊销", "orders.by_state": "各状态订单", "pos.by_state": "各状态采购单",
    "backlog": "积压任务", "backlog.kind": "类型", "backlog.jobs": "数量", "backlog.oldest": "最久等待",
    "throughput": "吞吐（回写订单/分钟，本页打开后）", "total": "合计",
    "supplier.score": "表现分", "supplier.circuit": "熔断", "supplier.share": "份额（窗口内采购单）", "supplier.ack": "确认时长中位数", "supplier.late": "超期未发货",
    "supplier.accept": "接单率", "supplier.ship": "发货时长中位数", "supplier.errors": "错误率",
    "supplier.conn": "连接", "supplier.history": "表现分变化", "none": "无",
    "search.placeholder": "单据编号 / 外部编号 / 订单 ID", "search.go": "查找",
    "order.timeline": "时间线", "order.routing": "路由说明", "order.lines": "明细", "order.pos": "采购单",
    "col.id": "ID", "col.bill": "单据编号", "col.state": "状态", "col.reason": "原因", "col.kind": "类型",
    "col.key": "键", "col.supplier": "供应商", "col.attempts": "尝试", "col.error": "最后错误",
    "col.at": "时间", "col.actor": "操作者", "col.action": "操作", "col.rule": "规则", "col.subject": "对象",
    "col.message": "消息", "col.version": "版本", "col.calls": "调用", "col.failures": "失败",
    "retry": "重试", "discard": "丢弃", "activate": "激活", "rollback": "回滚", "disable": "停用",
    "canary": "灰度", "canary.stop": "停止灰度", "confirm": "确认？", "done": "完成",
    "active": "当前", "rollback_to": "可回滚到", "policy.current": "当前策略", "policy.whatif": "假设分析",
    "policy.run": "比较", "policy.load": "载入比较", "policy.versions": "策略版本", "policy.save": "保存为新版本", "changed": "变化的订单",
    "state.firing": "告警中", "state.resolved": "已恢复", "percent": "百分比",
    "routing.rule_set": "规则集", "routing.landed": "到岸成本", "routing.line": "行", "routing.unit_cost": "单价",
    "routing.candidates": "候选供应商", "routing.goods": "货款", "routing.shipping": "运费", "routing.factor": "系数",
    "install": "安装新版本", "install.need": "请选择 manifest.toml 和组件 .wasm", "col.traps": "陷入", "col.status": "状态码", "col.before": "之前", "col.after": "之后", "col.mean": "平均耗时", "col.sha": "SHA-256",
  },
  en: {
    "nav.overview": "Overview", "nav.suppliers": "Suppliers", "nav.orders": "Orders", "nav.dead": "Dead letters",
    "nav.plugins": "Plugins", "nav.routing": "Routing policy", "nav.alerts": "Alerts", "nav.audit": "Audit",
    "logout": "Log out", "login.title": "Log in to the daifa console", "login.token": "API token", "login.go": "Log in",
    "login.bad": "The token is not valid or was revoked", "orders.by_state": "Orders by state",
    "pos.by_state": "Purchase orders by state", "backlog": "Job backlog", "backlog.kind": "Kind",
    "backlog.jobs": "Jobs", "backlog.oldest": "Oldest waiting", "throughput": "Throughput (orders written back / min, since this page opened)",
    "total": "Total", "supplier.score": "Score", "supplier.circuit": "Circuit", "supplier.share": "Share (POs in the window)", "supplier.ack": "Median time to acknowledge", "supplier.late": "Open past due",
    "supplier.accept": "Acceptance", "supplier.ship": "Median time to ship", "supplier.errors": "Error rate",
    "supplier.conn": "Connection", "supplier.history": "Score over time", "none": "none",
    "search.placeholder": "Bill number / external id / order id", "search.go": "Find",
    "order.timeline": "Timeline", "order.routing": "Routing explanation", "order.lines": "Lines", "order.pos": "Purchase orders",
    "col.id": "ID", "col.bill": "Bill no.", "col.state": "State", "col.reason": "Reason", "col.kind": "Kind",
    "col.key": "Key", "col.supplier": "Supplier", "col.attempts": "Attempts", "col.error": "Last error",
    "col.at": "At", "col.actor": "Actor", "col.action": "Action", "col.rule": "Rule", "col.subject": "Subject",
    "col.message": "Message", "col.version": "Version", "col.calls": "Calls", "col.failures": "Failures",
    "retry": "Retry", "discard": "Discard", "activate": "Activate", "rollback": "Roll back", "disable": "Disable",
    "canary": "Canary", "canary.stop": "Stop canary", "confirm": "Confirm?", "done": "Done",
    "active": "active", "rollback_to": "rollback to", "policy.current": "Current policy", "policy.whatif": "What-if",
    "policy.run": "Compare", "policy.load": "Load to compare", "policy.versions": "Policy versions", "policy.save": "Save as new version", "changed": "Orders that change",
    "state.firing": "firing", "state.resolved": "resolved", "percent": "Percent",
    "routing.rule_set": "rule set", "routing.landed": "landed cost", "routing.line": "Line", "routing.unit_cost": "Unit cost",
    "routing.candidates": "Candidates", "routing.goods": "Goods", "routing.shipping": "Shipping", "routing.factor": "Factor",
    "install": "Install a version", "install.need": "Choose a manifest.toml and a component .wasm", "col.traps": "Traps", "col.status": "Status", "col.before": "Before", "col.after": "After", "col.mean": "Mean", "col.sha": "SHA-256",
  },
};

let lang = localStorage.getItem("daifa.lang") || "zh";
let token = sessionStorage.getItem("daifa.token") || "";
let timer = null;
const samples = []; // [ms, written_back] for the throughput chart

const t = (k) => (I18N[lang] && I18N[lang][k]) || I18N.en[k] || k;
const $ = (sel) => document.querySelector(sel);

/** An element with attributes (on* are listeners) and children (strings become text). */
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of kids.flat(Infinity)) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of kids.flat(Infinity)) if (c) el.append(c instanceof Node ? c : String(c));
  return el;
}

function say(msg, bad) {
  const m = h("div", { class: bad ? "msg bad" : "msg", text: msg });
  $("#status").append(m);
  setTimeout(() => m.remove(), bad ? 8000 : 3000);
}

class ApiError extends Error {
  constructor(status, body) { super(body.error || `HTTP ${status}`); this.status = status; this.kind = body.kind; }
}

/** Calls /api/v1; a string body goes as text (the routing policy's TOML), anything else as JSON. */
async function api(method, path, body) {
  const init = { method, headers: { authorization: `Bearer ${token}` } };
  if (typeof body === "string") { init.headers["content-type"] = "text/plain; charset=utf-8"; init.body = body; }
  else if (body !== undefined) { init.headers["content-type"] = "application/json"; init.body = JSON.stringify(body); }
  const r = await fetch(`/api/v1${path}`, init);
  const j = await r.json().catch(() => ({}));
  if (r.status === 401 && path !== "/orders/stats") { logout(); }
  if (!r.ok) throw new ApiError(r.status, j);
  return j;
}

/** Runs a mutating call, says how it went, then re-renders the page. */
async function act(method, path, body) {
  try { await api(method, path, body); say(t("done")); } catch (e) { say(`${method} ${path}: ${e.message}`, true); }
  route();
}

/** A button that asks once more before it acts. */
function confirmButton(label, cls, onConfirm) {
  const b = h("button", { type: "button", class: `act ${cls}`, text: label });
  b.addEventListener("click", () => {
    if (b.dataset.armed) { onConfirm(); return; }
    b.dataset.armed = "1"; b.textContent = `${label} — ${t("confirm")}`; b.classList.add("danger");
  });
  return b;
}

const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB") : "");
function fmtAge(ms) {
  if (ms === null || ms === undefined) return "";
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
const pct = (x) => (x === null || x === undefined || Number.isNaN(Number(x)) ? "–" : `${(Number(x) * 100).toFixed(1)} %`);

function badge(state) {
  const good = ["closed", "written_back", "shipped", "acknowledged", "resolved", "ok", "chosen"];
  const bad = ["open", "exception", "dead", "firing", "rejected", "failed"];
  const cls = good.includes(state) ? "ok" : bad.includes(state) ? "bad" : "warn";
  return h("span", { class: `badge ${cls}`, "data-state": state, text: state });
}

function table(cols, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { text: c[0] })))),
    h("tbody", {}, rows.map((r) => h("tr", {}, cols.map((c) => {
      const v = c[1](r);
      return h("td", c[2] ? { class: c[2] } : {}, v instanceof Node ? v : String(v ?? ""));
    })))));
}

/** A bar chart of name → count. */
function bars(data) {
  const entries = Object.entries(data);
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const w = 560, rowH = 20;
  return svg("svg", { class: "chart", width: w, height: entries.length * rowH + 8, role: "img" },
    entries.map(([k, v], i) => [
      svg("text", { x: 4, y: i * rowH + 18 }, k),
      svg("rect", { class: "bar", x: 130, y: i * rowH + 6, height: 14, width: Math.max(1, (v / max) * (w - 200)) }),
      svg("text", { x: 136 + (v / max) * (w - 200), y: i * rowH + 18 }, String(v)),
    ]));
}

/** A line of (x, y) points, scaled to fit. */
function line(points, w = 260, hgt = 60) {
  if (points.length < 2) return h("span", { class: "muted", text: t("none") });
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => 4 + ((x - x0) / Math.max(1, x1 - x0)) * (w - 8);
  const sy = (y) => hgt - 12 - ((y - y0) / Math.max(1e-9, y1 - y0)) * (hgt - 20);
  return svg("svg", { class: "chart", width: w, height: hgt, role: "img" },
    svg("polyline", { class: "line", points: points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ") }),
    svg("text", { x: 4, y: hgt - 2 }, `${y0.toFixed(2)} – ${y1.toFixed(2)}`));
}

// ---- views ----

function loginView(error) {
  $("#nav").hidden = true; $("#logout").hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: t("login.token") });
  const form = h("form", { class: "card login", id: "login-form" },
    h("h2", { text: t("login.title") }), input,
    h("button", { id: "login", class: "act", type: "submit", text: t("login.go") }),
    h("p", { id: "login-error", class: "error", text: error || "" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    token = input.value.trim();
    try {
      await api("GET", "/orders/stats");
      sessionStorage.setItem("daifa.token", token);
      if (!location.hash || location.hash === "#/login") location.hash = "#/overview"; else route();
    } catch (e) {
      token = "";
      loginView(e.status === 401 || e.status === 403 ? t("login.bad") : e.message);
    }
  });
  $("#main").replaceChildren(form);
  input.focus();
}

async function overview() {
  const [stats, pos] = await Promise.all([api("GET", "/orders/stats"), api("GET", "/purchase-orders?limit=1")]);
  const wb = stats.by_state.written_back || 0;
  samples.push([Date.now(), wb]);
  if (samples.length > 240) samples.shift();
  const rate = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i][0] - samples[i - 1][0]) / 60000;
    if (dt > 0) rate.push([samples[i][0], (samples[i][1] - samples[i - 1][1]) / dt]);
  }
  const total = Object.values(stats.by_state).reduce((a, b) => a + b, 0);
  return [
    h("h2", { text: t("nav.overview") }),
    h("div", { class: "grid2" },
      h("div", { class: "card", id: "orders-by-state" }, h("h3", { text: `${t("orders.by_state")} (${t("total")} ${total})` }), bars(stats.by_state)),
      h("div", { class: "card" }, h("h3", { text: t("pos.by_state") }), bars(pos.counts || {}))),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h3", { text: t("backlog") }),
        table([[t("backlog.kind"), (r) => r.kind], [t("backlog.jobs"), (r) => r.jobs, "num"], [t("backlog.oldest"), (r) => fmtAge(r.oldest_age_ms), "num"]],
          stats.backlog || [], { id: "backlog" })),
      h("div", { class: "card" }, h("h3", { text: t("throughput") }), line(rate, 520, 80))),
  ];
}

async function suppliers() {
  const [perf, circuits, conns] = await Promise.all([
    api("GET", "/suppliers/performance"),
    api("GET", "/dispatch/circuits").catch(() => []),
    api("GET", "/suppliers/connections").catch(() => []),
  ]);
  const circuitOf = new Map((circuits || []).map((c) => [c.circuit.supplier, c.circuit]));
  const connList = Array.isArray(conns) ? conns : conns.connections || [];
  const connOf = new Map(connList.map((c) => [c.supplier, c]));
  const totalDispatched = (perf.suppliers || []).reduce((a, s) => a + ((s.metrics && s.metrics.dispatched) || 0), 0);
  const cards = await Promise.all((perf.suppliers || []).map(async (s) => {
    const hist = await api("GET", `/suppliers/performance?supplier=${encodeURIComponent(s.supplier)}&changes=200`).catch(() => ({}));
    const points = (hist.recent_changes || []).map((c) => [c.at, Number(c.to)]).reverse();
    const m = s.metrics || {};
    const c = circuitOf.get(s.supplier);
    const conn = connOf.get(s.supplier);
    const state = c ? c.state : s.circuit_open ? "open" : "closed";
    return h("div", { class: "card supplier", "data-supplier": s.supplier },
      h("h3", {}, s.supplier, " ", badge(state)),
      h("dl", { class: "kv" },
        h("dt", { text: t("supplier.score") }), h("dd", { text: Number(s.score).toFixed(3) }),
        h("dt", { text: t("supplier.share") }), h("dd", { class: "share", text: `${totalDispatched ? pct((m.dispatched || 0) / totalDispatched) : "–"} (${m.dispatched || 0} PO)` }),
        h("dt", { text: t("supplier.accept") }), h("dd", { text: pct(m.acceptance_rate) }),
        h("dt", { text: t("supplier.errors") }), h("dd", { text: pct(m.api_error_rate) }),
        h("dt", { text: t("supplier.ack") }), h("dd", { text: m.median_ack_ms != null ? fmtAge(m.median_ack_ms) : "–" }),
        h("dt", { text: t("supplier.ship") }), h("dd", { text: m.median_ship_ms != null ? fmtAge(m.median_ship_ms) : "–" }),
        h("dt", { text: t("supplier.late") }), h("dd", { text: m.open_late ?? 0 }),
        h("dt", { text: t("supplier.conn") }), h("dd", { text: conn ? `${conn.plugin}${conn.paused_reason ? " (paused: " + conn.paused_reason + ")" : ""}` : t("none") })),
      h("h3", { text: t("supplier.history") }), line(points));
  }));
  return [h("h2", { text: t("nav.suppliers") }), h("div", { class: "cards" }, cards)];
}

async function orders(query) {
  const q = new URLSearchParams(query).get("q") || "";
  const input = h("input", { id: "order-search", type: "search", value: q, placeholder: t("search.placeholder"), size: 36 });
  const form = h("form", { class: "inline", id: "order-search-form" }, input,
    h("button", { class: "act", id: "order-search-go", type: "submit", text: t("search.go") }));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); location.hash = `#/orders?q=${encodeURIComponent(input.value.trim())}`; });
  const list = await api("GET", q ? `/orders?q=${encodeURIComponent(q)}&limit=100` : "/orders?limit=50");
  const link = (o) => h("a", { href: `#/orders/${o.id}`, class: "order-link", text: o.bill_no || o.external_id });
  return [h("h2", { text: t("nav.orders") }), form,
    table([[t("col.id"), (o) => o.id, "num"], [t("col.bill"), link], [t("col.state"), (o) => badge(o.state)], [t("col.reason"), (o) => o.state_reason]],
      list, { id: "order-results", "data-q": q })];
}

async function order(id) {
  const [o, routing, pos] = await Promise.all([
    api("GET", `/orders/${id}`),
    api("GET", `/orders/${id}/routing`).catch((e) => ({ error: e.message })),
    api("GET", `/purchase-orders?order=${id}&limit=100`).catch(() => ({ purchase_orders: [] })),
  ]);
  const c = o.content || {};
  const timeline = h("ol", { class: "timeline", id: "order-timeline" }, (o.history || []).map((e) =>
    h("li", { class: "event", "data-to": e.to }, h("strong", { text: `${e.from ? e.from + " → " : ""}${e.to}` }), " ",
      h("span", { class: "muted", text: `${fmtTime(e.at)} · ${e.actor}` }), h("div", { text: e.reason }))));
  return [
    h("h2", {}, `${c.bill_no || c.external_id || id} `, badge(o.state)),
    h("p", { class: "muted", text: o.state_reason }),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h3", { text: t("order.timeline") }), timeline),
      h("div", { class: "card", id: "order-routing" }, h("h3", { text: t("order.routing") }), explanation(routing))),
    h("div", { class: "card" }, h("h3", { text: t("order.pos") }),
      table([["PO", (p) => p.po_number], [t("col.supplier"), (p) => p.supplier], [t("col.state"), (p) => badge(p.state)], ["tracking", (p) => (p.tracking || []).map((x) => x.number || x).join(", ")]],
        pos.purchase_orders || [], { id: "order-pos" })),
    h("div", { class: "card" }, h("h3", { text: t("order.lines") }), h("pre", { text: JSON.stringify(c.lines || c, null, 2) })),
  ];
}

/** Each routing decision: why each line went where (chosen and excluded candidates). */
function explanation(r) {
  if (r.error) return h("p", { class: "error", text: r.error });
  const decisions = r.decisions || [];
  if (!decisions.length) return h("p", { class: "muted", text: t("none") });
  return decisions.map((d) => {
    const dec = d.decision || d;
    const excluded = (c) => {
      if (!c.excluded) return "";
      const { reason, ...rest } = c.excluded;
      const more = Object.entries(rest).map(([k, v]) => `${k} ${v}`).join(", ");
      return h("span", { class: "excluded", text: more ? `${reason} (${more})` : reason });
    };
    const outcome = dec.outcome ? `${dec.outcome.kind}${dec.outcome.reason ? ": " + dec.outcome.reason : ""}` : "";
    return h("div", { class: "decision" },
      h("p", {}, h("strong", { text: `#${d.attempt ?? ""} ${fmtTime(d.at)} · ${d.cause ?? ""}` }), " ",
        h("span", { class: "muted", text: `${t("routing.rule_set")} ${dec.rule_set ?? ""} (v${dec.policy_version ?? ""}) · ${outcome} · ${t("routing.landed")} ${dec.landed_cost ?? ""}` })),
      table([[t("routing.line"), (a) => a.line_id], [t("col.supplier"), (a) => a.supplier], ["SKU", (a) => a.supplier_sku],
        [t("routing.unit_cost"), (a) => a.unit_cost, "num"], ["", (a) => (a.backordered ? badge("backordered") : "")]], dec.allocations || [], { class: "allocations" }),
      h("h3", { text: t("routing.candidates") }),
      table([[t("routing.line"), (c) => c.line_id], [t("col.supplier"), (c) => c.supplier], [t("routing.goods"), (c) => c.goods_cost, "num"],
        [t("routing.shipping"), (c) => c.shipping, "num"], [t("supplier.score"), (c) => c.performance, "num"], [t("routing.factor"), (c) => c.factor, "num"],
        ["", (c) => (c.chosen ? badge("chosen") : excluded(c))]], dec.candidates || [], { class: "candidates" }));
  });
}

async function deadLetters() {
  const dead = await api("GET", "/dispatch/dead-letters?limit=200");
  const lastError = (j) => { const e = (j.errors || [])[j.errors.length - 1]; return e ? e.message || JSON.stringify(e) : ""; };
  const actions = (j) => h("span", {},
    h("button", { type: "button", class: "act retry", onclick: () => act("POST", `/dispatch/dead-letters/${j.id}/retry`), text: t("retry") }),
    confirmButton(t("discard"), "plain discard", () => act("POST", `/dispatch/dead-letters/${j.id}/discard`)));
  return [h("h2", { text: t("nav.dead") }),
    table([[t("col.id"), (j) => j.id, "num"], [t("col.kind"), (j) => j.kind], [t("col.key"), (j) => j.key], [t("col.supplier"), (j) => j.supplier],
      [t("col.attempts"), (j) => j.attempts, "num"], [t("col.error"), lastError], ["", actions]], dead, { id: "dead-letters" })];
}

/** Bytes as standard base64, in chunks (a component is megabytes). */
function base64(buf) {
  const bytes = new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** Install (deploy) a package: its manifest, its component, its config (key = value lines). */
function installForm() {
  const manifest = h("input", { type: "file", id: "pkg-manifest", accept: ".toml" });
  const component = h("input", { type: "file", id: "pkg-component", accept: ".wasm" });
  const config = h("textarea", { id: "pkg-config", class: "short", placeholder: "base_url = https://..." });
  const activate = h("input", { type: "checkbox", id: "pkg-activate" });
  const go = async () => {
    try {
      if (!manifest.files[0] || !component.files[0]) throw new Error(t("install.need"));
      const cfg = {};
      for (const line of config.value.split("\n")) {
        const i = line.indexOf("=");
        if (line.trim() && i > 0) cfg[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      const body = { manifest: await manifest.files[0].text(), component_base64: base64(await component.files[0].arrayBuffer()), config: cfg, activate: activate.checked };
      const r = await api("POST", "/plugins", body);
      say(`${t("done")}: ${r.name}@${r.version}`);
      route();
    } catch (e) { say(e.message, true); }
  };
  return h("details", { class: "card install" }, h("summary", { text: t("install") }),
    h("div", { class: "row" }, h("label", { text: "manifest.toml " }), manifest, h("label", { text: "component.wasm " }), component),
    config,
    h("div", { class: "row" }, h("label", {}, activate, ` ${t("activate")}`),
      h("button", { type: "button", class: "act", id: "pkg-install", onclick: go, text: t("install") })));
}

async function plugins() {
  const list = await api("GET", "/plugins");
  return [h("h2", { text: t("nav.plugins") }), installForm(), h("div", { class: "stack" }, list.map((p) => {
    const percent = h("input", { type: "number", min: 1, max: 99, value: 10, class: "canary-percent" });
    const versions = table([
      [t("col.version"), (v) => v.version + (v.version === p.active ? ` (${t("active")})` : "")],
      [t("col.calls"), (v) => v.stats.calls, "num"],
      [t("col.failures"), (v) => v.stats.calls - v.stats.ok, "num"],
      [t("col.traps"), (v) => v.stats.traps, "num"],
      [t("col.mean"), (v) => `${(v.stats.mean_us / 1000).toFixed(1)} ms`, "num"],
      [t("col.sha"), (v) => v.sha256.slice(0, 12)],
      ["", (v) => v.version === p.active ? "" : h("span", {},
        h("button", { type: "button", class: "act plain activate", "data-version": v.version, onclick: () => act("POST", `/plugins/${encodeURIComponent(p.name)}/versions/${v.version}/activate`), text: t("activate") }),
        h("button", { type: "button", class: "act plain canary", "data-version": v.version, onclick: () => act("POST", `/plugins/${encodeURIComponent(p.name)}/versions/${v.version}/canary`, { percent: Number(percent.value) }), text: t("canary") }))],
    ], p.versions || []);
    return h("div", { class: "card plugin", "data-name": p.name },
      h("h3", {}, p.name, " ", p.disabled ? badge("disabled") : badge(p.active ? "ok" : "none"), " ", h("span", { class: "active-version", text: p.active || "" })),
      h("p", { class: "muted", text: p.rollback_to ? `${t("rollback_to")} ${p.rollback_to}` : "" }),
      p.canary ? h("p", { class: "canary-state", text: `${t("canary")}: ${JSON.stringify(p.canary)}` }) : null,
      versions,
      h("div", { class: "row" },
        p.rollback_to ? confirmButton(t("rollback"), "rollback", () => act("POST", `/plugins/${encodeURIComponent(p.name)}/rollback`)) : null,
        p.canary ? h("button", { type: "button", class: "act plain", onclick: () => act("DELETE", `/plugins/${encodeURIComponent(p.name)}/canary`), text: t("canary.stop") }) : null,
        p.disabled ? null : confirmButton(t("disable"), "plain disable", () => act("POST", `/plugins/${encodeURIComponent(p.name)}/disable`)),
        h("label", { text: `${t("canary")} ${t("percent")} ` }), percent));
  }))];
}

async function routing() {
  const policy = await api("GET", "/routing/policy").catch((e) => ({ version: null, body: "", error: e.message }));
  const versions = (await api("GET", "/routing/policies?limit=50").catch(() => ({ versions: [] }))).versions;
  const edit = h("textarea", { id: "policy-text", spellcheck: "false" });
  edit.value = policy.body || "";
  const history = table([
    [t("col.version"), (v) => `v${v.version}${v.active ? ` (${t("active")})` : ""}`],
    [t("col.actor"), (v) => v.loaded_by], [t("col.at"), (v) => fmtTime(v.loaded_at)],
    ["", (v) => h("button", { type: "button", class: "act plain load-version", "data-version": v.version,
      onclick: () => { edit.value = v.body; say(`v${v.version} → ${t("policy.whatif")}`); }, text: t("policy.load") })],
  ], versions, { id: "policy-versions" });
  const out = h("div", { id: "what-if" });
  const run = async () => {
    try {
      const r = await api("POST", "/routing/what-if?orders=1000&moved=50", edit.value);
      const suppliers = [...new Set([...Object.keys(r.current.share_percent), ...Object.keys(r.proposed.share_percent)])].sort();
      out.replaceChildren(
        h("h3", { id: "what-if-summary", text: `${t("changed")}: ${r.moved_count} / ${r.orders} · Δ ${t("routing.landed")} ${r.cost_delta}` }),
        table([[t("col.supplier"), (x) => x], [`v${r.current.policy_version} %`, (x) => r.current.share_percent[x] ?? "0", "num"],
          [`v${r.proposed.policy_version} %`, (x) => r.proposed.share_percent[x] ?? "0", "num"]], suppliers, { class: "shares" }),
        h("h3", { text: t("changed") }),
        table([[t("nav.orders"), (m) => m.order], [`v${r.current.policy_version}`, (m) => `${m.current} (${m.current_cost})`],
          [`v${r.proposed.policy_version}`, (m) => `${m.proposed} (${m.proposed_cost})`]], r.moved, { id: "what-if-moved" }));
    } catch (e) { say(e.message, true); }
  };
  return [h("h2", { text: t("nav.routing") }),
    h("p", { class: "muted", text: policy.error || `${t("policy.current")}: v${policy.version}` }),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, edit, h("div", { class: "row" },
        h("button", { type: "button", class: "act", id: "what-if-run", onclick: run, text: t("policy.run") }),
        confirmButton(t("policy.save"), "plain", () => act("PUT", "/routing/policy", edit.value)))),
      h("div", { class: "card" }, h("h3", { text: t("policy.whatif") }), out)),
    h("div", { class: "card" }, h("h3", { text: t("policy.versions") }), history)];
}

async function alerts() {
  const r = await api("GET", "/alerts?limit=200");
  return [h("h2", { text: t("nav.alerts") }),
    table([[t("col.at"), (a) => fmtTime(a.fired_at || a.at)], [t("col.rule"), (a) => a.rule], [t("col.subject"), (a) => a.subject],
      [t("col.state"), (a) => badge(a.resolved_at ? "resolved" : "firing")], [t("col.message"), (a) => a.message]], r.alerts || [], { id: "alerts" })];
}

async function audit() {
  const r = await api("GET", "/audit?limit=200");
  return [h("h2", { text: t("nav.audit") }),
    table([[t("col.at"), (e) => fmtTime(e.at)], [t("col.actor"), (e) => `${e.actor} (${e.role})`], [t("col.action"), (e) => `${e.method} ${e.path}`],
      [t("col.status"), (e) => e.status, "num"], [t("col.before"), (e) => change(e.before)], [t("col.after"), (e) => change(e.after)]], r.entries || [], { id: "audit" })];
}

function change(v) {
  if (v === null || v === undefined) return "";
  return h("code", { class: "change", text: typeof v === "string" ? v : JSON.stringify(v) });
}

const VIEWS = { overview, suppliers, orders, "dead-letters": deadLetters, plugins, routing, alerts, audit };

async function route() {
  clearTimeout(timer);
  applyText();
  if (!token) { loginView(); return; }
  $("#nav").hidden = false; $("#logout").hidden = false;
  const [path, query] = (location.hash.replace(/^#\/?/, "") || "overview").split("?");
  const parts = path.split("/");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${parts[0]}`);
  try {
    const content = parts[0] === "orders" && parts[1] ? await order(Number(parts[1])) : await (VIEWS[parts[0]] || overview)(query || "");
    $("#main").replaceChildren(...content);
  } catch (e) {
    if (e.status === 401) return;
    $("#main").replaceChildren(h("p", { class: "error", id: "view-error", text: e.message }));
  }
  // The flow pages follow the flow; pages with forms stay put.
  if (["overview", "suppliers"].includes(parts[0] || "overview")) timer = setTimeout(route, 5000);
}

function logout() {
  token = ""; sessionStorage.removeItem("daifa.token"); clearTimeout(timer); loginView();
}

function applyText() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("#lang").textContent = lang === "zh" ? "English" : "中文";
}

document.addEventListener("DOMContentLoaded", () => {
  $("#lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("daifa.lang", lang); route(); });
  $("#logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  route();
});
