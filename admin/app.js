// The fodns dashboard: groups with a radio button per side (the live one green),
// a confirmation before every switch, apps, health checks and automatic failover,
// the event log, and named tokens and webhooks for an admin. It offers only what the
// signed-in token may do (GET /v1/token). It uses only the public admin API (/v1), and
// follows changes made elsewhere by polling the newest event's seq every two seconds
// while the tab is visible; a token revoked or expired meanwhile signs the page out,
// saying so.
//
// This module is the entry point (index.html loads only it) and the top of the
// imports: signing in and out, picking the view, drawing them all, and wiring the
// page's controls and page.js's actions. The views are in groups.js, apps.js,
// events.js and webhooks.js, the dialogs and form helpers in dialogs.js, reading and following the
// API in sync.js, the shared state in state.js. Nothing imports this module.

import { ApiError, call, token } from "./api.js";
import { openAppForm, renderApps, saveApp } from "./apps.js";
import { copyStorage, register as registerCertificates } from "./certificates.js";
import { checkTypeChanged, removeCheck, saveCheck } from "./checks.js";
import { confirmDelete } from "./dialogs.js";
import { clearErrors, say, showError } from "./dom.js";
import { eventFilterFrom, filterKey } from "./eventfilter.js";
import { olderEvents, renderEvents } from "./events.js";
import { confirmUnpin } from "./failover.js";
import {
  confirmSwitch,
  failoverChanged,
  labelSuffix,
  openGroupForm,
  renderGroups,
  saveGroup,
  switchClosed,
} from "./groups.js";
import { may } from "./grant.js";
import { findChanged, showMore, totalOf } from "./lists.js";
import { page } from "./page.js";
import { $, EVENTS_PAGE, PAGE_ROWS, REJECTED, state, VIEWS } from "./state.js";
import {
  catchUp,
  findOnServer,
  readMore,
  refresh,
  schedulePoll,
  stopPolling,
  visibilityChanged,
} from "./sync.js";
import {
  confirmRevoke,
  copySecret as copyTokenSecret,
  openTokenForm,
  renderTokens,
  saveToken,
  scopeChanged,
  secretClosed,
  showRevokedChanged,
} from "./tokens.js";
import {
  copySecret as copyWebhookSecret,
  loadWebhooks,
  openWebhookForm,
  renderWebhooks,
  saveWebhook,
} from "./webhooks.js";

// ---- signing in and out -----------------------------------------------------------

function showSignIn(message = "") {
  stopPolling();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  $("signed-in").hidden = true;
  $("views").hidden = true;
  $("sign-out").hidden = true;
  for (const list of ["groups-list", "apps-list", "events-list", "tokens-list", "webhooks-list"]) {
    $(list).replaceChildren();
  }
  Object.assign(state, {
    grant: null,
    tokens: [],
    showRevoked: false,
    zones: [],
    apps: [],
    groups: [],
    events: [],
    seq: null,
    paged: { groups: false, apps: false },
    asked: { groups: "", apps: "" },
    next: { groups: null, apps: null },
    health: null,
    healthDue: false,
    webhooks: null,
    tested: {},
  });
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
    state.grant = await call("GET", "/v1/token"); // any valid token may ask what it may do
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

/** The API no longer takes the token (a 401): forget it, and say why (page.signOut). */
function signOut(message) {
  token.forget();
  showSignIn(message);
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
  showSections();
  return filterChanged;
}

/** The view state.view names, and its link marked current; the Tokens and Webhooks views
 * only for an admin token (once the token's grant is read: until then, as the address
 * asks). */
function showSections() {
  const adminViews = ["tokens", "webhooks"];
  if (adminViews.includes(state.view) && state.grant !== null && !may("admin")) state.view = "groups";
  for (const view of adminViews) $(`${view}-link`).hidden = !may("admin");
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== state.view;
  for (const link of $("views").querySelectorAll("a")) {
    if (link.dataset.view === state.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function render() {
  const focused = document.activeElement?.id;
  showSections();
  renderGroups();
  renderApps();
  renderEvents();
  renderTokens();
  renderWebhooks();
  // Something changed, or the page was read again: the webhooks too, while they show.
  if (state.view === "webhooks") loadWebhooks();
  for (const kind of ["groups", "apps"]) {
    const total = totalOf(kind);
    // A paged list of apps has no count to show: more than a page of them.
    $(`count-${kind}`).textContent = total === null ? `${PAGE_ROWS}+` : total.toLocaleString();
  }
  if (focused && document.activeElement === document.body) {
    $(focused)?.focus({ preventScroll: true });
  }
}

// ---- wiring ---------------------------------------------------------------------------------

function start() {
  Object.assign(page, { render, signOut, catchUp });
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", forgetToken);
  $("new-group").addEventListener("click", () => openGroupForm(null));
  $("new-app").addEventListener("click", () => openAppForm(null));
  $("group-form").addEventListener("submit", saveGroup);
  $("group-zone").addEventListener("change", labelSuffix);
  $("group-failover").addEventListener("change", failoverChanged);
  $("app-form").addEventListener("submit", saveApp);
  $("check-form").addEventListener("submit", saveCheck);
  $("check-type").addEventListener("change", checkTypeChanged);
  $("check-remove").addEventListener("click", removeCheck);
  $("unpin-form").addEventListener("submit", confirmUnpin);
  $("switch-form").addEventListener("submit", confirmSwitch);
  $("switch-cancel").addEventListener("click", () => $("switch-dialog").close("cancel"));
  $("switch-dialog").addEventListener("close", switchClosed);
  $("delete-form").addEventListener("submit", confirmDelete);
  $("older-events").addEventListener("click", olderEvents);
  $("new-token").addEventListener("click", openTokenForm);
  $("token-form").addEventListener("submit", saveToken);
  $("token-scope").addEventListener("change", scopeChanged);
  $("show-revoked").addEventListener("change", showRevokedChanged);
  $("secret-copy").addEventListener("click", copyTokenSecret);
  $("secret-dialog").addEventListener("close", secretClosed);
  $("revoke-form").addEventListener("submit", confirmRevoke);
  $("new-webhook").addEventListener("click", openWebhookForm);
  $("webhook-form").addEventListener("submit", saveWebhook);
  $("webhook-secret-copy").addEventListener("click", copyWebhookSecret);
  $("certificates-form").addEventListener("submit", registerCertificates);
  $("certificates-copy").addEventListener("click", copyStorage);
  $("certificates-dialog").addEventListener("close", () => (state.certificates = null));
  for (const [kind, redraw] of [["groups", renderGroups], ["apps", renderApps]]) {
    // A list held whole is filtered here; a paged one is found by the server.
    $(`${kind}-filter`).addEventListener("input", (event) => {
      findChanged(kind, event.currentTarget.value, redraw);
      if (state.paged[kind]) findOnServer(kind);
    });
    $(`more-${kind}`).addEventListener("click", () => {
      showMore(kind, redraw);
      if (state.paged[kind] && state[kind].length < state.rows[kind]) readMore(kind);
    });
  }
  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  window.addEventListener("hashchange", () => {
    if (showView() && !$("signed-in").hidden) refresh();
    if (state.view === "webhooks" && !$("signed-in").hidden) loadWebhooks();
  });
  document.addEventListener("visibilitychange", visibilityChanged);
  if (token.get()) enter();
  else showSignIn();
}

start();
