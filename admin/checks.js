// An app's health check as the Apps view shows it: the app's state and each address's
// with its last result (from /v1/health), the addresses its answer leaves out, and the
// Health check dialog that sets the check (PUT) or removes it (DELETE).

import { ApiError, call, path } from "./api.js";
import { failed, openDialog, setBusy, submit } from "./dialogs.js";
import { clearErrors, h, idPart } from "./dom.js";
import { appHealth } from "./health.js";
import { clock, hostText, webHeadText } from "./lists.js";
import { $, state } from "./state.js";

/** What the Health cell of `app`'s row holds (the column is drawn only while the page
 * shows health, state.health). */
export function healthCell(app) {
  const health = appHealth(app.name);
  if (!health) return h("span", { class: "muted" }, "No check");
  // The app's own `down` is what its answer leaves out now (the checker's copy may lag);
  // with every address down, all are answered (fail open), and none is left out.
  const down = new Set(app.down ?? health.down);
  const head = app.load_balancer.length ? app.load_balancer : app.web_servers;
  const failOpen = down.size > 0 && head.every((value) => down.has(value));
  const leftOut = failOpen ? new Set() : down;
  return [
    h(
      "div",
      { class: "health-state" },
      stateBadge(health.state),
      health.since && h("span", { class: "muted" }, ` since ${clock(health.since)}`),
    ),
    h("div", { class: "check-summary muted" }, checkText(health.check)),
    h(
      "ul",
      { class: "plain addresses" },
      addressesOf(health).map((address) => addressLine(address, leftOut.has(address.address))),
    ),
    failOpen && h("div", { class: "muted" }, "Every address is down: all are answered."),
  ];
}

const stateBadge = (state) => h("span", { class: `badge health-${state}` }, state);

function checkText(check) {
  const every = `every ${check.interval} s, down after ${check.fall}, up after ${check.rise}`;
  if (check.type === "tcp") return `TCP connect to port ${check.port}, ${every}`;
  return `${check.type.toUpperCase()} ${check.method} ${check.path} on port ${check.port}, ${every}`;
}

/** Each address as the checker sees it, or, before its first check since fodns started,
 * as it was last known (the store keeps that across restarts for display). */
function addressesOf(health) {
  if (health.addresses.length) {
    return health.addresses.map((entry) => {
      const local = entry.probes.local;
      const remote = Object.entries(entry.probes).filter(([probe]) => probe !== "local");
      return { address: entry.address, hostname: entry.hostname, ...local, remote };
    });
  }
  return health.last_known
    .filter((known) => known.probe === "local")
    .map((known) => ({
      address: known.address,
      state: "unknown",
      lastKnown: known,
      remote: [],
    }));
}

function addressLine(address, leftOut) {
  const named = address.hostname ? ` (${hostText(address.hostname)})` : "";
  return h(
    "li",
    { "data-address": address.address },
    h("code", {}, address.address),
    named,
    " ",
    stateBadge(address.state),
    leftOut && h("span", { class: "badge left-out" }, "left out of the answer"),
    h("span", { class: "result" }, resultText(address)),
    address.remote.map(([probe, seen]) => h("span", { class: "probe muted" }, `${probe}: ${seen.state}`)),
  );
}

function resultText(address) {
  const result = address.last_result;
  if (address.lastKnown) {
    const known = address.lastKnown;
    return ` last known ${known.state} at ${clock(known.since)}`;
  }
  if (!result) return " not checked yet";
  const took = `${Math.round(result.latency_ms)} ms`;
  if (result.ok) return result.status ? ` ${result.status} in ${took}` : ` connected in ${took}`;
  return ` ${result.error ?? "failed"}${result.status ? ` (status ${result.status})` : ""}`;
}

// ---- the Health check dialog -------------------------------------------------------------

// The dialog's fields, by the check's field each sets; the others a check has (method,
// status range, body_contains, tls_verify, quorum) are kept as they are.
const NUMBERS = ["port", "interval", "timeout", "fall", "rise", "min_healthy"];
const HTTP_ONLY = ["method", "path", "host", "body_contains", "status_min", "status_max"];

export async function openCheckForm(app) {
  const check = await readCheck(app.name);
  state.checking = { app, check };
  const form = $("check-form");
  form.reset();
  clearErrors(form);
  $("check-form-title").textContent = `Health check of ${app.name}`;
  const head = webHeadText(app);
  $("check-what").textContent = head
    ? `Checks each address of ${app.name}'s web head (${head}). Empty fields take the defaults.`
    : `${app.name} has no web head yet: there is nothing to check until it has one.`;
  $("check-type").value = check?.type ?? "http";
  $("check-port").value = check ? String(check.port) : "";
  $("check-path").value = check && check.type !== "tcp" ? check.path : "";
  $("check-host").value = check?.host ?? "";
  for (const field of ["interval", "timeout", "fall", "rise", "min_healthy"]) {
    $(`check-${field.replace("_", "-")}`).value = check ? String(check[field]) : "";
  }
  $("check-follow").checked = check?.answers_follow_health ?? false;
  $("check-remove").hidden = check === null;
  setBusy($("check-submit"), false, check ? "Save check" : "Add check");
  checkTypeChanged();
  openDialog($("check-dialog"));
}

/** GET the app's check: null when it has none (or the app is gone: saving then says so). */
async function readCheck(name) {
  try {
    return await call("GET", path.check(name));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error; // failed() says it (a rejected token signs out)
  }
}

/** Path and Host are for HTTP and HTTPS checks only, and the port's default follows the type. */
export function checkTypeChanged() {
  const type = $("check-type").value;
  $("check-http-fields").hidden = type === "tcp";
  $("check-port").placeholder = type === "https" ? "443" : type === "http" ? "80" : "";
  $("check-port-empty").textContent =
    type === "tcp" ? "A TCP check needs one." : `Empty: ${type === "https" ? 443 : 80}.`;
}

function checkBody() {
  const { check } = state.checking;
  const type = $("check-type").value;
  // What the check has beyond this form stays; a TCP check takes none of the HTTP fields.
  const kept = Object.entries(check ?? {}).filter(
    ([field, value]) =>
      value !== null &&
      !NUMBERS.includes(field) &&
      !["type", "path", "host", "answers_follow_health"].includes(field) &&
      !(type === "tcp" && HTTP_ONLY.includes(field)),
  );
  const body = { ...Object.fromEntries(kept), type };
  for (const field of NUMBERS) {
    const text = $(`check-${field.replace("_", "-")}`).value.trim();
    // Not a number: sent as typed, for the API to say what is wrong beside the field.
    if (text) body[field] = /^\d+(\.\d+)?$/.test(text) ? Number(text) : text;
  }
  if (type !== "tcp") {
    const pathText = $("check-path").value.trim();
    const host = $("check-host").value.trim();
    if (pathText) body.path = pathText;
    if (host) body.host = host;
  }
  body.answers_follow_health = $("check-follow").checked;
  return body;
}

export async function saveCheck(event) {
  event.preventDefault();
  const { app, check } = state.checking;
  const body = checkBody();
  await submit({
    form: event.currentTarget,
    button: $("check-submit"),
    send: () => call("PUT", path.check(app.name), body),
    done: () => (check ? `Saved the health check of ${app.name}.` : `Added a health check to ${app.name}.`),
  });
}

export async function removeCheck() {
  const { app } = state.checking;
  await submit({
    form: $("check-form"),
    button: $("check-remove"),
    busyText: "Removing…",
    send: () => call("DELETE", path.check(app.name)),
    done: () => `Removed the health check of ${app.name}: its addresses are all answered.`,
  });
}

/** The Health check button of an app's row. */
export function checkButton(app) {
  return h(
    "button",
    {
      type: "button",
      class: "button small",
      id: `check-app-${idPart(app.name)}`,
      onclick: () => openCheckForm(app).catch(failed),
    },
    "Health check",
    h("span", { class: "visually-hidden" }, ` of ${app.name}`),
  );
}
