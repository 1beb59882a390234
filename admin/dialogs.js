// The dialogs and what the forms in them share: opening a dialog (and giving the
// focus back), sending a form with its button busy, saying what happened, showing a
// failed call, copying, and the delete dialog, which is the same for groups, apps and
// webhooks.

import { call, path } from "./api.js";
import { clearErrors, say, showError } from "./dom.js";
import { page } from "./page.js";
import { $, REVOKED, STALE, state } from "./state.js";

/** Open a modal dialog; when it closes, focus goes back where it was, or to the
 * control with the same id if a refresh has rebuilt it meanwhile. */
export function openDialog(dialog) {
  const returnTo = document.activeElement?.id;
  dialog.addEventListener(
    "close",
    () => {
      if (returnTo && (document.activeElement === document.body || !document.activeElement)) {
        $(returnTo)?.focus();
      }
    },
    { once: true },
  );
  dialog.showModal();
}

/**
 * Send what a dialog's form asks for: its button busy meanwhile; then close the
 * dialog, announce `done(result)` and follow the change, or show the error beside
 * the field it names (a rejected token signs out instead).
 */
export async function submit({ form, button, busyText = "Saving…", send, done }) {
  const text = button.textContent;
  setBusy(button, true, busyText);
  try {
    const result = await send();
    form.closest("dialog").close();
    // 202: saved and durable, but not every DNS worker served it in time (see /healthz).
    const pending = result?.served === false ? ` Saved, but not yet served everywhere: ${result.message}` : "";
    announce(done(result) + pending);
    await page.catchUp();
  } catch (error) {
    if (error.status === 401) return page.signOut(REVOKED);
    showError(form, error);
  } finally {
    setBusy(button, false, text);
  }
}

export function setBusy(button, busy, text) {
  button.disabled = busy;
  button.textContent = text;
}

let announceTimer = null;

export function announce(message) {
  const status = $("page-status");
  status.textContent = message;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => (status.textContent = ""), 5000);
}

/** Copy text: the Clipboard API, else the old execCommand way, else select it for the
 * user; `said` is how the announcement names it (a secret is not read out). */
export async function copy(text, button, sourceId, said = text) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    const buffer = $("copy-buffer");
    buffer.value = text;
    buffer.select();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
    buffer.value = "";
    button.focus();
  }
  if (!copied) {
    const range = document.createRange();
    range.selectNodeContents($(sourceId));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    announce(`Could not copy: ${said} is selected, press Ctrl+C (or ⌘C) to copy it.`);
    return;
  }
  button.textContent = "Copied";
  announce(`Copied ${said}.`);
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

/** A failed call outside a form: a token no longer accepted (revoked, expired) signs
 * out saying so, anything else is shown. */
export function failed(error) {
  if (error.status === 401) page.signOut(REVOKED);
  else if (error.status === 0) say($("page-error"), `${error.message} ${STALE}`);
  else say($("page-error"), error.message);
}

// ---- deleting -------------------------------------------------------------------------------

export function openDelete(kind, item) {
  state.deleting = { kind, item };
  const form = $("delete-form");
  clearErrors(form);
  const name = nameOf(kind, item);
  $("delete-title").textContent = `Delete ${kind} ${name}?`;
  $("delete-what").textContent = {
    group: `${name} stops answering (NXDOMAIN). Its label stays taken forever: no new group can reuse it.`,
    app: `The app ${name} and its web head are removed. This cannot be undone.`,
    webhook: `Nothing more is sent to ${name}, and its recent deliveries are forgotten. A new webhook would start from the next change.`,
  }[kind];
  $("delete-confirm").textContent = `Delete ${kind}`;
  openDialog($("delete-dialog"));
}

export async function confirmDelete(event) {
  event.preventDefault();
  const { kind, item } = state.deleting;
  await submit({
    form: event.currentTarget,
    button: $("delete-confirm"),
    busyText: "Deleting…",
    send: () => call("DELETE", { group: path.group, app: (app) => path.app(app.name), webhook: (hook) => path.webhook(hook.id) }[kind](item)),
    done: () => `Deleted ${nameOf(kind, item)}.`,
  });
}

const nameOf = (kind, item) => ({ group: item.fqdn, app: item.name, webhook: item.url })[kind];
