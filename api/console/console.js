// The operator console: polls the JSON API every second with the bearer token kept in this
// tab's sessionStorage (never in a URL). Every server string reaches the page as text
// (textContent / Text nodes), never as HTML.
"use strict";

(() => {
  const API = "/api/whatsapp";
  const KEY = "dispatcher.console.token";
  const POLL_MS = 1000;
  const RATE_WINDOW_MS = 10000;
  const STALE_MS = 5000;
  const ACTIONS = [
    ["pause", "Pause", ["running", "scheduled"]],
    ["resume", "Resume", ["paused"]],
    ["cancel", "Cancel", ["draft", "scheduled", "running", "paused", "held"]],
  ];
  // Every campaign an operator may act on is shown, however old (one listing of all the
  // active statuses, paged: usually one call), then the newest NEWEST others: two calls a
  // second, each an index read (0020_campaign_listing.sql).
  const ACTIVE = new Set(["running", "held", "paused", "scheduled"]);
  const NEWEST = 100;
  const PAGE = 1000; // the API's largest page
  const MAX_ACTIVE_PAGES = 5; // 5,000 active campaigns; past that the page says so
  const QUEUE_ACTIONS = [
    ["retry_dlq", "Retry DLQ", "Put every dead letter back on the queue"],
    ["recover_stuck", "Recover", "Give back deliveries stuck past their visibility timeout"],
    ["clear", "Clear", "Empty the whole queue"],
  ];

  const $ = (id) => document.getElementById(id);
  const samples = new Map(); // campaign id -> [[time ms, done count], ...]
  let generation = 0;
  let lastOk = 0;
  let names = new Map(); // instance id -> label

  class Unauthorized extends Error {}

  // -- the API ----------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
    const init = { method, headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(API + path, init);
    if (response.status === 401) throw new Unauthorized("token refused");
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const message = data && data.error ? data.error.message : response.statusText;
      throw new Error(`${response.status}: ${message}`);
    }
    return data;
  }

  // -- DOM helpers: text only ---------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== undefined && child !== null) node.append(child); // strings become Text
    }
    return node;
  }

  const num = (value) =>
    value === undefined || value === null ? "–" : Number(value).toLocaleString("en-US");
  const small = (text, note) =>
    el("span", note ? { class: "small", "data-note": note } : { class: "small" }, text);
  const badge = (text) => el("span", { class: `badge ${text}` }, text || "–");
  const short = (id) => String(id || "").slice(0, 8);

  function bar(done, total, label) {
    const ratio = total > 0 ? Math.min(done / total, 1) : 0;
    const fill = el("div", { class: done > total && total > 0 ? "fill over" : "fill" });
    fill.style.width = `${(ratio * 100).toFixed(1)}%`;
    return el(
      "div",
      { class: "bar", role: "progressbar", "aria-valuenow": Math.round(ratio * 100) },
      fill,
      el("span", { class: "label" }, label),
    );
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return "–";
    if (seconds < 60) return `${Math.ceil(seconds)}s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
    return `${Math.floor(seconds / 3600)}h ${Math.round((seconds % 3600) / 60)}m`;
  }

  // Rows are kept by key and their cells refilled, so a button is not replaced under a click.
  function sync(tbody, items, key, create, update, empty) {
    const rows = new Map([...tbody.querySelectorAll("tr[data-key]")].map((tr) => [tr.dataset.key, tr]));
    const wanted = items.map((item) => {
      const k = key(item);
      const tr = rows.get(k) || create(item);
      tr.dataset.key = k;
      update(tr, item);
      return tr;
    });
    if (!wanted.length) {
      wanted.push(el("tr", {}, el("td", { class: "empty", colspan: 12 }, empty)));
    }
    tbody.replaceChildren(...wanted);
  }

  function fill(tr, cells) {
    cells.forEach((content, i) => {
      const td = tr.children[i];
      const parts = Array.isArray(content) ? content : [content];
      td.replaceChildren(...parts.filter((part) => part !== undefined && part !== null));
    });
  }

  const blankRow = (count, attrs) => el("tr", attrs, ...Array.from({ length: count }, () => el("td")));

  // -- campaigns ----------------------------------------------------------------------------

  function rate(campaign, done) {
    const now = Date.now();
    const seen = (samples.get(campaign.id) || []).filter(([t]) => now - t <= RATE_WINDOW_MS);
    seen.push([now, done]);
    samples.set(campaign.id, seen);
    const [t0, d0] = seen[0];
    return now > t0 ? ((done - d0) * 1000) / (now - t0) : 0;
  }

  function campaignRow(campaign) {
    const tr = blankRow(12, { "data-campaign-id": campaign.id });
    const actions = tr.children[11];
    actions.className = "actions";
    for (const [action, label] of ACTIONS) {
      const button = el("button", { type: "button", "data-action": action }, label);
      if (action === "cancel") button.classList.add("danger");
      button.addEventListener("click", () => campaignAction(campaign, action));
      actions.append(button);
    }
    return tr;
  }

  // What of a campaign waits, and what will never go: recipients outside their send window
  // (how many, and when the first may go), failures waiting for an automatic retry (counted
  // in pending too), rows past the campaign's expiry.
  function waitingNotes(c) {
    const notes = [];
    if (c.waiting) {
      const at = c.next_window_at ? new Date(c.next_window_at).toLocaleString() : "?";
      notes.push(small(`${num(c.waiting)} waiting until ${at}`, "waiting"));
    }
    if (c.retry_waiting) notes.push(small(`${num(c.retry_waiting)} waiting for a retry`, "retry_waiting"));
    if (c.total_expired) notes.push(small(`${num(c.total_expired)} expired`, "expired"));
    return notes;
  }

  function updateCampaign(tr, c) {
    const done = c.total_sent + c.total_failed + c.total_duplicates + (c.total_suppressed || 0)
      + (c.total_expired || 0)
      + (c.total_invalid || 0);
    const remaining = c.pending + c.queued + c.sending;
    const perS = c.status === "running" ? rate(c, done) : 0;
    const cells = [
      [c.name, small(short(c.id))],
      [badge(c.status), c.status_reason ? small(c.status_reason) : null, ...waitingNotes(c)],
      bar(done, c.total_recipients, `${num(done)} / ${num(c.total_recipients)}`),
      num(c.total_sent),
      num(c.total_delivered),
      num(c.total_read),
      num(c.total_failed),
      num(c.total_duplicates),
      num(c.total_invalid || 0),
      c.status === "running" ? `${perS.toFixed(1)}/s` : "–",
      c.status === "running" && perS > 0 ? duration(remaining / perS) : "–",
    ];
    fill(tr, cells);
    const fields = ["name", "status", "progress", "sent", "delivered", "read", "failed",
      "duplicates", "invalid", "rate", "eta"];
    fields.forEach((field, i) => {
      tr.children[i].dataset.field = field;
      if (i >= 3) tr.children[i].className = "num";
    });
    for (const [action, , from] of ACTIONS) {
      tr.querySelector(`button[data-action="${action}"]`).disabled = !from.includes(c.status);
    }
  }

  async function campaignAction(campaign, action) {
    if (action === "cancel" && !window.confirm(`Cancel campaign "${campaign.name}"?`)) return;
    try {
      await api("POST", `/campaigns/${encodeURIComponent(campaign.id)}/${action}`);
      note(`${action}: ${campaign.name}`);
    } catch (error) {
      failed(error, `${action} ${campaign.name}`);
    }
    refresh();
  }

  // -- A/B variants: one row per variant of the campaigns listed that have some --------------

  const MAX_AB_CAMPAIGNS = 10;
  const pct = (rate) => (rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`);

  // Each campaign's report on its own: one that fails shows that campaign's row as
  // unavailable (with why), the others' rows stay (Promise.all would drop them all).
  async function variantRows(campaigns) {
    const ab = campaigns.filter((c) => c.ab_test).slice(0, MAX_AB_CAMPAIGNS);
    const reports = await Promise.allSettled(
      ab.map((c) => api("GET", `/campaigns/${encodeURIComponent(c.id)}/variants`)),
    );
    const refused = reports.find((r) => r.status === "rejected" && r.reason instanceof Unauthorized);
    if (refused) throw refused.reason;
    return ab.flatMap((c, i) => reports[i].status === "fulfilled"
      ? reports[i].value.variants.map((v) => [c, reports[i].value, v])
      : [[c, null, null, reports[i].reason]]);
  }

  const variantKey = ([c, , v]) => `${c.id}/${v ? v.variant : "unavailable"}`;

  function updateVariant(tr, [c, report, v, error]) {
    if (!report) {
      fill(tr, [[c.name, small(short(c.id))], "unavailable",
        small(`variants not loaded: ${error && error.message ? error.message : "error"}`),
        ...Array.from({ length: 8 }, () => "–")]);
      labelVariantCells(tr);
      return;
    }
    const w = report.winner;
    const decided = w && w.variant === v.variant
      ? [badge("winner"), small(`z ${w.z.toFixed(2)}, p ${w.p_value.toPrecision(2)}, ${new Date(w.decided_at).toLocaleTimeString()}`)]
      : w ? "–" : report.auto_winner ? small("deciding") : "–";
    fill(tr, [
      [c.name, small(short(c.id))],
      v.label,
      v.template.name,
      num(v.weight),
      num(v.sent),
      num(v.delivered),
      num(v.read),
      num(v.failed),
      pct(v.read_rate),
      `${pct(v.read_rate_low)} – ${pct(v.read_rate_high)} (${Math.round(report.confidence * 100)}%)`,
      decided,
    ]);
    labelVariantCells(tr);
  }

  function labelVariantCells(tr) {
    const fields = ["campaign", "variant", "template", "weight", "sent", "delivered", "read",
      "failed", "read_rate", "interval", "winner"];
    fields.forEach((field, i) => {
      tr.children[i].dataset.field = field;
      if (i >= 3 && i <= 9) tr.children[i].className = "num";
    });
  }

  // -- instances, portfolios, queues --------------------------------------------------------

  function updateInstance(tr, s) {
    const breaker = s.breaker || {};
    const codes = Object.entries(s.errors_by_code || {})
      .sort((a, b) => b[1] - a[1])
      .map(([code, count]) => `${code} × ${num(count)}`);
    const last = s.last_error;
    fill(tr, [
      [names.get(s.instance_id) || s.phone_number_id, small(s.phone_number_id)],
      [badge(s.state), s.error ? small(s.error) : null],
      [`${num(s.current_rate_mps)} / ${num(s.configured_rate_mps)}`, small(`${num(s.sends_per_s)} sends/s`)],
      [badge(breaker.state), breaker.state === "open" ? small(`retry in ${duration(breaker.retry_after_s)}`) : null],
      codes.length ? codes.join(", ") : "–",
      last ? [`${last.code}: ${last.message || ""}`, last.details ? small(last.details) : null] : "–",
      [num(s.backlog), small(`${num(s.in_flight)} in flight`)],
      s.node_id ? el("span", { title: s.node_id }, String(s.node_id).slice(0, 12)) : "–",
    ]);
  }

  function updatePortfolio(tr, [business, p]) {
    const limit = p.daily_limit;
    const used = p.daily_unique_used;
    const usage = limit === null || limit === undefined
      ? (p.limit_source === "unreadable" ? "limit unreadable" : "unlimited")
      : bar(used || 0, limit, `${num(used)} / ${num(limit)}`);
    const hold = p.held ? [badge("held"), small(p.hold_reason || "")]
      : p.blocked_for_s > 0 ? `blocked ${duration(p.blocked_for_s)}` : "–";
    fill(tr, [
      business,
      usage,
      [p.tier || "–", small(p.limit_source || "not read"), p.limit_error ? small(p.limit_error) : null],
      hold,
    ]);
  }

  function queueRow([queue, instance]) {
    const tr = blankRow(6, { "data-queue": queue, "data-instance": instance || "" });
    if (instance) return tr;
    const actions = tr.children[5];
    actions.className = "actions";
    for (const [action, label, title] of QUEUE_ACTIONS) {
      const button = el("button", { type: "button", "data-action": action, title }, label);
      if (action === "clear") button.classList.add("danger");
      button.addEventListener("click", () => queueAction(queue, action));
      actions.append(button);
    }
    return tr;
  }

  function updateQueue(tr, [queue, instance, depth]) {
    fill(tr, [
      instance ? "" : queue,
      instance ? names.get(instance) || instance : "all",
      num(depth.pending),
      num(depth.processing),
      num(depth.dlq),
    ]);
    for (const i of [2, 3, 4]) tr.children[i].className = "num";
    const retry = tr.querySelector('button[data-action="retry_dlq"]');
    if (retry) retry.disabled = !depth.dlq;
  }

  async function queueAction(queue, action) {
    if (action === "clear" && !window.confirm(`Clear the whole ${queue} queue?`)) return;
    try {
      const answer = await api("POST", "/queue/stats", { action, queue });
      note(`${action} on ${queue}: ${JSON.stringify(answer.result)}`);
    } catch (error) {
      failed(error, `${action} on ${queue}`);
    }
    refresh();
  }

  // -- the campaigns listed -------------------------------------------------------------------

  async function allActive() {
    const items = [];
    let after = null;
    for (let page = 0; page < MAX_ACTIVE_PAGES; page++) {
      const query = new URLSearchParams({ status: [...ACTIVE].join(","), limit: String(PAGE) });
      if (after) query.set("after", after);
      const found = await api("GET", `/campaigns?${query}`);
      items.push(...found.items);
      after = found.next_after;
      if (!after) return { items, truncated: false };
    }
    return { items, truncated: true };
  }

  // Newest first by time (not by the text of the timestamp), then by id as the API pages.
  const newer = (a, b) =>
    Date.parse(b.created_at) - Date.parse(a.created_at) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);

  // Active first (what an operator acts on), each part newest first. One row per campaign:
  // one whose status changed between the two calls is in both, its latest state wins.
  async function listedCampaigns() {
    const [newest, active] = await Promise.all([
      api("GET", `/campaigns?limit=${NEWEST}`).then((page) => page.items),
      allActive(),
    ]);
    const byId = new Map();
    for (const campaign of [...active.items, ...newest]) {
      const seen = byId.get(campaign.id);
      if (!seen || Date.parse(campaign.updated_at) > Date.parse(seen.updated_at)) {
        byId.set(campaign.id, campaign);
      }
    }
    const all = [...byId.values()].sort(newer);
    const rows = [...all.filter((c) => ACTIVE.has(c.status)), ...all.filter((c) => !ACTIVE.has(c.status))];
    return { rows, truncated: active.truncated ? active.items.length : 0 };
  }

  // -- the loop -------------------------------------------------------------------------------

  async function poll() {
    const [campaigns, stats, instances] = await Promise.allSettled([
      listedCampaigns(),
      api("GET", "/queue/stats"),
      api("GET", "/instances"),
    ]);
    const refused = [campaigns, stats, instances].find(
      (r) => r.status === "rejected" && r.reason instanceof Unauthorized,
    );
    if (refused) throw refused.reason;
    if (instances.status === "fulfilled") {
      names = new Map(instances.value.items.map((i) => [i.id, i.name || i.display_phone_number || i.phone_number_id]));
    }
    if (campaigns.status === "fulfilled") {
      const { rows, truncated } = campaigns.value;
      sync($("campaigns").tBodies[0], rows, (c) => c.id, campaignRow, updateCampaign,
        "No campaigns yet");
      const more = $("campaigns-more");
      more.hidden = !truncated;
      more.textContent = truncated
        ? `Only the newest ${num(truncated)} running, held, paused or scheduled campaigns are listed: there are more (see GET /campaigns?status=...).`
        : "";
    }
    if (stats.status === "fulfilled") {
      const s = stats.value;
      const list = Object.entries(s.instances).map(([id, v]) => ({ instance_id: id, ...v }));
      sync($("instances").tBodies[0], list, (i) => i.instance_id, () => blankRow(8), updateInstance,
        "No instances");
      sync($("portfolios").tBodies[0], Object.entries(s.portfolios), ([b]) => b,
        () => blankRow(4), updatePortfolio, "No portfolios");
      const rows = [];
      for (const queue of ["campaigns", "webhooks"]) {
        rows.push([queue, null, s[queue]]);
        for (const [instance, depth] of Object.entries(s[queue].instances || {})) {
          rows.push([queue, instance, depth]);
        }
      }
      sync($("queues").tBodies[0], rows, ([q, i]) => `${q}/${i || ""}`, queueRow, updateQueue, "");
    }
    const errors = [campaigns, stats, instances].filter((r) => r.status === "rejected");
    if (errors.length) throw errors[0].reason;
    // Last: its own calls, one per A/B campaign listed, never hold the other tables back.
    sync($("variants").tBodies[0], await variantRows(campaigns.value.rows),
      variantKey, () => blankRow(11), updateVariant,
      "No A/B campaigns");
  }

  async function loop(mine) {
    if (mine !== generation) return;
    try {
      await poll();
      lastOk = Date.now();
      status(`updated ${new Date(lastOk).toLocaleTimeString()}`, false);
    } catch (error) {
      if (error instanceof Unauthorized) {
        signOut("The API refused this token.");
        return;
      }
      const stale = Date.now() - lastOk > STALE_MS;
      status(`error: ${error.message}`, stale);
    }
    if (mine === generation) setTimeout(() => loop(mine), POLL_MS);
  }

  const refresh = () => poll().catch(() => {}); // between two ticks, after an action

  function status(text, bad) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("stale", bad);
  }

  const note = (text) => status(text, false);
  function failed(error, what) {
    if (error instanceof Unauthorized) signOut("The API refused this token.");
    else status(`${what} failed: ${error.message}`, true);
  }

  // -- the token --------------------------------------------------------------------------------

  function signOut(message) {
    generation += 1;
    sessionStorage.removeItem(KEY);
    $("console").hidden = true;
    $("signout").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
    status("not signed in", false);
    $("token").focus();
  }

  function start() {
    generation += 1;
    $("login").hidden = true;
    $("console").hidden = false;
    $("signout").hidden = false;
    status("loading…", false);
    loop(generation);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault(); // never a form submission: the token stays out of URLs
      const input = $("token");
      const value = input.value.trim();
      input.value = "";
      if (!value) return;
      sessionStorage.setItem(KEY, value);
      start();
    });
    $("signout").addEventListener("click", () => signOut(""));
    if (sessionStorage.getItem(KEY)) start();
    else signOut("");
  });
})();
