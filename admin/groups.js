// The Groups view: a row per group with a radio button per side (the live one
// green) and its failover (failover.js), the confirmation before every switch (which
// pins an automatic group), the form that creates or edits a group, and the way to its
// certificates by ACME (certificates.js). Only what the token may do is offered
// (grant.js): switching, editing, creating, deleting.

import { ApiError, call, path } from "./api.js";
import { openCertificates } from "./certificates.js";
import { copy, openDelete, openDialog, setBusy, submit } from "./dialogs.js";
import { capitalise, clearErrors, h, idPart } from "./dom.js";
import { failoverCell } from "./failover.js";
import { may, mayChangeGroup } from "./grant.js";
import { cell, deleteButton, drawList, historyLink, hostText, recordsText, webHeadText } from "./lists.js";
import { page } from "./page.js";
import { $, state } from "./state.js";

export function renderGroups() {
  $("new-group").hidden = !may("write");
  drawList("groups", {
    items: state.groups,
    searchText: groupSearchText,
    caption: "Failover groups",
    headings: ["Group", "Traffic", "Failover", "TTL", "Answering now", "Actions"],
    row: groupRow,
    none: "No groups yet. A group is a stable name, like 414-262-781.fo.example.net, that follows the live app.",
    create: may("write") ? () => openGroupForm(null) : null,
  });
  if ($("group-dialog").open) fillChoices(state.editing);
}

const groupSearchText = (group) =>
  [group.fqdn, group.primary, group.backup, ...group.answer.map((record) => record.data)].join(" ");

const appNamed = (name) => state.apps.find((app) => app.name === name) ?? null;
const domKey = (group) => idPart(group.fqdn);

function groupRow(group) {
  const key = domKey(group);
  const deletable = group.primary === null && group.backup === null;
  const why = `Points at apps: clear both sides with Edit before deleting.`;
  const writable = mayChangeGroup(group, "write");
  return h(
    "tr",
    { "data-group": group.fqdn },
    cell(
      "Group",
      h("div", { class: "group-label" }, group.label),
      h(
        "div",
        { class: "fqdn-line" },
        h("code", { class: "fqdn", id: `fqdn-${key}` }, group.fqdn),
        h(
          "button",
          {
            type: "button",
            class: "button small",
            id: `copy-${key}`,
            "aria-label": `Copy ${group.fqdn}`,
            onclick: (event) => copy(group.fqdn, event.currentTarget, `fqdn-${key}`),
          },
          "Copy",
        ),
      ),
    ),
    cell(
      "Traffic",
      h(
        "fieldset",
        { class: "sides" },
        h("legend", { class: "visually-hidden" }, `Traffic for ${group.fqdn}`),
        ["primary", "backup"].map((side) => sideChoice(group, side, key)),
      ),
    ),
    cell("Failover", failoverCell(group)),
    cell("TTL", h("span", { class: "ttl" }, `${group.ttl} s`)),
    cell("Answering now", answerList(group.answer)),
    cell(
      "Actions",
      h(
        "div",
        { class: "row-actions" },
        writable &&
          h(
            "button",
            { type: "button", class: "button small", id: `edit-${key}`, onclick: () => openGroupForm(group) },
            "Edit",
            h("span", { class: "visually-hidden" }, ` ${group.fqdn}`),
          ),
        historyLink(`history-${key}`, { group: group.label, zone: group.zone }, group.fqdn),
        h(
          "button",
          { type: "button", class: "button small", id: `certificates-${key}`, onclick: () => openCertificates(group) },
          "Certificates",
          h("span", { class: "visually-hidden" }, ` of ${group.fqdn}`),
        ),
        writable &&
          deleteButton(`delete-${key}`, group.fqdn, deletable ? null : why, () => openDelete("group", group)),
      ),
    ),
  );
}

function sideChoice(group, side, key) {
  const app = group[side];
  const live = group.active === side;
  const pending = state.switching?.group.fqdn === group.fqdn ? state.switching.to : null;
  const id = `side-${key}-${side}`;
  const switchable = mayChangeGroup(group, "switch");
  const title = !app
    ? `No app on the ${side} side${switchable ? ": use Edit to add one" : ""}`
    : switchable
      ? null
      : `The token ${state.grant?.name ?? ""} may not switch ${group.fqdn}`;
  return h(
    "label",
    {
      class: `side${live ? " live" : ""}${app ? "" : " empty"}`,
      for: id,
      title,
    },
    h("input", {
      type: "radio",
      name: `side-${key}`,
      id,
      value: side,
      checked: (pending ?? group.active) === side,
      disabled: !app || !switchable,
      onchange: () => openSwitch(group, side),
    }),
    h(
      "span",
      { class: "side-text" },
      h("span", { class: "side-role" }, capitalise(side)),
      h("span", { class: "side-app" }, app ?? "no app"),
    ),
    live && h("span", { class: "badge live" }, "live"),
  );
}

async function readApp(name) {
  try {
    return await call("GET", path.app(name));
  } catch (error) {
    if (error instanceof ApiError) return null; // gone meanwhile: the dialog says NODATA
    throw error;
  }
}

function answerList(records) {
  if (!records.length) return h("span", { class: "muted" }, "nothing (NODATA)");
  return h(
    "ul",
    { class: "records" },
    records.map((record) =>
      h("li", {}, h("span", { class: "rtype" }, record.type), " ", h("code", {}, hostText(record.data))),
    ),
  );
}

// ---- the switch: a confirmation first -------------------------------------------------------

async function openSwitch(group, to) {
  if (group.active === to) return;
  state.switching = { group, to };
  const from = group.active;
  // With more apps than a page, the app may not be among those read: ask for it.
  const target = appNamed(group[to]) ?? (await readApp(group[to]));
  if (state.switching?.group !== group || state.switching.to !== to) return; // changed meanwhile
  const now = recordsText(group.answer) || "nothing (NODATA)";
  const next = webHeadText(target) || "nothing (NODATA: the app has no web head)";
  $("switch-title").textContent = `Switch ${group.fqdn} to its ${to}?`;
  $("switch-what").replaceChildren(
    h("strong", {}, group.fqdn),
    " will answer with ",
    h("strong", { class: "answer-text" }, next),
    " ",
    h("span", { class: "keep" }, `(${group[to]}, ${to})`),
    " instead of ",
    h("strong", { class: "answer-text" }, now),
    ...(group[from] ? [" ", h("span", { class: "keep" }, `(${group[from]}, ${from}).`)] : ["."]),
  );
  $("switch-when").textContent =
    `fodns answers the new records at once. Resolvers that cached the old answer may keep ` +
    `sending visitors to ${group[from] ?? "the old address"} for up to ${group.ttl} seconds ` +
    `(the group's TTL).`;
  // A person's switch of an automatic group pins it there, for as long as is chosen.
  const auto = group.failover === "auto";
  $("switch-pin-field").hidden = !auto;
  $("switch-pin-for").disabled = !auto;
  $("switch-pin-for").value = "";
  $("switch-pin-hint").textContent = auto
    ? `${group.fqdn} fails over automatically: switching pins it to its ${to}, and health ` +
      `checks leave it there until the pin ends or someone unpins it.`
    : "";
  const form = $("switch-form");
  clearErrors(form);
  $("switch-reason").value = "";
  setBusy($("switch-confirm"), false, "Switch traffic now");
  openDialog($("switch-dialog"));
  $("switch-cancel").focus();
}

export async function confirmSwitch(event) {
  event.preventDefault();
  const pending = state.switching;
  if (!pending) return;
  const reason = $("switch-reason").value.trim();
  // Only an automatic group is pinned (a pin_for for a manual one is refused): until
  // unpinned (null), or for the seconds chosen.
  const pinFor = $("switch-pin-field").hidden ? {} : { pin_for: Number($("switch-pin-for").value) || null };
  await submit({
    form: event.currentTarget,
    button: $("switch-confirm"),
    busyText: "Switching…",
    send: async () => {
      const group = await call("POST", path.switchGroup(pending.group), {
        to: pending.to,
        ...(reason ? { reason } : {}),
        ...pinFor,
      });
      // Done, so the dialog closing is no cancel (see switchClosed): the new state is drawn.
      state.switching = null;
      state.groups = state.groups.map((g) => (g.fqdn === group.fqdn ? group : g));
      page.render();
      return group;
    },
    done: (group) => {
      $(`side-${domKey(group)}-${group.active}`)?.focus();
      const pin = group.pin ? ` It is pinned to its ${group.pin.side}.` : "";
      return `${group.fqdn} now answers with ${recordsText(group.answer) || "nothing"}.${pin}`;
    },
  });
}

export function switchClosed() {
  const pending = state.switching;
  if (!pending) return;
  // Cancelled (button or Escape): the radio goes back to the live side.
  state.switching = null;
  renderGroups();
  const group = state.groups.find((g) => g.fqdn === pending.group.fqdn);
  if (group) $(`side-${domKey(group)}-${group.active}`)?.focus();
}

// ---- group form --------------------------------------------------------------------------

function appOptions(selected) {
  // The apps read so far (with more than a page of them, find one under Apps first),
  // and always the group's own.
  const names = state.apps.map((app) => app.name);
  if (selected && !names.includes(selected)) names.unshift(selected);
  return [
    h("option", { value: "", selected: !selected }, "— no app —"),
    ...names.map((name) => h("option", { value: name, selected: name === selected }, name)),
  ];
}

/**
 * Offer the zones and apps held now in the form's selects, keeping what each has
 * chosen: the form may open before the page has read them (just after a reload), and
 * may stay open while zones and apps come and go elsewhere.
 */
function fillChoices(group) {
  const creating = group === null;
  const zones = state.zones.map((zone) => zone.name);
  const zoneChosen = $("group-zone").value;
  const zoneOptions = zones.map((name) => h("option", { value: name, selected: name === zoneChosen }, name));
  replaceOptions($("group-zone"), zoneOptions);
  $("group-zone-field").hidden = !creating || zones.length < 2;
  labelSuffix();
  replaceOptions($("group-primary"), appOptions($("group-primary").value || (group?.primary ?? null)));
  replaceOptions($("group-backup"), appOptions($("group-backup").value || (group?.backup ?? null)));
}

/** Put `options` in `select` unless it offers the same values already (its choice stays). */
function replaceOptions(select, options) {
  const values = (list) => JSON.stringify([...list].map((option) => option.value));
  if (values(options) !== values(select.options)) select.replaceChildren(...options);
}

export function openGroupForm(group) {
  state.editing = group;
  const form = $("group-form");
  form.reset();
  clearErrors(form);
  const creating = group === null;
  $("group-form-title").textContent = creating ? "New group" : `Edit ${group.fqdn}`;
  $("group-submit").textContent = creating ? "Create group" : "Save changes";
  for (const id of ["group-zone", "group-primary", "group-backup"]) $(id).replaceChildren();
  $("group-zone").disabled = !creating;
  $("group-label-field").hidden = !creating;
  $("group-label").disabled = !creating;
  // A token limited to some group names can only create a group with a label it names.
  const patterns = state.grant?.groups ?? null;
  $("group-label-limited").textContent = patterns
    ? `Your token may only create groups named ${patterns.join(" or ")}: give one.`
    : "";
  $("group-label-limited").hidden = !patterns;
  fillChoices(group);
  $("group-ttl").value = creating ? "" : String(group.ttl);
  $("group-failover").value = group?.failover ?? "manual";
  $("group-failback").value = group?.failback ?? "manual";
  $("group-hold-down").value = creating ? "" : String(group.hold_down);
  $("group-max-auto-switches").value = creating ? "" : String(group.max_auto_switches);
  for (const id of ["group-hold-down-empty", "group-max-auto-switches-empty"]) {
    $(id).textContent = creating ? $(id).dataset.created : "Empty: unchanged.";
  }
  failoverChanged();
  openDialog($("group-dialog"));
}

/** Failback, hold-down and the switches an hour matter only to an automatic group. */
export function failoverChanged() {
  $("group-auto-fields").hidden = $("group-failover").value !== "auto";
}

/** The chosen zone's name after the label, and what an empty TTL means (the zone's default). */
export function labelSuffix() {
  const zone = state.zones.find((candidate) => candidate.name === $("group-zone").value);
  $("group-label-suffix").textContent = `.${$("group-zone").value}`;
  const creating = state.editing === null;
  $("group-ttl").placeholder = creating && zone ? String(zone.group_ttl) : "";
  $("group-ttl-empty").textContent = !creating
    ? "Empty: unchanged."
    : `Empty: the zone's default${zone ? ` (${zone.group_ttl} s)` : ""}.`;
}

/** The failover settings the form sends: the mode always when editing (only "auto" when
 * creating, "manual" being the default), and, for an automatic group, failback and
 * the numbers typed (empty: the default, or unchanged). */
function failoverBody(editing) {
  const failover = $("group-failover").value;
  if (failover !== "auto") return editing ? { failover } : {};
  const body = { failover, failback: $("group-failback").value };
  for (const [field, id] of [
    ["hold_down", "group-hold-down"],
    ["max_auto_switches", "group-max-auto-switches"],
  ]) {
    const text = $(id).value.trim();
    // Not a number: sent as typed, for the API to say what is wrong beside the field.
    if (text) body[field] = /^\d+$/.test(text) ? Number(text) : text;
  }
  return body;
}

export async function saveGroup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const editing = state.editing;
  const ttlText = $("group-ttl").value.trim();
  const ttl = /^\d+$/.test(ttlText) ? Number(ttlText) : ttlText;
  const primary = $("group-primary").value || null;
  const backup = $("group-backup").value || null;
  const failover = failoverBody(editing);
  let body;
  if (editing) {
    body = { primary, backup, ...(ttlText ? { ttl } : {}), ...failover };
  } else {
    const label = $("group-label").value.trim();
    body = {
      zone: $("group-zone").value,
      ...(label ? { label } : {}),
      ...(primary ? { primary } : {}),
      ...(backup ? { backup } : {}),
      ...(ttlText ? { ttl } : {}),
      ...failover,
    };
  }
  await submit({
    form,
    button: $("group-submit"),
    send: () => (editing ? call("PATCH", path.group(editing), body) : call("POST", "/v1/groups", body)),
    done: (group) => (editing ? `Saved ${group.fqdn}.` : `Created ${group.fqdn}.`),
  });
}
