// What the page as a whole does that modules below app.js call but cannot import
// (app.js imports them, and nothing imports app.js): app.js fills these in before
// anything runs. Each is null until then, so a call made too early fails loudly.

export const page = {
  /** Draw every view from `state`, keeping the focus where it was (app.js). */
  render: null,
  /** Sign out: forget the token and what was shown, stop polling, ask for a token and say
   * `message` (app.js). */
  signOut: null,
  /** Bring the page up to the newest event, as after a change it made (sync.js). */
  catchUp: null,
};
