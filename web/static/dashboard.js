// Dashboard: re-reads /api/status every few seconds and redraws the broker, sessions and
// devices in the markup the server rendered (dashboard.html), so the page stays current
// without a reload. Text goes in with textContent only: nothing from a PLC or a broker is
// ever markup. A failed refresh is said at the top, with the time of the data still shown.
"use strict";

(() => {
  const EVERY_MS = 2000;

  // As the server writes it (dashboard.rs iso_time, age).
  const iso = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  const time = (ms) => (ms === null || ms === undefined ? "—" : iso(ms));
  function ago(ms) {
    if (ms === null || ms === undefined) return "";
    const s = Math.floor((Date.now() - ms) / 1000);
    if (s < 0) return "in the future";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }
  const rate = (r) => `${Number(r ?? 0).toFixed(1)}/s`;

  // An element: el("td", {class: "num"}, "text", childElement, …).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
    for (const c of children) {
      if (c === null || c === undefined || c === "") continue;
      e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
    }
    return e;
  }
  const badge = (cls, text) => el("span", { class: `q q-${cls}` }, text);
  const when = (ms) => el("td", { class: "nowrap" }, time(ms), " ", el("span", { class: "muted" }, ago(ms)));

  function sessionClass(s) {
    if (s.state === "online") return "good";
    if (s.state === "offline" || !s.state) return "bad";
    return "warn";
  }
  function deviceClass(d) {
    if (!d.enabled) return "off";
    return d.online ? "good" : "bad";
  }

  function sessionRow(s) {
    const cls = sessionClass(s);
    let host;
    if (s.primary_host_id === null || s.primary_host_id === undefined) {
      host = el("td", {}, el("span", { class: "muted" }, "not configured"));
    } else {
      const state = s.primary_host_online === true ? badge("good", "online")
        : s.primary_host_online === false ? badge("bad", "offline") : badge("warn", "no STATE yet");
      host = el("td", {}, el("span", { class: "mono" }, s.primary_host_id), " ", state);
    }
    return el("tr", { class: `row-${cls}` },
      el("td", { class: "nowrap" }, s.name),
      el("td", { class: "mono" }, s.server),
      el("td", {}, badge(cls, s.state || "unknown")),
      el("td", { class: "num" }, s.bd_seq ?? "—"),
      el("td", { class: "num" }, s.seq ?? "—"),
      host,
      when(s.last_birth_ms),
      el("td", { class: "num" }, s.births),
      el("td", { class: cls === "good" ? "wrap" : "wrap bad-text" }, s.last_error ?? ""));
  }

  function deviceRow(d) {
    const cls = deviceClass(d);
    const error = el("td", { class: cls === "bad" ? "wrap bad-text" : "wrap" });
    if (d.last_error) {
      if (cls !== "bad") error.append(el("span", { class: "muted" }, "earlier: "));
      error.append(d.last_error);
    }
    return el("tr", { class: `row-${cls}` },
      el("td", { class: "nowrap" }, d.name),
      el("td", { class: "nowrap" }, d.driver),
      el("td", {}, badge(cls, !d.enabled ? "disabled" : d.online ? "online" : "offline")),
      when(d.since_ms),
      el("td", { class: "num" }, d.samples),
      when(d.last_sample_ms),
      el("td", { class: "num" }, d.failures),
      error);
  }

  function rows(id, items, row, empty) {
    const body = document.getElementById(id);
    const fresh = items.length ? items.map(row) : [el("tr", {}, el("td", { colspan: "8", class: "empty" }, empty))];
    body.replaceChildren(...fresh);
  }

  function tile(id, text, state) {
    const t = document.getElementById(id);
    t.querySelector(".big").textContent = text;
    t.className = state ? `tile ${state}` : "tile";
  }

  function render(status) {
    const b = status.broker ?? {};
    const enabled = status.devices.filter((d) => d.enabled);
    const online = enabled.filter((d) => d.online).length;
    const sessionsOnline = status.sessions.filter((s) => sessionClass(s) === "good").length;
    // "—" until anything reported: "0 / 0" would read as "there are none".
    tile("tile-devices", status.devices.length ? `${online} / ${enabled.length}` : "—", online < enabled.length ? "bad" : "");
    tile("tile-sessions", status.sessions.length ? `${sessionsOnline} / ${status.sessions.length}` : "—",
      sessionsOnline < status.sessions.length ? "bad" : "");
    tile("tile-clients", String(b.connections ?? 0), "");
    tile("tile-in", rate(b.messages_in_per_s), "");
    tile("tile-out", rate(b.messages_out_per_s), "");
    tile("tile-dropped", String(b.dropped ?? 0), b.dropped > 0 ? "warn" : "");
    document.getElementById("b-listen").textContent = b.listen || "—";
    document.getElementById("b-clients").textContent =
      `${b.connections} connected, ${b.sessions} MQTT sessions, ${b.retained} retained messages`;
    document.getElementById("b-rates").textContent =
      `${rate(b.messages_in_per_s)} in, ${rate(b.messages_out_per_s)} out, ${b.dropped} dropped since start`;
    const started = document.getElementById("b-started");
    if (status.started_ms > 0) {
      started.replaceChildren(time(status.started_ms), " ", el("span", { class: "muted" }, `(${ago(status.started_ms)})`));
    }
    rows("sessions", status.sessions, sessionRow, "No data yet: no Sparkplug session has reported its state.");
    rows("devices", status.devices, deviceRow, "No data yet: no device has reported its state.");
  }

  async function refresh() {
    const note = document.getElementById("refresh");
    // A hidden tab need not poll; it catches up when shown again.
    if (!document.hidden) {
      const { ok, data } = await sparkedge.api("GET", "/api/status");
      if (ok && data && Array.isArray(data.sessions) && Array.isArray(data.devices)) {
        render(data);
        note.textContent = `as of ${iso(Date.now())}`;
        note.className = "refresh";
      } else {
        note.textContent = `refresh failed: ${sparkedge.errorText(data)} — the data below may be old`;
        note.className = "refresh failed";
      }
    }
    setTimeout(refresh, EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", () => setTimeout(refresh, EVERY_MS));
})();
