// What every module shares: the `state` the views are drawn from, the constants,
// and `$`. Nothing here reads the API or draws anything.

export const POLL_MS = 2000;
export const EVENTS_PAGE = 100;
// Rows drawn per list at first and per "Show more", and the page size asked of
// GET /v1/groups and /v1/apps: the first load reads one page of each, never the
// whole list (25 MB with 100,000 groups); a find box is quicker than scrolling.
export const PAGE_ROWS = 100;
// How long the find box of a list longer than a page waits for more typing before
// it asks the server (`?q=`).
export const FIND_DELAY_MS = 200;
// After a change, up to this many missed events are applied by fetching only the
// groups and apps they say they touched (at most CATCH_UP_FETCHES of those this page
// shows); past either limit the page reads its first pages again.
export const CATCH_UP_EVENTS = 200;
export const CATCH_UP_FETCHES = 50;
export const VIEWS = ["groups", "apps", "events", "tokens", "webhooks"];
export const REJECTED = "That token was not accepted. Check it and enter it again.";
// A token that was accepted and no longer is (a 401 after signing in): revoked, or expired.
export const REVOKED = "Your token is no longer accepted: it was revoked or has expired. Enter a valid token.";
export const STALE = `What this page shows may be out of date; it asks again every ${POLL_MS / 1000} seconds.`;

export const $ = (id) => document.getElementById(id);

export const state = {
  // What the signed-in token may do (GET /v1/token: name, scope, groups, apps,
  // expires_at), null until read; grant.js answers from it.
  grant: null,
  tokens: [], // GET /v1/tokens, read only for an admin token
  showRevoked: false, // the Tokens view lists revoked tokens too
  revoking: null, // the token whose Revoke dialog is open
  zones: [],
  apps: [],
  groups: [],
  events: [],
  moreEvents: false,
  seq: null, // the newest event's seq when the data above was read
  view: "groups",
  switching: null, // {group, to} while the confirmation dialog is open
  editing: null, // the group or app being edited, null when creating
  checking: null, // {app, check} while the Health check dialog is open (check null: none yet)
  unpinning: null, // the group whose Unpin dialog is open
  deleting: null, // {kind, item}
  find: { groups: "", apps: "" }, // what the find boxes hold
  rows: { groups: PAGE_ROWS, apps: PAGE_ROWS }, // how many matching rows are drawn
  // A list is read a page at a time. One that fits a page is whole (`paged` false)
  // and its find box filters it here, word by word; a longer one (`paged` true)
  // holds the pages read so far, and its find box asks the server (`asked` is the
  // text the items answer, "" for the list itself). `next`: the cursor of the page
  // after those held, null when there is none.
  paged: { groups: false, apps: false },
  asked: { groups: "", apps: "" },
  next: { groups: null, apps: null },
  eventFilter: null, // {group, zone} or {app}: the Events view shows only those
  eventsLoading: false, // the filter changed and its events have not arrived yet
  eventsKept: EVENTS_PAGE, // events kept as new ones arrive: a page, or more once asked for
  // What the health checker says (GET /v1/health, indexed by health.js), or null: not
  // read yet, or checks do not run in this fodns (a 404), and the page shows no health.
  health: null,
  // Read /v1/health on the next poll even if nothing is new: set after a read that
  // events asked for, as the checker decides for the groups a moment after it writes
  // a health event (a read in between shows the decision before it).
  healthDue: false,
  // The webhooks (GET /v1/webhooks, read by webhooks.js while its view is shown), null
  // until read; and the last test sent to each this session, by id.
  webhooks: null,
  tested: {},
  // The group whose Certificates (ACME) dialog is open, its registrations (null until
  // read) and the last CNAME check of each, by subdomain; null when it is closed.
  certificates: null,
};
