// What the health checker says (GET /v1/health) as the page holds it: reading it (null
// when checks do not run in this fodns), which events change it, and the part of it
// about one app or one group. Nothing here draws: checks.js and failover.js do.

import { ApiError, call } from "./api.js";
import { state } from "./state.js";

/**
 * GET /v1/health, indexed: {startedAt, apps: name -> app, groups: "label zone" -> group};
 * null on a 404 (health checks do not run here: the page shows nothing about health).
 */
export async function readHealth() {
  let reply;
  try {
    reply = await call("GET", "/v1/health");
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
  return {
    startedAt: reply.started_at,
    apps: new Map(reply.apps.map((app) => [app.app, app])),
    groups: new Map(reply.groups.map((group) => [groupKey(group), group])),
  };
}

const groupKey = (group) => `${group.label} ${group.zone}`;

/** The checker's view of app `name` ({state, since, check, addresses, ...}), or null:
 * the app has no check, or the page shows no health. */
export const appHealth = (name) => state.health?.apps.get(name) ?? null;

/** The checker's decision for `group` ({state, reason, held_until, ...}), or null: the
 * group is switched by people only, or the page shows no health. */
export const groupHealth = (group) => state.health?.groups.get(groupKey(group)) ?? null;

// Events that change what /v1/health says whatever they are about.
const HEALTH_ACTIONS = new Set(["health_changed", "check_set", "check_deleted", "group_pinned", "group_unpinned"]);

/**
 * Whether any of these events changes what /v1/health says: a health transition, a
 * check set or removed, a pin, anything health did (its automatic switches, pins it
 * ended), any change to a group that is or was automatic (a person's switch pins it;
 * its failover settings), and a checked app renamed, given a new web head or deleted.
 * A person's change to a manual group or an unchecked app does not: the idle page and
 * everyday changes cost no read of /v1/health.
 */
export function healthMoved(events) {
  return events.some(
    ({ action, actor, group, app, before, after }) =>
      HEALTH_ACTIONS.has(action) ||
      actor === "health" ||
      (Boolean(group) && (before?.failover === "auto" || after?.failover === "auto")) ||
      (Boolean(app) && appHealth(app) !== null) ||
      (Boolean(before?.name) && appHealth(before.name) !== null),
  );
}
