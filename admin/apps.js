// The Apps view: a row per app with its web head, failover status, health (while
// the page shows health: checks.js) and the groups that use it, and the form that
// creates or edits an app. Only what the token may change is offered (grant.js).

import { call, path } from "./api.js";
import { checkButton, healthCell } from "./checks.js";
import { openDelete, openDialog, submit } from "./dialogs.js";
import { clearErrors, h, idPart, splitList } from "./dom.js";
import { may, mayChangeApp } from "./grant.js";
import { cell, deleteButton, drawList, historyLink, hostText } from "./lists.js";
import { $, state } from "./state.js";

export function renderApps() {
  // Which groups use each app, found in one pass (there may be 100,000 groups).
  const uses = new Map();
  for (const group of state.groups) {
    for (const side of ["primary", "backup"]) {
      if (group[side] === null) continue;
      if (!uses.has(group[side])) uses.set(group[side], []);
      uses.get(group[side]).push({ group, side });
    }
  }
  const usesOf = (app) => uses.get(app.name) ?? [];
  $("new-app").hidden = !may("write");
  drawList("apps", {
    items: state.apps,
    searchText: (app) =>
      [app.name, ...app.load_balancer, ...app.web_servers, ...usesOf(app).map((use) => use.group.fqdn)].join(" "),
    caption: "Apps",
    headings: ["App", "Web head", "Failover status", ...(state.health ? ["Health"] : []), "Groups", "Actions"],
    row: (app) => appRow(app, usesOf(app)),
    none: "No apps yet. An app is a deployment with a web head: a load balancer or web servers.",
    create: may("write") ? () => openAppForm(null) : null,
  });
}

function appRow(app, using) {
  const key = idPart(app.name);
  const names = [...new Set(using.map(({ group }) => group.fqdn))];
  const why = using.length
    ? `In use by ${names.join(", ")}: take it out of ${names.length > 1 ? "those groups" : "that group"} first.`
    : null;
  // Of the groups using it, those read so far: the API checks them all.
  const writable = mayChangeApp(app, using.map(({ group }) => group));
  return h(
    "tr",
    { "data-app": app.name },
    cell("App", h("div", { class: "app-name" }, app.name)),
    cell("Web head", webHead(app)),
    cell("Failover status", h("span", { class: `badge status-${app.failover_status}` }, app.failover_status)),
    state.health && cell("Health", healthCell(app)),
    cell(
      "Groups",
      using.length
        ? h(
            "ul",
            { class: "plain" },
            using.map(({ group, side }) =>
              h("li", {}, h("code", {}, group.fqdn), ` (${side}${group.active === side ? ", live" : ""})`),
            ),
          )
        : h("span", { class: "muted" }, state.paged.groups ? "none of the groups listed" : "none"),
      // With more groups than a page, only those read so far are known here.
      using.length > 0 && state.paged.groups ? h("span", { class: "muted" }, "of the groups listed") : null,
    ),
    cell(
      "Actions",
      h(
        "div",
        { class: "row-actions" },
        writable &&
          h(
            "button",
            { type: "button", class: "button small", id: `edit-app-${key}`, onclick: () => openAppForm(app) },
            "Edit",
            h("span", { class: "visually-hidden" }, ` ${app.name}`),
          ),
        writable && state.health && checkButton(app),
        historyLink(`history-app-${key}`, { app: app.name }, app.name),
        writable && deleteButton(`delete-app-${key}`, app.name, why, () => openDelete("app", app)),
      ),
    ),
  );
}

function webHead(app) {
  const balancer = app.load_balancer.length > 0;
  const row = (title, values, answers) =>
    h(
      "div",
      { class: `head-row${answers ? " answers" : ""}` },
      h("dt", {}, title),
      h(
        "dd",
        {},
        values.length ? h("code", {}, values.map(hostText).join(", ")) : h("span", { class: "muted" }, "none"),
        answers && h("span", { class: "badge answers" }, "answers"),
      ),
    );
  return h(
    "dl",
    { class: "head" },
    row("Load balancer", app.load_balancer, balancer),
    row("Web servers", app.web_servers, !balancer && app.web_servers.length > 0),
  );
}

export function openAppForm(app) {
  state.editing = app;
  const form = $("app-form");
  form.reset();
  clearErrors(form);
  $("app-form-title").textContent = app ? `Edit ${app.name}` : "New app";
  $("app-submit").textContent = app ? "Save changes" : "Create app";
  $("app-name").value = app?.name ?? "";
  $("app-load-balancer").value = (app?.load_balancer ?? []).map(hostText).join(", ");
  $("app-web-servers").value = (app?.web_servers ?? []).map(hostText).join(", ");
  openDialog($("app-dialog"));
}

export async function saveApp(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const editing = state.editing;
  const name = $("app-name").value.trim();
  const body = {
    load_balancer: splitList($("app-load-balancer").value),
    web_servers: splitList($("app-web-servers").value),
  };
  if (!editing || name !== editing.name) body.name = name;
  await submit({
    form,
    button: $("app-submit"),
    send: () => (editing ? call("PATCH", path.app(editing.name), body) : call("POST", "/v1/apps", body)),
    done: (app) => (editing ? `Saved ${app.name}.` : `Created ${app.name}.`),
  });
}
