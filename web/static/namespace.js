// Namespace page: the tags of each opened node, copy buttons for the mosquitto_sub lines, and
// for admins the tree's edit controls. A node's tags are fetched when it opens, one page at a
// time, rendered by the server (/namespace/tags), and dropped when it closes, so the page and
// the live stream (app.js subscribes to the rows shown) stay small for 100,000 tags. Which
// nodes are open is kept for the tab, so a reload (after an edit, or a changed model) shows
// the same part of the tree. A rename goes through POST /api/namespace/rename (tags move with it); adding,
// removing, and enterprise/site go through PUT /api/namespace with the tree read just before,
// so the change is made to what runs now. The API's errors are shown in full beside the
// control; nothing is applied unless all of it is valid. Live values are app.js's.
"use strict";

(() => {
  // Errors listed before the rest is only counted (a removed cell may hold thousands of tags).
  const SHOWN_ERRORS = 20;

  // The clipboard API needs a secure context, which http://<box>:8080 is not: fall back to
  // selecting the text and the old copy command.
  async function copy(button) {
    const pre = document.getElementById(button.dataset.copy);
    const text = pre.textContent;
    let done = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        done = true;
      }
    } catch (_) { /* fall back below */ }
    if (!done) {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      try { done = document.execCommand("copy"); } catch (_) { done = false; }
    }
    button.textContent = done ? "Copied" : "Select and copy";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  function showErrors(form, errors) {
    sparkedge.clearErrors(form);
    const shown = errors.slice(0, SHOWN_ERRORS);
    // Errors about this form's own inputs (`to`, `namespace.site`) go beside them; the rest
    // in a list at the top.
    sparkedge.showErrors(form, shown, form.id === "ns-ids" ? "namespace." : "");
    if (errors.length > SHOWN_ERRORS) {
      const box = form.querySelector(".form-errors ul");
      const more = document.createElement("li");
      more.textContent = `… and ${errors.length - SHOWN_ERRORS} more`;
      box?.append(more);
    }
  }

  // Reads the tree, lets `change` edit it, writes it back; false (with the errors shown) if
  // the API refused.
  async function changeTree(form, change) {
    const read = await sparkedge.api("GET", "/api/namespace");
    if (!read.ok) { showErrors(form, read.data?.errors ?? [{ reason: sparkedge.errorText(read.data) }]); return false; }
    const tree = read.data;
    const problem = change(tree);
    if (problem) { showErrors(form, [{ reason: problem }]); return false; }
    const { ok, data } = await sparkedge.api("PUT", "/api/namespace", tree);
    if (!ok) { showErrors(form, data?.errors ?? [{ reason: sparkedge.errorText(data) }]); return false; }
    return true;
  }

  // The area, line and cell list a path names in a tree from GET /api/namespace.
  function locate(tree, path) {
    const [a, l] = path.split("/");
    const area = tree.areas.find((x) => x.name === a);
    const line = area && l !== undefined ? (area.line ?? []).find((x) => x.name === l) : undefined;
    return { area, line };
  }

  function bind(selector, handler) {
    for (const form of document.querySelectorAll(selector)) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const buttons = form.querySelectorAll("button");
        buttons.forEach((b) => { b.disabled = true; });
        const ok = await handler(form);
        buttons.forEach((b) => { b.disabled = false; });
        // The page shows the tree as it runs now (the live stream also reloads it).
        if (ok) location.reload();
      });
    }
  }

  function editing() {
    bind("form.ns-rename", async (form) => {
      const from = form.dataset.path;
      const name = form.elements.to.value.trim();
      const parent = from.includes("/") ? from.slice(0, from.lastIndexOf("/") + 1) : "";
      if (name === from.slice(parent.length)) { showErrors(form, [{ field: "to", reason: "type the new name" }]); return false; }
      const { ok, data } = await sparkedge.api("POST", "/api/namespace/rename", { from, to: parent + name });
      if (!ok) showErrors(form, data?.errors ?? [{ reason: sparkedge.errorText(data) }]);
      return ok;
    });

    bind("form.ns-add", (form) => changeTree(form, (tree) => {
      const name = form.elements.name.value.trim();
      const parent = form.dataset.parent;
      switch (form.dataset.level) {
        case "area": tree.areas.push({ name, line: [] }); return null;
        case "line": {
          const { area } = locate(tree, parent);
          if (!area) return `area ${parent} is gone: reload the page`;
          area.line = [...(area.line ?? []), { name, cells: [] }];
          return null;
        }
        case "cell": {
          const { line } = locate(tree, parent);
          if (!line) return `line ${parent} is gone: reload the page`;
          line.cells = [...(line.cells ?? []), name];
          return null;
        }
        default: return "unknown level";
      }
    }));

    // Removing a line or cell that still holds tags is refused by the API, naming each tag.
    bind("form.ns-remove", (form) => changeTree(form, (tree) => {
      const path = form.dataset.path;
      const parts = path.split("/");
      const { area, line } = locate(tree, path);
      if (!area) return `${path} is gone: reload the page`;
      if (parts.length === 1) tree.areas = tree.areas.filter((a) => a !== area);
      else if (parts.length === 2) area.line = area.line.filter((l) => l !== line);
      else if (line) line.cells = line.cells.filter((c) => c !== parts[2]);
      else return `${path} is gone: reload the page`;
      return null;
    }));

    bind("#ns-ids", (form) => changeTree(form, (tree) => {
      tree.enterprise = form.elements.enterprise.value.trim();
      tree.site = form.elements.site.value.trim();
      return null;
    }));
  }

  // ---- a node's tags ----

  const OPEN_KEY = "sparkedge.namespace.open";
  const remembered = () => {
    try { return JSON.parse(sessionStorage.getItem(OPEN_KEY) ?? "{}") ?? {}; } catch (_) { return {}; }
  };
  function remember(path, open) {
    const nodes = remembered();
    nodes[path] = open;
    try { sessionStorage.setItem(OPEN_KEY, JSON.stringify(nodes)); } catch (_) { /* private mode: not kept */ }
  }

  // Puts page `page` of a node's tags into `box` (its div.tags); the server's HTML is
  // rendered by the same escaping templates as the page.
  async function load(box, page) {
    const ticket = (Number(box.dataset.ticket ?? 0) + 1).toString();
    box.dataset.ticket = ticket; // a later request (another page, a close) wins over this one
    if (!box.hasChildNodes()) box.textContent = `loading ${box.dataset.count} tags…`;
    const url = `/namespace/tags?location=${encodeURIComponent(box.dataset.location)}&page=${page}`;
    let response, text;
    try {
      response = await fetch(url, { credentials: "same-origin" });
      text = await response.text();
    } catch (e) {
      response = null;
      text = `the appliance did not answer: ${e}`;
    }
    if (box.dataset.ticket !== ticket) return;
    // Logged out meanwhile: the answer is the login page; go there with this page as next.
    if (response?.redirected) { location.reload(); return; }
    if (!response?.ok) {
      box.replaceChildren(Object.assign(document.createElement("p"), { className: "error", textContent: text }));
    } else {
      box.innerHTML = text;
    }
    sparkedge.rowsChanged();
  }

  function unload(box) {
    box.dataset.ticket = (Number(box.dataset.ticket ?? 0) + 1).toString();
    box.replaceChildren();
    sparkedge.rowsChanged();
  }

  function tagsOf(node) { return node.querySelector(":scope > div.tags"); }

  function tree() {
    const saved = remembered();
    for (const node of document.querySelectorAll("details.node")) {
      if (node.dataset.path in saved) node.open = saved[node.dataset.path];
      const box = tagsOf(node);
      node.addEventListener("toggle", () => {
        remember(node.dataset.path, node.open);
        if (!box) return;
        if (node.open) { if (!box.hasChildNodes()) load(box, 1); } else unload(box);
      });
      if (box && node.open) load(box, 1);
      box?.addEventListener("click", (event) => {
        const button = event.target.closest("button[data-page]");
        // The pager is below the rows: show the new page from its top.
        if (button) load(box, button.dataset.page).then(() => node.scrollIntoView({ block: "start" }));
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll("button.copy")) {
      button.addEventListener("click", () => copy(button));
    }
    tree();
    editing();
  });
})();
