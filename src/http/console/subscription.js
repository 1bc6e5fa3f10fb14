// @ts-check
// A subscriber's subscription in words: where it stands ("Subscribed since
// 12 March 2026", "Unsubscribed on 3 April 2026") and how it got there,
// from when they were added, their $subscribe and $unsubscribe events (as
// far back as the events read go) and the record itself, which a command
// may have changed without an event.

/** @typedef {import('./api.js').Subscriber} Subscriber */
/** @typedef {import('./api.js').SubscriberEvent} SubscriberEvent */

/**
 * One step of a subscription's history.
 * @typedef {object} Step
 * @property {string | null} at when, as the API gives it (null: not recorded)
 * @property {string} text what happened, in words, with the day when known
 */

/**
 * `2026-03-12T09:00:00.000Z` → `12 March 2026` (the local day); anything
 * else as it is.
 * @param {string | null | undefined} iso
 * @returns {string}
 */
export function dayText(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleDateString('en-GB', { day: 'numeric', month: 'long', year: 'numeric' });
}

/**
 * Where a subscriber's subscription stands and its history, oldest first.
 * `events` are any of the subscriber's events (only $subscribe and
 * $unsubscribe count), in any order. A $subscribe while subscribed, or an
 * $unsubscribe while unsubscribed, changes nothing, as on the server.
 * @param {Subscriber['attributes']} s
 * @param {SubscriberEvent[]} events
 * @returns {{ state: string, subscribed: boolean, steps: Step[] }}
 */
export function subscriptionStory(s, events) {
  const moves = events
    .map((e) => e.attributes)
    .filter((e) => e.type === '$subscribe' || e.type === '$unsubscribe')
    .sort((a, b) => Date.parse(a.occurred_at) - Date.parse(b.occurred_at));
  /** @type {Step[]} */
  const steps = [{ at: s.created_at, text: `Added on ${dayText(s.created_at)}` }];
  let subscribed = true;
  /** @type {string | null} */
  let since = s.created_at;
  for (const move of moves) {
    if (move.type === '$unsubscribe' && subscribed) {
      subscribed = false;
      steps.push({ at: move.occurred_at, text: `Unsubscribed on ${dayText(move.occurred_at)}` });
    } else if (move.type === '$subscribe' && !subscribed) {
      subscribed = true;
      since = move.occurred_at;
      steps.push({ at: move.occurred_at, text: `Subscribed again on ${dayText(move.occurred_at)}` });
    }
  }
  // The record has the last word: a command changes it without an event.
  if (s.unsubscribed_at && subscribed) {
    steps.push({ at: s.unsubscribed_at, text: `Unsubscribed on ${dayText(s.unsubscribed_at)}` });
  } else if (!s.unsubscribed_at && !subscribed) {
    since = null;
    steps.push({ at: null, text: 'Subscribed again (the day is not recorded)' });
  }
  steps.sort((a, b) => (a.at === null ? 1 : b.at === null ? -1 : Date.parse(a.at) - Date.parse(b.at)));
  const state = s.unsubscribed_at
    ? `Unsubscribed on ${dayText(s.unsubscribed_at)}`
    : since ? `Subscribed since ${dayText(since)}` : 'Subscribed';
  return { state, subscribed: !s.unsubscribed_at, steps };
}
