// @ts-check
// Signing in: the site's UUID and key pair, checked against the API before
// they are kept (in this tab's sessionStorage only).

import { api, saveCredentials, statusOf } from './api.js';
import { errorMessage, h, labelled, replace } from './dom.js';

/**
 * The sign-in form, in `main`; `done` is called once the keys are kept.
 * @param {HTMLElement} main
 * @param {() => void} done
 */
export function renderSignIn(main, done) {
  const uuid = h('input', { name: 'site_uuid', autocomplete: 'off', spellcheck: 'false', required: true });
  const pk = h('input', { name: 'publishable_key', autocomplete: 'username', spellcheck: 'false', required: true });
  const sk = h('input', { name: 'secret_key', type: 'password', autocomplete: 'current-password', required: true });
  const message = h('div', { class: 'message', 'aria-live': 'assertive' });
  const button = h('button', { type: 'submit', text: 'Sign in' });
  const form = h(
    'form',
    { class: 'card signin', novalidate: true, 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title', text: 'Sign in to Corral' }),
    h('p', { class: 'muted', text: "Use a site's UUID and key pair (from corral site create, or the banner of corral serve --demo). They stay in this browser tab only." }),
    labelled('Site UUID', uuid),
    labelled('Publishable key', pk),
    labelled('Secret key', sk),
    message,
    button,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const candidate = { siteUuid: uuid.value.trim(), publishableKey: pk.value.trim(), secretKey: sk.value.trim() };
    /** @type {[HTMLInputElement, string][]} */
    const fields = [[uuid, 'Site UUID'], [pk, 'Publishable key'], [sk, 'Secret key']];
    const empty = fields.filter(([input]) => !input.value.trim());
    for (const input of [uuid, pk, sk]) input.removeAttribute('aria-invalid');
    if (empty.length) {
      for (const [input] of empty) input.setAttribute('aria-invalid', 'true');
      replace(message, h('p', { class: 'notice error', role: 'alert', text: `Fill in: ${empty.map(([, name]) => name).join(', ')}.` }));
      empty[0][0].focus();
      return;
    }
    button.disabled = true;
    replace(message, h('p', { class: 'muted', role: 'status', text: 'Checking the keys…' }));
    try {
      await api('GET', '/fetch/segments', { as: candidate });
      saveCredentials(candidate);
      done();
    } catch (e) {
      const text = statusOf(e) === 401
        ? 'Wrong site UUID or keys: Corral did not accept them. Check all three values and try again.'
        : errorMessage(e);
      replace(message, h('p', { class: 'notice error', role: 'alert', text }));
      button.disabled = false;
      (statusOf(e) === 401 ? sk : button).focus();
    }
  });
  replace(main, form);
  uuid.focus();
}
