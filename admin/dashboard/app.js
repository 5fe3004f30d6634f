// api-gateway dashboard: polls /gateway/health about once a second and
// renders it; every control is a POST to the admin API on the same origin.
// Vanilla JS, no build step, no network access beyond the admin server.
// DOM is built with createElement/textContent only (never innerHTML with
// data), and long-lived elements are updated in place so buttons keep focus.
"use strict";

(function () {
  const POLL_MS = 1000;
  const HISTORY_SECONDS = 300;

  const LIMITERS = {
    "fixed-window": { label: "Fixed window", params: { limit: 100, window_ms: 10000 },
      desc: "Counter per aligned window. Simple, but allows 2x bursts at window boundaries." },
    "sliding-log": { label: "Sliding log", params: { limit: 100, window_ms: 10000 },
      desc: "One timestamp per request: exact, at O(limit) memory per client." },
    "sliding-counter": { label: "Sliding counter", params: { limit: 100, window_ms: 10000 },
      desc: "Weighted average of the current and previous windows (Cloudflare, Stripe)." },
    "token-bucket": { label: "Token bucket", params: { capacity: 20, refill_per_sec: 2 },
      desc: "Bursts up to capacity, then a steady refill rate (AWS API Gateway)." },
    "leaky-bucket": { label: "Leaky bucket", params: { capacity: 10, leak_per_sec: 5 },
      desc: "Queues requests and releases them at a fixed rate: smooths traffic (Shopify)." },
  };
  const BALANCERS = {
    "round-robin": { label: "Round robin", params: {},
      desc: "Each backend in turn: A, B, C, A, B, C." },
    "weighted-round-robin": { label: "Weighted RR", params: {},
      desc: "Smooth weighted rotation, proportional to each backend's weight." },
    "least-connections": { label: "Least connections", params: {},
      desc: "Fewest requests in flight wins; handles slow backends." },
    "ip-hash": { label: "IP hash", params: {},
      desc: "Same client address, same backend: sticky sessions." },
    "consistent-hash": { label: "Consistent hash", params: { virtual_nodes: 160 },
      desc: "Hash ring with virtual nodes: minimal reshuffling when a backend leaves." },
    "p2c-ewma": { label: "P2C + EWMA", params: { decay_ms: 10000 },
      desc: "Of two random backends, the lower latency × (in flight + 1): follows response times (Finagle, Linkerd)." },
  };

  // ---- tiny helpers -------------------------------------------------------

  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function setText(node, text) {
    const t = String(text);
    if (node && node.textContent !== t) node.textContent = t;
  }

  const fmtInt = (n) => (Number(n) || 0).toLocaleString("en-US");
  const fmtMs = (n) => (n === undefined || n === null ? "–" : `${Math.round(Number(n) * 10) / 10} ms`);

  function fmtDuration(ms) {
    let s = Math.floor((ms || 0) / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `up ${d}d ${h}h`;
    if (h) return `up ${h}h ${m}m`;
    if (m) return `up ${m}m ${s}s`;
    return `up ${s}s`;
  }

  function fmtClock(unixMs) {
    const d = new Date(unixMs);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  // ---- API ----------------------------------------------------------------

  // With a token configured the page needs it too: open the dashboard as
  // /#token=... once; it is kept for this tab only (sessionStorage).
  (function captureToken() {
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      sessionStorage.setItem("admin-token", decodeURIComponent(m[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  })();

  async function api(method, path, body) {
    const headers = {};
    const token = sessionStorage.getItem("admin-token");
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    const type = res.headers.get("content-type") || "";
    const data = type.includes("json") ? await res.json().catch(() => ({})) : await res.text();
    if (!res.ok) {
      const msg = (data && data.error) || `HTTP ${res.status}`;
      const err = new Error(msg);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  // ---- toasts and local events --------------------------------------------

  const localEvents = []; // UI-side failures, shown in the event log too

  function toast(message, kind) {
    const t = el("div", { class: `toast toast-${kind || "info"}`, role: "status" }, message);
    $("#toasts").append(t);
    setTimeout(() => t.classList.add("toast-out"), 3500);
    setTimeout(() => t.remove(), 4000);
  }

  function noteFailure(what, err) {
    const message = `${what} failed: ${err.message}`;
    localEvents.push({ at: Date.now(), kind: "error", message, source: "ui" });
    if (localEvents.length > 50) localEvents.shift();
    toast(message, "bad");
    renderEvents();
  }

  // Runs an action: disables its button meanwhile, refreshes right after.
  async function act(button, what, fn) {
    if (button) button.disabled = true;
    try {
      const result = await fn();
      await Promise.all([pollHealth(true), pollEvents(), pollDemo(), pollShadow()]);
      return result;
    } catch (err) {
      noteFailure(what, err);
      return undefined;
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- state --------------------------------------------------------------

  const state = {
    health: null,
    fetchedAt: 0,
    prev: null, // {t, totals} of the previous sample, for rates
    samples: [], // {t, ok, limited, err, broken} per poll, req/s
    adminEvents: [],
    crashed: {}, // backend name -> true/false from the demo backend, null: not a demo backend
    routes: null, // the last /gateway/routes (configs with routes only)
    consumers: null, // the last /gateway/consumers (configs with routes only)
    limiterDirty: false,
    balancerDirty: false,
    shadow: undefined, // the last /gateway/rate-limiter/shadow; null: this gateway has none
    shadowScope: null, // the scope shown: "top-level" or a route name
    trace: undefined, // the last /gateway/trace; null: this gateway has none
    traceId: null, // the trace shown below the list
  };

  // ---- pipeline -----------------------------------------------------------

  const STAGE_INFO = {
    "logger": "logs every request, even rejected ones",
    "cors": "adds CORS headers, answers preflight",
    "auth": "checks API keys and JWTs: 401/403",
    "rate-limit": "429 when a client exceeds its limit",
    "circuit-breaker": "picks a healthy backend; 503 when all circuits are open",
    "proxy": "forwards to the backend, streams the answer back",
  };

  function renderPipeline(h) {
    const list = $("#pipeline");
    const stages = h.pipeline || [];
    const key = stages.join(">") + "|" + h.listen + "|" + (h.rateLimiter && h.rateLimiter.algorithm) + "|" + (h.loadBalancer && h.loadBalancer.algorithm);
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren();
    list.append(el("li", { class: "stage stage-edge" }, el("span", { class: "stage-name", text: "client" }),
      el("span", { class: "stage-detail", text: h.listen ? `HTTP/1.1 to ${h.listen}` : "HTTP/1.1" })));
    for (const s of stages) {
      let detail = STAGE_INFO[s] || "";
      if (s === "rate-limit" && h.rateLimiter) detail = h.rateLimiter.algorithm;
      if (s === "circuit-breaker" && h.loadBalancer) detail = `${h.loadBalancer.algorithm} + breaker`;
      list.append(el("li", { class: "stage", "data-stage": s, title: STAGE_INFO[s] || s },
        el("span", { class: "stage-name", text: s }),
        el("span", { class: "stage-detail", text: detail })));
    }
    const names = (h.backends || []).map((b) => b.name).join(" · ");
    list.append(el("li", { class: "stage stage-edge" }, el("span", { class: "stage-name", text: "backends" }),
      el("span", { class: "stage-detail", text: names })));
  }

  // ---- totals and chart ---------------------------------------------------

  function sampleRates(h, now) {
    const t = h.totals || {};
    const st = t.status || {};
    const cur = {
      t: now,
      ok: Number(st["2xx"]) || 0,
      s5xx: Number(st["5xx"]) || 0,
      limited: Number(t.rate_limited) || 0,
      broken: Number(t.circuit_broken) || 0,
      requests: Number(t.requests) || 0,
    };
    const prev = state.prev;
    // Too close to the previous sample (an extra poll after an action):
    // keep the older baseline so no interval is lost or inflated.
    if (prev && cur.t - prev.t < 200) return;
    state.prev = cur;
    if (!prev) return;
    const dt = (cur.t - prev.t) / 1000;
    const d = (k) => cur[k] - prev[k];
    // Any counter going backwards means the metrics were reset: that
    // interval has no meaningful delta, so record a gap of zeros.
    if (["ok", "s5xx", "limited", "broken", "requests"].some((k) => d(k) < 0)) {
      state.samples.push({ t: now, ok: 0, limited: 0, err: 0, broken: 0, total: 0 });
    } else {
      // Circuit-open 503s are counted in the 5xx class too: split them out.
      const broken = d("broken");
      const err = Math.max(0, d("s5xx") - broken);
      state.samples.push({
        t: now,
        ok: d("ok") / dt,
        limited: d("limited") / dt,
        err: err / dt,
        broken: broken / dt,
        total: d("requests") / dt,
      });
    }
    const cutoff = now - HISTORY_SECONDS * 1000;
    while (state.samples.length && state.samples[0].t < cutoff) state.samples.shift();
  }

  function renderTotals(h) {
    const t = h.totals || {};
    setText($("#stat-requests"), fmtInt(t.requests));
    setText($("#stat-proxied"), fmtInt(t.proxied));
    setText($("#stat-limited"), fmtInt(t.rate_limited));
    setText($("#stat-broken"), fmtInt(t.circuit_broken));
    // Same split as the chart: circuit-open 503s are counted in the 5xx
    // class too, so "5xx errors" is 5xx minus the fail-fast ones.
    const s5xx = Number((t.status || {})["5xx"]) || 0;
    setText($("#stat-errors"), fmtInt(Math.max(0, s5xx - (Number(t.circuit_broken) || 0))));
    const pct = t.requests ? Math.round((100 * (t.proxied || 0)) / t.requests) : 0;
    setText($("#stat-proxied-pct"), t.requests ? `${pct}% of requests` : "\u00a0");
    const c = h.connections || {};
    setText($("#stat-open"), fmtInt(c.open));
    setText($("#stat-accepted"), `${fmtInt(c.accepted)} accepted`);
    const last = state.samples[state.samples.length - 1];
    setText($("#stat-rps"), `${(last ? last.total : 0).toFixed(1)} req/s`);
    setText($("#listen"), h.listen ? `gateway ${h.listen}` : "");
    setText($("#uptime"), fmtDuration(h.uptime_ms));
    const cfg = h.config || {};
    const lr = cfg.last_reload;
    setText($("#config-gen"), `config gen ${fmtInt(h.generation || 0)}${lr && lr.result === "error" ? " (last reload refused)" : ""}`);
    $("#config-gen").title = lr ? `Last reload ${lr.at}: ${lr.result === "ok" ? lr.changes : lr.error}` : "Config generation: no reload yet";
  }

  const CHART_COLORS = { ok: "#22c55e", limited: "#f59e0b", err: "#ef4444", broken: "#a855f7" };

  function drawChart() {
    const canvas = $("#rps-chart");
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 600;
    const cssH = canvas.clientHeight || 180;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const padL = 40, padR = 8, padT = 8, padB = 20;
    const w = cssW - padL - padR, hgt = cssH - padT - padB;
    const now = Date.now();
    const samples = state.samples;
    let max = 1;
    for (const s of samples) max = Math.max(max, s.ok + s.limited + s.err + s.broken);
    max = niceCeil(max);

    // Grid and y labels.
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#8b95a7";
    ctx.strokeStyle = "rgba(148,163,184,0.15)";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 5; i++) {
      const y = padT + hgt - (hgt * i) / 5;
      ctx.beginPath(); ctx.moveTo(padL, Math.round(y) + 0.5); ctx.lineTo(padL + w, Math.round(y) + 0.5); ctx.stroke();
      ctx.fillText(formatRate((max * i) / 5), padL - 6, y);
    }
    // x labels: minutes ago.
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let m = 0; m <= 5; m++) {
      const x = padL + w - (w * m * 60) / HISTORY_SECONDS;
      ctx.fillText(m === 0 ? "now" : `-${m}m`, x, padT + hgt + 5);
    }
    if (!samples.length) {
      ctx.fillText("waiting for traffic samples…", padL + w / 2, padT + hgt / 2 - 6);
      return;
    }
    // Stacked bars, one per sample, positioned by time.
    const pxPerMs = w / (HISTORY_SECONDS * 1000);
    const barW = Math.max(2, (w / HISTORY_SECONDS) * 0.8);
    for (const s of samples) {
      const x = padL + w - (now - s.t) * pxPerMs;
      if (x < padL) continue;
      let y = padT + hgt;
      for (const k of ["ok", "limited", "err", "broken"]) {
        const v = s[k];
        if (!v) continue;
        const bh = (v / max) * hgt;
        ctx.fillStyle = CHART_COLORS[k];
        ctx.fillRect(x - barW, y - bh, barW, bh);
        y -= bh;
      }
    }
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function formatRate(v) {
    if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
    return v >= 10 || v === 0 ? String(Math.round(v)) : v.toFixed(1);
  }

  // ---- algorithm panels ---------------------------------------------------

  function buildAlgoButtons(containerSel, algos, attr, onPick) {
    const box = $(containerSel);
    for (const [name, info] of Object.entries(algos)) {
      box.append(el("button", {
        class: "algo", type: "button", [attr]: name, title: info.desc,
        onclick: (e) => onPick(name, e.currentTarget),
      }, el("span", { class: "algo-label", text: info.label }), el("span", { class: "algo-name", text: name })));
    }
  }

  function renderParams(boxSel, algo, current, info, markDirty) {
    const box = $(boxSel);
    const keys = Object.keys(info.params);
    const key = algo + ":" + keys.join(",");
    if (box.dataset.key !== key) {
      box.dataset.key = key;
      box.replaceChildren();
      if (!keys.length) box.append(el("span", { class: "hint", text: "no parameters" }));
      for (const k of keys) {
        box.append(el("label", { class: "field" }, k,
          el("input", { type: "number", step: "any", min: "0", "data-param": k, name: k, oninput: markDirty })));
      }
    }
    for (const input of box.querySelectorAll("input[data-param]")) {
      const k = input.dataset.param;
      const v = current && current[k] !== undefined ? current[k] : info.params[k];
      // Never overwrite what the user is typing.
      if (document.activeElement !== input) input.value = v;
    }
  }

  function readParams(boxSel) {
    const params = {};
    for (const input of $(boxSel).querySelectorAll("input[data-param]")) {
      if (String(input.value).trim() === "") continue;
      params[input.dataset.param] = Number(input.value);
    }
    return params;
  }

  function renderAlgos(h) {
    const rl = h.rateLimiter || {};
    const lb = h.loadBalancer || {};
    setText($("#current-limiter"), rl.algorithm || "none");
    setText($("#current-balancer"), lb.algorithm || "none");
    for (const b of document.querySelectorAll("[data-limiter]")) {
      b.classList.toggle("active", b.dataset.limiter === rl.algorithm);
      b.setAttribute("aria-pressed", String(b.dataset.limiter === rl.algorithm));
    }
    for (const b of document.querySelectorAll("[data-balancer]")) {
      b.classList.toggle("active", b.dataset.balancer === lb.algorithm);
      b.setAttribute("aria-pressed", String(b.dataset.balancer === lb.algorithm));
    }
    const li = LIMITERS[rl.algorithm];
    if (li) {
      setText($("#limiter-desc"), li.desc + (rl.key ? ` Keyed by ${rl.key}.` : ""));
      if (!state.limiterDirty) renderParams("#limiter-params", rl.algorithm, rl, li, () => { state.limiterDirty = true; });
    }
    const bi = BALANCERS[lb.algorithm];
    if (bi) {
      setText($("#balancer-desc"), bi.desc);
      if (!state.balancerDirty) renderParams("#balancer-params", lb.algorithm, lb, bi, () => { state.balancerDirty = true; });
      $("#balancer-apply").hidden = Object.keys(bi.params).length === 0;
    }
    const cb = h.circuitBreaker;
    if (cb) {
      setText($("#breaker-info"), `Circuit breaker: opens after ${cb.failure_threshold} failures within ${cb.window_ms / 1000}s, ` +
        `stays open ${cb.open_ms / 1000}s, then lets one probe through (HALF_OPEN).`);
    }
  }

  function switchLimiter(name, button, params) {
    return act(button, `switch rate limiter to ${name}`, async () => {
      await api("POST", `/gateway/rate-limiter/${encodeURIComponent(name)}`, params);
      state.limiterDirty = false;
      toast(`Rate limiter: ${name}`, "ok");
    });
  }

  function switchBalancer(name, button, params) {
    return act(button, `switch load balancer to ${name}`, async () => {
      await api("POST", `/gateway/load-balancer/${encodeURIComponent(name)}`, params);
      state.balancerDirty = false;
      toast(`Load balancer: ${name}`, "ok");
    });
  }

  // ---- shadow limiters ----------------------------------------------------

  // GET /gateway/rate-limiter/shadow: per limiter scope (the top level, then
  // each route with a limiter of its own), the live algorithm first and its
  // shadows after it, each with what it alone would have done to the same
  // requests. Promote is the live switch with the shadow's translated spec.
  const REFERENCE = "sliding-log"; // exact: the yardstick of the accuracy figures
  const shadowRows = new Map(); // scope label + algorithm -> { root, refs }

  const scopeLabel = (l) => (l.scope === "route" ? l.route : "top-level");
  const fmtPct = (r) => `${Math.round(100 * (Number(r) || 0))}%`;
  const fmtRatio = (r) => `${(Number(r) || 0).toFixed(2)}×`;

  async function pollShadow() {
    try {
      state.shadow = await api("GET", "/gateway/rate-limiter/shadow");
    } catch (err) {
      // 404: a gateway without shadows; anything else the health poll reports.
      if (err.status !== 404) return;
      state.shadow = null;
    }
    renderShadow(state.shadow);
  }

  function renderShadow(data) {
    const panel = $("#shadow-panel");
    const limiters = (data && Array.isArray(data.limiters)) ? data.limiters : [];
    const on = !!(data && data.enabled && limiters.length);
    panel.dataset.state = !data ? "unavailable" : on ? "on" : "off";
    $("#shadow-table-wrap").hidden = !on;
    $("#shadow-meta").hidden = !on;
    renderShadowOff(panel.dataset.state);
    setText($("#shadow-rule"), on && data.rule ? `Translation: ${data.rule}.` : "");
    renderShadowScopes(on ? limiters : []);
    if (!on) {
      setText($("#shadow-scope-label"), "");
      clearShadowRows(new Set());
      return;
    }
    const scope = limiters.find((l) => scopeLabel(l) === state.shadowScope) || limiters[0];
    state.shadowScope = scopeLabel(scope);
    panel.dataset.scope = state.shadowScope;
    panel.dataset.live = scope.live || "";
    setText($("#shadow-scope-label"), limiters.length > 1 ? "" : `· ${state.shadowScope}`);
    renderShadowMeta(scope);

    const rows = Array.isArray(scope.algorithms) ? scope.algorithms : [];
    const body = $("#shadow-rows");
    const seen = new Set();
    rows.forEach((r, i) => {
      const key = `${state.shadowScope}\u0000${r.algorithm}`;
      seen.add(key);
      let row = shadowRows.get(key);
      if (!row) {
        row = makeShadowRow(scope, r.algorithm);
        shadowRows.set(key, row);
      }
      if (body.children[i] !== row.root) body.insertBefore(row.root, body.children[i] || null);
      updateShadowRow(row, r);
    });
    clearShadowRows(seen);
  }

  function clearShadowRows(keep) {
    for (const [key, row] of shadowRows) {
      if (!keep.has(key)) {
        row.root.remove();
        shadowRows.delete(key);
      }
    }
  }

  // Off or unavailable: how to turn the shadows on, in a few lines.
  function renderShadowOff(st) {
    const box = $("#shadow-off");
    box.hidden = st === "on" || st === "loading";
    if (box.dataset.key === st) return;
    box.dataset.key = st;
    if (st === "unavailable") {
      box.replaceChildren(el("p", { class: "empty", text: "Shadow limiters are not available on this gateway." }));
      return;
    }
    box.replaceChildren(
      el("p", { class: "empty" }, "Off. To see how every other algorithm would have treated the same traffic, add ",
        el("code", { text: '"rate_limit": {"shadow": "all"}' }), " to the config (or a list, such as ",
        el("code", { text: '["sliding-log", "token-bucket"]' }), ") and reload it: the shadows only count, they never reject."));
  }

  // One button per scope when routes have limiters (and shadows) of their own.
  function renderShadowScopes(limiters) {
    const box = $("#shadow-scopes");
    box.hidden = limiters.length < 2;
    const labels = limiters.map(scopeLabel);
    if (box.dataset.key !== labels.join("\u0000")) {
      box.dataset.key = labels.join("\u0000");
      box.replaceChildren(...labels.map((label) => el("button", {
        class: "seg-btn", type: "button", "data-shadow-scope": label,
        title: label === "top-level" ? "The top-level limiter (and the routes that follow it)" : `The own limiter of route ${label}`,
        onclick: () => {
          state.shadowScope = label;
          renderShadow(state.shadow);
        },
      }, label)));
    }
    for (const b of box.querySelectorAll("[data-shadow-scope]")) {
      const on = b.dataset.shadowScope === state.shadowScope;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    }
  }

  function renderShadowMeta(scope) {
    const w = Number(scope.window_ms) || 0;
    const parts = [
      `live ${scope.live || "?"}`,
      `limit ${fmtInt(scope.limit)} per ${w % 1000 ? `${w} ms` : `${w / 1000}s`} in window form`,
      `${fmtInt(scope.keys_tracked)} of ${fmtInt(scope.max_keys)} keys tracked`,
    ];
    if (Number(scope.keys_replaced) > 0) parts.push(`${fmtInt(scope.keys_replaced)} keys replaced (table full: figures approximate)`);
    const routes = scope.routes || [];
    if (routes.length) parts.push(`route${routes.length === 1 ? "" : "s"}: ${routes.join(", ")}`);
    setText($("#shadow-meta"), parts.join(" · "));
  }

  function makeShadowRow(scope, algorithm) {
    const refs = {};
    const cell = (k, cls) => (refs[k] = el("td", { class: cls, "data-field": k }));
    const info = LIMITERS[algorithm];
    const isRef = algorithm === REFERENCE;
    const root = el("tr", { "data-algorithm": algorithm, class: isRef ? "shadow-ref" : undefined },
      el("td", { class: "route-name", "data-field": "algorithm", title: info ? info.desc : algorithm },
        el("span", { class: "mono", text: algorithm }),
        refs.live = el("span", { class: "badge badge-live", text: "LIVE", hidden: true }),
        isRef ? el("span", { class: "badge badge-ref", text: "EXACT",
          title: "The sliding log is exact: overshoot and undershoot are measured against it" }) : null),
      cell("params", "mono"),
      refs.reject = el("td", { "data-field": "would_reject" }, el("div", { class: "shadow-reject" },
        refs.rejectN = el("span", { class: "shadow-n" }),
        el("div", { class: "share-track" }, refs.rejectBar = el("div", { class: "share-bar shadow-bar" })),
        refs.rejectPct = el("span", { class: "shadow-pct" }))),
      cell("agreement", "num"), cell("overshoot", "num"), cell("undershoot", "num"),
      el("td", { class: "shadow-action" },
        refs.promote = el("button", { class: "btn btn-small", type: "button", "data-promote": algorithm,
          text: "Promote", onclick: (e) => promote(scope, algorithm, e.currentTarget) })));
    return { root, refs };
  }

  function updateShadowRow(row, r) {
    const f = row.refs;
    const live = !!r.live;
    row.root.dataset.live = String(live);
    row.root.classList.toggle("shadow-live", live);
    f.live.hidden = !live;
    f.promote.hidden = live;
    f.promote.title = `Make ${r.algorithm} the live limiter, with the parameters shown (the same switch as the Rate limiter card)`;
    row.spec = r.spec || { algorithm: r.algorithm };
    setText(f.params, specText(row.spec) || JSON.stringify(row.spec));
    const n = Number(r.would_reject) || 0;
    const rate = Number(r.would_reject_rate) || 0;
    f.reject.dataset.value = String(n);
    f.reject.title = `${fmtInt(n)} of ${fmtInt(r.requests)} requests would be rejected (${fmtInt(r.would_allow)} allowed)`;
    setText(f.rejectN, fmtInt(n));
    setText(f.rejectPct, fmtPct(rate));
    f.rejectBar.style.width = `${Math.min(100, 100 * rate).toFixed(1)}%`;
    f.reject.classList.toggle("zero", n === 0);

    const a = r.agreement || {};
    f.agreement.dataset.value = String(Number(a.rate) || 0);
    setText(f.agreement, live ? "–" : Number(r.requests) ? fmtPct(a.rate) : "–");
    f.agreement.classList.toggle("zero", live || !Number(r.requests));
    f.agreement.classList.toggle("warn", !live && Number(r.requests) > 0 && Number(a.rate) < 0.95);
    f.agreement.title = live ? "The live limiter itself"
      : `both allowed ${fmtInt(a.both_allow)} · both rejected ${fmtInt(a.both_reject)} · ` +
        `only live rejected ${fmtInt(a.live_only_reject)} · only ${r.algorithm} rejected ${fmtInt(a.shadow_only_reject)}`;

    const acc = r.accuracy || {};
    const over = Number(acc.overshoot) || 0;
    const under = Number(acc.undershoot) || 0;
    const sat = Number(acc.saturated) || 0;
    f.overshoot.dataset.value = String(over);
    f.undershoot.dataset.value = String(under);
    setText(f.overshoot, over ? `+${fmtInt(over)} (${fmtRatio(acc.overshoot_ratio)})` : "0");
    setText(f.undershoot, under ? `−${fmtInt(under)} (${fmtRatio(acc.undershoot_ratio)})` : "0");
    f.overshoot.classList.toggle("bad", over > 0);
    f.overshoot.classList.toggle("zero", over === 0);
    f.undershoot.classList.toggle("warn", under > 0);
    f.undershoot.classList.toggle("zero", under === 0);
    const satNote = sat ? ` (${fmtInt(sat)} events beyond the meter's memory: a lower bound)` : "";
    f.overshoot.title = `At most ${fmtRatio(acc.overshoot_ratio)} the limit admitted in a trailing window${satNote}`;
    f.undershoot.title = `A rejection with as little as ${fmtRatio(acc.undershoot_ratio)} the limit admitted in its window${satNote}`;
  }

  // The live switch, fed the shadow's translated parameters (the spec
  // without its `algorithm`), at the scope the shadow belongs to.
  function promote(scope, algorithm, button) {
    const row = shadowRows.get(`${scopeLabel(scope)}\u0000${algorithm}`);
    const params = Object.assign({}, row && row.spec);
    delete params.algorithm;
    const path = scope.scope === "route"
      ? `/gateway/routes/${encodeURIComponent(scope.route)}/rate-limiter/${encodeURIComponent(algorithm)}`
      : `/gateway/rate-limiter/${encodeURIComponent(algorithm)}`;
    const where = scope.scope === "route" ? ` on route ${scope.route}` : "";
    return act(button, `promote ${algorithm}${where}`, async () => {
      await api("POST", path, params);
      state.limiterDirty = false;
      toast(`Promoted ${algorithm}${where}: it is now the live limiter`, "ok");
    });
  }

  // ---- backends -----------------------------------------------------------

  const cards = new Map(); // backend name -> { root, refs }
  const groups = new Map(); // upstream name -> { root, refs }, only with several upstreams

  function makeCard(name) {
    const refs = {};
    const r = (k, node) => (refs[k] = node);
    const root = el("article", { class: "backend", "data-backend": name },
      el("header", { class: "backend-head" },
        el("div", {},
          el("div", { class: "backend-name" }, r("dot", el("span", { class: "dot" })), el("span", { text: name })),
          r("addr", el("div", { class: "backend-addr" }))),
        el("div", { class: "backend-tags" },
          r("crashTag", el("span", { class: "badge badge-crashed", text: "CRASHED", hidden: true,
            title: "The demo backend is in crash mode: it answers 500 after 300 ms" })),
          r("health", el("span", { class: "badge health-badge", hidden: true,
            title: "Active health checks: distinct from the circuit, which learns from real requests" })),
          r("badge", el("span", { class: "circuit-state badge" })))),
      el("div", { class: "share" },
        el("div", { class: "share-track" }, r("bar", el("div", { class: "share-bar" }))),
        r("sharePct", el("span", { class: "share-pct" }))),
      el("dl", { class: "backend-stats" },
        el("div", {}, el("dt", { text: "requests" }), r("requests", el("dd"))),
        el("div", {}, el("dt", { text: "failures" }), r("failures", el("dd"))),
        el("div", {}, el("dt", { text: "p50" }), r("p50", el("dd"))),
        el("div", {}, el("dt", { text: "p99" }), r("p99", el("dd"))),
        el("div", {}, el("dt", { text: "in flight" }), r("inflight", el("dd"))),
        el("div", {}, el("dt", { text: "weight" }), r("weight", el("dd")))),
      el("div", { class: "backend-actions" },
        r("toggle", el("button", { class: "btn btn-small", "data-action": "toggle", "data-backend-name": name,
          title: "Take the backend out of rotation, or put it back", onclick: (e) => backendAction(name, "toggle", e.currentTarget) })),
        r("crash", el("button", { class: "btn btn-small btn-danger", "data-action": "crash", "data-backend-name": name,
          title: "Demo backends: toggle crash mode (they answer 500, slowly)", onclick: (e) => backendAction(name, "crash", e.currentTarget) })),
        el("button", { class: "btn btn-small", "data-action": "reset", "data-backend-name": name,
          title: "Force the circuit back to CLOSED", text: "Reset circuit",
          onclick: (e) => backendAction(name, "reset", e.currentTarget) })));
    return { root, refs };
  }

  // One upstream's box (several upstreams only): its name, its balancer
  // switch (one button per algorithm, default parameters), its cards.
  function makeGroup(name) {
    const refs = {};
    const r = (k, node) => (refs[k] = node);
    refs.buttons = Object.entries(BALANCERS).map(([algo, info]) =>
      el("button", { class: "seg-btn", type: "button", "data-upstream-balancer": algo, title: info.desc,
        onclick: (e) => switchUpstreamBalancer(name, algo, e.currentTarget) }, info.label));
    const root = el("div", { class: "upstream", "data-upstream": name },
      el("div", { class: "upstream-head" },
        el("div", { class: "upstream-title" },
          el("span", { class: "upstream-name", text: name }),
          r("meta", el("span", { class: "hint" })),
          r("panic", el("span", { class: "badge badge-open", text: "PANIC", hidden: true,
            title: "Too few backends with a closed circuit: traffic is spread over every switched-on backend" }))),
        el("div", { class: "seg", role: "group", "aria-label": `Load balancer of upstream ${name}` }, refs.buttons)),
      r("grid", el("div", { class: "backend-grid" })));
    return { root, refs };
  }

  function updateGroup(g, u) {
    const algo = (u.loadBalancer && u.loadBalancer.algorithm) || "";
    g.root.dataset.balancer = algo;
    const n = (u.backends || []).length;
    const q = u.queue ? ` · queue ${fmtInt(u.queue.depth)}/${fmtInt(u.queue.max)}` : "";
    setText(g.refs.meta, `${n} backend${n === 1 ? "" : "s"} · ${algo || "no balancer"}${q}`);
    for (const b of g.refs.buttons) {
      const on = b.dataset.upstreamBalancer === algo;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    }
    g.refs.panic.hidden = !u.panic;
  }

  function updateCard(card, b, total) {
    const f = card.refs;
    const circuit = String(b.circuitState || "UNKNOWN").toUpperCase().replace("-", "_");
    setText(f.badge, circuit);
    f.badge.dataset.state = circuit;
    f.badge.className = `circuit-state badge badge-${circuit.toLowerCase()}`;
    card.root.classList.toggle("is-down", !b.up);
    card.root.dataset.up = String(!!b.up);
    card.root.dataset.circuit = circuit;
    f.dot.className = `dot ${b.up ? "dot-up" : "dot-down"}`;
    f.dot.title = b.up ? "up" : "down (operator)";
    setText(f.addr, `${b.address || ""}${b.up ? "" : " · down"}`);
    const share = total ? (100 * (Number(b.requests) || 0)) / total : 0;
    f.bar.style.width = `${share.toFixed(1)}%`;
    setText(f.sharePct, `${Math.round(share)}%`);
    setText(f.requests, fmtInt(b.requests));
    setText(f.failures, fmtInt(b.failures));
    f.failures.classList.toggle("bad", (Number(b.failures) || 0) > 0);
    const lat = b.latency_ms || {};
    setText(f.p50, fmtMs(lat.p50));
    setText(f.p99, fmtMs(lat.p99));
    setText(f.inflight, fmtInt(b.inflight));
    setText(f.weight, b.weight === undefined ? "–" : String(b.weight));
    setText(f.toggle, b.up ? "Take down" : "Bring up");
    const demo = state.crashed[b.name];
    const crashed = demo === true;
    setText(f.crash, crashed ? "Recover" : "Crash");
    f.crash.dataset.crashed = String(crashed);
    f.crash.classList.toggle("btn-danger", !crashed);
    f.crash.classList.toggle("btn-ok", crashed);
    // null: the backend did not answer GET /admin/crash (not a demo one).
    const notDemo = demo === null;
    if (f.crash.dataset.notDemo !== String(notDemo)) {
      f.crash.dataset.notDemo = String(notDemo);
      f.crash.title = notDemo ? "Not a demo backend: crash simulation unavailable"
        : "Demo backends: toggle crash mode (they answer 500, slowly)";
    }
    f.crashTag.hidden = !crashed;
    // Health shows only where checks run (anything but "unchecked").
    const health = b.health || "unchecked";
    f.health.hidden = health === "unchecked";
    setText(f.health, health === "healthy" ? "HEALTHY" : "UNHEALTHY");
    f.health.className = `badge health-badge ${health === "healthy" ? "badge-closed" : "badge-open"}`;
    card.root.dataset.health = health;
  }

  // With only `default` the cards sit in one grid, as they always did; with
  // several upstreams each upstream gets its box, balancer switch included,
  // and a card's share is of its own upstream's requests.
  function renderBackends(h) {
    const box = $("#backends");
    const list = h.backends || [];
    const ups = Array.isArray(h.upstreams) ? h.upstreams : [];
    const grouped = ups.length > 1;
    box.className = grouped ? "upstream-list" : "backend-grid";
    setText($("#backends-hint"), grouped
      ? "grouped by upstream · share = part of the upstream's proxied requests since the last reset"
      : "share = part of all proxied requests since the last reset");
    setText($("#balancer-scope"), grouped ? "· upstream default" : "");
    let placements = [{ container: box, backends: list }];
    const seenGroups = new Set();
    if (grouped) {
      placements = ups.map((u, i) => {
        let g = groups.get(u.name);
        if (!g) {
          g = makeGroup(u.name);
          groups.set(u.name, g);
        }
        seenGroups.add(u.name);
        if (box.children[i] !== g.root) box.insertBefore(g.root, box.children[i] || null);
        updateGroup(g, u);
        return { container: g.refs.grid, backends: list.filter((b) => b.upstream === u.name) };
      });
    }
    for (const [name, g] of groups) {
      if (!seenGroups.has(name)) {
        g.root.remove();
        groups.delete(name);
      }
    }
    const seen = new Set();
    for (const { container, backends } of placements) {
      const total = backends.reduce((a, b) => a + (Number(b.requests) || 0), 0);
      backends.forEach((b, i) => {
        seen.add(b.name);
        let card = cards.get(b.name);
        if (!card) {
          card = makeCard(b.name);
          cards.set(b.name, card);
        }
        if (container.children[i] !== card.root) container.insertBefore(card.root, container.children[i] || null);
        updateCard(card, b, total);
      });
    }
    for (const [name, card] of cards) {
      if (!seen.has(name)) {
        card.root.remove();
        cards.delete(name);
      }
    }
    if (!list.length && !box.querySelector(".empty")) box.append(el("p", { class: "empty", text: "No backends configured." }));
    if (list.length) for (const e of box.querySelectorAll(".empty")) e.remove();
  }

  function switchUpstreamBalancer(upstream, algo, button) {
    return act(button, `switch load balancer of ${upstream} to ${algo}`, async () => {
      await api("POST", `/gateway/upstreams/${encodeURIComponent(upstream)}/load-balancer/${encodeURIComponent(algo)}`);
      toast(`Load balancer of ${upstream}: ${algo}`, "ok");
    });
  }

  // ---- routes -------------------------------------------------------------

  const routeRows = new Map(); // route name -> { root, refs }

  function makeRouteRow(name) {
    const refs = {};
    const cell = (k, cls) => (refs[k] = el("td", { class: cls, "data-col": k }));
    const root = el("tr", { "data-route": name },
      el("td", { class: "route-name", text: name }),
      cell("match", "mono"), cell("auth", "auth"), cell("upstream", "mono"), cell("limiter", "mono"),
      cell("requests", "num"), cell("2xx", "num ok"), cell("4xx", "num"), cell("429", "num warn"),
      cell("5xx", "num bad"), cell("p50", "num"), cell("p99", "num"));
    return { root, refs };
  }

  function matchText(m) {
    const hosts = (m.hosts || []).length ? m.hosts.join(", ") : "any host";
    const path = m.path !== undefined ? `${m.path} (exact)` : `${m.path_prefix || "/"} (prefix)`;
    const methods = (m.methods || []).length ? m.methods.join(" ") : "any method";
    return `${hosts} · ${path} · ${methods}`;
  }

  function renderRoutes(data) {
    const list = (data && data.routes) || [];
    $("#routes-card").hidden = !(data && data.routing);
    const body = $("#routes");
    const seen = new Set();
    list.forEach((rt, i) => {
      seen.add(rt.name);
      let row = routeRows.get(rt.name);
      if (!row) {
        row = makeRouteRow(rt.name);
        routeRows.set(rt.name, row);
      }
      if (body.children[i] !== row.root) body.insertBefore(row.root, body.children[i] || null);
      const f = row.refs;
      const c = rt.counters || {};
      const pol = rt.policies || {};
      const rl = pol.rateLimiter || {};
      setText(f.match, matchText(rt.match || {}));
      renderAuth(f.auth, pol.auth);
      row.root.dataset.auth = pol.auth ? "required" : "open";
      setText(f.upstream, rt.upstream || "");
      setText(f.limiter, rl.algorithm ? `${rl.algorithm} · ${rl.inherited ? "top-level" : "own"}` : "none");
      f.limiter.title = rl.key ? `keyed by ${rl.key}` : "";
      for (const k of ["requests", "2xx", "4xx", "429", "5xx"]) {
        setText(f[k], fmtInt(c[k]));
        // Colour only what happened: a zero stays muted.
        f[k].classList.toggle("zero", !(Number(c[k]) > 0));
      }
      const lat = c.latency_ms || {};
      setText(f.p50, fmtMs(lat.p50));
      setText(f.p99, fmtMs(lat.p99));
    });
    for (const [name, row] of routeRows) {
      if (!seen.has(name)) {
        row.root.remove();
        routeRows.delete(name);
      }
    }
  }

  // Only a config with routes has a table worth showing (without routes
  // the one catch-all would repeat the totals).
  async function pollRoutes(h) {
    if (!h.routing) {
      renderRoutes(null);
      renderConsumers(null);
      return;
    }
    await Promise.all([
      api("GET", "/gateway/routes").then((r) => {
        state.routes = r;
        renderRoutes(r);
      }),
      // Consumers only matter where a route needs auth, so only with routes.
      api("GET", "/gateway/consumers").then((r) => {
        state.consumers = r;
        renderConsumers(r);
      }),
    ].map((p) => p.catch(() => {
      // The health poll already reports connectivity problems.
    })));
  }

  // ---- authentication -----------------------------------------------------

  // The route table's Auth cell: a lock badge naming the credential a route
  // takes (either one, when it takes both); where and who in the tooltip.
  // Rebuilt only when the route's auth changes (it is fixed by the config).
  function renderAuth(cell, auth) {
    const key = JSON.stringify(auth || null);
    if (cell.dataset.key === key) return;
    cell.dataset.key = key;
    if (!auth) {
      cell.replaceChildren(el("span", { class: "auth-open", text: "open", title: "No authentication: anyone may call this route" }));
      return;
    }
    const kinds = [];
    const lines = [];
    if (auth.api_key) {
      kinds.push("API key");
      lines.push(auth.api_key.query !== undefined
        ? `API key in the query parameter "${auth.api_key.query}"`
        : `API key in the header ${auth.api_key.header || "X-API-Key"}`);
    }
    if (auth.jwt) {
      const j = auth.jwt;
      kinds.push("JWT");
      lines.push(`JWT (${(j.algorithms || []).join(", ")}) in Authorization: Bearer` +
        (j.issuer ? `, issuer ${j.issuer}` : "") +
        ((j.audience || []).length ? `, audience ${j.audience.join(" or ")}` : "") +
        `, consumer from the "${j.consumer_claim || "sub"}" claim`);
    }
    if (kinds.length > 1) lines.unshift("Either credential:");
    lines.push(allowText(auth.allow));
    const allow = Array.isArray(auth.allow) ? auth.allow : null;
    const badge = el("span", { class: "badge badge-auth auth-badge", "data-kinds": kinds.join(","), title: lines.join("\n") },
      el("span", { class: "lock", "aria-hidden": "true" }), kinds.join(" · "));
    if (!allow) {
      cell.replaceChildren(badge);
      return;
    }
    cell.replaceChildren(badge, el("span", { class: "auth-allow", title: allowText(allow),
      text: allow.length === 1 ? `${allow[0]} only` : `${allow.length} consumers` }));
  }

  function allowText(allow) {
    if (!Array.isArray(allow)) return "Allowed: anyone with a valid credential";
    return allow.length ? `Allowed: ${allow.join(", ")}` : "Allowed: nobody";
  }

  // A limiter's parameters in a few words ("20 burst, 5/s"); null for an
  // algorithm this page does not know.
  function specText(rl) {
    const p = (k) => Number(rl[k]);
    // A translated rate is L/W: 20 per 600 s is 0.0333..., shown as 0.0333.
    const rate = (k) => Number(p(k).toPrecision(4));
    const per = (ms) => (ms % 1000 ? `${ms} ms` : `${ms / 1000}s`);
    switch (rl.algorithm) {
      case "token-bucket": return `${p("capacity")} burst, ${rate("refill_per_sec")}/s`;
      case "leaky-bucket": return `${p("capacity")} queued, ${rate("leak_per_sec")}/s`;
      case "fixed-window":
      case "sliding-log":
      case "sliding-counter": return `${p("limit")} per ${per(p("window_ms"))}`;
      default: return null;
    }
  }

  // A consumer's own limit: the algorithm, then its parameters.
  function limitText(rl) {
    const params = specText(rl);
    return params === null ? String(rl.algorithm || "custom") : `${rl.algorithm} · ${params}`;
  }

  const consumerRows = new Map(); // consumer name -> { root, refs }

  function makeConsumerRow(name) {
    const refs = {};
    const cell = (k, cls) => (refs[k] = el("td", { class: cls, "data-col": k }));
    const root = el("tr", { "data-consumer": name },
      el("td", { class: "route-name", text: name }),
      cell("keys", "num"), cell("routes", "mono"), cell("limit", "mono"),
      cell("requests", "num"), cell("401", "num warn"), cell("403", "num bad"), cell("429", "num warn"));
    return { root, refs };
  }

  // The failure reasons in the order of the metrics; any new one after them.
  const AUTH_REASONS = ["missing", "unknown", "forbidden", "expired", "bad_signature", "invalid"];
  const REASON_INFO = {
    missing: "401: no credential where the route reads one",
    unknown: "401: an API key no consumer has, or two keys at once",
    forbidden: "403: a consumer the route's allow list leaves out",
    expired: "401: a token past its exp, or before its nbf",
    bad_signature: "401: a signature that does not verify, or an algorithm the route does not accept",
    invalid: "401: a malformed token, a wrong iss or aud, or no usable consumer claim",
  };

  function renderConsumers(data) {
    const list = (data && data.consumers) || [];
    $("#consumers-card").hidden = !list.length;
    const body = $("#consumers");
    const seen = new Set();
    list.forEach((c, i) => {
      seen.add(c.name);
      let row = consumerRows.get(c.name);
      if (!row) {
        row = makeConsumerRow(c.name);
        consumerRows.set(c.name, row);
      }
      if (body.children[i] !== row.root) body.insertBefore(row.root, body.children[i] || null);
      const f = row.refs;
      setText(f.keys, fmtInt(c.api_keys));
      f.keys.title = "How many API keys this consumer has (never which)";
      const routes = c.routes || [];
      setText(f.routes, routes.length ? routes.join(", ") : "no route");
      f.routes.classList.toggle("zero", !routes.length);
      setText(f.limit, c.rate_limit ? limitText(c.rate_limit) : "none · route limits apply");
      f.limit.classList.toggle("zero", !c.rate_limit);
      f.limit.title = c.rate_limit ? "Its own budget on routes whose limiter is keyed by consumer"
        : "No own limit: each route's limit applies";
      const n = c.counters || {};
      for (const k of ["requests", "401", "403", "429"]) {
        setText(f[k], fmtInt(n[k]));
        f[k].classList.toggle("zero", !(Number(n[k]) > 0));
      }
    });
    for (const [name, row] of consumerRows) {
      if (!seen.has(name)) {
        row.root.remove();
        consumerRows.delete(name);
      }
    }
    renderAuthFailures((data && data.authFailures) || {});
  }

  // One line: refused requests by reason, over every route with auth.
  function renderAuthFailures(failures) {
    const box = $("#auth-failures");
    const reasons = AUTH_REASONS.filter((r) => r in failures).concat(Object.keys(failures).filter((r) => !AUTH_REASONS.includes(r)));
    if (box.dataset.key !== reasons.join(",")) {
      box.dataset.key = reasons.join(",");
      box.replaceChildren(el("span", { class: "auth-failures-label", text: "Auth failures" }),
        ...reasons.map((r) => el("span", { class: "auth-reason", "data-reason": r, title: REASON_INFO[r] || r },
          r.replace(/_/g, " "), el("b", { class: "auth-reason-n" }))));
    }
    for (const span of box.querySelectorAll("[data-reason]")) {
      const n = Number(failures[span.dataset.reason]) || 0;
      setText(span.querySelector("b"), fmtInt(n));
      span.classList.toggle("zero", n === 0);
    }
  }

  // ---- TLS ----------------------------------------------------------------

  // Days left under which a certificate is marked (warning), as the
  // certificate-expiry alerts usually fire.
  const EXPIRY_WARN_DAYS = 30;
  const HANDSHAKE_INFO = {
    ok: "Handshakes completed",
    unknown_name: "SNI named no certificate and there is no default: refused with unrecognized_name",
    not_tls: "Plain HTTP (or anything not TLS) sent to the HTTPS port",
    protocol: "A protocol error: a version or cipher refused, no common ALPN, a malformed message",
    incomplete: "The client closed, or the handshake deadline passed, before the handshake ended",
  };

  const tlsRows = new Map(); // index:cert file -> { root, refs }

  function makeTlsRow(cert) {
    const refs = {};
    const cell = (k, cls) => (refs[k] = el("td", { class: cls, "data-col": k }));
    const root = el("tr", { "data-cert": cert },
      el("td", { class: "mono tls-file", "data-col": "cert", text: cert, title: cert }),
      cell("hosts", "mono"), cell("expiry", "num tls-expiry"));
    return { root, refs };
  }

  // "ok", "warning" (under EXPIRY_WARN_DAYS) or "expired"; "unknown"
  // without a readable notAfter. The days come from the gateway's clock.
  function expiryLevel(days) {
    if (days === null || days === undefined || !Number.isFinite(Number(days))) return "unknown";
    if (days < 0) return "expired";
    return days < EXPIRY_WARN_DAYS ? "warning" : "ok";
  }

  // `days` is floor((notAfter - now) / 1 day): 0 is "under a day left",
  // -1 "expired under a day ago", -4 "3 days ago".
  function expiryText(days, level) {
    if (level === "unknown") return "unknown";
    const n = level === "expired" ? -days - 1 : days;
    const text = n === 0 ? "< 1 day" : `${fmtInt(n)} day${n === 1 ? "" : "s"}`;
    return level === "expired" ? `${text} ago` : text;
  }

  function fmtUtc(unixSecs) {
    return new Date(unixSecs * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  // The HTTPS listener (health's `tls`; null without one, and the card
  // stays hidden): address, floor, redirect, one row per certificate with
  // its days to expiry, the handshake counters. Never a key file.
  function renderTls(h) {
    const t = h.tls;
    $("#tls-card").hidden = !t;
    if (!t) return;
    setText($("#tls-listen"), t.listen || "–");
    const minV = $("#tls-min-version");
    setText(minV, t.min_version ? `TLS ${t.min_version}` : "–");
    minV.title = "The oldest version accepted; TLS 1.0 and 1.1 are always refused";
    const redirect = $("#tls-redirect");
    setText(redirect, t.redirect_http ? "on · 308 to HTTPS" : "off");
    redirect.className = t.redirect_http ? "on" : "zero";
    redirect.title = t.redirect_http ? "The plain listener answers 308 to the HTTPS URL (health excepted)"
      : "The plain listener serves requests as they come";

    const body = $("#tls-certs");
    const seen = new Set();
    const levels = { warning: 0, expired: 0 };
    (t.certificates || []).forEach((c, i) => {
      const key = `${i}:${c.cert}`;
      seen.add(key);
      let row = tlsRows.get(key);
      if (!row) {
        row = makeTlsRow(c.cert);
        tlsRows.set(key, row);
      }
      if (body.children[i] !== row.root) body.insertBefore(row.root, body.children[i] || null);
      const f = row.refs;
      const hosts = c.hosts || [];
      const isDefault = c.default || !hosts.length;
      setText(f.hosts, hosts.length ? hosts.join(", ") : "default");
      f.hosts.classList.toggle("tls-default", isDefault);
      f.hosts.title = isDefault ? "The default certificate: used when SNI is absent or names no other certificate"
        : "Chosen by SNI: exact name first, then the longest wildcard";
      const days = c.expires_in_days;
      const level = expiryLevel(days);
      if (level in levels) levels[level]++;
      row.root.dataset.expiry = level;
      if (f.expiry.dataset.key !== `${level}:${days}`) {
        f.expiry.dataset.key = `${level}:${days}`;
        const mark = level === "warning" ? el("span", { class: "badge badge-half_open tls-mark", text: "EXPIRES SOON" })
          : level === "expired" ? el("span", { class: "badge badge-expired tls-mark", text: "EXPIRED" }) : null;
        f.expiry.replaceChildren(...[mark, el("span", { class: "tls-days", text: expiryText(days, level) })].filter(Boolean));
      }
      f.expiry.title = c.not_after === null || c.not_after === undefined
        ? "The certificate's notAfter could not be read"
        : `${level === "expired" ? "Expired" : "Valid until"} ${fmtUtc(Number(c.not_after))}`;
    });
    for (const [key, row] of tlsRows) {
      if (!seen.has(key)) {
        row.root.remove();
        tlsRows.delete(key);
      }
    }
    const alert = $("#tls-alert");
    const parts = [];
    if (levels.expired) parts.push(`${levels.expired} expired`);
    if (levels.warning) parts.push(`${levels.warning} expiring within ${EXPIRY_WARN_DAYS} days`);
    alert.hidden = !parts.length;
    alert.className = `badge ${levels.expired ? "badge-expired" : "badge-half_open"}`;
    setText(alert, parts.join(" · "));
    renderHandshakes(t.handshakes || {});
  }

  // One line like the auth failures: completed handshakes, then the
  // failed ones by reason (a new reason shows up after the known ones).
  function renderHandshakes(hs) {
    const box = $("#tls-handshakes");
    const failed = hs.failed || {};
    const known = ["unknown_name", "not_tls", "protocol", "incomplete"];
    const reasons = known.filter((r) => r in failed).concat(Object.keys(failed).filter((r) => !known.includes(r)));
    if (box.dataset.key !== reasons.join(",")) {
      box.dataset.key = reasons.join(",");
      const item = (r, cls) => el("span", { class: `auth-reason ${cls}`, "data-handshake": r, title: HANDSHAKE_INFO[r] || r },
        r.replace(/_/g, " "), el("b", { class: "auth-reason-n" }));
      box.replaceChildren(el("span", { class: "auth-failures-label", text: "Handshakes" }), item("ok", "hs-ok"),
        el("span", { class: "auth-failures-label hs-failed-label", text: "failed" }), ...reasons.map((r) => item(r, "hs-failed")));
    }
    for (const span of box.querySelectorAll("[data-handshake]")) {
      const r = span.dataset.handshake;
      const n = Number(r === "ok" ? hs.ok : failed[r]) || 0;
      setText(span.querySelector("b"), fmtInt(n));
      span.classList.toggle("zero", n === 0);
    }
  }

  function backendAction(name, action, button) {
    const n = encodeURIComponent(name);
    if (action === "toggle") {
      return act(button, `toggle ${name}`, async () => {
        await api("POST", `/gateway/backend/${n}/toggle`);
        toast(`Toggled ${name}`, "ok");
      });
    }
    if (action === "reset") {
      return act(button, `reset circuit of ${name}`, async () => {
        await api("POST", `/gateway/circuit/${n}/reset`);
        toast(`Circuit of ${name} reset to CLOSED`, "ok");
      });
    }
    return act(button, `crash/recover ${name}`, async () => {
      const r = await api("POST", `/gateway/demo/${n}/crash`);
      // The admin answers with the backend's own flag after the flip.
      state.crashed[name] = r && typeof r.crashed === "boolean" ? r.crashed : null;
      toast(state.crashed[name] ? `${name} crashed: it now answers 500` : `${name} recovered`, state.crashed[name] ? "bad" : "ok");
    });
  }

  // ---- load tester --------------------------------------------------------

  let loadTestRunning = false;

  function loadTestButtons(disabled) {
    for (const b of document.querySelectorAll("[data-burst], [data-sustain]")) b.disabled = disabled;
  }

  async function runLoadTest(body, label) {
    if (loadTestRunning) return;
    loadTestRunning = true;
    loadTestButtons(true);
    const box = $("#loadtest-result");
    box.dataset.state = "running";
    box.replaceChildren(el("p", { class: "running" }, el("span", { class: "spinner" }), `Running ${label}…`));
    try {
      const r = await api("POST", "/gateway/loadtest", body);
      box.dataset.state = "done";
      renderLoadTest(r, label);
      await pollEvents();
    } catch (err) {
      box.dataset.state = "error";
      box.replaceChildren(el("p", { class: "error-text", text: `Load test failed: ${err.message}` }));
      noteFailure("load test", err);
    } finally {
      loadTestRunning = false;
      loadTestButtons(false);
    }
  }

  function renderLoadTest(r, label) {
    const box = $("#loadtest-result");
    const count = (cls, n, what, key) => el("div", { class: `lt-count ${cls}`, "data-count": key },
      el("span", { class: "lt-num", text: fmtInt(n) }), el("span", { class: "lt-what", text: what }));
    const counts = el("div", { class: "lt-counts" },
      count("ok", r.ok, "success", "ok"),
      count("warn", r.limited, "429 limited", "limited"),
      count("purple", r.unavailable, "503 unavailable", "unavailable"),
      count("bad", r.errors, "errors", "errors"));
    const meta = el("p", { class: "lt-meta" },
      `${label}: ${fmtInt(r.sent)} sent to ${r.path || ""} in ${fmtInt(r.duration_ms)} ms · ` +
      `p50 ${fmtMs(r.latency_ms && r.latency_ms.p50)} · p90 ${fmtMs(r.latency_ms && r.latency_ms.p90)} · ` +
      `p99 ${fmtMs(r.latency_ms && r.latency_ms.p99)} · max ${fmtMs(r.latency_ms && r.latency_ms.max)}`);

    const backends = Object.entries(r.by_backend || {});
    const bTotal = backends.reduce((a, [, n]) => a + n, 0);
    const dist = el("div", { class: "lt-dist" }, backends.length ? backends.map(([name, n]) =>
      el("div", { class: "lt-dist-row", "data-lt-backend": name },
        el("span", { class: "lt-dist-name", text: name }),
        el("div", { class: "share-track" }, el("div", { class: "share-bar", style: `width:${((100 * n) / bTotal).toFixed(1)}%` })),
        el("span", { class: "lt-dist-n", text: `${n} (${Math.round((100 * n) / bTotal)}%)` }))) :
      el("p", { class: "hint", text: "No x-backend headers in the answers." }));

    // Histogram: trim empty buckets at both ends so the shape is readable.
    const hist = r.histogram || [];
    let lo = hist.findIndex((b) => b.count > 0);
    let hi = hist.length - 1 - [...hist].reverse().findIndex((b) => b.count > 0);
    if (lo < 0) { lo = 0; hi = -1; } else {
      // A stable x axis from 1 ms to at least 250 ms, so two runs compare
      // at a glance instead of each stretching its own two buckets.
      lo = 0;
      hi = Math.max(hi, hist.findIndex((b) => b.le_ms >= 250));
    }
    const shown = hist.slice(lo, hi + 1);
    const hMax = Math.max(1, ...shown.map((b) => b.count));
    const histo = el("div", { class: "histogram", "aria-label": "latency histogram" },
      shown.length ? shown.map((b) => el("div", { class: "hbar", title: `≤ ${b.le_ms} ms: ${b.count}` },
        el("span", { class: "hbar-n", text: b.count ? String(b.count) : "" }),
        el("div", { class: "hbar-fill", style: `height:${Math.max(b.count ? 4 : 0, (100 * b.count) / hMax)}%` }),
        el("span", { class: "hbar-label", text: `≤${b.le_ms >= 1000 ? b.le_ms / 1000 + "s" : b.le_ms + "ms"}` }))) :
        el("p", { class: "hint", text: "No answers, so no latency to show." }));

    const samples = (r.error_samples || []).length ?
      el("p", { class: "lt-errors", text: `Transport errors: ${r.error_samples.join("; ")}` }) : null;
    box.replaceChildren(...[counts, meta, el("h3", { text: "Distribution" }), dist, el("h3", { text: "Latency" }), histo, samples].filter(Boolean));
  }

  // ---- event log ----------------------------------------------------------

  function renderEvents() {
    const h = state.health;
    const items = [];
    for (const e of state.adminEvents) items.push({ at: e.at_unix_ms, kind: e.kind, message: e.message, source: "admin" });
    if (h && Array.isArray(h.events)) {
      // Core events carry gateway-uptime timestamps: map them to wall time
      // through the uptime reported in the same health snapshot.
      const start = state.fetchedAt - (Number(h.uptime_ms) || 0);
      for (const e of h.events) {
        // The admin already logged its own switches (with parameters):
        // keep only what the core alone knows, such as circuit transitions.
        if (ECHOED.has(e.kind)) continue;
        items.push({ at: start + (Number(e.at_ms) || 0), kind: eventClass(e), message: e.message, source: "gateway" });
      }
    }
    for (const e of localEvents) items.push(e);
    items.sort((a, b) => b.at - a.at);
    const list = $("#event-log");
    const key = items.length + ":" + (items[0] ? items[0].at + items[0].message : "");
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.replaceChildren(...items.slice(0, 200).map((e) =>
      el("li", { class: `event event-${e.kind}`, "data-source": e.source },
        el("time", { text: fmtClock(e.at) }),
        el("span", { class: `event-src src-${e.source}`, text: e.source }),
        el("span", { class: "event-msg", text: e.message }))));
    if (!items.length) list.append(el("li", { class: "empty", text: "No events yet. Switch an algorithm or run a burst." }));
  }

  // Core event kinds the admin logs itself (same tags as its own log).
  const ECHOED = new Set(["rate-limiter", "load-balancer", "toggle", "metrics-reset"]);

  // The colour of a core event, from its typed fields (the health report's
  // events carry kind/backend/from/to; the message is for reading only).
  // A transition into OPEN is red, one touching HALF_OPEN amber (recoveries
  // from HALF_OPEN included, as before), one into CLOSED green; a backend
  // its health checks take out of rotation red, one they bring back green.
  function eventClass(e) {
    if (e.kind === "probe") return "half";
    if (e.kind === "config-reload-failed") return "error";
    if (e.kind === "config-reload") return "closed";
    if (e.kind === "health") return e.healthy ? "closed" : "open";
    if (e.kind !== "circuit") return "gateway";
    if (e.to === "OPEN") return "open";
    if (e.from === "HALF_OPEN" || e.to === "HALF_OPEN") return "half";
    if (e.to === "CLOSED") return "closed";
    return "gateway";
  }

  // ---- decision trace -----------------------------------------------------

  // GET /gateway/trace lists the last traced requests (sampled, or asked for
  // with X-Gateway-Trace: 1); GET /gateway/trace/:id is one of them, stage by
  // stage. A gateway without tracing answers 404: the card says so once and
  // checks again now and then, without toasts. Stage fields differ by stage
  // and may grow, so they are listed generically and never assumed.
  const STOP_WORDS = /deny|denied|reject|limited|fail|forbid|unauth|refus|timeout|timed-out|no-|^open$|error|invalid|missing|expired|exhausted|full|shed/;
  const PASS_WORDS = /^(allow|allowed|admit|admitted|pass|passed|ok|accept|accepted|proxied|match|matched|delay|delayed|queued|closed|picked|hit|skip|skipped)$/;

  async function pollTrace() {
    try {
      state.trace = await api("GET", "/gateway/trace");
    } catch (err) {
      if (err.status !== 404) return; // the health poll reports connectivity
      state.trace = null;
    }
    renderTraceList(state.trace);
  }

  function renderTraceList(data) {
    const panel = $("#trace-panel");
    const available = data !== null && data !== undefined;
    const traces = available && Array.isArray(data.traces) ? data.traces : [];
    panel.dataset.state = !available ? "unavailable" : traces.length ? "on" : "empty";
    $("#trace-open").hidden = !available;
    // `enabled` is whether X-Gateway-Trace is honoured; sampling runs
    // whatever it says (README, "Decision trace").
    const sample = available ? Number(data.sample_per_million) || 0 : 0;
    setText($("#trace-status"), !available ? "" : [
      data.enabled ? "on demand (X-Gateway-Trace)" : "on demand off",
      sample ? `sampling ${fmtInt(sample)} per million` : "no sampling",
      `keeps the last ${fmtInt(data.capacity)}`].join(" · "));
    const list = $("#trace-list");
    const key = !available ? "unavailable" : traces.map((t) => t.id).join(",") + "|" + (data.enabled ? 1 : 0) + "|" + sample;
    if (list.dataset.key !== key) {
      list.dataset.key = key;
      list.replaceChildren(...traces.map(traceItem));
      if (!available) {
        list.append(el("li", { class: "empty", text: "Tracing is not available on this gateway." }));
        if (!state.traceId) $("#trace-view").replaceChildren();
      } else if (!traces.length) {
        const listen = (state.health && state.health.listen) || "GATEWAY";
        list.append(el("li", { class: "empty trace-howto" },
          "No request traced yet. ",
          data.enabled ? "Trace one on demand: " : "On-demand tracing is off: set ",
          data.enabled ? null : el("code", { text: '"trace": {"enabled": true}' }),
          data.enabled ? null : " in the config, then trace one: ",
          el("code", { text: `curl -H 'X-Gateway-Trace: 1' http://${listen}/…` })));
      }
    }
    for (const li of list.querySelectorAll("[data-trace-id]")) {
      li.classList.toggle("active", li.dataset.traceId === String(state.traceId));
    }
  }

  function traceItem(t) {
    const status = Number(t.status) || 0;
    return el("li", {
      class: "trace-item", "data-trace-id": t.id, tabindex: "0", role: "button",
      title: `${t.sampled ? "sampled" : "asked for (X-Gateway-Trace)"} · request ${t.request_id || "?"}`,
      onclick: () => openTrace(t.id),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openTrace(t.id); } },
    },
    el("span", { class: `trace-status ${statusClass(status)}`, text: status ? String(status) : "–" }),
    el("span", { class: "trace-req mono", text: `${t.method || ""} ${t.target || ""}`.trim() }),
    el("span", { class: `trace-verdict verdict-${verdictClass(t.verdict, status)}`, text: t.verdict || "" }),
    el("span", { class: "trace-dur mono", text: fmtMs(t.duration_ms) }));
  }

  const statusClass = (s) => (s >= 500 ? "bad" : s >= 400 ? "warn" : s ? "ok" : "zero");
  const verdictClass = (v, status) => (String(v || "") === "proxied" && status < 500 ? "pass" : "stop");

  async function openTrace(id) {
    const text = String(id).trim();
    if (!text) return;
    state.traceId = text;
    renderTraceList(state.trace);
    const view = $("#trace-view");
    view.dataset.traceId = text;
    try {
      const t = await api("GET", `/gateway/trace/${encodeURIComponent(text)}`);
      if (state.traceId !== text) return; // another one was opened meanwhile
      renderTrace(t);
    } catch (err) {
      if (state.traceId !== text) return;
      view.dataset.state = "missing";
      view.replaceChildren(el("p", { class: "empty", text: err.status === 404
        ? (state.trace === null ? "Tracing is not available on this gateway."
          : `No trace ${text}: the gateway keeps only the last ${fmtInt(state.trace && state.trace.capacity)}.`)
        : `Could not load trace ${text}: ${err.message}` }));
    }
  }

  // One trace: a header line, the stages as the pipeline strip (coloured by
  // outcome, one line of decision each), then every stage's fields.
  function renderTrace(t) {
    const view = $("#trace-view");
    const stages = Array.isArray(t.stages) ? t.stages : [];
    const status = Number(t.status) || 0;
    view.dataset.state = "shown";
    view.dataset.traceId = String(t.id);
    const when = Number(t.started_unix_ms) ? fmtClock(Number(t.started_unix_ms)) : "";
    const head = el("p", { class: "trace-head" },
      el("span", { class: `trace-status ${statusClass(status)}`, text: status ? String(status) : "–" }),
      el("span", { class: "mono", text: `${t.method || ""} ${t.target || ""}` }),
      el("span", { class: "hint", text: [t.client_ip ? `from ${t.client_ip}` : "", when, fmtMs(t.duration_ms),
        t.sampled ? "sampled" : "asked for", `id ${t.id}`, t.request_id ? `request ${t.request_id}` : ""]
        .filter(Boolean).join(" · ") }));
    const strip = el("ol", { class: "pipeline trace-strip", "aria-label": "Stages of this request" },
      el("li", { class: "stage stage-edge" }, el("span", { class: "stage-name", text: "client" }),
        el("span", { class: "stage-detail", text: t.client_ip || "" })),
      stages.map((s, i) => {
        const name = String(s.stage || `stage ${i + 1}`);
        const outcome = stageOutcome(s);
        const line = stageLine(s);
        return el("li", { class: `stage stage-${outcome}`, "data-stage": name, "data-outcome": outcome, title: line,
          onclick: () => {
            const f = view.querySelector(`[data-stage-fields="${i}"]`);
            if (f) f.scrollIntoView({ block: "nearest", behavior: "smooth" });
          } },
        el("span", { class: "stage-name", text: name }),
        el("span", { class: "stage-detail", text: line }));
      }));
    const fields = el("div", { class: "trace-fields" }, stages.map((s, i) =>
      el("div", { class: `trace-stage-fields stage-${stageOutcome(s)}`, "data-stage-fields": i },
        el("h4", { text: String(s.stage || `stage ${i + 1}`) }),
        el("dl", {}, Object.entries(s).filter(([k]) => k !== "stage").map(([k, v]) =>
          el("div", {}, el("dt", { text: k }), el("dd", { class: "mono", text: compact(v) })))))));
    view.replaceChildren(head, strip, stages.length ? fields : el("p", { class: "empty", text: "This trace has no stages." }));
  }

  // "pass" or "stop": a stage stops the request when its verdict says so,
  // when it answers 4xx/5xx, or when it names an error.
  function stageOutcome(s) {
    if (s.stage === "shadows") return "pass"; // they only count
    if (s.error !== undefined && s.error !== null && s.error !== "") return "stop";
    if ((s.stage === "reply" || s.stage === "backend") && Number(s.status) >= 400) return "stop";
    for (const k of ["verdict", "decision", "outcome", "result"]) {
      const v = s[k];
      if (typeof v !== "string") continue;
      if (PASS_WORDS.test(v)) return "pass";
      if (STOP_WORDS.test(v)) return "stop";
    }
    // `route` is null also when no routes are configured (the catch-all
    // matched): only `matched: false` is a miss.
    if (s.stage === "route" && s.matched === false) return "stop";
    if (s.stage === "load-balancer" && (s.pick === null || (s.refusal !== undefined && s.refusal !== null))) return "stop";
    return "pass";
  }

  // The stage's decision in one line: the known stages by their meaningful
  // fields, any other by its verdict or first plain fields.
  function stageLine(s) {
    const v = s.verdict || s.decision || s.outcome || s.result;
    const join = (...parts) => parts.filter((p) => p !== undefined && p !== null && p !== "").join(" · ");
    switch (s.stage) {
      case "route":
        return join(s.matched === false ? s.reason || "no route" : s.route, s.upstream, v && v !== "matched" ? v : null);
      case "auth":
        return join(v, s.consumer, s.reason);
      case "rate-limit":
        return join(v, s.algorithm, s.after !== undefined && s.limit !== undefined ? `${s.before}→${s.after} of ${s.limit}` : null,
          s.retry_after_s ? `retry ${s.retry_after_s}s` : null);
      case "shadows": {
        const list = Array.isArray(s.shadows) ? s.shadows : Array.isArray(s.algorithms) ? s.algorithms : [];
        if (!list.length) return v || "none";
        const rej = list.filter((x) => x && STOP_WORDS.test(String(x.verdict || x.decision || ""))).length;
        return `${rej} of ${list.length} would reject`;
      }
      case "circuit-breaker": {
        const c = Array.isArray(s.backends) ? s.backends : Array.isArray(s.candidates) ? s.candidates : [];
        const out = Array.isArray(s.excluded) ? s.excluded.length
          : c.filter((x) => x && /open/i.test(String(x.state || ""))).length;
        return join(v, c.length ? `${c.length} backends, ${out} excluded` : null, s.panic ? "panic" : null);
      }
      case "load-balancer":
        return join(s.algorithm, s.pick === null ? "no pick" : s.pick !== undefined ? `→ ${s.pick}` : null, s.refusal, v);
      case "backend": {
        const tm = s.timings || {};
        return join(s.backend, s.status, tm.last_byte !== undefined && tm.last_byte !== null ? fmtMs(tm.last_byte) : null, s.error);
      }
      case "reply":
        return join(s.status, s.error);
      default: {
        if (v) return String(v);
        const plain = Object.entries(s).filter(([k, x]) => k !== "stage" && (typeof x !== "object" || x === null));
        return plain.slice(0, 3).map(([k, x]) => `${k} ${x}`).join(" · ");
      }
    }
  }

  // A field's value on one line: objects as k=v, arrays comma-separated,
  // nesting in braces; long strings are cut.
  function compact(v, depth) {
    const d = depth || 0;
    if (v === null || v === undefined) return "–";
    if (Array.isArray(v)) {
      if (!v.length) return "[]";
      const inner = v.map((x) => compact(x, d + 1)).join(", ");
      return d ? `[${inner}]` : inner;
    }
    if (typeof v === "object") {
      if (d > 3) return "{…}";
      const inner = Object.entries(v).map(([k, x]) => `${k}=${compact(x, d + 1)}`).join(" ");
      return d ? `{${inner}}` : inner;
    }
    const text = String(v);
    return text.length > 200 ? text.slice(0, 199) + "…" : text;
  }

  // ---- polling ------------------------------------------------------------

  let pollTimer = null;

  function setConn(ok, text) {
    const pill = $("#conn-status");
    pill.className = `pill ${ok ? "pill-ok" : "pill-bad"}`;
    setText(pill, text);
    document.body.classList.toggle("stale", !ok);
  }

  async function pollHealth(immediate) {
    try {
      const h = await api("GET", "/gateway/health");
      state.health = h;
      state.fetchedAt = Date.now();
      if (!immediate) sampleRates(h, state.fetchedAt);
      setConn(true, h.status === "ok" ? "live" : String(h.status || "live"));
      $("#token-form").hidden = true;
      renderPipeline(h);
      renderTotals(h);
      renderAlgos(h);
      renderBackends(h);
      renderTls(h);
      await pollRoutes(h);
      renderEvents();
      drawChart();
    } catch (err) {
      setConn(false, err.status === 401 ? "token required" : `offline: ${err.message}`);
      $("#token-form").hidden = err.status !== 401;
    }
  }

  // Crash flags come from the demo backends themselves (GET /gateway/demo),
  // so the button is right even after a crash made elsewhere (curl, restart).
  async function pollDemo() {
    try {
      const r = await api("GET", "/gateway/demo");
      for (const b of r.backends || []) state.crashed[b.name] = b.crashed;
      if (state.health) renderBackends(state.health);
    } catch (_) {
      // The health poll already reports connectivity problems.
    }
  }

  async function pollEvents() {
    try {
      const r = await api("GET", "/gateway/events");
      state.adminEvents = r.events || [];
      renderEvents();
    } catch (_) {
      // The health poll already reports connectivity problems.
    }
  }

  let tick = 0;
  async function loop() {
    await pollHealth(false);
    if (tick % 2 === 0) await pollEvents();
    if (tick % 3 === 0) await pollDemo();
    // Every 2 s; a gateway without the endpoint (404) is asked again
    // every 30 s only, in case it is replaced by one that has it.
    if (tick % 2 === 0 && (state.shadow !== null || tick % 30 === 0)) await pollShadow();
    if (tick % 2 === 0 && (state.trace !== null || tick % 30 === 0)) await pollTrace();
    tick++;
    pollTimer = setTimeout(loop, POLL_MS);
  }

  // ---- wiring -------------------------------------------------------------

  function init() {
    buildAlgoButtons("#limiter-buttons", LIMITERS, "data-limiter", (name, b) => switchLimiter(name, b));
    buildAlgoButtons("#balancer-buttons", BALANCERS, "data-balancer", (name, b) => switchBalancer(name, b));
    $("#limiter-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const algo = state.health && state.health.rateLimiter && state.health.rateLimiter.algorithm;
      if (algo) switchLimiter(algo, $("#limiter-apply"), readParams("#limiter-params"));
    });
    $("#balancer-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const algo = state.health && state.health.loadBalancer && state.health.loadBalancer.algorithm;
      if (algo) switchBalancer(algo, $("#balancer-apply"), readParams("#balancer-params"));
    });
    $("#reset-metrics").addEventListener("click", (e) => act(e.currentTarget, "reset metrics", async () => {
      await api("POST", "/gateway/metrics/reset");
      state.samples = [];
      state.prev = null;
      toast("Metrics reset", "ok");
    }));
    for (const b of document.querySelectorAll("[data-burst]")) {
      b.addEventListener("click", () => {
        const n = Number(b.dataset.burst);
        runLoadTest({ requests: n, concurrency: n, path: $("#loadtest-path").value || "/api/users" }, `burst of ${n}`);
      });
    }
    $("#sustain-start").addEventListener("click", () => {
      const rate = Number($("#sustain-rate").value) || 20;
      const seconds = Number($("#sustain-seconds").value) || 5;
      runLoadTest({ rate, seconds, path: $("#loadtest-path").value || "/api/users" }, `${rate} req/s for ${seconds}s`);
    });
    $("#token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const t = $("#token-input").value.trim();
      if (t) sessionStorage.setItem("admin-token", t);
      $("#token-input").value = "";
      pollHealth(true);
      pollEvents();
      pollDemo();
      pollShadow();
      pollTrace();
    });
    $("#trace-open").addEventListener("submit", (e) => {
      e.preventDefault();
      openTrace($("#trace-id").value);
    });
    window.addEventListener("resize", drawChart);
    renderEvents();
    drawChart();
    loop();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
  // Exposed for browser tests and debugging in the console.
  window.gatewayDashboard = { state, pollHealth, pollEvents, pollShadow, pollTrace, openTrace, stop: () => clearTimeout(pollTimer) };
})();
