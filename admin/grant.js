// What the signed-in token may do (GET /v1/token, kept in state.grant): its scope and
// its name limits, and whether a group or an app falls within them, so that the page
// shows only the controls the token may use. The API decides (a 403 otherwise); this
// only keeps the page from offering what it would refuse.

import { state } from "./state.js";

// Each scope includes those before it (fodns/scopes.py).
const SCOPES = ["read", "switch", "write", "admin"];

/** Whether the token's scope includes `scope`. */
export function may(scope) {
  const grant = state.grant;
  return grant !== null && SCOPES.indexOf(grant.scope) >= SCOPES.indexOf(scope);
}

/** Whether the token may do `scope`'s changes to `group`: its label matches the
 * token's group patterns, and each app it points at its app patterns. */
export function mayChangeGroup(group, scope) {
  const grant = state.grant;
  if (!may(scope)) return false;
  return (
    withinLimit(grant.groups, group.label) &&
    [group.primary, group.backup].every((name) => name === null || withinLimit(grant.apps, name))
  );
}

/** Whether the token may change `app` (`groups`: those known to use it, whose answers
 * its change moves: each must be within the token's group patterns). */
export function mayChangeApp(app, groups) {
  const grant = state.grant;
  if (!may("write")) return false;
  return withinLimit(grant.apps, app.name) && groups.every((group) => withinLimit(grant.groups, group.label));
}

/** Whether the token has name limits at all (a probe's report, a Route53 sync and a
 * group with a generated label are beyond a limited token). */
export const limited = () => state.grant !== null && (state.grant.groups !== null || state.grant.apps !== null);

/** Whether `name` falls within `patterns` (null: no limit), as Python's fnmatch
 * matches the whole lower-case name (fodns/patterns.py). */
export function withinLimit(patterns, name) {
  if (patterns === null) return true;
  const lowered = name.toLowerCase();
  return patterns.some((pattern) => patternRegExp(pattern).test(lowered));
}

const compiled = new Map();

/** A shell-style pattern (* ? [...] [!...]) as a regular expression of the whole name. */
function patternRegExp(pattern) {
  let made = compiled.get(pattern);
  if (made) return made;
  let source = "";
  for (let index = 0; index < pattern.length; index++) {
    const char = pattern[index];
    if (char === "*") source += ".*";
    else if (char === "?") source += ".";
    else if (char === "[") {
      let end = index + 1;
      if (pattern[end] === "!") end++;
      if (pattern[end] === "]") end++;
      while (end < pattern.length && pattern[end] !== "]") end++;
      if (end >= pattern.length) {
        source += "\\["; // no closing bracket: a bracket, as fnmatch has it
      } else {
        let set = pattern.slice(index + 1, end).replace(/\\/g, "\\\\");
        if (set.startsWith("!")) set = "^" + set.slice(1);
        else if (set.startsWith("^")) set = "\\" + set;
        source += `[${set}]`;
        index = end;
      }
    } else source += char.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  made = new RegExp(`^(?:${source})$`, "s");
  compiled.set(pattern, made);
  return made;
}
