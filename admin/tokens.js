// The Tokens view (admin tokens only): the named tokens with their scope, limits,
// expiry and state, the form that makes one and then shows its secret once, and the
// confirmation before a token is revoked. fodns keeps only a hash of each secret, so
// the page can never show one again.

import { ApiError, call, path } from "./api.js";
import { copy, failed, openDialog, setBusy, submit } from "./dialogs.js";
import { clearErrors, h, idPart, splitList } from "./dom.js";
import { cell, clock, emptyState, table } from "./lists.js";
import { $, state } from "./state.js";

const SCOPE_WORDS = {
  read: "Read",
  switch: "Switch",
  write: "Write",
  admin: "Admin",
};

export function renderTokens() {
  const list = $("tokens-list");
  $("show-revoked").checked = state.showRevoked;
  if (!state.tokens.length) {
    list.replaceChildren(
      emptyState(
        "No named tokens yet. Make one for each pipeline, person or page that calls fodns, with only the scope it needs.",
        "Make the first token",
        () => openTokenForm(),
      ),
    );
    return;
  }
  const headings = ["Token", "Scope", "May change", "Expires", "Made", "State", "Actions"];
  list.replaceChildren(table("Named tokens", headings, state.tokens.map(tokenRow), "tokens"));
}

function tokenRow(token) {
  const key = idPart(token.name);
  return h(
    "tr",
    { "data-token": token.name },
    cell("Token", h("div", { class: "token-name" }, token.name)),
    cell("Scope", h("span", { class: `badge scope-${token.scope}` }, SCOPE_WORDS[token.scope] ?? token.scope)),
    cell("May change", limitsText(token)),
    cell("Expires", token.expires_at ? clock(token.expires_at) : h("span", { class: "muted" }, "never")),
    cell("Made", `${clock(token.created_at)} by ${token.created_by}`),
    cell(
      "State",
      h("span", { class: `badge token-${token.state}` }, token.state),
      token.revoked_at && h("div", { class: "muted" }, `${clock(token.revoked_at)} by ${token.revoked_by}`),
    ),
    cell(
      "Actions",
      token.state !== "revoked" &&
        h(
          "button",
          { type: "button", class: "button small danger", id: `revoke-${key}`, onclick: () => openRevoke(token) },
          "Revoke",
          h("span", { class: "visually-hidden" }, ` ${token.name}`),
        ),
    ),
  );
}

function limitsText(token) {
  if (token.scope === "read") return h("span", { class: "muted" }, "nothing (reads only)");
  const parts = [];
  if (token.groups) parts.push(`groups ${token.groups.join(", ")}`);
  if (token.apps) parts.push(`apps ${token.apps.join(", ")}`);
  return parts.length ? parts.join("; ") : h("span", { class: "muted" }, "anything its scope allows");
}

/** "Show revoked tokens": the list read again, with them or without. */
export async function showRevokedChanged(event) {
  state.showRevoked = event.currentTarget.checked;
  try {
    state.tokens = (await call("GET", path.tokens(state.showRevoked))).tokens;
    renderTokens();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
  }
}

// ---- making a token, and its secret shown once --------------------------------------

export function openTokenForm() {
  const form = $("token-form");
  form.reset();
  clearErrors(form);
  scopeChanged();
  openDialog($("token-dialog"));
}

/** An admin token cannot be limited: the limits are for the other scopes only. */
export function scopeChanged() {
  const admin = $("token-scope").value === "admin";
  $("token-limits").hidden = admin;
  for (const id of ["token-groups", "token-apps"]) $(id).disabled = admin;
}

export async function saveToken(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = { name: $("token-name").value.trim(), scope: $("token-scope").value };
  if (body.scope !== "admin") {
    for (const field of ["groups", "apps"]) {
      const patterns = splitList($(`token-${field}`).value);
      if (patterns.length) body[field] = patterns;
    }
  }
  const expires = $("token-expires-in").value;
  if (expires) body.expires_in = Number(expires);
  const reason = $("token-reason").value.trim();
  if (reason) body.reason = reason;
  await submit({
    form,
    button: $("token-submit"),
    busyText: "Making…",
    send: () => call("POST", "/v1/tokens", body),
    done: (made) => {
      showSecret(made);
      return `Made the token ${made.name}.`;
    },
  });
}

function showSecret(made) {
  $("secret-title").textContent = `The secret of ${made.name}`;
  $("token-secret").value = made.token;
  setBusy($("secret-copy"), false, "Copy");
  openDialog($("secret-dialog"));
  $("token-secret").select();
}

export function copySecret(event) {
  copy($("token-secret").value, event.currentTarget, "token-secret", "the secret");
}

/** Gone from the page once its dialog closes: it is never shown again. */
export function secretClosed() {
  $("token-secret").value = "";
}

// ---- revoking: a confirmation first --------------------------------------------------

function openRevoke(token) {
  state.revoking = token;
  const form = $("revoke-form");
  form.reset();
  clearErrors(form);
  $("revoke-title").textContent = `Revoke ${token.name}?`;
  $("revoke-what").textContent =
    `Every request with ${token.name} is refused from now on, in every open dashboard too. ` +
    `Its name stays taken: no new token can have it.`;
  setBusy($("revoke-confirm"), false, "Revoke token");
  openDialog($("revoke-dialog"));
  $("revoke-cancel").focus();
}

export async function confirmRevoke(event) {
  event.preventDefault();
  const token = state.revoking;
  if (!token) return;
  const reason = $("revoke-reason").value.trim();
  await submit({
    form: event.currentTarget,
    button: $("revoke-confirm"),
    busyText: "Revoking…",
    send: () => call("DELETE", path.token(token.name, reason)),
    done: (revoked) => `Revoked ${revoked.name}: it is refused from now on.`,
  });
}
