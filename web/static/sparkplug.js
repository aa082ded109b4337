// Sparkplug inspector: the decoded metrics of one birth (the alias map), from
// /api/sparkplug/births/{topic}. A birth may hold 10,000 metrics, so the JSON is fetched once
// and only one page of rows (PAGE) is in the table at a time; the filter and the order work
// on the whole list. Text goes in with textContent only.
"use strict";

(() => {
  const PAGE = 200;
  // The one property key Sparkplug defines (spec §3.7).
  const QUALITY = { 0: "BAD", 192: "GOOD", 500: "STALE" };
  const SHOWN_ELEMENTS = 4;

  let metrics = [];
  let view = [];
  let first = 0;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function valueText(v) {
    if (v === null || v === undefined) return null;
    if (Array.isArray(v)) {
      const shown = v.slice(0, SHOWN_ELEMENTS).map((x) => JSON.stringify(x)).join(", ");
      return v.length > SHOWN_ELEMENTS ? `[${shown}, …] (${v.length} items)` : `[${shown}]`;
    }
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  function timeText(ms) {
    if (typeof ms !== "number") return "—";
    const d = new Date(ms);
    return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace("T", " ");
  }

  function properties(props) {
    const cell = el("td");
    if (!props || typeof props !== "object") return cell;
    for (const [key, value] of Object.entries(props)) {
      let text = `${key}=${valueText(value) ?? "null"}`;
      if (key === "Quality" && QUALITY[value] !== undefined) text += ` (${QUALITY[value]})`;
      cell.append(el("span", { class: "prop" }, text));
    }
    return cell;
  }

  function row(m) {
    const value = valueText(m.value);
    return el("tr", {},
      el("td", { class: "mono" }, m.name ?? el("span", { class: "bad-text" }, "(no name)")),
      el("td", { class: "num" }, m.alias === null || m.alias === undefined ? el("span", { class: "muted" }, "—") : String(m.alias)),
      el("td", {}, m.datatype ?? el("span", { class: "bad-text" }, "(none)")),
      el("td", { class: "value" }, value === null ? el("span", { class: "muted" }, "null") : value),
      el("td", { class: "nowrap mono" }, timeText(m.timestamp)),
      properties(m.properties));
  }

  // Problems with the aliases of this birth (spec §2.14): two metrics sharing one, bdSeq or
  // Node Control/Rebirth carrying one, and metrics without one when the others have them.
  function aliasProblems(list) {
    const byAlias = new Map();
    const problems = [];
    let without = 0;
    for (const m of list) {
      const special = m.name === "bdSeq" || m.name === "Node Control/Rebirth";
      if (m.alias === null || m.alias === undefined) {
        if (!special) without += 1;
        continue;
      }
      if (special) problems.push(`${m.name} has alias ${m.alias}; it must have none`);
      const names = byAlias.get(m.alias) ?? [];
      names.push(m.name ?? "(no name)");
      byAlias.set(m.alias, names);
    }
    for (const [alias, names] of byAlias) {
      if (names.length > 1) {
        const shown = names.slice(0, 5).join(", ") + (names.length > 5 ? `, … (${names.length})` : "");
        problems.push(`alias ${alias} is used by ${names.length} metrics: ${shown}`);
      }
    }
    if (byAlias.size > 0 && without > 0) problems.push(`${without} metrics have no alias while the others have one`);
    return { problems, aliases: byAlias.size };
  }

  function showAliasCheck(list) {
    const box = document.getElementById("alias-check");
    const { problems, aliases } = aliasProblems(list);
    if (problems.length) {
      const items = problems.slice(0, 20).map((p) => el("li", {}, p));
      if (problems.length > 20) items.push(el("li", {}, `… and ${problems.length - 20} more`));
      box.replaceChildren(el("div", { class: "warnings", role: "alert" }, "Alias problems in this birth:", el("ul", {}, ...items)));
    } else {
      box.replaceChildren(el("p", { class: "note" }, aliases
        ? `${aliases.toLocaleString("en")} aliases, each used once in this birth.`
        : "This birth uses no aliases: DATA messages carry metric names."));
    }
  }

  // The whole node (spec §2.14): an alias is unique across its NBIRTH and all its DBIRTHs.
  async function checkNode(topic) {
    const out = document.getElementById("node-check");
    const [, group, , node] = topic.split("/");
    const listed = await sparkedge.api("GET", "/api/sparkplug/births");
    if (!listed.ok) { sparkedge.say(out, sparkedge.errorText(listed.data), false); return; }
    const births = listed.data.filter((b) => b.group_id === group && b.edge_node_id === node);
    const byAlias = new Map();
    let metricsSeen = 0;
    for (const b of births) {
      out.textContent = `Reading ${b.topic}…`;
      const url = "/api/sparkplug/births/" + b.topic.split("/").map(encodeURIComponent).join("/");
      const { ok, data } = await sparkedge.api("GET", url);
      if (!ok) { sparkedge.say(out, `${b.topic}: ${sparkedge.errorText(data)}`, false); return; }
      const where = b.type === "NBIRTH" ? "NBIRTH" : `DBIRTH ${b.device_id}`;
      for (const m of data.metric_list ?? []) {
        metricsSeen += 1;
        if (typeof m.alias !== "number") continue;
        const users = byAlias.get(m.alias) ?? [];
        users.push(`${m.name ?? "(no name)"} (${where})`);
        byAlias.set(m.alias, users);
      }
    }
    const shared = [...byAlias].filter(([, users]) => users.length > 1);
    if (!shared.length) {
      sparkedge.say(out, `Edge node ${group}/${node}: ${byAlias.size.toLocaleString("en")} aliases over ${metricsSeen.toLocaleString("en")} metrics in ${births.length} births, each used once.`, true);
      return;
    }
    const items = shared.slice(0, 20).map(([alias, users]) => el("li", {}, `alias ${alias}: ${users.slice(0, 5).join(", ")}${users.length > 5 ? ` … (${users.length})` : ""}`));
    if (shared.length > 20) items.push(el("li", {}, `… and ${shared.length - 20} more aliases`));
    out.className = "";
    out.replaceChildren(el("div", { class: "warnings", role: "alert" },
      `${shared.length} aliases are used more than once across this node's births:`, el("ul", {}, ...items)));
  }

  function order(list, how) {
    const sorted = list.slice();
    if (how === "alias") {
      const a = (m) => (typeof m.alias === "number" ? m.alias : Number.MAX_SAFE_INTEGER);
      sorted.sort((x, y) => a(x) - a(y));
    } else if (how === "name") {
      sorted.sort((x, y) => String(x.name ?? "").localeCompare(String(y.name ?? "")));
    }
    return sorted;
  }

  function applyFilter() {
    const text = document.getElementById("filter").value.trim().toLowerCase();
    const alias = /^\d+$/.test(text) ? Number(text) : null;
    const matching = text === "" ? metrics : metrics.filter((m) =>
      String(m.name ?? "").toLowerCase().includes(text) || (alias !== null && m.alias === alias));
    view = order(matching, document.getElementById("order").value);
    first = 0;
    draw();
  }

  function draw() {
    const shown = view.slice(first, first + PAGE);
    document.querySelector("#metrics tbody").replaceChildren(...(shown.length
      ? shown.map(row)
      : [el("tr", {}, el("td", { colspan: "6", class: "empty" }, metrics.length ? "No metric matches the filter." : "This birth has no metrics."))]));
    const filtered = view.length !== metrics.length ? ` (filtered from ${metrics.length.toLocaleString("en")})` : "";
    document.getElementById("count").textContent = view.length
      ? `rows ${first + 1}–${first + shown.length} of ${view.length.toLocaleString("en")}${filtered}`
      : `0 of ${metrics.length.toLocaleString("en")}`;
    document.getElementById("prev").disabled = first === 0;
    document.getElementById("next").disabled = first + PAGE >= view.length;
  }

  async function load(section) {
    const topic = section.dataset.topic;
    const status = document.getElementById("birth-status");
    const url = "/api/sparkplug/births/" + topic.split("/").map(encodeURIComponent).join("/");
    const { ok, data } = await sparkedge.api("GET", url);
    if (!ok) {
      sparkedge.say(status, `The birth could not be read: ${sparkedge.errorText(data)}`, false);
      return;
    }
    metrics = Array.isArray(data.metric_list) ? data.metric_list : [];
    const facts = [data.type, `seq ${data.seq ?? "—"}`];
    if (data.type === "NBIRTH") facts.push(`bdSeq ${data.bd_seq ?? "—"}`);
    facts.push(`timestamp ${timeText(data.timestamp)}`, `${metrics.length.toLocaleString("en")} metrics`);
    status.textContent = facts.join(" · ");
    status.className = "";
    if (data.decode_error) {
      status.after(el("div", { class: "error", role: "alert" },
        `The broker holds this payload but it does not decode as Sparkplug B: ${data.decode_error}`));
    }
    showAliasCheck(metrics);
    applyFilter();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = document.getElementById("birth");
    if (!section) return;
    let pending;
    document.getElementById("filter").addEventListener("input", () => {
      clearTimeout(pending);
      pending = setTimeout(applyFilter, 120);
    });
    document.getElementById("order").addEventListener("change", applyFilter);
    const check = document.getElementById("check-node");
    check.addEventListener("click", async () => {
      check.disabled = true;
      await checkNode(section.dataset.topic);
      check.disabled = false;
    });
    document.getElementById("prev").addEventListener("click", () => { first = Math.max(0, first - PAGE); draw(); });
    document.getElementById("next").addEventListener("click", () => { if (first + PAGE < view.length) { first += PAGE; draw(); } });
    load(section);
  });
})();
