// Reading the API and following changes made elsewhere: refresh() reads what the token
// may do, the first page of each list (and what the health checker says, and the named
// tokens for an admin token), readMore() and findOnServer()
// further pages and searches of a list longer than a page, catchUp() only the groups
// and apps the events missed since then say they touched (and /v1/health when they
// changed it), and polling asks every POLL_MS, while the tab is visible, for what came
// after the seq the page has read.

import { ApiError, call, path, token } from "./api.js";
import { failed } from "./dialogs.js";
import { say } from "./dom.js";
import { eventsPath, inZone } from "./eventfilter.js";
import { may } from "./grant.js";
import { healthMoved, readHealth } from "./health.js";
import { page } from "./page.js";
import {
  $,
  CATCH_UP_EVENTS,
  CATCH_UP_FETCHES,
  EVENTS_PAGE,
  FIND_DELAY_MS,
  PAGE_ROWS,
  POLL_MS,
  state,
} from "./state.js";

/** GET /v1/groups or /v1/apps: one page, of the items matching `asked` when not "". */
function listPath(kind, asked, cursor = null) {
  const params = new URLSearchParams({ limit: String(PAGE_ROWS) });
  if (asked) params.set("q", asked);
  if (cursor) params.set("cursor", cursor);
  return `/v1/${kind}?${params}`;
}

/** What a paged list's find box asks the server ("" for the list itself): its longest
 * word, the likeliest to narrow the list most; the other words are looked for here,
 * among what the server found (see lists.js pageOf). */
function askedOf(kind) {
  if (!state.paged[kind]) return "";
  const words = state.find[kind].toLowerCase().split(/\s+/).filter(Boolean);
  return words.reduce((longest, word) => (word.length > longest.length ? word : longest), "");
}

/** Hold a first page of `kind` read for `asked`; a list read whole in one page is
 * no longer paged, one that is not becomes paged. */
function takeFirstPage(kind, reply, asked) {
  state[kind] = reply[kind];
  state.next[kind] = reply.next;
  state.asked[kind] = asked;
  if (!asked) state.paged[kind] = reply.next !== null;
  // Found too long to filter here, with words in its find box: the server finds them.
  if (askedOf(kind) !== asked) findOnServer(kind);
}

export async function refresh() {
  const filter = state.eventFilter;
  const asked = { groups: askedOf("groups"), apps: askedOf("apps") };
  try {
    // First what the token may do: the page offers nothing else, and reads the tokens
    // only with the admin scope.
    state.grant = await call("GET", "/v1/token");
    const [zones, apps, groups, events, health, tokens] = await Promise.all([
      call("GET", "/v1/zones"),
      call("GET", listPath("apps", asked.apps)),
      call("GET", listPath("groups", asked.groups)),
      call("GET", eventsPath(filter)),
      readHealth(),
      readTokens(),
    ]);
    if (filter !== state.eventFilter) return; // the filter changed meanwhile: a newer refresh runs
    state.tokens = tokens;
    state.zones = zones.zones;
    state.health = health;
    state.healthDue = false;
    takeFirstPage("apps", apps, asked.apps);
    takeFirstPage("groups", groups, asked.groups);
    const newest = inZone(events.events, filter);
    const oldest = newest.length ? newest[newest.length - 1].seq : Infinity;
    const older = state.events.filter((event) => event.seq < oldest);
    state.events = [...newest, ...(newest.length === EVENTS_PAGE ? older : [])];
    if (newest.length < EVENTS_PAGE) state.moreEvents = false;
    else if (!older.length) state.moreEvents = true;
    state.eventsLoading = false;
    state.seq = events.last_seq; // of the whole log, also when the page is filtered
    say($("page-error"), "");
    page.render();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
  }
}

// ---- lists longer than a page -------------------------------------------------------------

const findTimers = { groups: null, apps: null };

/** The find box of a paged list changed: ask the server once typing pauses. */
export function findOnServer(kind) {
  clearTimeout(findTimers[kind]);
  if (askedOf(kind) === state.asked[kind]) return; // the items held answer it already
  findTimers[kind] = setTimeout(() => readPage(kind, askedOf(kind), null), FIND_DELAY_MS);
}

/** "Show more" past the items held: the next page of the same list or search. */
export function readMore(kind) {
  if (state.next[kind] !== null) readPage(kind, state.asked[kind], state.next[kind]);
}

async function readPage(kind, asked, cursor) {
  try {
    const reply = await call("GET", listPath(kind, asked, cursor));
    if (cursor === null) {
      if (askedOf(kind) !== asked) return; // typed on meanwhile: a newer search runs
      takeFirstPage(kind, reply, asked);
    } else {
      if (cursor !== state.next[kind] || asked !== state.asked[kind]) return; // read already
      state[kind] = [...state[kind], ...reply[kind]];
      state.next[kind] = reply.next;
    }
    page.render();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
  }
}

/**
 * Bring the page up to the newest event by reading the events it missed and then
 * only the groups and apps they say they touched (`touched`, written with each
 * event) that this page shows or would show, and /v1/health once if they changed
 * what it says (see health.js healthMoved) or a read is due; everything, through
 * refresh(), when that is less work.
 */
export async function catchUp() {
  const since = state.seq;
  const filter = state.eventFilter;
  if (since === null) return refresh();
  try {
    const reply = await call("GET", eventsPath(null, { after: since, limit: CATCH_UP_EVENTS }));
    const missed = reply.events;
    // The log ends below the page's seq: a database restored from a backup (docs/backup.md).
    if (reply.last_seq < since || missed.length >= CATCH_UP_EVENTS) return refresh();
    if (!missed.length) {
      say($("page-error"), ""); // nothing new: a write that changed nothing, say
      if (state.healthDue) await healthOnly();
      return;
    }
    const touched = eventsTouched(missed);
    const groups = [...touched.groups.values()].filter((key) => mayHold("groups", groupOrder, key));
    const apps = [...touched.apps].filter((name) => mayHold("apps", appOrder, { name }));
    if (groups.length + apps.length > CATCH_UP_FETCHES) return refresh();
    const moved = healthMoved(missed);
    const tokensMoved = missed.some((event) => event.action.startsWith("token_"));
    const [zones, groupsNow, appsNow, shown, health, tokens] = await Promise.all([
      call("GET", "/v1/zones"),
      Promise.all(groups.map((group) => readOrNull(path.group(group)))),
      Promise.all(apps.map((name) => readOrNull(path.app(name)))),
      filter ? call("GET", eventsPath(filter, { after: since })).then((reply) => reply.events) : missed,
      moved || state.healthDue ? readHealth() : state.health,
      tokensMoved ? readTokens() : state.tokens,
    ]);
    if (state.seq !== since || filter !== state.eventFilter) return; // someone else caught up first
    state.tokens = tokens;
    state.zones = zones.zones;
    state.health = health;
    state.healthDue = moved; // once more on the next poll: see state.healthDue
    state.groups = [...state.groups];
    groups.forEach((key, index) => hold("groups", groupOrder, key, groupsNow[index]));
    state.apps = [...state.apps];
    apps.forEach((name, index) => hold("apps", appOrder, { name }, appsNow[index]));
    state.events = [...inZone(shown, filter), ...state.events];
    if (state.events.length > state.eventsKept) {
      state.events = state.events.slice(0, state.eventsKept);
      state.moreEvents = true;
    }
    state.seq = reply.last_seq;
    say($("page-error"), "");
    page.render();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    failed(error);
  }
}

/** The groups ("label zone" -> {label, zone}) and app names these events touched, as
 * each event says (its `touched`, written with it when it was committed). */
function eventsTouched(events) {
  const groups = new Map();
  const apps = new Set();
  for (const { touched } of events) {
    for (const group of touched.groups) groups.set(`${group.label} ${group.zone}`, group);
    for (const name of touched.apps) apps.add(name);
  }
  return { groups, apps };
}

/** Whether the item `key` names is, or may belong, among the items of `kind` held: any
 * in a whole list; in a paged one, only up to the last item held (a later page brings
 * the rest); in a search's results, only those already there (whether another now
 * matches is the server's to say, when the search is made again). */
function mayHold(kind, order, key) {
  const list = state[kind];
  if (state.asked[kind]) return list.some((item) => order(item, key) === 0);
  if (state.next[kind] === null || !list.length) return true;
  return order(key, list[list.length - 1]) <= 0;
}

/** Put `item` (null: gone) where `key` belongs among the items of `kind` held. */
function hold(kind, order, key, item) {
  if (item !== null && state.asked[kind] && !state[kind].some((held) => order(held, key) === 0)) return;
  putInOrder(state[kind], order, key, item);
}

/** The named tokens (GET /v1/tokens, with the revoked ones when the page shows them),
 * or none for a token without the admin scope, which may not read them. */
async function readTokens() {
  return may("admin") ? (await call("GET", path.tokens(state.showRevoked))).tokens : [];
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

/** The read of /v1/health that state.healthDue asks for, when no event is new. */
async function healthOnly() {
  const since = state.seq;
  const health = await readHealth();
  if (state.seq !== since) return; // caught up meanwhile, with a read of its own
  state.health = health;
  state.healthDue = false;
  page.render();
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
    // The events after the page's seq, not the newest event: nothing is read while
    // nothing is new, however big the newest event is (an app's event names every
    // group using the app). A `last_seq` other than the page's: new events, or a
    // restored log (catchUp() tells which).
    const since = state.seq;
    const news = since === null ? null : await call("GET", eventsPath(null, { after: since, limit: 1 }));
    if (news === null || news.events.length || news.last_seq !== since) await catchUp();
    else {
      say($("page-error"), "");
      if (state.healthDue) await healthOnly();
    }
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
