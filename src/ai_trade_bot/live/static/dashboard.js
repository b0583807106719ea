"use strict";
// Every value from the API is written with textContent (never as HTML): a symbol, a
// reason or a model name cannot inject script. The page's Content-Security-Policy
// refuses inline script anyway.
const fmt = (v, d = 4) => (v === null || v === undefined) ? "" :
  (typeof v === "number" ? v.toFixed(d) : String(v));
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) { node.textContent = text; }
  if (cls) { node.className = cls; }
  return node;
}
function fill(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map(r => { const tr = document.createElement("tr");
    r.forEach(v => tr.appendChild(el("td", v))); return tr; }));
}
function item(label, value, id, cls) {
  const span = el("span", `${label} `, cls);
  if (id) { span.id = id; }
  span.appendChild(el("b", value));
  return span;
}
function age(seconds) {
  if (seconds === null || seconds === undefined) { return "never"; }
  if (seconds < 120) { return `${seconds.toFixed(0)} s ago`; }
  if (seconds < 7200) { return `${(seconds / 60).toFixed(0)} min ago`; }
  return `${(seconds / 3600).toFixed(1)} h ago`;
}
async function get(path) {
  const response = await fetch(path);
  if (!response.ok) { throw new Error(`${path}: ${response.status}`); }
  return response.json();
}
const layout = { margin: { l: 50, r: 10, t: 10, b: 30 }, showlegend: false };
function showStatus(s) {
  const parts = [
    item("symbol", s.symbol), item("mode", s.mode), item("model", s.model_version),
    item("trading", s.trading || (s.model_state === "ok" ? "model" : s.model_note)),
    item("last candle", s.last_candle), item("feed", s.feed_state),
    item("equity", fmt(s.equity, 2)),
    item("runner", `${s.runner} (updated ${age(s.age_seconds)})`, "runner",
      s.running ? "" : "stopped"),
    el("span", s.paused ? "paused" : (s.running ? "running" : "stopped"), s.running ? "" : "stopped"),
  ];
  parts[parts.length - 1].id = "state";
  if (s.halted) {
    const halted = el("span", `halted: ${s.halted_reason}`, "halted");
    halted.id = "halted";
    parts.push(halted);
  }
  document.getElementById("status").replaceChildren(...parts);
}
let failing = "";
let chosen = "";  // the symbol shown (every symbol's runner keeps its own account)
function showSymbols(symbols) {
  const select = document.getElementById("symbol");
  const names = symbols.map(s => s.symbol);
  if (!names.includes(chosen)) { chosen = names[0] || ""; }
  if (select.options.length !== names.length + 1) {
    select.replaceChildren(...names.map(n => { const o = el("option", n); o.value = n; return o; }),
      Object.assign(el("option", "all symbols (commands)"), { value: "" }));
    select.value = chosen;
  }
  document.getElementById("symbol-box").hidden = names.length < 2;
}
const scoped = (path) => `${path}${path.includes("?") ? "&" : "?"}symbol=${encodeURIComponent(chosen)}`;
function showBook(b) {
  document.getElementById("book").hidden = false;
  document.getElementById("book-status").replaceChildren(
    item("symbols", String(b.symbols.length)), item("mode", b.mode),
    item("model", b.model_version), item("last step", b.last_candle),
    item("equity", fmt(b.equity, 2)),
    item("runner", `${b.runner} (updated ${age(b.age_seconds)})`, "book-runner",
      b.running ? "" : "stopped"));
  Plotly.react("book-equity-chart", [{ x: b.curve.time, y: b.curve.equity, mode: "lines" }],
    layout, { displayModeBar: false });
  const sectors = Object.entries(b.exposure.sector).map(([name, values]) => ({
    x: b.curve.time, y: values, name, mode: "lines", stackgroup: "exposure" }));
  Plotly.react("book-exposure-chart", sectors, { ...layout, showlegend: true },
    { displayModeBar: false });
  fill("book-limits", Object.entries(b.limits).map(([name, v]) => [name, fmt(v.value, 3),
    fmt(v.limit, 3), v.closeness === null ? "" : `${(100 * v.closeness).toFixed(0)}%`]));
  document.querySelectorAll("#book-limits tbody tr").forEach((tr, i) => {
    const v = Object.values(b.limits)[i];
    if (v.closeness !== null && v.closeness >= 0.9) { tr.className = "near"; }
  });
  fill("book-clusters", Object.entries(b.exposure.cluster).map(([k, v]) => [k, fmt(v, 3)]));
  fill("book-symbols", b.symbols.map(r => [r.symbol, r.sector, fmt(r.units, 4),
    fmt(r.weight, 3), fmt(r.target, 3), fmt(r.votes.down, 3), fmt(r.votes.up, 3),
    fmt(r.votes.confidence, 3), fmt(r.votes.expected_return, 5),
    r.reason || ""]));
  fill("book-trades", b.trades.map(t => [t.time, t.symbol, t.side > 0 ? "long" : "short",
    fmt(t.units, 4), fmt(t.entry_price), fmt(t.exit_price), fmt(t.pnl, 2), t.reason]));
}
async function refresh() {
  try {
    const health = await get("/health");  // what the state file holds: no failed loads
    const book = health.book ? await get("/portfolio") : null;
    if (book) {
      showBook(book);
      showSymbols(book.symbols);
    }
    const all = health.runners ? await get("/status") : null;
    document.getElementById("single").hidden = !all;
    document.getElementById("status").hidden = !all;
    if (!all) {
      if (!book) { throw new Error("no runner has started yet"); }
      if (failing) { failing = ""; setMessage("", false); }
      const a = await get("/alerts?limit=10");
      fill("alerts", a.map(r => [new Date(r.at * 1000).toISOString(), r.kind, r.message]));
      return;
    }
    showSymbols(all.symbols);
    const s = all.symbols.find(x => x.symbol === chosen);
    showStatus(s);
    const curves = (await get(scoped("/equity"))).symbols;
    const e = curves[chosen] || { time: [], equity: [], drawdown: [] };
    Plotly.react("equity-chart", [{ x: e.time, y: e.equity, mode: "lines" }], layout, { displayModeBar: false });
    Plotly.react("drawdown-chart", [{ x: e.time, y: e.drawdown, mode: "lines", fill: "tozeroy",
      line: { color: "#c33" } }], layout, { displayModeBar: false });
    const decisions = await get(scoped("/decisions?limit=1"));
    if (decisions.length) {
      const d = decisions[0];
      const direction = ["down", "flat", "up", "confidence"];
      const rows = Object.entries(d.votes).map(([agent, v]) => [agent,
        ...direction.map(k => fmt(v[k])),
        Object.entries(v).filter(([k]) => !direction.includes(k))
          .map(([k, x]) => `${k} ${fmt(x)}`).join(", ")]);
      rows.push(["meta-agent", fmt(d.meta.down), fmt(d.meta.flat), fmt(d.meta.up),
        fmt(d.meta.confidence), `disagreement ${fmt(d.meta.disagreement)}`]);
      fill("votes", rows);
      document.getElementById("decision").textContent =
        `${d.time}: signal ${d.signal}, target ${fmt(d.target, 3)}, reason: ${d.reason}`;
      showExplain(d);
    }
    showHealth(await get("/models"));
    showChart(await get(scoped("/chart?limit=200")));
    const t = await get(scoped("/trades?limit=30"));
    fillClassed("trades", t.map(r => [[r.exit_time, ""], [r.symbol, ""],
      [r.side > 0 ? "long" : "short", ""], [r.entry_time || "", ""], [fmt(r.units, 4), ""],
      [fmt(r.entry_price), ""], [fmt(r.exit_price), ""], [fmt(r.fees, 2), ""],
      [fmt(r.pnl, 2), r.pnl > 0 ? "good" : (r.pnl < 0 ? "bad" : "")], [pct(r.return), ""],
      [r.reason, ""]]));
    const p = await get("/positions");
    fill("positions", p.map(r => [r.symbol, fmt(r.units, 6), fmt(r.entry_price), fmt(r.cash, 2), fmt(r.equity, 2)]));
    const o = await get(scoped("/orders?limit=10"));
    fill("orders", o.orders.map(r => [r.time, r.side, fmt(r.target, 3), fmt(r.amount, 6), r.status]));
    fill("fills", o.fills.map(r => [r.time, r.kind, fmt(r.units, 6), fmt(r.price), fmt(r.fee, 4)]));
    const a = await get(scoped("/alerts?limit=10"));
    fill("alerts", a.map(r => [new Date(r.at * 1000).toISOString(), r.kind, r.message]));
    const drift = await get("/drift");
    const summary = drift.drift_summary;
    document.getElementById("drift").textContent = summary ?
      `${drift.status}: ${(100 * summary.feature_drift_share).toFixed(1)}% of features drifted ` +
      `(${summary.method.numerical}); retrain required: ${drift.retrain_required ? drift.retrain_required.retrain : "n/a"}` :
      drift.status;
    if (failing) {  // an error that has passed is cleared
      failing = "";
      setMessage("", false);
    }
  } catch (error) {
    failing = `refresh: ${error.message}`;
    setMessage(failing, true);
  }
}
const pct = (v) => (v === null || v === undefined) ? "" : `${(100 * v).toFixed(1)}%`;
function since(seconds) {
  if (seconds === null || seconds === undefined) { return ""; }
  const days = seconds / 86400;
  return days >= 1 ? `${days.toFixed(1)} d ago` : age(seconds);
}
function fillClassed(id, rows) {
  // rows of [text, class] pairs (class "" for none)
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows.map(r => { const tr = document.createElement("tr");
    r.forEach(([v, c]) => tr.appendChild(el("td", v, c))); return tr; }));
}
const versus = (live, oof) => (live === null || live === undefined || oof === null ||
  oof === undefined) ? "" : (live >= oof - 0.02 ? "good" : "bad");
function showHealth(h) {
  fillClassed("health", h.symbols.map(s => {
    const meta = s.agents.find(a => a.agent === "meta") || {};
    const agents = s.agents.filter(a => a.agent !== "meta" && a.oof_accuracy !== undefined &&
      a.accuracy !== undefined);
    const weakest = agents.sort((a, b) => (a.accuracy - a.oof_accuracy) -
      (b.accuracy - b.oof_accuracy))[0];
    return [[s.symbol, ""], [`${s.model_version || ""} ${s.method || ""}`, ""],
      [s.trained_to || "", ""], [since(s.seconds_since_packaged), ""],
      [meta.scored === undefined ? "0" : String(meta.scored), ""],
      [pct(meta.accuracy), versus(meta.accuracy, meta.oof_accuracy)], [pct(meta.oof_accuracy), ""],
      [fmt(meta.log_loss, 3), versus(-meta.log_loss, -meta.oof_log_loss)],
      [fmt(meta.oof_log_loss, 3), ""], [pct(meta.overconfidence), ""],
      [fmt(meta.prediction_drift, 3), ""],
      [weakest ? `${weakest.agent} ${(100 * (weakest.accuracy - weakest.oof_accuracy)).toFixed(1)} pts` : "", ""]];
  }));
  const mine = h.symbols.find(s => s.symbol === chosen);
  document.getElementById("health-agents-title").textContent = `Agents of ${chosen}`;
  fillClassed("health-agents", (mine ? mine.agents : []).map(a => [[a.agent, ""],
    [String(a.scored), ""], [String(a.pending), ""],
    [pct(a.accuracy), versus(a.accuracy, a.oof_accuracy)], [pct(a.oof_accuracy), ""],
    [fmt(a.log_loss, 3), versus(-a.log_loss, -a.oof_log_loss)], [fmt(a.oof_log_loss, 3), ""],
    [pct(a.confidence), ""], [pct(a.overconfidence), ""], [fmt(a.prediction_drift, 3), ""],
    [fmt(a.expected_return, 5), ""], [fmt(a.realised_return, 5), ""]]));
}
function showChart(c) {
  document.getElementById("candles-title").textContent = `Candles, fills and stops: ${c.symbol}`;
  const exitKinds = ["stop", "target", "risk"];
  const side = (buy) => c.fills.filter(x => (x.units > 0) === buy && !exitKinds.includes(x.kind));
  const marker = (rows, name, symbol, color) => ({ x: rows.map(f => f.time),
    y: rows.map(f => f.price), mode: "markers", name,
    marker: { symbol, size: 11, color, line: { width: 1, color: "#222" } },
    text: rows.map(f => `${f.kind} ${fmt(f.units, 4)} @ ${fmt(f.price)}`), hoverinfo: "text+x" });
  const exits = c.fills.filter(f => exitKinds.includes(f.kind));
  Plotly.react("candles-chart", [
    { type: "candlestick", x: c.time, open: c.open, high: c.high, low: c.low, close: c.close,
      name: c.symbol, increasing: { line: { color: "#2a2" } }, decreasing: { line: { color: "#c33" } } },
    { x: c.time, y: c.stop, mode: "lines", name: "stop", line: { color: "#c33", dash: "dot", shape: "hv" } },
    { x: c.time, y: c.take, mode: "lines", name: "target", line: { color: "#2a2", dash: "dot", shape: "hv" } },
    marker(side(true), "buy", "triangle-up", "#2a2"),
    marker(side(false), "sell", "triangle-down", "#c33"),
    marker(exits, "stop / target / risk exit", "x", "#f90"),
  ], { ...layout, showlegend: true, legend: { orientation: "h" },
    xaxis: { rangeslider: { visible: false } } }, { displayModeBar: false });
}
function showExplain(d) {
  const parts = [`${d.time}: target ${fmt(d.target, 3)}`, `rule: ${d.rule || d.reason}`];
  if (d.reason && d.rule && !d.rule.startsWith(d.reason)) { parts.push(`then: ${d.reason}`); }
  if (d.expected_return !== null) { parts.push(`expected return ${fmt(d.expected_return * 1e4, 1)} bps`); }
  if (d.risk_score !== null) { parts.push(`risk score ${pct(d.risk_score)} of equity a sigma`); }
  if (d.stop_sigmas !== null) { parts.push(`stop ${fmt(d.stop_sigmas, 2)} sigmas away`); }
  document.getElementById("explain").textContent = parts.join("; ");
  fill("contributions", Object.entries(d.contributions || {}).map(([a, v]) => [a, fmt(v, 4)]));
}
function setMessage(text, isError) {
  const message = document.getElementById("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}
async function command(name) {
  const token = document.getElementById("token").value;
  const target = document.getElementById("symbol").value;  // "" means every symbol
  const path = target ? `/${name}?symbol=${encodeURIComponent(target)}` : `/${name}`;
  const response = await fetch(path, { method: "POST",
    headers: { "Authorization": `Bearer ${token}` } });
  const body = await response.json();
  setMessage(response.ok ? `${name} queued (applied at the next candle)` : `${name}: ${body.detail}`,
    !response.ok);
}
document.addEventListener("DOMContentLoaded", () => {
  for (const name of ["pause", "resume", "flatten"]) {
    document.getElementById(name).addEventListener("click", () => command(name));
  }
  document.getElementById("symbol").addEventListener("change", (event) => {
    if (event.target.value) { chosen = event.target.value; refresh(); }
  });
  refresh();
  setInterval(refresh, 1500);
});
