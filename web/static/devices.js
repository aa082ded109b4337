// sparkedge: the interactive parts of the device and tag pages. The pages are rendered on the
// server; this file only talks to the REST API (through sparkedge.api from app.js, which sends
// the CSRF token) and shows what it answers: every error beside the field it names, a device's
// own error text in full. Nothing here decides what is valid: the API does, by the same rules
// as an import. Plain JavaScript, no framework, no CDN.
"use strict";

(() => {
  const { api, formJson, showErrors, clearErrors, say, errorText } = sparkedge;
  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const path = (p) => p.split("/").map(encodeURIComponent).join("/");

  // Runs `work` with `button` disabled and showing `busy`, so a slow PLC cannot be asked twice.
  async function busy(button, text, work) {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = text;
    try { return await work(); } finally { button.disabled = false; button.textContent = label; }
  }

  // "d=v;d2=v2;" → the value for `driver`, else for "*".
  function defaultFor(spec, driver) {
    const pairs = (spec ?? "").split(";").filter(Boolean).map((p) => {
      const at = p.indexOf("=");
      return [p.slice(0, at), p.slice(at + 1)];
    });
    const hit = pairs.find(([d]) => d === driver) ?? pairs.find(([d]) => d === "*");
    return hit ? hit[1] : "";
  }

  // Shows a row (and enables its fields) or hides it (and disables them, so the form does not
  // send a setting its driver does not have).
  function showRow(row, shown) {
    row.hidden = !shown;
    for (const el of $$("input, select, textarea", row)) el.disabled = !shown;
  }

  // ---- device status, refreshed on the list and on a device's page ----

  function refreshStatus() {
    if (!$("[data-device-state]")) return;
    const update = async () => {
      const { ok, data } = await api("GET", "/api/status");
      if (!ok || !Array.isArray(data?.devices)) return;
      for (const d of data.devices) {
        const state = !d.enabled ? "disabled" : d.online ? "online" : "offline";
        for (const el of $$(`[data-device-state="${CSS.escape(d.name)}"]`)) {
          el.textContent = state;
          el.className = `st st-${state}`;
          if (d.since_ms) el.title = `since ${new Date(d.since_ms).toISOString()}`;
        }
        // As the server renders it (device_pages::StatusView): an error of the past is marked so.
        for (const el of $$(`[data-device-error="${CSS.escape(d.name)}"]`)) {
          const offline = state === "offline";
          el.textContent = !d.last_error ? "" : offline ? d.last_error : `last error: ${d.last_error}`;
          el.className = offline ? "device-error" : "device-error past";
        }
      }
    };
    setInterval(update, 5000);
  }

  // ---- the device form ----

  function deviceForm() {
    const form = $("#device-form");
    if (!form) return;
    const driver = $("#d-driver", form);
    const update = () => {
      for (const row of $$(".row[data-drivers]", form)) {
        let shown = row.dataset.drivers.split(" ").includes(driver.value);
        const when = row.dataset.when;
        if (shown && when) {
          const [field, value] = when.split("=");
          shown = form.elements[field]?.value === value;
        }
        showRow(row, shown);
        for (const el of $$("[data-defaults]", row)) {
          const d = defaultFor(el.dataset.defaults, driver.value);
          if (el.tagName === "SELECT") el.options[0].textContent = `default (${d})`;
          else el.placeholder = d;
        }
      }
    };
    form.addEventListener("change", (e) => { if (e.target.tagName === "SELECT") update(); });
    // A test result is about the settings it was run with; once they change it would mislead.
    form.addEventListener("input", () => { $("#test-result", form).hidden = true; });
    update();

    const test = $("#test-connection", form);
    test.addEventListener("click", () => busy(test, "Testing…", async () => {
      const body = formJson(form);
      // A connection test needs no name yet; the API wants one.
      if (!body.name) body.name = "unsaved";
      const result = $("#test-result", form);
      say(result, `Connecting to ${body.host ?? body.path ?? body.endpoint ?? body.driver}…`, true);
      const { ok, data } = await api("POST", "/api/devices/test", body);
      if (!ok) {
        showErrors(form, data?.errors ?? [{ reason: errorText(data) }]);
        say(result, `Not tested: the settings are not valid.\n${errorText(data)}`, false);
        return;
      }
      clearErrors(form);
      if (data.ok) say(result, `✓ Connected: ${data.message}`, true);
      else say(result, `✗ ${data.error}`, false);
    }));
  }

  // ---- a device's page: enable/disable, delete, confirmations ----

  // Asks in a dialog; resolves to true when the user confirms.
  function confirmDialog(title, text, yes) {
    const dialog = $("#confirm-dialog");
    $("#confirm-title", dialog).textContent = title;
    $("#confirm-text", dialog).textContent = text;
    $("#confirm-yes", dialog).textContent = yes;
    return new Promise((resolve) => {
      const done = (answer) => {
        $("#confirm-yes", dialog).onclick = null;
        $("#confirm-no", dialog).onclick = null;
        dialog.close();
        resolve(answer);
      };
      $("#confirm-yes", dialog).onclick = () => done(true);
      $("#confirm-no", dialog).onclick = () => done(false);
      dialog.oncancel = () => done(false);
      dialog.showModal();
    });
  }

  function devicePage() {
    const page = $("#device");
    if (!page) return;
    const name = page.dataset.device;
    const result = $("#device-result");

    // The saved settings; the form below tests what it holds before it is saved.
    const test = $("#test-saved");
    test?.addEventListener("click", () => busy(test, "Testing…", async () => {
      const { ok, data } = await api("POST", `/api/devices/${encodeURIComponent(name)}/test`);
      if (!ok) say(result, errorText(data), false);
      else if (data.ok) say(result, `✓ Connected: ${data.message}`, true);
      else say(result, `✗ ${data.error}`, false);
    }));

    const toggle = $("#toggle-enabled");
    toggle?.addEventListener("click", () => busy(toggle, "Saving…", async () => {
      const got = await api("GET", `/api/devices/${encodeURIComponent(name)}`);
      if (!got.ok) { say(result, errorText(got.data), false); return; }
      const device = got.data;
      delete device.tags; // the tag count is shown, not a setting
      device.enabled = toggle.dataset.enabled !== "true";
      const put = await api("PUT", `/api/devices/${encodeURIComponent(name)}`, device);
      if (!put.ok) { say(result, errorText(put.data), false); return; }
      location.reload();
    }));

    const remove = $("#delete-device");
    remove?.addEventListener("click", async () => {
      const tags = Number(page.dataset.tags);
      const text = tags === 0
        ? `Delete device ${name}? It has no tags.`
        : `Delete device ${name} and its ${tags} tag${tags === 1 ? "" : "s"}? ` +
          "The tags are deleted with it: they leave Sparkplug (the device's DDEATH) and the UNS.";
      if (!await confirmDialog(`Delete ${name}`, text, tags === 0 ? "Delete device" : `Delete device and ${tags} tag${tags === 1 ? "" : "s"}`)) return;
      const { ok, data } = await api("DELETE", `/api/devices/${encodeURIComponent(name)}?delete_tags=true`);
      if (!ok) { say(result, errorText(data), false); return; }
      location.href = "/devices";
    });

    for (const button of $$("button.delete-tag")) {
      button.addEventListener("click", async () => {
        const tag = button.dataset.path;
        if (!await confirmDialog(`Delete ${tag}`, `Delete tag ${tag} of ${name}? It leaves Sparkplug (rebirth) and the UNS.`, "Delete tag")) return;
        const { ok, data } = await api("DELETE", `/api/tags/${path(tag)}`);
        if (!ok) { say(result, errorText(data), false); return; }
        location.reload();
      });
    }
  }

  // ---- writing a value (operators and admins) ----

  // The JSON text of the value typed for a tag of input kind `kind`, or an error to show.
  // Numbers are sent as typed (not through a JavaScript number), so a 64-bit integer arrives
  // exact; anything else the API explains.
  function valueJson(kind, text) {
    const t = text.trim();
    if (kind === "bool") return { json: t === "true" ? "true" : "false", shown: t };
    if (t === "" && kind !== "text") return { error: "enter a value" };
    if (kind === "number" && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(t)) return { json: t, shown: t };
    if (kind === "json") {
      try { return { json: JSON.stringify(JSON.parse(t)), shown: t }; } catch (_) { /* sent as text */ }
    }
    return { json: JSON.stringify(text), shown: JSON.stringify(text) };
  }

  function writeDialog() {
    const dialog = $("#write-dialog");
    if (!dialog) return;
    const device = $("#device").dataset.device;
    const input = $("#write-value", dialog);
    const boolInput = $("#write-bool", dialog);
    const live = $("#write-live", dialog);
    const liveQuality = $("#write-live-quality", dialog);
    const result = $("#write-result", dialog);
    let tag = null;
    // The dialog shows the row's live value as app.js updates it (app.js indexes its live
    // elements once, so the dialog mirrors the row rather than joining that index).
    let watching = null;
    const mirror = (row) => {
      watching?.disconnect();
      const value = $("[data-live]", row);
      const quality = $("[data-live-quality]", row);
      const copy = () => {
        live.textContent = value?.textContent ?? "—";
        liveQuality.textContent = quality?.textContent ?? "none";
        liveQuality.className = quality?.className ?? "q q-none";
      };
      copy();
      watching = new MutationObserver(copy);
      for (const el of [value, quality]) {
        if (el) watching.observe(el, { childList: true, characterData: true, subtree: true, attributes: true });
      }
    };
    dialog.addEventListener("close", () => { watching?.disconnect(); watching = null; });

    const step = (name) => {
      $("#write-enter", dialog).hidden = name !== "enter";
      $("#write-confirm", dialog).hidden = name !== "confirm";
      $("#write-done", dialog).hidden = name !== "done";
    };
    const current = () => (tag.input === "bool" ? boolInput.value : input.value);

    for (const button of $$("button.write")) {
      button.addEventListener("click", () => {
        tag = { ...button.dataset };
        $("#write-path", dialog).textContent = tag.path;
        $("#write-type", dialog).textContent = `(${tag.datatype})`;
        $("#write-unit", dialog).textContent = tag.unit ? `in ${tag.unit}` : "";
        const bool = tag.input === "bool";
        boolInput.hidden = !bool; boolInput.disabled = !bool;
        input.hidden = bool; input.disabled = bool;
        input.value = "";
        input.placeholder = tag.input === "json" ? "[1, 2, 3]" : "";
        mirror(button.closest("tr"));
        clearErrors(dialog);
        result.hidden = true;
        step("enter");
        dialog.showModal();
        (bool ? boolInput : input).focus();
      });
    }
    const next = () => {
      clearErrors(dialog);
      const v = valueJson(tag.input, current());
      if (v.error) { showErrors(dialog, [{ field: "value", reason: v.error }]); return; }
      tag.json = v.json;
      $("#write-question", dialog).textContent = `Write ${v.shown} to ${tag.path} on ${device}?`;
      step("confirm");
      $("#write-send", dialog).focus();
    };
    $("#write-next", dialog).addEventListener("click", next);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); next(); } });
    $("#write-back", dialog).addEventListener("click", () => step("enter"));
    $("#write-again", dialog).addEventListener("click", () => { result.hidden = true; step("enter"); });
    for (const b of $$(".write-close", dialog)) b.addEventListener("click", () => dialog.close());

    const send = $("#write-send", dialog);
    send.addEventListener("click", () => busy(send, "Writing…", async () => {
      const { ok, data } = await api("POST", `/api/tags/${path(tag.path)}/value`,
        `{"value":${tag.json}}`, "application/json; charset=utf-8");
      if (ok) {
        say(result, `✓ ${device} confirmed the write: ${tag.path} = ${JSON.stringify(data.value)}. ` +
          "The live value above is what the PLC reports from now on.", true);
      } else {
        say(result, `✗ Not written. ${errorText(data)}`, false);
      }
      step("done");
    }));
  }

  // ---- OPC UA browse picker ----

  // A tag name from a display name: the model's name rule (letters, digits, _ and -).
  function tagName(display) {
    const name = display.replace(/[^A-Za-z0-9_-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "")
      .replace(/_+$/, "").slice(0, 64);
    return name || "tag";
  }

  function browsePicker() {
    const section = $("#browse");
    if (!section) return;
    const device = $("#device").dataset.device;
    const datatypes = section.dataset.datatypes.split(" ");
    const tree = $("#browse-tree", section);
    const form = $("#browse-form", section);
    const tbody = $("#browse-selected tbody", section);
    const add = $("#browse-add", section);

    const renumber = () => {
      const rows = $$("tr", tbody);
      rows.forEach((row, i) => {
        for (const el of $$("[data-key]", row)) el.name = `[${i}].${el.dataset.key}`;
      });
      add.disabled = rows.length === 0;
      $("#browse-count", section).textContent = rows.length ? `${rows.length} selected` : "none selected";
    };

    const select = (node, checked) => {
      const existing = $$("tr", tbody).find((r) => r.dataset.address === node.address);
      if (!checked) { existing?.remove(); renumber(); return; }
      if (existing) return;
      const taken = new Set($$("input[data-key=name]", tbody).map((i) => i.value));
      let name = tagName(node.name);
      for (let n = 2; taken.has(name); n++) name = `${tagName(node.name)}_${n}`;
      const row = document.createElement("tr");
      row.dataset.address = node.address;
      const cell = () => row.appendChild(document.createElement("td"));
      const nameInput = Object.assign(document.createElement("input"), { type: "text", value: name, className: "mono" });
      nameInput.dataset.key = "name";
      cell().append(nameInput);
      const type = document.createElement("select");
      type.dataset.key = "datatype";
      type.append(new Option(node.datatype ? node.datatype : "choose…", node.datatype ?? ""));
      for (const d of datatypes) if (d !== node.datatype) type.append(new Option(d, d));
      cell().append(type);
      const address = Object.assign(document.createElement("code"), { textContent: node.address });
      cell().append(address);
      const writable = Object.assign(document.createElement("input"), { type: "checkbox", title: node.writable ? "the server allows writes" : "read only on the server" });
      writable.dataset.key = "writable";
      writable.disabled = !node.writable;
      cell().append(writable);
      tbody.append(row);
      renumber();
    };

    const level = async (li, node) => {
      const list = document.createElement("ul");
      const note = document.createElement("li");
      note.className = "muted";
      note.textContent = "browsing…";
      list.append(note);
      (li ?? tree).append(list);
      const query = node ? `?node=${encodeURIComponent(node)}` : "";
      const { ok, data } = await api("GET", `/api/devices/${encodeURIComponent(device)}/browse${query}`);
      note.remove();
      if (!ok || !data.ok) {
        const error = document.createElement("li");
        error.className = "device-error";
        error.textContent = ok ? data.error : errorText(data);
        list.append(error);
        return;
      }
      for (const child of data.children) {
        const item = document.createElement("li");
        if (child.has_children) {
          const expand = Object.assign(document.createElement("button"), { type: "button", className: "expand", textContent: "▸" });
          expand.setAttribute("aria-label", `expand ${child.name}`);
          let open = false, loaded = false;
          expand.addEventListener("click", async () => {
            open = !open;
            expand.textContent = open ? "▾" : "▸";
            if (!loaded) { loaded = true; await level(item, child.address); }
            const sub = $(":scope > ul", item);
            if (sub) sub.hidden = !open;
          });
          item.append(expand, " ");
        }
        if (child.node_class === "variable") {
          const box = Object.assign(document.createElement("input"), { type: "checkbox" });
          box.dataset.address = child.address;
          box.setAttribute("aria-label", `select ${child.name}`);
          box.addEventListener("change", () => select(child, box.checked));
          item.append(box, " ");
        }
        const label = document.createElement("span");
        label.textContent = child.name;
        label.title = `${child.address}${child.description ? ` — ${child.description}` : ""}`;
        const kind = document.createElement("span");
        kind.className = "kind";
        kind.textContent = child.node_class === "variable"
          ? `${child.opcua_type ?? "?"}${child.datatype ? ` → ${child.datatype}` : " (no tag type)"}${child.writable ? " · rw" : ""}`
          : child.node_class;
        item.append(label, kind);
        list.append(item);
      }
      if (data.truncated) {
        const more = document.createElement("li");
        more.className = "muted";
        more.textContent = "the server has more children than shown here";
        list.append(more);
      }
    };

    $("#browse-open").addEventListener("click", () => {
      section.hidden = false;
      if (!tree.hasChildNodes()) level(null, null);
      section.scrollIntoView({ block: "start" });
    });

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      busy(add, "Adding…", async () => {
        // A node whose server type maps to no tag type needs one chosen; say so at the row
        // rather than send what the API can only call a missing field.
        const untyped = $$("tr", tbody).flatMap((row, i) => ($("select", row).value === ""
          ? [{ field: `[${i}].datatype`, reason: "choose a tag type: the server's type has none of its own" }] : []));
        if (untyped.length) { showErrors(form, untyped); return; }
        const place = $("#browse-location", form).value;
        const tags = $$("tr", tbody).map((row) => {
          const tag = { device, location: place, address: row.dataset.address };
          for (const el of $$("[data-key]", row)) {
            if (el.dataset.key === "writable") { if (el.checked) tag.writable = true; }
            else if (el.value !== "") tag[el.dataset.key] = el.value;
          }
          return tag;
        });
        const { ok, data } = await api("POST", "/api/tags", tags);
        if (!ok) { showErrors(form, data?.errors ?? [{ reason: errorText(data) }]); return; }
        location.reload();
      });
    });
  }

  // ---- the tag form: driver-dependent fields, test read, decode preview ----

  const ADDRESS_HELP = {
    "modbus-tcp": "hr:100, ir:0, coil:5, di:0 (0-based), hr:100.3 (one bit), or classic 40101",
    "opc-ua": "a NodeId: ns=2;s=Line1.Speed, ns=3;i=1001, or nsu=urn:…;s=… — the browse picker fills it in",
    simulator: "a signal: sine, ramp, toggle (bool), counter, text (string), memory (writable)",
  };
  const ADDRESS_EXAMPLE = { "modbus-tcp": "hr:100", "opc-ua": "ns=2;s=Line1.Speed", simulator: "sine" };
  const isModbus = (driver) => driver.startsWith("modbus");

  function tagForm() {
    const form = $("#tag-form");
    if (!form) return;
    const deviceSelect = $("#t-device", form);
    const driver = () => deviceSelect.selectedOptions[0]?.dataset.driver ?? "";
    const update = () => {
      const d = driver();
      const key = isModbus(d) ? "modbus-tcp" : d;
      $("#address-help").textContent = ADDRESS_HELP[key] ?? "";
      $("#t-address", form).placeholder = ADDRESS_EXAMPLE[key] ?? "";
      for (const row of $$("[data-modbus]")) {
        if (row.classList.contains("row")) showRow(row, isModbus(d));
        else row.hidden = !isModbus(d);
      }
    };
    deviceSelect.addEventListener("change", update);
    update();

    // A draft tag needs a name and location to be checked; a test does not care which.
    const draft = () => {
      const tag = formJson(form);
      if (!tag.name) tag.name = "test-read";
      return tag;
    };

    const read = $("#test-read");
    read.addEventListener("click", () => busy(read, "Reading…", async () => {
      const result = $("#read-result");
      const tag = draft();
      const { ok, data } = await api("POST", `/api/devices/${encodeURIComponent(tag.device)}/read`, tag);
      if (!ok) {
        showErrors(form, data?.errors ?? [{ reason: errorText(data) }]);
        say(result, `Not read: ${errorText(data)}`, false);
        return;
      }
      clearErrors(form);
      const r = data.tags?.[0];
      if (!data.ok || !r) { say(result, `✗ ${data.error}`, false); return; }
      const when = r.timestamp ? ` at ${new Date(r.timestamp).toISOString()}` : "";
      const value = r.value === null ? "no value" : JSON.stringify(r.value);
      const text = `${r.quality === "good" ? "✓" : "✗"} ${value} (${r.quality})${when}${r.error ? `\n${r.error}` : ""}`;
      say(result, text, r.quality === "good");
    }));

    const preview = $("#preview-read");
    preview?.addEventListener("click", () => busy(preview, "Reading…", () => decodePreview(form)));
  }

  // Values no engineer expects from a sensor: a sign the order is wrong.
  const implausible = (v, datatype) =>
    typeof v === "number" && /^float/.test(datatype) && (Math.abs(v) > 1e9 || (v !== 0 && Math.abs(v) < 1e-6));

  async function decodePreview(form) {
    const tag = formJson(form);
    const result = $("#preview-result");
    const registers = $("#preview-registers");
    const orders = $("#preview-orders");
    registers.hidden = true;
    orders.hidden = true;
    const body = { address: tag.address ?? "" };
    // Single bits, and types no register holds (arrays, datetime), are shown raw.
    const address = body.address.toLowerCase();
    const bit = /^(coil|di):/.test(address) || /^[01]\d{4,5}$/.test(address) || address.includes(".");
    const type = tag.raw_type ?? tag.datatype;
    if (!bit && type && !/\[\]$|^datetime$/.test(type)) {
      for (const key of ["datatype", "length", "raw_type", "gain", "offset", "raw_low", "raw_high", "eng_low", "eng_high"]) {
        if (tag[key] !== undefined) body[key] = tag[key];
      }
      body.byte_order = tag.byte_order ?? "ABCD";
    }
    const { ok, data } = await api("POST", `/api/devices/${encodeURIComponent(tag.device)}/modbus-preview`, body);
    if (!ok) {
      showErrors(form, data?.errors ?? [{ reason: errorText(data) }]);
      say(result, `Not read: ${errorText(data)}`, false);
      return;
    }
    clearErrors(form);
    if (!data.ok) { say(result, `✗ ${data.error}`, false); return; }
    result.hidden = true;
    const rows = (data.registers ?? []).map((r) => [r.address, r.hex, String(r.value)])
      .concat((data.bits ?? []).map((b) => [b.address, "", String(b.value)]));
    fill($("tbody", registers), rows, (tr) => {
      tr.children[0].className = "mono";
      tr.children[1].className = "mono";
      tr.children[2].className = "num mono";
    });
    registers.hidden = false;
    if (data.bit) {
      say(result, `${data.bit.address} = ${data.bit.value}`, true);
    }
    if (!Array.isArray(data.orders) || data.orders.length === 0) return;
    const tbody = $("tbody", orders);
    tbody.replaceChildren();
    // Without scaling the register's value is the tag's: one column says it.
    const scaled = data.orders.some((o) => JSON.stringify(o.raw) !== JSON.stringify(o.value));
    $("thead th:nth-child(2)", orders).hidden = !scaled;
    for (const o of data.orders) {
      const tr = document.createElement("tr");
      tr.dataset.order = o.byte_order;
      if (o.selected) tr.className = "selected";
      const td = (text, cls) => { const c = document.createElement("td"); c.textContent = text; if (cls) c.className = cls; tr.append(c); return c; };
      td(o.byte_order + (o.selected ? " ◂ this tag" : ""), "mono");
      const raw = o.raw === null ? "—" : JSON.stringify(o.raw);
      const value = o.error ? o.error : JSON.stringify(o.value);
      td(raw, "num mono").hidden = !scaled;
      const v = td(value, o.error ? "device-error" : "num value");
      if (!o.error && implausible(o.value, data.datatype)) v.classList.add("implausible");
      const use = document.createElement("button");
      use.type = "button";
      use.className = "small";
      use.textContent = `Use ${o.byte_order}`;
      use.addEventListener("click", () => {
        const select = $("#t-byte_order", form);
        // The 64-bit names map onto the 32-bit ones the select offers.
        const short = { ABCDEFGH: "ABCD", BADCFEHG: "BADC", GHEFCDAB: "CDAB", HGFEDCBA: "DCBA" }[o.byte_order] ?? o.byte_order;
        select.value = short;
        for (const row of $$("tr", tbody)) {
          const chosen = row === tr;
          row.className = chosen ? "selected" : "";
          row.children[0].textContent = row.dataset.order + (chosen ? " ◂ this tag" : "");
        }
      });
      const actions = document.createElement("td");
      actions.className = "nowrap";
      actions.append(use);
      tr.append(actions);
      tbody.append(tr);
    }
    orders.hidden = false;
  }

  // Replaces a table body's rows with `rows` of cell texts.
  function fill(tbody, rows, style) {
    tbody.replaceChildren(...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const text of cells) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      style?.(tr);
      return tr;
    }));
  }

  // ---- CSV import ----

  function csvImport() {
    const form = $("#import-form");
    if (!form) return;
    const file = $("#csv-file", form);
    const previewButton = $("#csv-preview", form);
    const importButton = $("#csv-import", form);
    const result = $("#import-result");
    const errors = $("#import-errors");
    const changes = $("#import-changes");
    let text = null;
    let previewed = null; // the file text and mode the last clean preview checked

    const mode = () => form.elements.mode.value;
    const reset = () => { previewed = null; importButton.disabled = true; };
    file.addEventListener("change", async () => {
      reset();
      text = null;
      const f = file.files[0];
      if (!f) return;
      text = await f.text();
      const rows = text.split(/\r?\n/).filter((l) => l.trim() !== "").length;
      $("#csv-file-info").textContent = `${f.name}: ${rows} lines, ${f.size} bytes`;
    });
    form.addEventListener("change", (e) => { if (e.target.name === "mode") reset(); });

    const show = (data, applied) => {
      errors.hidden = true;
      changes.hidden = true;
      if (data?.errors) {
        const lines = text.split(/\r?\n/);
        const rows = data.errors.map((e) => {
          const m = /^row\[(\d+)\]\.(.*)$/.exec(e.field ?? "");
          const row = m ? Number(m[1]) : null;
          return { row, column: m ? m[2] : e.field ?? "", value: e.value ?? "", reason: e.reason, line: row ? lines[row - 1] ?? "" : "" };
        }).sort((a, b) => (a.row ?? 0) - (b.row ?? 0));
        fill($("tbody", errors), rows.map((r) => [r.row ?? "—", r.column, r.value, r.reason, r.line]), (tr) => {
          tr.children[0].className = "num";
          tr.children[1].className = "mono";
          tr.children[2].className = "mono";
          tr.children[3].className = "device-error";
          tr.children[4].className = "mono muted line";
          tr.children[4].title = tr.children[4].textContent;
        });
        errors.hidden = false;
        const bad = new Set(rows.filter((r) => r.row).map((r) => r.row)).size;
        say(result, `✗ ${rows.length} problem${rows.length === 1 ? "" : "s"}${bad ? ` in ${bad} row${bad === 1 ? "" : "s"}` : ""}. Nothing was imported; fix the file and preview again.`, false);
        return;
      }
      const t = data.changes?.tags ?? { added: [], changed: [], removed: [] };
      const summary = `${t.added.length} added, ${t.changed.length} changed, ${t.removed.length} removed`;
      say(result, applied
        ? `✓ Imported ${data.rows} rows: ${summary}. Applied to the running appliance.`
        : `✓ ${data.rows} rows are valid: ${summary}. Nothing is changed until you press Import.`, true);
      changes.replaceChildren();
      for (const [what, list] of [["Added", t.added], ["Changed", t.changed], ["Removed", t.removed]]) {
        if (list.length === 0) continue;
        const h = document.createElement("h3");
        h.textContent = `${what} (${list.length})`;
        const ul = document.createElement("ul");
        ul.className = "changes";
        for (const name of list) ul.append(Object.assign(document.createElement("li"), { textContent: name }));
        changes.append(h, ul);
      }
      changes.hidden = false;
    };

    const send = async (dryRun) => {
      if (text === null) { say(result, "Choose a CSV file first.", false); return null; }
      const url = `/api/tags.csv?mode=${mode()}${dryRun ? "&dry_run=true" : ""}`;
      const answer = await api("POST", url, text, "text/csv; charset=utf-8");
      if (!answer.ok && !answer.data?.errors) answer.data = { errors: [{ reason: errorText(answer.data) }] };
      show(answer.data, !dryRun && answer.ok);
      return answer;
    };
    previewButton.addEventListener("click", () => busy(previewButton, "Checking…", async () => {
      reset();
      const answer = await send(true);
      if (answer?.ok) { previewed = { text, mode: mode() }; importButton.disabled = false; }
    }));
    importButton.addEventListener("click", () => busy(importButton, "Importing…", async () => {
      if (!previewed || previewed.text !== text || previewed.mode !== mode()) { reset(); return; }
      await send(false);
      reset();
    }).then(() => { importButton.disabled = true; }));
  }

  refreshStatus();
  deviceForm();
  devicePage();
  writeDialog();
  browsePicker();
  tagForm();
  csvImport();
})();
