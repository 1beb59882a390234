// The Events view: the log newest first, each event said in words, "Older events",
// and which group's or app's events it shows (the filter itself is eventfilter.js).

import { call } from "./api.js";
import { failed } from "./dialogs.js";
import { capitalise, h } from "./dom.js";
import { eventsPath, filterSubject, inZone } from "./eventfilter.js";
import { cell, clock, emptyState, hostText, table } from "./lists.js";
import { $, EVENTS_PAGE, state } from "./state.js";

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function renderEvents() {
  const list = $("events-list");
  const filter = state.eventFilter;
  $("older-events").hidden = !state.moreEvents;
  $("events-filter").hidden = !filter;
  $("events-subject").textContent = filter ? filterSubject(filter) : "";
  if (!state.events.length) {
    const none = state.eventsLoading
      ? "Loading events…"
      : filter
      ? `No events about ${filterSubject(filter)}.`
      : "No events yet: every change will be listed here.";
    list.replaceChildren(emptyState(none, null));
    return;
  }
  const headings = ["When", "Who", "What", "Reason"];
  list.replaceChildren(table("Events, newest first", headings, state.events.map(eventRow), "events"));
}

function eventRow(event) {
  const { summary, details } = describe(event);
  return h(
    "tr",
    { "data-seq": event.seq },
    cell("When", h("time", { datetime: event.at, title: event.at }, dateFormat.format(new Date(event.at)))),
    cell("Who", event.actor),
    cell(
      "What",
      h("div", { class: "event-summary" }, summary),
      details.length > 0 && h("ul", { class: "plain details" }, details.map((line) => h("li", {}, line))),
    ),
    event.reason
      ? cell("Reason", event.reason)
      : h("td", { "data-label": "Reason", class: "no-reason" }, h("span", { class: "muted" }, "—")),
  );
}

const ACTIONS = {
  group_created: "Created group",
  group_updated: "Changed group",
  group_switched: "Switched group",
  group_deleted: "Deleted group",
  app_created: "Created app",
  app_updated: "Changed app",
  app_deleted: "Deleted app",
  group_pinned: "Pinned group",
  group_unpinned: "Unpinned group",
  check_set: "Set the health check of",
  check_deleted: "Removed the health check of",
  webhook_created: "Created the webhook to",
  webhook_updated: "Changed the webhook to",
  webhook_deleted: "Deleted the webhook to",
  webhook_failed: "Gave up delivering to",
  route53_failed: "The Route53 mirror fails",
  route53_recovered: "The Route53 mirror works again for",
};

const FIELD_NAMES = {
  primary: "primary",
  backup: "backup",
  ttl: "TTL",
  active: "live side",
  name: "name",
  load_balancer: "load balancer",
  web_servers: "web servers",
  failover: "failover",
  failback: "failback",
  hold_down: "hold-down",
  max_auto_switches: "automatic switches an hour",
};

const AUTO_ONLY = ["failback", "hold_down", "max_auto_switches"];

function describe(event) {
  const webhook = event.action.startsWith("webhook_") ? (event.after ?? event.before) : null;
  const subject = event.group ? `${event.group}.${event.zone}` : (event.app ?? webhook?.url ?? event.zone ?? "");
  const verb = ACTIONS[event.action] ?? capitalise(event.action.replaceAll("_", " "));
  const { before, after } = event;
  if (event.action === "group_switched" && before && after) {
    const to = after.active;
    return {
      summary: `Switched ${subject} to ${to} (${after[to] ?? "no app"})`,
      details: [
        `from ${before.active} (${before[before.active] ?? "no app"})`,
        ...(after.pin ? [pinText(after.pin)] : []),
      ],
    };
  }
  if (event.action === "group_pinned" && after?.pin) {
    return { summary: `Pinned ${subject} to ${after.pin.side}`, details: [pinText(after.pin)] };
  }
  if (event.action === "health_changed" && before && after) {
    return { summary: healthSummary(subject, before, after), details: healthDetails(before, after) };
  }
  if (event.action.startsWith("acme_") && (after ?? before)) return acmeWords(event, after ?? before);
  if (event.action === "check_set" && !before && after) {
    return { summary: `${verb} ${subject}`, details: [`${after.type} on port ${after.port}, every ${after.interval} s`] };
  }
  if (webhook) {
    const changed = before && after ? changedFields(before, after).filter((line) => !line.startsWith("updated at")) : [];
    return { summary: `${verb} ${subject}`, details: changed };
  }
  if (event.action === "check_set" || event.action === "check_deleted") {
    return { summary: `${verb} ${subject}`, details: after ? changedFields(before ?? {}, after) : [] };
  }
  const details = [];
  const shown = (key, value) => {
    if (Array.isArray(value)) return value.length ? value.map(hostText).join(", ") : "none";
    if (value === null || value === undefined) return "none";
    return key === "ttl" || key === "hold_down" ? `${value} s` : String(value);
  };
  const keys = Object.keys(FIELD_NAMES).filter((key) => key in (after ?? before ?? {}));
  // A new manual group's automatic failover settings are the defaults, and say nothing yet.
  const quiet = !before && after?.failover === "manual" ? AUTO_ONLY : [];
  for (const key of keys) {
    if (key === "active" || (key === "name" && !before) || quiet.includes(key)) continue;
    if (before && after) {
      if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
        details.push(`${FIELD_NAMES[key]}: ${shown(key, before[key])} → ${shown(key, after[key])}`);
      }
    } else if (after) {
      details.push(`${FIELD_NAMES[key]}: ${shown(key, after[key])}`);
    }
  }
  return { summary: `${verb} ${subject}`, details };
}

/** An ACME registration's events: what the customer's names are, the name their CNAMEs
 * point at, and (for an update) the challenge values set. */
function acmeWords(event, registration) {
  const names = registration.names?.length ? registration.names.join(", ") : registration.fulldomain;
  const group = registration.group ? [`group ${registration.group}.${registration.group_zone}`] : [];
  if (event.action === "acme_updated") {
    return { summary: `Set the ACME challenge of ${registration.fulldomain}`, details: [`values: ${registration.txt.join(", ")}`] };
  }
  const verb = event.action === "acme_deleted" ? "Deleted the ACME registration of" : "Registered for ACME:";
  return { summary: `${verb} ${names}`, details: [...group, `CNAME target ${registration.fulldomain}`] };
}

function pinText(pin) {
  return pin.until ? `pinned until ${clock(pin.until, { ceil: true })}` : "pinned until unpinned";
}

function healthSummary(subject, before, after) {
  return before.state === after.state
    ? `Health of ${subject}: ${after.state}`
    : `Health of ${subject}: ${before.state} → ${after.state}`;
}

function healthDetails(before, after) {
  const details = (after.addresses ?? []).map(
    (moved) => `${moved.address}: ${moved.from} → ${moved.to}${moved.evidence?.error ? ` (${moved.evidence.error})` : ""}`,
  );
  const leftOut = (list) => (list?.length ? list.join(", ") : "none");
  if (JSON.stringify(before.down ?? []) !== JSON.stringify(after.down ?? [])) {
    details.push(`left out of the answer: ${leftOut(before.down)} → ${leftOut(after.down)}`);
  }
  return details;
}

/** "interval: 10 → 1" for each field of a check that changed (or was set, or removed). */
function changedFields(before, after) {
  const shown = (value) => (value === null || value === undefined ? "none" : String(value));
  return [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .filter((key) => JSON.stringify(before[key]) !== JSON.stringify(after[key]))
    .map((key) => `${key.replaceAll("_", " ")}: ${shown(before[key])} → ${shown(after[key])}`);
}

export async function olderEvents() {
  const oldest = state.events[state.events.length - 1];
  const filter = state.eventFilter;
  try {
    const { events } = await call("GET", eventsPath(filter, { before: oldest.seq }));
    if (filter !== state.eventFilter) return;
    state.events = [...state.events, ...inZone(events, filter)];
    state.eventsKept = Math.max(state.eventsKept, state.events.length);
    state.moreEvents = events.length === EVENTS_PAGE;
    renderEvents();
  } catch (error) {
    failed(error);
  }
}
