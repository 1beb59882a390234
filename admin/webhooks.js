// The Webhooks view: each webhook with what it sends and its state, and what a person
// does with them: create one (its secret shown once), pause and resume it, send it a
// test, read its recent deliveries, delete it. It reads /v1/webhooks when the view is
// shown and after each change the page hears of while it is shown.

import { call, path } from "./api.js";
import { announce, copy, failed, openDelete, openDialog, setBusy, submit } from "./dialogs.js";
import { clearErrors, h, idPart, say, splitList } from "./dom.js";
import { cell, clock, emptyState, table } from "./lists.js";
import { $, state } from "./state.js";

// Each kind of event a webhook may ask for, as the form and the list say it.
export const KINDS = {
  switch: "Switches by people",
  auto_switch: "Automatic switches",
  health: "Health changes",
  group: "Other group changes",
  app: "App and check changes",
  route53: "Route53 mirror failing and recovering",
  admin: "Tokens and webhooks",
};

let reads = 0; // reads asked for: only the newest one's answer is drawn

/** Read the webhooks and draw them (the view is shown, or something changed). */
export async function loadWebhooks() {
  const read = ++reads;
  try {
    const { webhooks } = await call("GET", "/v1/webhooks");
    if (read !== reads) return; // a newer read was asked for meanwhile
    state.webhooks = webhooks;
    renderWebhooks();
  } catch (error) {
    if (read === reads) failed(error);
  }
}

export function renderWebhooks() {
  const list = $("webhooks-list");
  if (state.webhooks === null) {
    list.replaceChildren(emptyState("Loading webhooks…", null));
    return;
  }
  if (!state.webhooks.length) {
    list.replaceChildren(
      emptyState(
        "No webhooks yet. A webhook tells another system of every switch, health change or edit, as it happens.",
        "Create the first webhook",
        () => openWebhookForm(),
      ),
    );
    return;
  }
  const headings = ["Webhook", "Sends", "State", "Actions"];
  list.replaceChildren(table("Webhooks", headings, state.webhooks.map(webhookRow), "webhooks"));
}

function webhookRow(hook) {
  const key = idPart(hook.id);
  const tested = state.tested[hook.id];
  return h(
    "tr",
    { "data-webhook": hook.id },
    cell(
      "Webhook",
      h("div", { class: "webhook-url" }, h("code", {}, hook.url)),
      hook.description && h("div", {}, hook.description),
      h("div", { class: "muted small" }, hook.id),
    ),
    cell("Sends", h("ul", { class: "plain" }, sends(hook).map((line) => h("li", {}, line)))),
    cell(
      "State",
      h("span", { class: `badge webhook-${hook.state}` }, stateWords(hook)),
      hook.state === "failed" &&
        h(
          "div",
          { class: "why-not" },
          `Gave up on event ${hook.failed_seq}${hook.failed_at ? ` at ${clock(hook.failed_at)}` : ""}; resuming sends it again first.`,
        ),
      tested && h("div", { class: "last-test" }, testWords(tested)),
    ),
    cell(
      "Actions",
      h(
        "div",
        { class: "row-actions" },
        h(
          "button",
          { type: "button", class: "button small", id: `toggle-webhook-${key}`, onclick: (event) => toggle(hook, event) },
          hook.state === "active" ? "Pause" : "Resume",
          h("span", { class: "visually-hidden" }, ` ${hook.url}`),
        ),
        h(
          "button",
          { type: "button", class: "button small", id: `test-webhook-${key}`, onclick: (event) => sendTest(hook, event) },
          "Send test",
          h("span", { class: "visually-hidden" }, ` to ${hook.url}`),
        ),
        h(
          "button",
          { type: "button", class: "button small", id: `deliveries-webhook-${key}`, onclick: () => showDeliveries(hook) },
          "Deliveries",
          h("span", { class: "visually-hidden" }, ` to ${hook.url}`),
        ),
        h(
          "button",
          {
            type: "button",
            class: "button small danger",
            id: `delete-webhook-${key}`,
            onclick: () => openDelete("webhook", hook),
          },
          "Delete",
          h("span", { class: "visually-hidden" }, ` ${hook.url}`),
        ),
      ),
    ),
  );
}

function sends(hook) {
  const lines = [hook.events === null ? "Every kind of event" : hook.events.map((kind) => KINDS[kind] ?? kind).join(", ")];
  if (hook.groups) lines.push(`Groups: ${hook.groups.join(", ")}`);
  if (hook.apps) lines.push(`Apps: ${hook.apps.join(", ")}`);
  return lines;
}

function stateWords(hook) {
  return { active: "Active", paused: "Paused", failed: "Failed" }[hook.state] ?? hook.state;
}

function testWords(delivery) {
  const status = delivery.status === null ? "no answer" : `HTTP ${delivery.status}`;
  return delivery.error === null
    ? `Test delivered: ${status} in ${Math.round(delivery.latency_ms)} ms`
    : `Test failed: ${delivery.error}`;
}

// ---- what a person does -------------------------------------------------------------------

async function toggle(hook, event) {
  const button = event.currentTarget;
  const resume = hook.state !== "active";
  setBusy(button, true, resume ? "Resuming…" : "Pausing…");
  try {
    await call("PATCH", path.webhook(hook.id), { active: resume });
    announce(resume ? `Resumed the webhook to ${hook.url}.` : `Paused the webhook to ${hook.url}.`);
  } catch (error) {
    failed(error);
  }
  await loadWebhooks();
}

async function sendTest(hook, event) {
  const button = event.currentTarget;
  setBusy(button, true, "Sending…");
  try {
    const delivery = await call("POST", `${path.webhook(hook.id)}/test`);
    state.tested[hook.id] = delivery;
    announce(`${testWords(delivery)} (${hook.url}).`);
  } catch (error) {
    failed(error);
  }
  renderWebhooks();
}

async function showDeliveries(hook) {
  $("webhook-deliveries-title").textContent = `Deliveries to ${hook.url}`;
  const list = $("webhook-deliveries-list");
  list.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  openDialog($("webhook-deliveries-dialog"));
  try {
    const { deliveries } = await call("GET", `${path.webhook(hook.id)}/deliveries`);
    const row = (attempt) =>
      h(
        "tr",
        {},
        cell("When", h("time", { datetime: attempt.at, title: attempt.at }, clock(attempt.at))),
        cell("Event", attempt.seq === null ? "test" : `${attempt.seq} (${attempt.kind})`),
        cell("Attempt", String(attempt.attempt)),
        cell("Result", h("span", { class: `badge delivery-${attempt.result}` }, attempt.result)),
        cell("Answer", attempt.error ?? `HTTP ${attempt.status}`),
        cell("Took", `${Math.round(attempt.latency_ms)} ms`),
      );
    list.replaceChildren(
      deliveries.length
        ? table(
            `Deliveries to ${hook.url}, newest first`,
            ["When", "Event", "Attempt", "Result", "Answer", "Took"],
            deliveries.map(row),
            "deliveries",
          )
        : h("p", { class: "muted" }, "No attempts yet: nothing it asks for has happened since it was created."),
    );
  } catch (error) {
    list.replaceChildren(h("p", { class: "alert" }, error.message));
  }
}

export function openWebhookForm() {
  const form = $("webhook-form");
  form.reset();
  clearErrors(form);
  openDialog($("webhook-dialog"));
}

export async function saveWebhook(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const kinds = [...form.querySelectorAll('input[name="kind"]:checked')].map((box) => box.value);
  const body = { url: $("webhook-url").value.trim() };
  if (kinds.length) body.events = kinds;
  for (const name of ["groups", "apps"]) {
    const patterns = splitList($(`webhook-${name}`).value);
    if (patterns.length) body[name] = patterns;
  }
  const description = $("webhook-description").value.trim();
  if (description) body.description = description;
  let created = null;
  await submit({
    form,
    button: $("webhook-submit"),
    busyText: "Creating…",
    send: () => call("POST", "/v1/webhooks", body),
    done: (hook) => {
      created = hook;
      return `Created the webhook to ${hook.url}.`;
    },
  });
  if (created) {
    showSecret(created);
    await loadWebhooks();
  }
}

function showSecret(hook) {
  $("webhook-secret").textContent = hook.secret;
  const dialog = $("webhook-secret-dialog");
  // The secret is on the page only while this dialog is open.
  dialog.addEventListener("close", () => say($("webhook-secret"), ""), { once: true });
  $("webhook-secret").hidden = false;
  openDialog(dialog);
}

export function copySecret(event) {
  copy($("webhook-secret").textContent, event.currentTarget, "webhook-secret");
}
