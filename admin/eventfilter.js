// The Events view's filter (the events of one group or one app), kept in the address
// as #events?group=LABEL&zone=ZONE or #events?app=NAME, and the API paths that read
// the events it asks for. Nothing here draws: lists.js links to a filter, sync.js
// reads through one, events.js draws what it holds.

import { EVENTS_PAGE } from "./state.js";

/** What `#events?group=shop&zone=fo.example.net` or `#events?app=shop-eu` asks to see. */
export function eventFilterFrom(params) {
  if (params.get("group")) return { group: params.get("group"), zone: params.get("zone") };
  if (params.get("app")) return { app: params.get("app") };
  return null;
}

export const filterKey = (filter) => (filter ? JSON.stringify(filter) : "");

/** The link to the Events view showing only what is about `filter`. */
export function eventsLink(filter) {
  const params = new URLSearchParams(Object.entries(filter).filter(([, value]) => value));
  return `#events?${params}`;
}

/** A page of events about the filter's group or app (all when null): older than `before`,
 * newer than `after`, each when given. */
export function eventsPath(filter, { before = null, after = null, limit = EVENTS_PAGE } = {}) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (filter?.group) params.set("group", filter.group);
  if (filter?.app) params.set("app", filter.app);
  if (before !== null) params.set("before", String(before));
  if (after !== null) params.set("after", String(after));
  return `/v1/events?${params}`;
}

/** The API filters events by label; the same label may exist in two zones. */
export const inZone = (events, filter) =>
  filter?.zone ? events.filter((event) => event.zone === filter.zone) : events;

/** The filter's group or app in words: "shop.fo.example.net" or "shop-eu". */
export const filterSubject = (filter) =>
  filter.group ? (filter.zone ? `${filter.group}.${filter.zone}` : filter.group) : filter.app;
