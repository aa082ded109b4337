// sparkedge web UI: the little the browser does. Pages are rendered on the server; this file
// sends forms to the REST API (so a form is checked by exactly the rules the API applies),
// puts each error beside the field it names, and keeps live values current. No framework, no
// CDN: the appliance works without internet.
"use strict";

const sparkedge = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content ?? "";

  // Calls the REST API; resolves to {ok, status, data} and never throws for an HTTP error.
  async function api(method, url, body, contentType, extraHeaders) {
    const headers = { ...extraHeaders, "X-CSRF-Token": csrf(), Accept: "application/json" };
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = contentType ?? "application/json";
      payload = headers["Content-Type"] === "application/json" ? JSON.stringify(body) : body;
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    } catch (e) {
      return { ok: false, status: 0, data: { errors: [{ reason: `the appliance did not answer: ${e}` }] } };
    }
    const text = await response.text();
    let data = text;
    try { data = JSON.parse(text); } catch (_) { /* not JSON: keep the text */ }
    if (response.status === 401) {
      location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
    }
    return { ok: response.ok, status: response.status, data };
  }

  // A form's fields as JSON. Empty fields are left out (the model's default applies);
  // numbers, checkboxes and data-type="json" fields become typed values, and a
  // data-type="lines" textarea a list of its non-empty lines (empty: an empty list).
  function formJson(form) {
    const out = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.dataset.skip !== undefined) continue;
      if (el.type === "checkbox") { out[el.name] = el.checked; continue; }
      if (el.dataset.type === "lines") {
        out[el.name] = el.value.split("\n").map((line) => line.trim()).filter((line) => line !== "");
        continue;
      }
      if (el.type === "radio" && !el.checked) continue;
      const v = el.value.trim();
      if (v === "") continue;
      if (el.type === "number" || el.dataset.type === "number") {
        // Text that is no number is sent as typed, so the API names the field rather than
        // the form dropping it (JSON has no NaN).
        const n = Number(v);
        out[el.name] = Number.isFinite(n) ? n : v;
      }
      else if (el.dataset.type === "json") {
        try { out[el.name] = JSON.parse(v); } catch (_) { out[el.name] = v; }
      } else out[el.name] = v;
    }
    return out;
  }

  function clearErrors(root) {
    root.querySelectorAll(".field-error, .form-errors").forEach((e) => e.remove());
    root.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
  }

  // Puts each API error beside the field it names; errors about no field of this form go in a
  // box at its top, with field and value, so nothing the server said is hidden. An error on
  // one entry of a list (`servers[1]`) without an input of its own goes beside the input that
  // holds the whole list (a data-type="lines" textarea), naming the entry by its value.
  function showErrors(root, errors, prefix = "") {
    clearErrors(root);
    const unplaced = [];
    const input = (name) => root.querySelector(`[name="${CSS.escape(name)}"]`);
    for (const e of errors ?? []) {
      const name = (e.field ?? "").startsWith(prefix) ? (e.field ?? "").slice(prefix.length) : null;
      let field = name ? input(name) : null;
      let text = e.reason;
      const entry = name && !field ? /^(.+)\[\d+\]$/.exec(name) : null;
      if (entry && (field = input(entry[1])) && e.value !== undefined) text = `${e.value}: ${e.reason}`;
      if (field) {
        field.classList.add("invalid");
        const note = document.createElement("div");
        note.className = "field-error";
        note.textContent = text;
        field.insertAdjacentElement("afterend", note);
      } else {
        unplaced.push(e);
      }
    }
    if (unplaced.length) {
      const box = document.createElement("div");
      box.className = "form-errors error";
      box.setAttribute("role", "alert");
      const list = document.createElement("ul");
      for (const e of unplaced) {
        const item = document.createElement("li");
        const where = e.field ? `${e.field}${e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : ""}: ` : "";
        item.textContent = where + e.reason;
        list.append(item);
      }
      box.append(list);
      root.prepend(box);
    }
  }

  // Shows an outcome in the element `target` (an id or element): text, and ok or error style.
  function say(target, text, ok) {
    const el = typeof target === "string" ? document.getElementById(target) : target;
    if (!el) return;
    el.textContent = text;
    el.className = ok ? "ok" : "error";
    el.hidden = false;
  }

  // The text of every error of an API answer, one per line.
  function errorText(data) {
    if (data && Array.isArray(data.errors)) {
      return data.errors
        .map((e) => (e.field ? `${e.field}${e.value !== undefined ? ` = ${JSON.stringify(e.value)}` : ""}: ` : "") + e.reason)
        .join("\n");
    }
    return typeof data === "string" ? data : JSON.stringify(data);
  }

  // Forms with data-api="METHOD URL" are sent to the API as JSON. On success the page goes to
  // data-redirect (with {field} filled from the answer) or reloads. Before sending, the form
  // gets a "sparkedge:send" event whose detail {method, url, body, headers} a page's script may
  // change: for what no input can say (a URL naming a field's value, a header, a null).
  function bindForms(root = document) {
    for (const form of root.querySelectorAll("form[data-api]")) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (form.dataset.confirm && !confirm(form.dataset.confirm)) return;
        const [method, url] = form.dataset.api.split(" ");
        const button = form.querySelector("[type=submit]");
        if (button) button.disabled = true;
        const request = { method, url, body: method === "DELETE" ? undefined : formJson(form), headers: {} };
        form.dispatchEvent(new CustomEvent("sparkedge:send", { detail: request }));
        const { ok, data } = await api(request.method, request.url, request.body, undefined, request.headers);
        if (button) button.disabled = false;
        // data-error-prefix: the part of the API's field names the form's inputs leave out
        // (errors on `sparkplug.edge_node_id` belong beside name="edge_node_id").
        if (!ok) { showErrors(form, data?.errors ?? [{ reason: errorText(data) }], form.dataset.errorPrefix ?? ""); return; }
        clearErrors(form);
        const next = form.dataset.redirect;
        if (next) location.href = next.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(data?.[k] ?? ""));
        else location.reload();
      });
    }
  }

  // A value as the pages show it: arrays by their first elements and a count, so a row stays
  // one line however long the array (as the server renders it, namespace.rs value_text).
  const SHOWN_ELEMENTS = 4;
  function valueText(value) {
    if (value === null || value === undefined) return "—";
    if (Array.isArray(value)) {
      const shown = value.slice(0, SHOWN_ELEMENTS).map((v) => JSON.stringify(v)).join(", ");
      return value.length > SHOWN_ELEMENTS ? `[${shown}, …] (${value.length} items)` : `[${shown}]`;
    }
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  // `ids` (tag numbers) as the `tags` parameter of /api/live: sorted, runs as ranges
  // ("0-199,350"), so a page of 200 rows is a short URL.
  function tagRanges(ids) {
    const sorted = [...new Set(ids)].sort((a, b) => a - b);
    const parts = [];
    for (let i = 0; i < sorted.length; i++) {
      let j = i;
      while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
      parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
      i = j;
    }
    return parts.join(",");
  }

  // Tells the live view that the page's rows changed (a script added or removed some).
  let rowsChanged = () => {};

  // Keeps elements with data-live="<tag id>" (value), data-live-quality and data-live-time
  // current from /api/live, subscribed to the tags on the page only: a model of 100,000 tags
  // changes faster than a browser should be told. A script that adds or removes rows calls
  // sparkedge.rowsChanged(); the stream is then opened again for the new rows, and its first
  // event brings their current values. When the model changes under the page, and when the
  // login ends (logout, expiry, a changed role), the page reloads.
  function live() {
    const status = document.getElementById("live-status");
    if (!status && !document.querySelector("[data-live]")) return;
    // Elements by tag id, found once per change of rows, not once per sample.
    let index = new Map();
    let source = null;
    let subscribed = null;
    function reindex() {
      index = new Map();
      for (const [attr, kind] of [["data-live", "value"], ["data-live-quality", "quality"], ["data-live-time", "time"]]) {
        for (const el of document.querySelectorAll(`[${attr}]`)) {
          const id = el.getAttribute(attr);
          if (!index.has(id)) index.set(id, { value: [], quality: [], time: [] });
          index.get(id)[kind].push(el);
        }
      }
    }
    function connect() {
      reindex();
      const tags = tagRanges([...index.keys()].map(Number).filter(Number.isInteger));
      if (source && tags === subscribed) return;
      source?.close();
      subscribed = tags;
      source = new EventSource(`/api/live?tags=${tags}`);
      source.onopen = () => { if (status) { status.textContent = "● live"; status.className = "live on"; } };
      source.onerror = () => { if (status) { status.textContent = "● reconnecting"; status.className = "live off"; } };
      source.addEventListener("model", () => location.reload());
      source.addEventListener("session", () => { source.close(); location.reload(); });
      source.onmessage = (event) => {
        for (const s of JSON.parse(event.data)) {
          const found = index.get(String(s.tag));
          if (!found) continue;
          for (const el of found.value) el.textContent = valueText(s.value);
          for (const el of found.quality) {
            el.textContent = s.quality;
            el.className = `q q-${s.quality}`;
          }
          for (const el of found.time) el.textContent = s.timestamp ? new Date(s.timestamp).toISOString() : "";
        }
      };
    }
    let pending = false;
    rowsChanged = () => {
      // Several nodes may load at once: one new stream for all of them.
      if (pending) return;
      pending = true;
      setTimeout(() => { pending = false; connect(); }, 0);
    };
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => { bindForms(); live(); });
  return { api, formJson, showErrors, clearErrors, say, errorText, bindForms, valueText, rowsChanged: () => rowsChanged() };
})();
