// What the lists share: tables, cells and the empty state, the find box and "Show
// more" (only the first PAGE_ROWS matching rows are drawn), a row's History link and
// Delete button, and hosts, records, web heads and times as text.

import { h } from "./dom.js";
import { eventsLink } from "./eventfilter.js";
import { $, PAGE_ROWS, state } from "./state.js";

// ---- tables ------------------------------------------------------------------------------

export function table(caption, headings, rows, className) {
  return h(
    "table",
    { class: `table ${className}` },
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows),
  );
}

export function cell(label, ...children) {
  return h("td", { "data-label": label }, ...children);
}

export function emptyState(text, buttonText, onclick) {
  return h(
    "div",
    { class: "empty" },
    h("p", {}, text),
    buttonText && h("button", { type: "button", class: "button primary", onclick }, buttonText),
  );
}

// ---- the find box and "Show more" ------------------------------------------------------

// Search texts by object: state.groups and state.apps are new objects after each
// refresh, so an entry lives exactly as long as the data it was made from.
const searchTexts = new WeakMap();

/**
 * Draw the `kind` list ("groups" or "apps"): an invitation to create the first one
 * when there is none, else the page of rows that match the find box (see pageOf),
 * or a line saying that nothing matches.
 */
export function drawList(kind, { items, searchText, caption, headings, row, none, create }) {
  const list = $(`${kind}-list`);
  const one = kind.slice(0, -1);
  const searched = Boolean(state.asked[kind]); // items are a search's results
  $(`${kind}-find`).hidden = !items.length && !searched;
  if (!items.length && !searched) {
    $(`more-${kind}`).hidden = true;
    // `create` is null where the token may not create one.
    list.replaceChildren(emptyState(none, create && `Create the first ${one}`, create));
    return;
  }
  const rows = pageOf(kind, items, searchText);
  list.replaceChildren(
    rows.length
      ? table(caption, headings, rows.map(row), kind)
      : emptyState(`No ${one} matches “${state.find[kind].trim()}”.`, null),
  );
}

/** How many items of `kind` there are in all, or null when this page cannot know:
 * groups from the zones' counts, apps only from a list held whole. */
export function totalOf(kind) {
  if (!state.paged[kind]) return state[kind].length;
  return kind === "groups" ? state.zones.reduce((sum, zone) => sum + zone.groups, 0) : null;
}

/**
 * The rows of `kind` ("groups" or "apps") to draw, at most state.rows[kind] of them:
 * those whose search text holds every word in its find box (of a paged list, every
 * word but the one the server found them by). Says how many match and how many are
 * drawn next to the box, and shows "Show more" while some are not drawn or not read.
 */
function pageOf(kind, items, searchText) {
  const paged = state.paged[kind];
  // The word the server looked for (state.asked) it found; the others are looked for here.
  const words = state.find[kind]
    .toLowerCase()
    .split(/\s+/)
    .filter((word) => word && word !== state.asked[kind]);
  const text = (item) => {
    let cached = searchTexts.get(item);
    if (cached === undefined) searchTexts.set(item, (cached = searchText(item).toLowerCase()));
    return cached;
  };
  const matching = words.length ? items.filter((item) => words.every((word) => text(item).includes(word))) : items;
  const drawn = matching.slice(0, state.rows[kind]);
  const unread = paged && state.next[kind] !== null; // pages the server has not sent yet
  const total = totalOf(kind);
  const noun = (count) => `${count.toLocaleString()} ${count === 1 ? kind.slice(0, -1) : kind}`;
  let shown = "";
  if ((words.length || state.asked[kind]) && !unread && total !== null) {
    shown = `${matching.length.toLocaleString()} of ${noun(total)} match.`;
  }
  if (drawn.length < matching.length || unread) {
    shown = `${shown} Showing the first ${drawn.length.toLocaleString()}.`.trim();
  }
  $(`${kind}-shown`).textContent = shown;
  const more = $(`more-${kind}`);
  more.hidden = drawn.length >= matching.length && !unread;
  // How many more a click draws: the rest held, else a page (fewer, if the total says so).
  const left = unread ? (state.asked[kind] || total === null ? null : total - drawn.length) : matching.length - drawn.length;
  more.textContent =
    left === null ? `Show more ${kind}` : `Show ${Math.min(PAGE_ROWS, left).toLocaleString()} more ${kind}`;
  return drawn;
}

// Both take the list's renderer, `redraw` (renderGroups or renderApps): the views
// import this module, so it cannot import them.

export function findChanged(kind, value, redraw) {
  state.find[kind] = value;
  state.rows[kind] = PAGE_ROWS;
  redraw();
}

export function showMore(kind, redraw) {
  state.rows[kind] += PAGE_ROWS;
  redraw();
}

// ---- a row's buttons --------------------------------------------------------------------

/** A link to the Events view showing only the events of one group or app. */
export function historyLink(id, filter, name) {
  return h(
    "a",
    { class: "button small", id, href: eventsLink(filter) },
    "History",
    h("span", { class: "visually-hidden" }, ` of ${name}`),
  );
}

export function deleteButton(id, name, whyNot, onclick) {
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

// ---- as text -----------------------------------------------------------------------------

/** An app's web head as text, or "" when it has none. */
export function webHeadText(app) {
  const head = app?.load_balancer?.length ? app.load_balancer : (app?.web_servers ?? []);
  return head.map(hostText).join(", ");
}

export const hostText = (value) => value.replace(/\.$/, "");
export const recordsText = (records) => records.map((record) => hostText(record.data)).join(", ");

const timeOfDay = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const dayAndTime = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  hourCycle: "h23",
});

/**
 * An ISO time as this page says times, in the browser's time zone: "14:05" today, "Dec 3,
 * 14:05" another day. With `ceil`, rounded up to the minute, so that a time something
 * lasts until (a pin, a hold) is never shown before it.
 */
export function clock(iso, { ceil = false } = {}) {
  let moment = new Date(iso);
  if (ceil) moment = new Date(Math.ceil(moment.getTime() / 60000) * 60000);
  const today = moment.toDateString() === new Date().toDateString();
  return (today ? timeOfDay : dayAndTime).format(moment);
}
