// The fodns dashboard: groups with a radio button per side (the live one green),
// a confirmation before every switch, apps, and the event log. It uses only the
// public admin API (/v1), and follows changes made elsewhere by polling the
// newest event's seq every two seconds while the tab is visible.

import { ApiError, call, path, token } from "./api.js";
import { capitalise, clearErrors, h, idPart, say, showError, splitList } from "./dom.js";

const POLL_MS = 2000;
const EVENTS_PAGE = 100;
// Rows drawn per list at first and per "Show more": a few thousand groups would
// take seconds to lay out, and a find box is quicker than scrolling through them.
const PAGE_ROWS = 100;
// After a change, up to this many missed events are applied by fetching only the
// groups and apps they touch (at most CATCH_UP_FETCHES of them); past either
// limit the page reads everything again, which with 100,000 groups is 25 MB.
const CATCH_UP_EVENTS = 200;
const CATCH_UP_FETCHES = 50;
const VIEWS = ["groups", "apps", "events"];
const REJECTED = "That token was not accepted. Check it and enter it again.";
const STALE = `What this page shows may be out of date; it asks again every ${POLL_MS / 1000} seconds.`;

const $ = (id) => document.getElementById(id);

const state = {
  zones: [],
  apps: [],
  groups: [],
  events: [],
  moreEvents: false,
  seq: null, // the newest event's seq when the data above was read
  view: "groups",
  switching: null, // {group, to} while the confirmation dialog is open
  editing: null, // the group or app being edited, null when creating
  deleting: null, // {kind, item}
  find: { groups: "", apps: "" }, // what the find boxes hold
  rows: { groups: PAGE_ROWS, apps: PAGE_ROWS }, // how many matching rows are drawn
  eventFilter: null, // {group, zone} or {app}: the Events view shows only those
  eventsLoading: false, // the filter changed and its events have not arrived yet
  eventsKept: EVENTS_PAGE, // events kept as new ones arrive: a page, or more once asked for
};

// ---- signing in and out -----------------------------------------------------------

function showSignIn(message = "") {
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
function failed(error) {
  if (error.status === 401) showSignIn(REJECTED);
  else if (error.status === 0) say($("page-error"), `${error.message} ${STALE}`);
  else say($("page-error"), error.message);
}

// ---- reading the state and following changes --------------------------------------------

async function refresh() {
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
    render();
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
async function catchUp() {
  const since = state.seq;
  const filter = state.eventFilter;
  if (since === null) return refresh();
  try {
    const { events: missed } = await call("GET", `/v1/events?after=${since}&limit=${CATCH_UP_EVENTS}`);
    if (!missed.length || missed.length >= CATCH_UP_EVENTS) return refresh(); // none: a new log
    const touched = touchedBy(missed);
    if (touched === null || touched.groups.size + touched.apps.size > CATCH_UP_FETCHES) return refresh();
    const wanted = [...touched.groups.values()];
    const [zones, groups, apps, shown] = await Promise.all([
      call("GET", "/v1/zones"),
      Promise.all(wanted.map((group) => readOrNull(path.group(group)))),
      Promise.all([...touched.apps].map((name) => readOrNull(path.app(name)))),
      filter ? call("GET", `${eventsPath(filter)}&after=${since}`).then((page) => page.events) : missed,
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
    render();
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

let pollTimer = null;

function schedulePoll() {
  clearTimeout(pollTimer);
  pollTimer = null;
  if (!document.hidden && token.get() && !$("signed-in").hidden) {
    pollTimer = setTimeout(poll, POLL_MS);
  }
}

function stopPolling() {
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

function visibilityChanged() {
  if (document.hidden) stopPolling();
  else if (token.get() && !$("signed-in").hidden) poll();
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

/** What `#events?group=shop&zone=fo.example.net` or `#events?app=shop-eu` asks to see. */
function eventFilterFrom(params) {
  if (params.get("group")) return { group: params.get("group"), zone: params.get("zone") };
  if (params.get("app")) return { app: params.get("app") };
  return null;
}

const filterKey = (filter) => (filter ? JSON.stringify(filter) : "");

/** The link to the Events view showing only what is about `filter`. */
function eventsLink(filter) {
  const params = new URLSearchParams(Object.entries(filter).filter(([, value]) => value));
  return `#events?${params}`;
}

/** A page of events (older than `before` when given), about the filter's group or app. */
function eventsPath(filter, before = null) {
  const params = new URLSearchParams({ limit: String(EVENTS_PAGE) });
  if (filter?.group) params.set("group", filter.group);
  if (filter?.app) params.set("app", filter.app);
  if (before !== null) params.set("before", String(before));
  return `/v1/events?${params}`;
}

/** The API filters events by label; the same label may exist in two zones. */
const inZone = (events, filter) =>
  filter?.zone ? events.filter((event) => event.zone === filter.zone) : events;

const filterSubject = (filter) =>
  filter.group ? (filter.zone ? `${filter.group}.${filter.zone}` : filter.group) : filter.app;

function render() {
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

const appNamed = (name) => state.apps.find((app) => app.name === name) ?? null;
const domKey = (group) => idPart(group.fqdn);

/** An app's web head as text, or "" when it has none. */
function webHeadText(app) {
  const head = app?.load_balancer?.length ? app.load_balancer : (app?.web_servers ?? []);
  return head.map(hostText).join(", ");
}

const hostText = (value) => value.replace(/\.$/, "");
const recordsText = (records) => records.map((record) => hostText(record.data)).join(", ");

function table(caption, headings, rows, className) {
  return h(
    "table",
    { class: `table ${className}` },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows),
  );
}

function cell(label, ...children) {
  return h("td", { "data-label": label }, ...children);
}

function emptyState(text, buttonText, onclick) {
  return h(
    "div",
    { class: "empty" },
    h("p", {}, text),
    buttonText && h("button", { type: "button", class: "button primary", onclick }, buttonText),
  );
}

// ---- groups -------------------------------------------------------------------------------

function renderGroups() {
  const list = $("groups-list");
  $("groups-find").hidden = !state.groups.length;
  if (!state.groups.length) {
    $("more-groups").hidden = true;
    list.replaceChildren(
      emptyState(
        "No groups yet. A group is a stable name, like 414-262-781.fo.example.net, that follows the live app.",
        "Create the first group",
        () => openGroupForm(null),
      ),
    );
    return;
  }
  const rows = pageOf("groups", state.groups, groupSearchText);
  const headings = ["Group", "Traffic", "TTL", "Answering now", "Actions"];
  list.replaceChildren(
    rows.length
      ? table("Failover groups", headings, rows.map(groupRow), "groups")
      : emptyState(`No group matches “${state.find.groups.trim()}”.`, null),
  );
}

const groupSearchText = (group) =>
  [group.fqdn, group.primary, group.backup, ...group.answer.map((record) => record.data)].join(" ");

// Search texts by object: state.groups and state.apps are new objects after each
// refresh, so an entry lives exactly as long as the data it was made from.
const searchTexts = new WeakMap();

/**
 * The rows of `kind` ("groups" or "apps") to draw: those whose search text holds every
 * word in its find box, at most state.rows[kind] of them. Says how many match and how
 * many are drawn next to the box, and shows "Show more" while some are not drawn.
 */
function pageOf(kind, items, searchText) {
  const words = state.find[kind].toLowerCase().split(/\s+/).filter(Boolean);
  const text = (item) => {
    let cached = searchTexts.get(item);
    if (cached === undefined) searchTexts.set(item, (cached = searchText(item).toLowerCase()));
    return cached;
  };
  const matching = words.length ? items.filter((item) => words.every((word) => text(item).includes(word))) : items;
  const drawn = matching.slice(0, state.rows[kind]);
  const noun = (count) => `${count.toLocaleString()} ${count === 1 ? kind.slice(0, -1) : kind}`;
  let shown = "";
  if (words.length) shown = `${matching.length.toLocaleString()} of ${noun(items.length)} match.`;
  if (drawn.length < matching.length) {
    shown = `${shown} Showing the first ${drawn.length.toLocaleString()}.`.trim();
  }
  $(`${kind}-shown`).textContent = shown;
  const more = $(`more-${kind}`);
  more.hidden = drawn.length >= matching.length;
  more.textContent = `Show ${Math.min(PAGE_ROWS, matching.length - drawn.length).toLocaleString()} more ${kind}`;
  return drawn;
}

function findChanged(kind, value) {
  state.find[kind] = value;
  state.rows[kind] = PAGE_ROWS;
  if (kind === "groups") renderGroups();
  else renderApps();
}

function showMore(kind) {
  state.rows[kind] += PAGE_ROWS;
  if (kind === "groups") renderGroups();
  else renderApps();
}

function groupRow(group) {
  const key = domKey(group);
  const deletable = group.primary === null && group.backup === null;
  const why = `Points at apps: clear both sides with Edit before deleting.`;
  return h(
    "tr",
    { "data-group": group.fqdn },
    cell(
      "Group",
      h("div", { class: "group-label" }, group.label),
      h(
        "div",
        { class: "fqdn-line" },
        h("code", { class: "fqdn", id: `fqdn-${key}` }, group.fqdn),
        h(
          "button",
          {
            type: "button",
            class: "button small",
            id: `copy-${key}`,
            "aria-label": `Copy ${group.fqdn}`,
            onclick: (event) => copy(group.fqdn, event.currentTarget, `fqdn-${key}`),
          },
          "Copy",
        ),
      ),
    ),
    cell(
      "Traffic",
      h(
        "fieldset",
        { class: "sides" },
        h("legend", { class: "visually-hidden" }, `Traffic for ${group.fqdn}`),
        ["primary", "backup"].map((side) => sideChoice(group, side, key)),
      ),
    ),
    cell("TTL", h("span", { class: "ttl" }, `${group.ttl} s`)),
    cell("Answering now", answerList(group.answer)),
    cell(
      "Actions",
      h(
        "div",
        { class: "row-actions" },
        h(
          "button",
          { type: "button", class: "button small", id: `edit-${key}`, onclick: () => openGroupForm(group) },
          "Edit",
          h("span", { class: "visually-hidden" }, ` ${group.fqdn}`),
        ),
        historyLink(`history-${key}`, { group: group.label, zone: group.zone }, group.fqdn),
        deleteButton(`delete-${key}`, group.fqdn, deletable ? null : why, () =>
          openDelete("group", group),
        ),
      ),
    ),
  );
}

function sideChoice(group, side, key) {
  const app = group[side];
  const live = group.active === side;
  const pending = state.switching?.group.fqdn === group.fqdn ? state.switching.to : null;
  const id = `side-${key}-${side}`;
  return h(
    "label",
    {
      class: `side${live ? " live" : ""}${app ? "" : " empty"}`,
      for: id,
      title: app ? null : `No app on the ${side} side: use Edit to add one`,
    },
    h("input", {
      type: "radio",
      name: `side-${key}`,
      id,
      value: side,
      checked: (pending ?? group.active) === side,
      disabled: !app,
      onchange: () => openSwitch(group, side),
    }),
    h(
      "span",
      { class: "side-text" },
      h("span", { class: "side-role" }, capitalise(side)),
      h("span", { class: "side-app" }, app ?? "no app"),
    ),
    live && h("span", { class: "badge live" }, "live"),
  );
}

function answerList(records) {
  if (!records.length) return h("span", { class: "muted" }, "nothing (NODATA)");
  return h(
    "ul",
    { class: "records" },
    records.map((record) =>
      h("li", {}, h("span", { class: "rtype" }, record.type), " ", h("code", {}, hostText(record.data))),
    ),
  );
}

/** A link to the Events view showing only the events of one group or app. */
function historyLink(id, filter, name) {
  return h(
    "a",
    { class: "button small", id, href: eventsLink(filter) },
    "History",
    h("span", { class: "visually-hidden" }, ` of ${name}`),
  );
}

function deleteButton(id, name, whyNot, onclick) {
  const whyId = `${id}-why`;
  return [
    h(
      "button",
      {
        type: "button",
        class: "button small danger",
        id,
        disabled: Boolean(whyNot),
        title: whyNot,
        "aria-describedby": whyNot ? whyId : null,
        onclick,
      },
      "Delete",
      h("span", { class: "visually-hidden" }, ` ${name}`),
    ),
    whyNot && h("span", { class: "why-not", id: whyId }, whyNot),
  ];
}

// ---- the switch: a confirmation first -------------------------------------------------------

function openSwitch(group, to) {
  if (group.active === to) return;
  state.switching = { group, to };
  const from = group.active;
  const target = appNamed(group[to]);
  const now = recordsText(group.answer) || "nothing (NODATA)";
  const next = webHeadText(target) || "nothing (NODATA: the app has no web head)";
  $("switch-title").textContent = `Switch ${group.fqdn} to its ${to}?`;
  $("switch-what").replaceChildren(
    h("strong", {}, group.fqdn),
    " will answer with ",
    h("strong", { class: "answer-text" }, next),
    " ",
    h("span", { class: "keep" }, `(${group[to]}, ${to})`),
    " instead of ",
    h("strong", { class: "answer-text" }, now),
    ...(group[from] ? [" ", h("span", { class: "keep" }, `(${group[from]}, ${from}).`)] : ["."]),
  );
  $("switch-when").textContent =
    `fodns answers the new records at once. Resolvers that cached the old answer may keep ` +
    `sending visitors to ${group[from] ?? "the old address"} for up to ${group.ttl} seconds ` +
    `(the group's TTL).`;
  const form = $("switch-form");
  clearErrors(form);
  $("switch-reason").value = "";
  setBusy($("switch-confirm"), false, "Switch traffic now");
  openDialog($("switch-dialog"));
  $("switch-cancel").focus();
}

async function confirmSwitch(event) {
  event.preventDefault();
  const pending = state.switching;
  if (!pending) return;
  const form = event.currentTarget;
  const reason = $("switch-reason").value.trim();
  setBusy($("switch-confirm"), true, "Switching…");
  try {
    const group = await call("POST", path.switchGroup(pending.group), {
      to: pending.to,
      ...(reason ? { reason } : {}),
    });
    state.groups = state.groups.map((g) => (g.fqdn === group.fqdn ? group : g));
    state.switching = null;
    $("switch-dialog").close("switched");
    render();
    $(`side-${domKey(group)}-${group.active}`)?.focus();
    announce(`${group.fqdn} now answers with ${recordsText(group.answer) || "nothing"}.`);
    await catchUp();
  } catch (error) {
    if (error.status === 401) return showSignIn(REJECTED);
    showError(form, error);
    setBusy($("switch-confirm"), false, "Switch traffic now");
  }
}

function switchClosed() {
  const pending = state.switching;
  if (!pending) return;
  // Cancelled (button or Escape): the radio goes back to the live side.
  state.switching = null;
  renderGroups();
  const group = state.groups.find((g) => g.fqdn === pending.group.fqdn);
  if (group) $(`side-${domKey(group)}-${group.active}`)?.focus();
}

// ---- group form --------------------------------------------------------------------------

function appOptions(selected) {
  return [
    h("option", { value: "", selected: !selected }, "— no app —"),
    ...state.apps.map((app) => h("option", { value: app.name, selected: app.name === selected }, app.name)),
  ];
}

function openGroupForm(group) {
  state.editing = group;
  const form = $("group-form");
  form.reset();
  clearErrors(form);
  const creating = group === null;
  $("group-form-title").textContent = creating ? "New group" : `Edit ${group.fqdn}`;
  $("group-submit").textContent = creating ? "Create group" : "Save changes";
  $("group-zone").replaceChildren(...state.zones.map((zone) => h("option", { value: zone.name }, zone.name)));
  $("group-zone-field").hidden = !creating || state.zones.length < 2;
  $("group-zone").disabled = !creating;
  $("group-label-field").hidden = !creating;
  $("group-label").disabled = !creating;
  labelSuffix();
  $("group-primary").replaceChildren(...appOptions(group?.primary));
  $("group-backup").replaceChildren(...appOptions(group?.backup));
  $("group-ttl").value = creating ? "" : String(group.ttl);
  openDialog($("group-dialog"));
}

/** The chosen zone's name after the label, and what an empty TTL means (the zone's default). */
function labelSuffix() {
  const zone = state.zones.find((candidate) => candidate.name === $("group-zone").value);
  $("group-label-suffix").textContent = `.${$("group-zone").value}`;
  const creating = state.editing === null;
  $("group-ttl").placeholder = creating && zone ? String(zone.group_ttl) : "";
  $("group-ttl-empty").textContent = !creating
    ? "Empty: unchanged."
    : `Empty: the zone's default${zone ? ` (${zone.group_ttl} s)` : ""}.`;
}

async function saveGroup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const editing = state.editing;
  const ttlText = $("group-ttl").value.trim();
  const ttl = /^\d+$/.test(ttlText) ? Number(ttlText) : ttlText;
  const primary = $("group-primary").value || null;
  const backup = $("group-backup").value || null;
  let body;
  if (editing) {
    body = { primary, backup, ...(ttlText ? { ttl } : {}) };
  } else {
    const label = $("group-label").value.trim();
    body = {
      zone: $("group-zone").value,
      ...(label ? { label } : {}),
      ...(primary ? { primary } : {}),
      ...(backup ? { backup } : {}),
      ...(ttlText ? { ttl } : {}),
    };
  }
  const button = $("group-submit");
  const text = button.textContent;
  setBusy(button, true, "Saving…");
  try {
    const group = editing
      ? await call("PATCH", path.group(editing), body)
      : await call("POST", "/v1/groups", body);
    $("group-dialog").close();
    announce(editing ? `Saved ${group.fqdn}.` : `Created ${group.fqdn}.`);
    await catchUp();
  } catch (error) {
    if (error.status === 401) return showSignIn(REJECTED);
    showError(form, error);
  } finally {
    setBusy(button, false, text);
  }
}

// ---- apps -----------------------------------------------------------------------------------

function renderApps() {
  const list = $("apps-list");
  $("apps-find").hidden = !state.apps.length;
  if (!state.apps.length) {
    $("more-apps").hidden = true;
    list.replaceChildren(
      emptyState(
        "No apps yet. An app is a deployment with a web head: a load balancer or web servers.",
        "Create the first app",
        () => openAppForm(null),
      ),
    );
    return;
  }
  // Which groups use each app, found in one pass (there may be 100,000 groups).
  const uses = new Map();
  for (const group of state.groups) {
    for (const side of ["primary", "backup"]) {
      if (group[side] === null) continue;
      if (!uses.has(group[side])) uses.set(group[side], []);
      uses.get(group[side]).push({ group, side });
    }
  }
  const appText = (app) =>
    [app.name, ...app.load_balancer, ...app.web_servers, ...(uses.get(app.name) ?? []).map((use) => use.group.fqdn)].join(" ");
  const rows = pageOf("apps", state.apps, appText);
  const headings = ["App", "Web head", "Failover status", "Groups", "Actions"];
  list.replaceChildren(
    rows.length
      ? table("Apps", headings, rows.map((app) => appRow(app, uses.get(app.name) ?? [])), "apps")
      : emptyState(`No app matches “${state.find.apps.trim()}”.`, null),
  );
}

function appRow(app, using) {
  const key = idPart(app.name);
  const names = [...new Set(using.map(({ group }) => group.fqdn))];
  const why = using.length
    ? `In use by ${names.join(", ")}: take it out of ${names.length > 1 ? "those groups" : "that group"} first.`
    : null;
  return h(
    "tr",
    { "data-app": app.name },
    cell("App", h("div", { class: "app-name" }, app.name)),
    cell("Web head", webHead(app)),
    cell("Failover status", h("span", { class: `badge status-${app.failover_status}` }, app.failover_status)),
    cell(
      "Groups",
      using.length
        ? h(
            "ul",
            { class: "plain" },
            using.map(({ group, side }) =>
              h("li", {}, h("code", {}, group.fqdn), ` (${side}${group.active === side ? ", live" : ""})`),
            ),
          )
        : h("span", { class: "muted" }, "none"),
    ),
    cell(
      "Actions",
      h(
        "div",
        { class: "row-actions" },
        h(
          "button",
          { type: "button", class: "button small", id: `edit-app-${key}`, onclick: () => openAppForm(app) },
          "Edit",
          h("span", { class: "visually-hidden" }, ` ${app.name}`),
        ),
        historyLink(`history-app-${key}`, { app: app.name }, app.name),
        deleteButton(`delete-app-${key}`, app.name, why, () => openDelete("app", app)),
      ),
    ),
  );
}

function webHead(app) {
  const balancer = app.load_balancer.length > 0;
  const row = (title, values, answers) =>
    h(
      "div",
      { class: `head-row${answers ? " answers" : ""}` },
      h("dt", {}, title),
      h(
        "dd",
        {},
        values.length ? h("code", {}, values.map(hostText).join(", ")) : h("span", { class: "muted" }, "none"),
        answers && h("span", { class: "badge answers" }, "answers"),
      ),
    );
  return h(
    "dl",
    { class: "head" },
    row("Load balancer", app.load_balancer, balancer),
    row("Web servers", app.web_servers, !balancer && app.web_servers.length > 0),
  );
}

function openAppForm(app) {
  state.editing = app;
  const form = $("app-form");
  form.reset();
  clearErrors(form);
  $("app-form-title").textContent = app ? `Edit ${app.name}` : "New app";
  $("app-submit").textContent = app ? "Save changes" : "Create app";
  $("app-name").value = app?.name ?? "";
  $("app-load-balancer").value = (app?.load_balancer ?? []).map(hostText).join(", ");
  $("app-web-servers").value = (app?.web_servers ?? []).map(hostText).join(", ");
  openDialog($("app-dialog"));
}

async function saveApp(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const editing = state.editing;
  const name = $("app-name").value.trim();
  const body = {
    load_balancer: splitList($("app-load-balancer").value),
    web_servers: splitList($("app-web-servers").value),
  };
  if (!editing || name !== editing.name) body.name = name;
  const button = $("app-submit");
  const text = button.textContent;
  setBusy(button, true, "Saving…");
  try {
    const app = editing
      ? await call("PATCH", path.app(editing.name), body)
      : await call("POST", "/v1/apps", body);
    $("app-dialog").close();
    announce(editing ? `Saved ${app.name}.` : `Created ${app.name}.`);
    await catchUp();
  } catch (error) {
    if (error.status === 401) return showSignIn(REJECTED);
    showError(form, error);
  } finally {
    setBusy(button, false, text);
  }
}

// ---- deleting -------------------------------------------------------------------------------

function openDelete(kind, item) {
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
  const form = event.currentTarget;
  const { kind, item } = state.deleting;
  const button = $("delete-confirm");
  setBusy(button, true, "Deleting…");
  try {
    await call("DELETE", kind === "group" ? path.group(item) : path.app(item.name));
    $("delete-dialog").close();
    announce(`Deleted ${kind === "group" ? item.fqdn : item.name}.`);
    await catchUp();
  } catch (error) {
    if (error.status === 401) return showSignIn(REJECTED);
    showError(form, error);
  } finally {
    setBusy(button, false, `Delete ${kind}`);
  }
}

// ---- events ---------------------------------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

function renderEvents() {
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

async function olderEvents() {
  const oldest = state.events[state.events.length - 1];
  const filter = state.eventFilter;
  try {
    const { events } = await call("GET", eventsPath(filter, oldest.seq));
    if (filter !== state.eventFilter) return;
    state.events = [...state.events, ...inZone(events, filter)];
    state.eventsKept = Math.max(state.eventsKept, state.events.length);
    state.moreEvents = events.length === EVENTS_PAGE;
    renderEvents();
  } catch (error) {
    failed(error);
  }
}

// ---- small helpers ------------------------------------------------------------------------

/** Open a modal dialog; when it closes, focus goes back where it was, or to the
 * control with the same id if a refresh has rebuilt it meanwhile. */
function openDialog(dialog) {
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

function setBusy(button, busy, text) {
  button.disabled = busy;
  button.textContent = text;
}

let announceTimer = null;

function announce(message) {
  const status = $("page-status");
  status.textContent = message;
  clearTimeout(announceTimer);
  announceTimer = setTimeout(() => (status.textContent = ""), 5000);
}

/** Copy text: the Clipboard API, else the old execCommand way, else select it for the user. */
async function copy(text, button, sourceId) {
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
  for (const kind of ["groups", "apps"]) {
    $(`${kind}-filter`).addEventListener("input", (event) => findChanged(kind, event.currentTarget.value));
    $(`more-${kind}`).addEventListener("click", () => showMore(kind));
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
