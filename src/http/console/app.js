// @ts-check
// The console's shell: signed in or not, the top bar, and the hash routes.
//
//   #/segments            the site's segments with live counts
//   #/discarded           discarded segments, with restore
//   #/new                 a new segment in the editor
//   #/segment/ID          a segment: counts, size, members, export, Why?, by hand, changes, history
//   #/segment/ID/edit     the editor
//   #/subscribers?q=Q     the subscribers a search finds (everyone without q)
//   #/subscriber?email=E  a subscriber: subscription, fields, tags, segments, segment history, events
//   #/compare?ids=1,2     how 2 to 5 segments overlap (&region=1 opens a region's members)

import { api, clearCredentials, credentials, isAbort, statusOf } from './api.js';
import { byId, errorMessage, h, labelTables, replace } from './dom.js';
import { renderSignIn } from './signin.js';
import { renderSegments } from './segments.js';
import { renderEditor } from './editor.js';
import { renderSegment } from './segment.js';
import { renderSubscriber } from './subscriber.js';
import { renderSubscribers } from './subscribers.js';
import { parseIds, renderCompare } from './compare.js';

const main = byId('main');
const bar = byId('bar');

/**
 * The signed-in site's name, once read (by its UUID: another sign-in reads
 * it again).
 * @type {{ uuid: string, name: string } | null}
 */
let siteName = null;

/**
 * Shows the site's name in `el`, reading it the first time.
 * @param {HTMLElement} el
 * @param {string} uuid
 */
async function showSiteName(el, uuid) {
  if (!siteName || siteName.uuid !== uuid) {
    try {
      const { data } = await api('GET', '/fetch/site');
      siteName = { uuid, name: data.data.name };
    } catch {
      // The UUID stays shown: the name is a nicety.
      return;
    }
  }
  if (el.isConnected) replace(el, h('span', { class: 'visually-hidden', text: 'Site ' }), siteName.name);
}

// Each render gets a signal that is aborted when another route starts, so a
// slow answer for a page no longer shown changes nothing.
/** @type {AbortController | null} */
let current = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/segments';
  const [path, search = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean);
  return { parts, params: new URLSearchParams(search) };
}

/**
 * @param {string} href
 * @param {string} text
 * @param {boolean} active
 */
function navLink(href, text, active) {
  return h('a', { href, class: active ? 'active' : null, 'aria-current': active ? 'page' : null, text });
}

/** @param {string | undefined} section */
function renderBar(section) {
  const c = credentials();
  if (!c) return;
  bar.hidden = false;
  const site = h('span', { class: 'site', title: `Site UUID ${c.siteUuid}` }, h('span', { class: 'visually-hidden', text: 'Site ' }),
    siteName && siteName.uuid === c.siteUuid ? siteName.name : c.siteUuid);
  replace(
    bar,
    h('a', { class: 'brand', href: '#/segments' }, h('img', { src: '/console/favicon.svg', alt: '', width: 24, height: 24 }), 'Corral'),
    h(
      'nav',
      { 'aria-label': 'Console' },
      navLink('#/segments', 'Segments', section === 'segments'),
      navLink('#/subscribers', 'Subscribers', section === 'subscribers' || section === 'subscriber'),
    ),
    site,
    h('button', { type: 'button', class: 'secondary', onClick: signOut, text: 'Sign out' }),
  );
  showSiteName(site, c.siteUuid);
}

function signOut() {
  clearCredentials();
  if (current) current.abort();
  bar.hidden = true;
  replace(bar);
  history.replaceState(null, '', location.pathname);
  route();
}

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  document.getElementById('booting')?.remove();
  if (!credentials()) {
    bar.hidden = true;
    document.title = 'Sign in · Corral';
    renderSignIn(main, () => {
      if (!location.hash || location.hash === '#') location.hash = '#/segments';
      else route();
    });
    return;
  }
  const { parts, params } = parseHash();
  const [section, id, action] = parts;
  renderBar(section === 'discarded' || section === 'new' || section === 'segment' || section === 'compare' ? 'segments' : section);
  const view = h('div', { class: 'view' });
  replace(main, view);
  try {
    if (section === 'segments' || section === 'discarded') {
      await renderSegments(view, { discarded: section === 'discarded', signal });
    } else if (section === 'new') {
      await renderEditor(view, { id: null, signal });
    } else if (section === 'segment' && id && action === 'edit') {
      await renderEditor(view, { id, signal });
    } else if (section === 'segment' && id) {
      await renderSegment(view, { id, signal });
    } else if (section === 'compare') {
      const region = params.get('region');
      await renderCompare(view, { ids: parseIds(params.get('ids')), region: region === null ? null : parseIds(region), signal });
    } else if (section === 'subscribers' || (section === 'subscriber' && !params.get('email'))) {
      await renderSubscribers(view, { q: params.get('q') || '', signal });
    } else if (section === 'subscriber') {
      await renderSubscriber(view, { email: params.get('email') || '', signal });
    } else {
      replace(view, h('h1', { tabindex: '-1', text: 'Not found' }), h('p', {}, 'No such page. ', h('a', { href: '#/segments', text: 'See the segments' }), '.'));
    }
  } catch (e) {
    if (isAbort(e)) return;
    if (statusOf(e) === 401) {
      // The keys stopped working (revoked): back to the sign-in form.
      clearCredentials();
      route();
      return;
    }
    view.append(h('div', { class: 'notice error', role: 'alert', text: errorMessage(e) }));
  }
  if (!signal.aborted) {
    const heading = view.querySelector('h1');
    document.title = `${heading ? heading.textContent : 'Console'} · Corral`;
    // Move focus to the new page, for keyboards and screen readers, unless
    // the page put it somewhere on purpose.
    if (heading && (document.activeElement === document.body || !view.contains(document.activeElement))) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    }
  }
}

// Every table the pages draw, now or later, gets its cells labelled by
// column, for the stacked rows of a narrow screen.
new MutationObserver(() => labelTables(main)).observe(main, { childList: true, subtree: true });

window.addEventListener('hashchange', route);
route();
