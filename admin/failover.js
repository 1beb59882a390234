// A group's automatic failover as the Groups view shows it: its mode, a person's pin
// (with the Unpin button and its confirmation), what health decided for it (from
// /v1/health) and its last automatic switch with the reason health gave.

import { call, path } from "./api.js";
import { openDialog, setBusy, submit } from "./dialogs.js";
import { clearErrors, h, idPart } from "./dom.js";
import { mayChangeGroup } from "./grant.js";
import { appHealth, groupHealth } from "./health.js";
import { clock } from "./lists.js";
import { $, state } from "./state.js";

/** What the Failover cell of `group`'s row holds. */
export function failoverCell(group) {
  const decision = groupHealth(group);
  // A decision made before the group last moved or was pinned is not shown: the next
  // read of /v1/health brings the one about where it is. A pinned group's decision only
  // repeats the pin.
  const current =
    decision !== null && decision.active === group.active && (decision.state === "pinned") === Boolean(group.pin);
  return [
    h("div", { class: `mode ${group.failover}` }, modeText(group)),
    group.pin && pinned(group),
    current && decision.state !== "pinned" && decisionLine(decision),
    group.last_auto_switch && lastSwitch(group.last_auto_switch),
  ];
}

function modeText(group) {
  if (group.failover !== "auto") return "Manual failover";
  const back =
    group.failback === "auto" ? `automatic failback (${group.hold_down} s hold-down)` : "manual failback";
  return `Automatic failover, ${back}`;
}

function pinned(group) {
  const { pin } = group;
  const until = pin.until ? `until ${clock(pin.until, { ceil: true })}` : "until unpinned";
  return h(
    "div",
    { class: "pin" },
    h("div", {}, h("strong", {}, `Pinned to ${pin.side}`), ` by ${pin.actor}, ${until}`),
    pin.reason && h("div", { class: "pin-reason" }, `“${pin.reason}”`),
    mayChangeGroup(group, "switch") &&
      h(
        "button",
        { type: "button", class: "button small", id: `unpin-${idPart(group.fqdn)}`, onclick: () => openUnpin(group) },
        "Unpin",
        h("span", { class: "visually-hidden" }, ` ${group.fqdn}`),
      ),
  );
}

// The checker's decisions (verdicts.decide) in a word or two; its reason says the rest.
const DECISIONS = {
  ok: "OK",
  waiting: "Waiting",
  switch: "Switching",
  both_down: "Both sides down",
  no_target: "Nowhere to go",
  manual: "Manual",
  unknown: "Not decided yet",
};

function decisionLine(decision) {
  const words =
    decision.state === "held"
      ? decision.held_until
        ? `Held until ${clock(decision.held_until, { ceil: true })}`
        : "Held"
      : (DECISIONS[decision.state] ?? decision.state);
  return h(
    "div",
    { class: "decision" },
    h("span", { class: `badge decision-${decision.state}` }, words),
    decision.reason && h("span", { class: "decision-reason" }, ` ${decision.reason}`),
  );
}

function lastSwitch(last) {
  return h(
    "div",
    { class: "last-switch" },
    h("div", {}, `Last automatic switch ${clock(last.at)}: ${last.from} → ${last.to}`),
    last.reason && h("div", { class: "muted" }, last.reason),
  );
}

// ---- unpinning: a confirmation first -----------------------------------------------------

function openUnpin(group) {
  state.unpinning = group;
  const form = $("unpin-form");
  form.reset();
  clearErrors(form);
  $("unpin-title").textContent = `Unpin ${group.fqdn}?`;
  const seen = ["primary", "backup"]
    .filter((side) => group[side] !== null)
    .map((side) => `${side} ${group[side]} ${appHealth(group[side])?.state ?? "not checked"}`);
  $("unpin-what").textContent =
    `Health checks take ${group.fqdn} back, and may switch it at once if its live side is down. ` +
    `It is on its ${group.active} (${group[group.active] ?? "no app"}).` +
    (state.health && seen.length ? ` Health checks see: ${seen.join(", ")}.` : "");
  setBusy($("unpin-confirm"), false, "Unpin");
  openDialog($("unpin-dialog"));
  $("unpin-cancel").focus();
}

export async function confirmUnpin(event) {
  event.preventDefault();
  const group = state.unpinning;
  if (!group) return;
  const reason = $("unpin-reason").value.trim();
  await submit({
    form: event.currentTarget,
    button: $("unpin-confirm"),
    busyText: "Unpinning…",
    send: () => call("DELETE", path.pin(group, reason)),
    done: (unpinned) => `${unpinned.fqdn} is unpinned: health checks may switch it again.`,
  });
}
