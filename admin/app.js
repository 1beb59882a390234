// The fodns dashboard: groups with a radio button per side (the live one green),
// a confirmation before every switch, apps, and the event log. It uses only the
// public admin API (/v1), and follows changes made elsewhere by polling the
// newest event's seq every two seconds while the tab is visible.
//
// This module is the entry point (index.html loads only it): signing in and out,
// picking the view, drawing them all, the delete dialog, the helpers the forms share,
// and wiring the page's controls. The views are in groups.js, apps.js and events.js,
// reading and following the API in sync.js, the shared state in state.js.

import { ApiError, call, path, token } from "./api.js";
import { clearErrors, say, showError } from "./dom.js";
import { openAppForm, renderApps, saveApp } from "./apps.js";
import { eventFilterFrom, filterKey } from "./eventfilter.js";
import { olderEvents, renderEvents } from "./events.js";
import {
  confirmSwitch,
  labelSuffix,
  openGroupForm,
  renderGroups,
  saveGroup,
  switchClosed,
} from "./groups.js";
import { findChanged, showMore } from "./lists.js";
import { $, EVENTS_PAGE, REJECTED, STALE, state, VIEWS } from "./state.js";
import { catchUp, refresh, schedulePoll, stopPolling, visibilityChanged } from "./sync.js";

// ---- signing in and out -----------------------------------------------------------

export function showSignIn(message = "") {
  stopPolling();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("signed-in").hidden = true;
  $("views").hidden = true;
  $("sign-out").hidden = true;
  for (const list of ["groups-list", "apps-list", "events-list"]) $(list).replaceChildren();
  Object.assign(state, { zones: [], apps: [], groups: [], events: [], seq: null });
  $("sign-in").hidden = false;
  say($("sign-in-error"), message);
  const input = $("token");
  input.value = "";
  input.focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const value = $("token").value.trim();
  clearErrors(form);
  say($("sign-in-error"), "");
  if (!value) {
    showError(form, new ApiError(400, "invalid", "Enter the admin token.", "token"));
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  button.textContent = "Checking…";
  token.set(value);
  try {
    await call("GET", "/v1/zones");
  } catch (error) {
    token.forget();
    say($("sign-in-error"), error.status === 401 ? REJECTED : error.message);
    $("token").select();
    return;
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
  // The token is good from here on: nothing that fails while loading the views (a
  // reload cutting a request short, say) may forget it.
  await enter();
}

async function enter() {
  $("sign-in").hidden = true;
  $("signed-in").hidden = false;
  $("views").hidden = false;
  $("sign-out").hidden = false;
  showView();
  await refresh();
  schedulePoll();
}

function forgetToken() {
  token.forget();
  showSignIn();
}

/** A failed call outside a form: a rejected token signs out, anything else is shown. */
export function failed(error) {
  if (error.status === 401) showSignIn(REJECTED);
  else if (error.status === 0) say($("page-error"), `${error.message} ${STALE}`);
  else say($("page-error"), error.message);
}

// ---- views --------------------------------------------------------------------------------

function showView() {
  const [wanted, query = ""] = location.hash.slice(1).split("?");
  if (VIEWS.includes(wanted)) state.view = wanted;
  let filterChanged = false;
  if (state.view === "events") {
    const filter = eventFilterFrom(new URLSearchParams(query));
    filterChanged = filterKey(filter) !== filterKey(state.eventFilter);
    if (filterChanged) {
      Object.assign(state, {
        eventFilter: filter,
        events: [],
        moreEvents: false,
        eventsLoading: true,
        eventsKept: EVENTS_PAGE,
      });
      renderEvents();
    }
  }
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== state.view;
  for (const link of $("views").querySelectorAll("a")) {
    if (link.dataset.view === state.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  return filterChanged;
}

export function render() {
  const focused = document.activeElement?.id;
  renderGroups();
  renderApps();
  renderEvents();
  $("count-groups").textContent = String(state.groups.length);
  $("count-apps").textContent = String(state.apps.length);
  if (focused && document.activeElement === document.body) {
    $(focused)?.focus({ preventScroll: true });
  }
}

// ---- deleting -------------------------------------------------------------------------------

export function openDelete(kind, item) {
  state.deleting = { kind, item };
  const form = $("delete-form");
  clearErrors(form);
  const name = kind === "group" ? item.fqdn : item.name;
  $("delete-title").textContent = `Delete ${kind} ${name}?`;
  $("delete-what").textContent =
    kind === "group"
      ? `${name} stops answering (NXDOMAIN). Its label stays taken forever: no new group can reuse it.`
      : `The app ${name} and its web head are removed. This cannot be undone.`;
  $("delete-confirm").textContent = `Delete ${kind}`;
  openDialog($("delete-dialog"));
}

async function confirmDelete(event) {
  event.preventDefault();
  const { kind, item } = state.deleting;
  await submit({
    form: event.currentTarget,
    button: $("delete-confirm"),
    busyText: "Deleting…",
    send: () => call("DELETE", kind === "group" ? path.group(item) : path.app(item.name)),
    done: () => `Deleted ${kind === "group" ? item.fqdn : item.name}.`,
  });
}

// ---- small helpers ------------------------------------------------------------------------

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
    await catchUp();
  } catch (error) {
    if (error.status === 401) return showSignIn(REJECTED);
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

/** Copy text: the Clipboard API, else the old execCommand way, else select it for the user. */
export async function copy(text, button, sourceId) {
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
    button.focus();
  }
  if (!copied) {
    const range = document.createRange();
    range.selectNodeContents($(sourceId));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    announce(`Could not copy: ${text} is selected, press Ctrl+C (or ⌘C) to copy it.`);
    return;
  }
  button.textContent = "Copied";
  announce(`Copied ${text}.`);
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

// ---- wiring ---------------------------------------------------------------------------------

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", forgetToken);
  $("new-group").addEventListener("click", () => openGroupForm(null));
  $("new-app").addEventListener("click", () => openAppForm(null));
  $("group-form").addEventListener("submit", saveGroup);
  $("group-zone").addEventListener("change", labelSuffix);
  $("app-form").addEventListener("submit", saveApp);
  $("switch-form").addEventListener("submit", confirmSwitch);
  $("switch-cancel").addEventListener("click", () => $("switch-dialog").close("cancel"));
  $("switch-dialog").addEventListener("close", switchClosed);
  $("delete-form").addEventListener("submit", confirmDelete);
  $("older-events").addEventListener("click", olderEvents);
  for (const [kind, redraw] of [["groups", renderGroups], ["apps", renderApps]]) {
    $(`${kind}-filter`).addEventListener("input", (event) => findChanged(kind, event.currentTarget.value, redraw));
    $(`more-${kind}`).addEventListener("click", () => showMore(kind, redraw));
  }
  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  window.addEventListener("hashchange", () => {
    if (showView() && !$("signed-in").hidden) refresh();
  });
  document.addEventListener("visibilitychange", visibilityChanged);
  if (token.get()) enter();
  else showSignIn();
}

start();
