// The Events view: the log newest first, each event said in words, "Older events",
// and which group's or app's events it shows (the filter itself is eventfilter.js).

import { call } from "./api.js";
import { failed } from "./dialogs.js";
import { capitalise, h } from "./dom.js";
import { eventsPath, filterSubject, inZone } from "./eventfilter.js";
import { cell, emptyState, hostText, table } from "./lists.js";
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
};

const FIELD_NAMES = {
  primary: "primary",
  backup: "backup",
  ttl: "TTL",
  active: "live side",
  name: "name",
  load_balancer: "load balancer",
  web_servers: "web servers",
};

function describe(event) {
  const subject = event.group ? `${event.group}.${event.zone}` : (event.app ?? "");
  const verb = ACTIONS[event.action] ?? capitalise(event.action.replaceAll("_", " "));
  const { before, after } = event;
  if (event.action === "group_switched" && before && after) {
    const to = after.active;
    return {
      summary: `Switched ${subject} to ${to} (${after[to] ?? "no app"})`,
      details: [`from ${before.active} (${before[before.active] ?? "no app"})`],
    };
  }
  const details = [];
  const shown = (key, value) => {
    if (Array.isArray(value)) return value.length ? value.map(hostText).join(", ") : "none";
    if (value === null || value === undefined) return "none";
    return key === "ttl" ? `${value} s` : String(value);
  };
  const keys = Object.keys(FIELD_NAMES).filter((key) => key in (after ?? before ?? {}));
  for (const key of keys) {
    if (key === "active" || (key === "name" && !before)) continue;
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
