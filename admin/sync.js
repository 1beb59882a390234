// Reading the API and following changes made elsewhere: refresh() reads everything,
// catchUp() only the groups and apps the events missed since then touch, and polling
// asks for the newest event's seq every POLL_MS while the tab is visible.

import { ApiError, call, path, token } from "./api.js";
import { failed } from "./dialogs.js";
import { say } from "./dom.js";
import { eventsPath, inZone } from "./eventfilter.js";
import { page } from "./page.js";
import { $, CATCH_UP_EVENTS, CATCH_UP_FETCHES, EVENTS_PAGE, POLL_MS, state } from "./state.js";

export async function refresh() {
  const filter = state.eventFilter;
  try {
    const [zones, apps, groups, events, latest] = await Promise.all([
      call("GET", "/v1/zones"),
      call("GET", "/v1/apps"),
      call("GET", "/v1/groups"),
      call("GET", eventsPath(filter)),
      // Polling compares the newest seq of the whole log; a filtered page may not hold it.
      filter ? call("GET", "/v1/events?limit=1") : null,
    ]);
    if (filter !== state.eventFilter) return; // the filter changed meanwhile: a newer refresh runs
    state.zones = zones.zones;
    state.apps = apps.apps;
    state.groups = groups.groups;
    const newest = inZone(events.events, filter);
    const oldest = newest.length ? newest[newest.length - 1].seq : Infinity;
    const older = state.events.filter((event) => event.seq < oldest);
    state.events = [...newest, ...(newest.length === EVENTS_PAGE ? older : [])];
    if (newest.length < EVENTS_PAGE) state.moreEvents = false;
    else if (!older.length) state.moreEvents = true;
    state.eventsLoading = false;
    const newestOfAll = (latest ?? events).events;
    state.seq = newestOfAll.length ? newestOfAll[0].seq : 0;
    say($("page-error"), "");
    page.render();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
  }
}

/**
 * Bring the page up to the newest event by reading the events it missed and then
 * only the groups and apps they touch; everything, through refresh(), when that is
 * less work or the events say something this page cannot follow piece by piece.
 */
export async function catchUp() {
  const since = state.seq;
  const filter = state.eventFilter;
  if (since === null) return refresh();
  try {
    const { events: missed } = await call("GET", eventsPath(null, { after: since, limit: CATCH_UP_EVENTS }));
    if (!missed.length || missed.length >= CATCH_UP_EVENTS) return refresh(); // none: a new log
    const touched = touchedBy(missed);
    if (touched === null || touched.groups.size + touched.apps.size > CATCH_UP_FETCHES) return refresh();
    const wanted = [...touched.groups.values()];
    const [zones, groups, apps, shown] = await Promise.all([
      call("GET", "/v1/zones"),
      Promise.all(wanted.map((group) => readOrNull(path.group(group)))),
      Promise.all([...touched.apps].map((name) => readOrNull(path.app(name)))),
      filter ? call("GET", eventsPath(filter, { after: since })).then((reply) => reply.events) : missed,
    ]);
    if (state.seq !== since || filter !== state.eventFilter) return; // someone else caught up first
    state.zones = zones.zones;
    state.groups = [...state.groups];
    wanted.forEach((key, index) => putInOrder(state.groups, groupOrder, key, groups[index]));
    state.apps = [...state.apps];
    [...touched.apps].forEach((name, index) => putInOrder(state.apps, appOrder, { name }, apps[index]));
    state.events = [...inZone(shown, filter), ...state.events];
    if (state.events.length > state.eventsKept) {
      state.events = state.events.slice(0, state.eventsKept);
      state.moreEvents = true;
    }
    state.seq = missed[0].seq;
    say($("page-error"), "");
    page.render();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
  }
}

/** The groups ("label zone" -> {label, zone}) and app names whose rows these events may
 * have changed; null for an event this page does not know how to follow. */
function touchedBy(events) {
  const groups = new Map();
  const apps = new Set();
  const addGroup = (label, zone) => groups.set(`${label} ${zone}`, { label, zone });
  for (const event of events) {
    const states = [event.before, event.after].filter(Boolean);
    if (event.group) {
      addGroup(event.group, event.zone);
      // The apps on either side, before and after: their failover status may have moved.
      for (const group of states) for (const side of ["primary", "backup"]) if (group[side]) apps.add(group[side]);
    } else if (event.app) {
      const names = new Set([event.app, ...states.map((app) => app.name).filter(Boolean)]);
      for (const name of names) apps.add(name);
      if (event.action === "app_updated") {
        // A new web head or name shows in every group that uses the app.
        for (const group of state.groups) {
          if (names.has(group.primary) || names.has(group.backup)) addGroup(group.label, group.zone);
        }
      }
    } else {
      return null;
    }
  }
  return { groups, apps };
}

/** GET `path`: its JSON, or null when it is gone (404). */
async function readOrNull(path) {
  try {
    return await call("GET", path);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

// The API's own orders (ORDER BY zone, label and ORDER BY name, byte-wise): a row put
// in by catchUp() stands where a full refresh would put it.
const byBytes = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const groupOrder = (a, b) => byBytes(a.zone, b.zone) || byBytes(a.label, b.label);
const appOrder = (a, b) => byBytes(a.name, b.name);

/** Replace the item `order` finds equal to `key` with `item`, drop it (item null), or
 * put `item` in where it belongs; `list` is sorted by `order`. */
function putInOrder(list, order, key, item) {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (order(list[middle], key) < 0) low = middle + 1;
    else high = middle;
  }
  const found = low < list.length && order(list[low], key) === 0;
  if (item === null) {
    if (found) list.splice(low, 1);
  } else if (found) {
    list[low] = item;
  } else {
    list.splice(low, 0, item);
  }
}

// ---- polling -----------------------------------------------------------------------------

let pollTimer = null;

export function schedulePoll() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (!document.hidden && token.get() && !$("signed-in").hidden) {
    pollTimer = setTimeout(poll, POLL_MS);
  }
}

export function stopPolling() {
  clearTimeout(pollTimer);
  pollTimer = null;
}

async function poll() {
  try {
    const { events } = await call("GET", "/v1/events?limit=1");
    const seq = events.length ? events[0].seq : 0;
    if (seq !== state.seq) await catchUp();
    else say($("page-error"), "");
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
    if (error.status === 401) return;
  }
  schedulePoll();
}

export function visibilityChanged() {
  if (document.hidden) stopPolling();
  else if (token.get() && !$("signed-in").hidden) poll();
}
