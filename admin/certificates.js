// A group's certificates by ACME DNS-01 (fodns acme): the dialog a group's row opens,
// with the group's registrations, each with the CNAME records the customer adds once and,
// on request, what those records point at now (the API's check through [acme]
// resolver); the form that registers names, showing the credentials this once as lego's
// acme-dns storage file; and deleting a registration. Registering and deleting are
// offered only to a token that may write the group (grant.js).

import { ApiError, call } from "./api.js";
import { copy, failed, openDialog, setBusy } from "./dialogs.js";
import { clearErrors, h, idPart, say, showError, splitList } from "./dom.js";
import { mayChangeGroup } from "./grant.js";
import { clock } from "./lists.js";
import { $, state } from "./state.js";

const REGISTRATIONS = "/v1/acme/registrations";
const registrationPath = (subdomain) => `${REGISTRATIONS}/${encodeURIComponent(subdomain)}`;
const STATE_WORDS = {
  ok: "points here",
  wrong: "points elsewhere",
  missing: "not added yet",
  unknown: "could not be looked up",
};

/** Open the Certificates dialog of `group`. */
export async function openCertificates(group) {
  state.certificates = { group, registrations: null, checks: {} };
  $("certificates-title").textContent = `Certificates (ACME) for ${group.fqdn}`;
  const form = $("certificates-form");
  form.reset();
  clearErrors(form);
  form.hidden = !mayChangeGroup(group, "write");
  hideStorage();
  const dialog = $("certificates-dialog");
  // The password is on the page only while this dialog is open.
  dialog.addEventListener("close", hideStorage, { once: true });
  openDialog(dialog);
  await loadRegistrations();
}

function hideStorage() {
  $("certificates-storage").textContent = "";
  $("certificates-made").hidden = true;
}

async function loadRegistrations() {
  const open = state.certificates;
  if (!open) return;
  const list = $("certificates-list");
  if (open.registrations === null) list.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const { registrations } = await call("GET", `${REGISTRATIONS}?group=${encodeURIComponent(open.group.label)}`);
    open.registrations = registrations.filter((item) => item.group_zone === open.group.zone);
  } catch (error) {
    if (error.status === 401) return failed(error);
    list.replaceChildren(h("p", { class: "alert" }, error.message));
    return;
  }
  renderRegistrations();
}

function renderRegistrations() {
  const { group, registrations } = state.certificates;
  const list = $("certificates-list");
  if (!registrations.length) {
    list.replaceChildren(
      h(
        "p",
        { class: "muted" },
        `No registration yet. Register the customer's names below: the customer then adds one CNAME per name, ` +
          `once, and the primary and the backup each obtain their own certificate.`,
      ),
    );
    return;
  }
  list.replaceChildren(...registrations.map((item) => registrationBlock(group, item)));
}

function registrationBlock(group, item) {
  const key = idPart(item.subdomain);
  const checks = state.certificates.checks[item.subdomain] ?? null;
  const byName = new Map((checks ?? []).map((check) => [check.name, check]));
  const writable = mayChangeGroup(group, "write");
  return h(
    "section",
    { class: "registration", "aria-labelledby": `registration-${key}` },
    h("h3", { id: `registration-${key}` }, item.names.join(", ")),
    h(
      "p",
      { class: "muted" },
      `acme-dns user ${item.username}; `,
      item.updated_at
        ? ["last value set ", h("time", { datetime: item.updated_at, title: item.updated_at }, clock(item.updated_at))]
        : "no value set yet",
      item.allowfrom.length ? `; updates only from ${item.allowfrom.join(", ")}` : "",
      ".",
    ),
    h(
      "ul",
      { class: "cnames" },
      item.cnames.map((record, index) => {
        const line = `${record.name}. CNAME ${record.target}.`;
        const id = `cname-${key}-${index}`;
        const check = byName.get(record.name);
        return h(
          "li",
          {},
          h("code", { id }, line),
          " ",
          h(
            "button",
            {
              type: "button",
              class: "button small",
              "aria-label": `Copy the CNAME of ${record.name}`,
              onclick: (event) => copy(line, event.currentTarget, id, `the CNAME of ${record.name}`),
            },
            "Copy",
          ),
          check && h("span", { class: `badge check-${check.state}`, title: check.detail }, STATE_WORDS[check.state]),
          check && h("span", { class: "visually-hidden" }, `: ${check.detail}`),
        );
      }),
    ),
    h(
      "div",
      { class: "row-actions" },
      h(
        "button",
        {
          type: "button",
          class: "button small",
          id: `check-${key}`,
          onclick: (event) => checkCnames(item, event.currentTarget),
        },
        checks ? "Check again" : "Check the CNAMEs",
        h("span", { class: "visually-hidden" }, ` of ${item.names.join(", ")}`),
      ),
      writable &&
        h(
          "button",
          {
            type: "button",
            class: "button small danger",
            id: `delete-registration-${key}`,
            onclick: (event) => deleteRegistration(item, event.currentTarget),
          },
          "Delete",
          h("span", { class: "visually-hidden" }, ` the registration of ${item.names.join(", ")}`),
        ),
    ),
  );
}

async function checkCnames(item, button) {
  setBusy(button, true, "Checking…");
  try {
    const shown = await call("GET", registrationPath(item.subdomain));
    state.certificates.checks[item.subdomain] = shown.cname_check;
    const ok = shown.cname_check.filter((check) => check.ok).length;
    say($("certificates-status"), `${ok} of ${shown.cname_check.length} CNAMEs point at ${item.fulldomain}.`);
    renderRegistrations();
    $(`check-${idPart(item.subdomain)}`)?.focus();
  } catch (error) {
    if (error.status === 401) return failed(error);
    say($("certificates-status"), error.message);
    setBusy(button, false, "Check the CNAMEs");
  }
}

async function deleteRegistration(item, button) {
  const names = item.names.join(", ");
  if (!confirm(`Delete the registration of ${names}? Its credentials stop working at once.`)) return;
  setBusy(button, true, "Deleting…");
  try {
    await call("DELETE", registrationPath(item.subdomain));
    say($("certificates-status"), `Deleted the registration of ${names}.`);
  } catch (error) {
    if (error.status === 401) return failed(error);
    if (!(error instanceof ApiError && error.status === 404)) say($("certificates-status"), error.message);
  }
  await loadRegistrations();
}

export async function register(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const { group } = state.certificates;
  const body = { group: group.label, names: splitList($("certificates-names").value) };
  const allowfrom = splitList($("certificates-allowfrom").value);
  if (allowfrom.length) body.allowfrom = allowfrom;
  const button = $("certificates-submit");
  setBusy(button, true, "Registering…");
  try {
    const made = await call("POST", REGISTRATIONS, body);
    clearErrors(form);
    form.reset();
    showStorage(made);
    await loadRegistrations();
  } catch (error) {
    if (error.status === 401) return failed(error);
    showError(form, error);
  } finally {
    setBusy(button, false, "Register");
  }
}

/** The credentials as lego's acme-dns provider keeps them (ACME_DNS_STORAGE_PATH): one
 * entry per name it asks for, a wildcard's under the name below its "*.". */
function showStorage(made) {
  const account = {
    fulldomain: made.fulldomain,
    subdomain: made.subdomain,
    username: made.username,
    password: made.password,
  };
  const storage = {};
  for (const name of made.names) storage[name.replace(/^\*\./, "")] = account;
  $("certificates-storage").textContent = JSON.stringify(storage, null, 2);
  $("certificates-made").hidden = false;
  say($("certificates-status"), `Registered ${made.names.join(", ")}: copy the credentials now.`);
  $("certificates-copy").focus();
}

export function copyStorage(event) {
  copy($("certificates-storage").textContent, event.currentTarget, "certificates-storage", "the credentials");
}
