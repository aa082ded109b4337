// Settings: the scan class table editor, the model import (a file → preview through
// PUT /api/model.toml?dry_run=true → apply the same text), and what the northbound broker
// forms need beyond app.js. The Sparkplug ids, northbound and MQTT user forms are data-api
// forms (app.js). Text goes in with textContent only.
"use strict";

(() => {
  // Names listed per kind of change before the rest is only counted.
  const SHOWN_NAMES = 50;
  const FLASH = "sparkedge.settings.flash";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs ?? {})) e.setAttribute(k, v);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // ---- scan classes ----

  // Row i's inputs are named scan_class[i].name and scan_class[i].period_ms, as the API names
  // its errors, so each error lands beside its field.
  function renumber(body) {
    [...body.rows].forEach((row, i) => {
      row.querySelector("input[type=text]").name = `scan_class[${i}].name`;
      row.querySelector("input[type=number]").name = `scan_class[${i}].period_ms`;
    });
    document.getElementById("no-scan-classes").hidden = body.rows.length > 0;
  }

  function scanClassRow() {
    const remove = el("button", { type: "button", class: "small danger remove" }, "Remove");
    return el("tr", {},
      el("td", {}, el("input", { type: "text", "aria-label": "name" })),
      el("td", {}, el("input", { type: "number", value: "1000", "aria-label": "period in milliseconds" })),
      el("td", { class: "num muted" }, "new"),
      el("td", {}, remove));
  }

  function scanClasses() {
    const form = document.getElementById("scan-classes");
    const body = document.getElementById("scan-class-rows");
    body.addEventListener("click", (event) => {
      if (!event.target.classList.contains("remove")) return;
      event.target.closest("tr").remove();
      renumber(body);
    });
    document.getElementById("add-scan-class").addEventListener("click", () => {
      body.append(scanClassRow());
      renumber(body);
      body.rows[body.rows.length - 1].querySelector("input").focus();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const classes = [...body.rows].map((row) => {
        const period = row.querySelector("input[type=number]").value.trim();
        return {
          name: row.querySelector("input[type=text]").value.trim(),
          // Not a number: sent as typed, so the API names it rather than the page guessing.
          period_ms: /^\d+$/.test(period) ? Number(period) : period,
        };
      });
      const { ok, data } = await sparkedge.api("PUT", "/api/scan-classes", classes);
      if (ok) { location.reload(); return; }
      // Body errors are named [i].field; model errors scan_class[i].field.
      const errors = (data?.errors ?? [{ reason: sparkedge.errorText(data) }]).map((e) =>
        (e.field ?? "").startsWith("[") ? { ...e, field: `scan_class${e.field}` } : e);
      sparkedge.showErrors(form, errors);
    });
  }

  // ---- northbound brokers ----

  function northbound() {
    // Edit opens the form in the row below the broker's.
    for (const button of document.querySelectorAll("[data-edit-row]")) {
      button.addEventListener("click", () => {
        const row = document.getElementById(button.dataset.editRow);
        row.hidden = !row.hidden;
        button.setAttribute("aria-expanded", String(!row.hidden));
        if (!row.hidden) row.querySelector("textarea, input")?.focus();
      });
    }
    for (const form of document.querySelectorAll("form[data-northbound]")) {
      form.addEventListener("sparkedge:send", (event) => {
        const request = event.detail;
        // "Remove the stored password": null says none; an empty input would keep it.
        if (form.querySelector("[data-password-none]")?.checked) request.body.password = null;
        if (form.dataset.create !== undefined) {
          // The add form names the broker in the URL, and must not replace one of that name.
          request.url = request.url.replace("{name}", encodeURIComponent(request.body.name ?? ""));
          request.headers["If-None-Match"] = "*";
        }
      });
    }
  }

  // ---- model import ----

  function namesList(title, names) {
    if (!names.length) return null;
    const shown = names.slice(0, SHOWN_NAMES).join(", ");
    const more = names.length > SHOWN_NAMES ? ` … and ${names.length - SHOWN_NAMES} more` : "";
    return el("div", {}, el("strong", {}, `${title} (${names.length}): `), el("span", { class: "names" }, shown + more));
  }

  function changesCell(changes) {
    const cell = el("td");
    const parts = [namesList("added", changes.added ?? []), namesList("removed", changes.removed ?? []),
      namesList("changed", changes.changed ?? [])].filter(Boolean);
    if (parts.length) cell.append(...parts);
    else cell.append(el("span", { class: "muted" }, "unchanged"));
    return cell;
  }

  function flag(changed, why) {
    return el("td", {}, changed ? el("span", { class: "bad-text" }, `changed${why ? ` — ${why}` : ""}`)
      : el("span", { class: "muted" }, "unchanged"));
  }

  function isEmpty(c) {
    const none = (x) => !x || (!x.added?.length && !x.removed?.length && !x.changed?.length);
    return !c.namespace_changed && !c.sparkplug_changed && !c.scan_classes_changed && none(c.northbound)
      && none(c.devices) && none(c.tags);
  }

  function diffTable(c) {
    return el("table", { class: "diff" }, el("tbody", {},
      el("tr", {}, el("td", {}, "Namespace"), flag(c.namespace_changed, "enterprise, site or the area/line/cell tree; UNS topics move")),
      el("tr", {}, el("td", {}, "Sparkplug ids"), flag(c.sparkplug_changed, "the Sparkplug session ends and a new edge node is born")),
      el("tr", {}, el("td", {}, "Northbound brokers"), changesCell(c.northbound ?? {})),
      el("tr", {}, el("td", {}, "Scan classes"), flag(c.scan_classes_changed)),
      el("tr", {}, el("td", {}, "Devices"), changesCell(c.devices ?? {})),
      el("tr", {}, el("td", {}, "Tags"), changesCell(c.tags ?? {}))));
  }

  function errorsTable(errors) {
    const rows = errors.map((e) => el("tr", {},
      el("td", { class: "mono" }, e.field ?? ""),
      el("td", { class: "mono wrap" }, e.value === undefined ? "" : String(e.value)),
      // A parse error points at the text with a caret under it: keep the columns.
      el("td", { class: (e.reason ?? "").includes("\n") ? "wrap mono" : "wrap" }, e.reason ?? "")));
    return el("table", { id: "import-errors" },
      el("thead", {}, el("tr", {}, el("th", {}, "Field"), el("th", {}, "Value"), el("th", {}, "Reason"))),
      el("tbody", {}, ...rows));
  }

  function imports() {
    const form = document.getElementById("import-form");
    const file = document.getElementById("import-file");
    const preview = document.getElementById("preview");
    const result = document.getElementById("import-result");
    file.addEventListener("change", () => {
      preview.disabled = !file.files.length;
      result.replaceChildren();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = file.files[0];
      if (!chosen) return;
      preview.disabled = true;
      result.replaceChildren(el("p", { class: "muted" }, `Checking ${chosen.name}…`));
      // The text previewed is the text applied, whatever happens to the file meanwhile.
      const text = await chosen.text();
      const { ok, data } = await sparkedge.api("PUT", "/api/model.toml?dry_run=true", text, "application/toml");
      preview.disabled = false;
      if (!ok) {
        const errors = data?.errors ?? [{ reason: sparkedge.errorText(data) }];
        result.replaceChildren(el("div", { class: "error", role: "alert" },
          `${chosen.name} cannot be imported; nothing was changed. ${errors.length === 1 ? "1 error" : `${errors.length} errors`}:`),
          errorsTable(errors));
        return;
      }
      const changes = data.changes ?? {};
      if (isEmpty(changes)) {
        result.replaceChildren(el("div", { class: "ok" }, `${chosen.name} matches the running model: nothing to apply.`));
        return;
      }
      const apply = el("button", { type: "button", class: "primary", id: "apply-import" }, "Apply this import");
      const cancel = el("button", { type: "button", id: "cancel-import" }, "Cancel");
      result.replaceChildren(el("div", { class: "panel", id: "import-preview" },
        el("p", {}, el("strong", {}, `Preview of ${chosen.name}`), " — nothing has changed yet."),
        diffTable(changes), el("p", {}, apply, " ", cancel)));
      cancel.addEventListener("click", () => { result.replaceChildren(); form.reset(); preview.disabled = true; });
      apply.addEventListener("click", async () => {
        apply.disabled = true;
        cancel.disabled = true;
        const done = await sparkedge.api("PUT", "/api/model.toml", text, "application/toml");
        if (!done.ok) {
          const errors = done.data?.errors ?? [{ reason: sparkedge.errorText(done.data) }];
          result.replaceChildren(el("div", { class: "error", role: "alert" },
            `${chosen.name} was not applied; nothing was changed:`), errorsTable(errors));
          return;
        }
        // What was applied (the running model may have moved since the preview), shown after
        // the reload that brings the page up to date.
        sessionStorage.setItem(FLASH, JSON.stringify({ name: chosen.name, changes: done.data.changes ?? {} }));
        location.reload();
      });
    });
  }

  function flash() {
    const saved = sessionStorage.getItem(FLASH);
    if (!saved) return;
    sessionStorage.removeItem(FLASH);
    let applied;
    try { applied = JSON.parse(saved); } catch (_) { return; }
    document.getElementById("flash").replaceChildren(el("div", { class: "ok", id: "import-applied", role: "status" },
      el("p", {}, el("strong", {}, `Imported ${applied.name}.`), " These changes are running now:"),
      diffTable(applied.changes ?? {})));
  }

  document.addEventListener("DOMContentLoaded", () => {
    flash();
    scanClasses();
    northbound();
    imports();
  });
})();
