// The condition builder: every construct of the query language as controls,
// kept in step with the query object it edits. Each condition and each
// operator carries the JSON pointer of its place in the query
// (`data-pointer`), so a validation error from the API is shown right there.
//
// The builder edits the object it is given in place. A change of a value
// (typing) only reports the new query; a change of shape (adding, removing,
// another kind or operator) also redraws the builder, keeping the focus on
// the control that had it.

import { h, nextId, replace } from './dom.js';

export const KINDS = [
  ['all', 'All of'],
  ['any', 'Any of'],
  ['not', 'Not'],
  ['groups', 'Groups'],
  ['email', 'Email'],
  ['subscribed', 'Subscription'],
  ['created', 'Created'],
  ['tag', 'Tag'],
  ['field', 'Field'],
  ['event', 'Event'],
  ['segment', 'Segment'],
];

const OPS = {
  text: ['equals', 'not_equals', 'in', 'contains', 'starts_with', 'ends_with', 'domain'],
  number: ['equals', 'not_equals', 'more_than', 'at_least', 'less_than', 'at_most'],
  time: ['since', 'before', 'between', 'within_last', 'older_than'],
  value: ['exists', 'equals', 'not_equals', 'in', 'contains', 'starts_with', 'ends_with', 'more_than', 'at_least', 'less_than', 'at_most', 'since', 'before', 'between', 'within_last', 'older_than'],
  tag: ['has', 'has_not', 'any_of', 'all_of', 'none_of'],
};

const LABELS = {
  equals: 'equals', not_equals: 'does not equal', in: 'is one of', contains: 'contains', starts_with: 'starts with',
  ends_with: 'ends with', domain: 'has the domain', more_than: 'more than', at_least: 'at least', less_than: 'less than',
  at_most: 'at most', since: 'since', before: 'before', between: 'between', within_last: 'within the last',
  older_than: 'older than', exists: 'exists', has: 'has', has_not: 'has not', any_of: 'has any of', all_of: 'has all of',
  none_of: 'has none of',
};

const UNITS = ['hours', 'days', 'weeks', 'months'];

/** RFC 6901: `~` → `~0`, `/` → `~1`. */
export function escapePointer(key) {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

function today(offsetDays = 0) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

/** What an operator's value looks like, in a family. */
function shape(family, op) {
  if (['in', 'any_of', 'all_of', 'none_of'].includes(op)) return 'list';
  if (['within_last', 'older_than'].includes(op)) return 'span';
  if (op === 'between') return 'between';
  if (op === 'exists') return 'bool';
  if (['since', 'before'].includes(op)) return 'instant';
  if (family === 'number' || ['more_than', 'at_least', 'less_than', 'at_most'].includes(op)) return 'number';
  if (family === 'value' && ['equals', 'not_equals'].includes(op)) return 'scalar';
  if (OPS[family].includes(op)) return 'string';
  return 'raw';
}

function defaultValue(family, op) {
  switch (shape(family, op)) {
    case 'list': return [];
    case 'span': return { days: 30 };
    case 'between': return [today(-30), today(1)];
    case 'bool': return true;
    case 'instant': return today(-30);
    case 'number': return family === 'number' ? 1 : 0;
    default: return '';
  }
}

function fits(value, kind) {
  switch (kind) {
    case 'list': return Array.isArray(value);
    case 'span': return value && typeof value === 'object' && !Array.isArray(value);
    case 'between': return Array.isArray(value) && value.length === 2;
    case 'bool': return typeof value === 'boolean';
    case 'instant': case 'string': return typeof value === 'string';
    case 'number': return typeof value === 'number';
    case 'scalar': return ['string', 'number', 'boolean'].includes(typeof value);
    default: return true;
  }
}

/** `{"a": 1, "b": 2}` with `b` renamed `c`, keeping the order of keys. */
function renamed(object, from, to, value) {
  const out = {};
  for (const [k, v] of Object.entries(object)) {
    if (k === from) out[to] = value;
    else if (k !== to) out[k] = v;
  }
  return out;
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function kindOf(condition) {
  if (!isObject(condition)) return null;
  const keys = Object.keys(condition);
  return keys.length === 1 && KINDS.some(([k]) => k === keys[0]) ? keys[0] : null;
}

export function defaultCondition(kind, segments = []) {
  switch (kind) {
    case 'all': return { all: [] };
    case 'any': return { any: [] };
    case 'not': return { not: { tag: { has: '' } } };
    case 'groups': return { groups: [{ filters: [] }] };
    case 'email': return { email: { domain: '' } };
    case 'subscribed': return { subscribed: true };
    case 'created': return { created: { within_last: { days: 30 } } };
    case 'tag': return { tag: { has: '' } };
    case 'field': return { field: { key: '', equals: '' } };
    case 'event': return { event: { type: '' } };
    case 'segment': return { segment: { member_of: segments[0] ? segments[0].id : '' } };
    default: return {};
  }
}

/** A number if the text is one, else the text (the API then says why not). */
function numberOrText(text) {
  const t = text.trim();
  return t !== '' && Number.isFinite(Number(t)) ? Number(t) : text;
}

/** A value as written in a list or a typed box: numbers and true/false typed. */
function typed(text) {
  const t = text.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  return numberOrText(t);
}

export function createBuilder(container, { segments = [], onChange }) {
  let query = {};
  let mark = 0;

  function changed(structural) {
    if (structural) draw();
    onChange(query);
  }

  // Every focusable control gets a stable key, so a redraw can put the
  // focus back where it was.
  function focusKey(el, key) {
    el.dataset.focus = key;
    return el;
  }

  function draw() {
    const active = document.activeElement;
    const key = active && container.contains(active) ? active.dataset.focus : null;
    mark += 1;
    replace(container, rootEditor());
    if (key) {
      const again = [...container.querySelectorAll('[data-focus]')].find((el) => el.dataset.focus === key);
      if (again) again.focus();
    }
  }

  function errorsSlot() {
    return h('div', { class: 'errors' });
  }

  function input(value, label, focus, onInput, attrs = {}) {
    const el = h('input', { type: 'text', value: value ?? '', 'aria-label': label, spellcheck: 'false', ...attrs });
    el.addEventListener('input', () => onInput(el.value));
    return focusKey(el, focus);
  }

  function select(options, value, label, focus, onSelect) {
    const el = h('select', { 'aria-label': label },
      options.map(([v, text]) => h('option', { value: v, selected: v === value, text })));
    el.addEventListener('change', () => onSelect(el.value));
    return focusKey(el, focus);
  }

  function button(text, focus, onClick, attrs = {}) {
    return focusKey(h('button', { type: 'button', class: attrs.class || 'small', text, onClick, ...attrs }), focus);
  }

  // ---- operator objects -------------------------------------------------

  function valueEditor(family, op, ref, pointer) {
    const value = ref.get();
    const kind = shape(family, op);
    const f = `${pointer}:value`;
    const label = `Value: ${LABELS[op] || op}`;
    switch (kind) {
      case 'list': {
        const text = Array.isArray(value) ? value.join(', ') : '';
        return input(text, `${label} (comma-separated)`, f, (t) => {
          const items = t.split(',').map((s) => s.trim()).filter(Boolean);
          ref.set(family === 'value' ? items.map(typed) : items);
        }, { placeholder: 'a, b, c' });
      }
      case 'span': {
        const span = isObject(value) ? value : { days: 30 };
        const unit = Object.keys(span)[0] || 'days';
        const amount = h('input', { type: 'number', min: 1, max: 100000, step: 1, value: span[unit] ?? '', 'aria-label': `${label}: how many`, class: 'short' });
        focusKey(amount, `${f}:amount`);
        const unitSelect = select(UNITS.map((u) => [u, u]), unit, `${label}: unit`, `${f}:unit`, () => write());
        function write() {
          ref.set({ [unitSelect.value]: numberOrText(amount.value) });
        }
        amount.addEventListener('input', write);
        return h('span', { class: 'inline' }, amount, unitSelect);
      }
      case 'between': {
        const pair = Array.isArray(value) ? value : ['', ''];
        const from = input(pair[0], `${label}: from (included)`, `${f}:from`, () => write(), { placeholder: 'YYYY-MM-DD', class: 'short' });
        const to = input(pair[1], `${label}: to (excluded)`, `${f}:to`, () => write(), { placeholder: 'YYYY-MM-DD', class: 'short' });
        function write() {
          ref.set([from.value, to.value]);
        }
        return h('span', { class: 'inline' }, from, h('span', { text: 'and' }), to);
      }
      case 'bool':
        return select([['true', 'yes'], ['false', 'no']], String(value), label, f, (v) => ref.set(v === 'true', true));
      case 'instant':
        return input(value, label, f, (t) => ref.set(t), { placeholder: 'YYYY-MM-DD or RFC 3339', class: 'short' });
      case 'number':
        return input(value, label, f, (t) => ref.set(numberOrText(t)), { inputmode: 'decimal', class: 'short' });
      case 'scalar': {
        const type = typeof value === 'boolean' ? String(value) : typeof value === 'number' ? 'number' : 'text';
        const typeSelect = select([['text', 'text'], ['number', 'number'], ['true', 'true'], ['false', 'false']], type,
          `${label}: type`, `${f}:type`, (t) => {
            if (t === 'true' || t === 'false') ref.set(t === 'true', true);
            else if (t === 'number') ref.set(typeof value === 'number' ? value : 0, true);
            else ref.set(typeof value === 'string' ? value : String(value), true);
          });
        if (type === 'true' || type === 'false') return h('span', { class: 'inline' }, typeSelect);
        const box = input(String(value), label, f, (t) => ref.set(type === 'number' ? numberOrText(t) : t), { class: 'short' });
        return h('span', { class: 'inline' }, typeSelect, box);
      }
      case 'string':
        return input(value, label, f, (t) => ref.set(t));
      default:
        return input(JSON.stringify(value), `${label} (JSON)`, f, (t) => {
          try {
            ref.set(JSON.parse(t));
          } catch {
            ref.set(t);
          }
        });
    }
  }

  /**
   * The operators of `ops` (`ref` holds the object), one row each; `fixed`
   * keys (`key` of a field, `of` of a sum) are not operators.
   */
  function opsEditor(family, ref, pointer, fixed = []) {
    const ops = ref.get();
    const wrap = h('div', { class: 'ops' });
    if (!isObject(ops)) {
      wrap.dataset.pointer = pointer;
      wrap.append(errorsSlot(), h('p', { class: 'muted', text: 'Not an operator object: edit it in the JSON.' }));
      return wrap;
    }
    for (const op of Object.keys(ops)) {
      if (fixed.includes(op)) continue;
      const at = `${pointer}/${escapePointer(op)}`;
      const options = OPS[family].map((o) => [o, LABELS[o] || o]);
      if (!OPS[family].includes(op)) options.unshift([op, `${op} (unknown)`]);
      const opSelect = select(options, op, 'Operator', `${at}:op`, (next) => {
        const current = ref.get();
        const old = current[op];
        const value = shape(family, next) === shape(family, op) && fits(old, shape(family, next)) ? old : defaultValue(family, next);
        ref.set(renamed(current, op, next, value), true);
      });
      const valueRef = {
        get: () => ref.get()[op],
        set: (v, structural) => {
          ref.get()[op] = v;
          changed(structural);
        },
      };
      const remove = button('×', `${at}:remove`, () => {
        const current = ref.get();
        delete current[op];
        changed(true);
      }, { 'aria-label': `Remove the operator ${LABELS[op] || op}`, title: 'Remove this operator', class: 'small icon' });
      wrap.append(h('div', { class: 'op', dataset: { pointer: at } },
        h('div', { class: 'op-row' }, opSelect, valueEditor(family, op, valueRef, at), remove), errorsSlot()));
    }
    const used = Object.keys(ops);
    const free = OPS[family].find((o) => !used.includes(o) && o !== 'exists');
    if (free) {
      wrap.append(button('+ operator', `${pointer}:add-op`, () => {
        ref.get()[free] = defaultValue(family, free);
        changed(true);
      }, { 'aria-label': 'Add an operator' }));
    }
    return wrap;
  }

  /** A ref to `object[key]`. */
  function at(object, key) {
    return {
      get: () => object[key],
      set: (v, structural) => {
        object[key] = v;
        changed(structural);
      },
    };
  }

  // ---- conditions -------------------------------------------------------

  function conditionList(list, pointer, addLabel) {
    const items = h('ol', { class: 'conditions' });
    list.forEach((_, i) => {
      items.append(h('li', {}, conditionEditor(at(list, i), `${pointer}/${i}`, {
        onRemove: () => {
          list.splice(i, 1);
          changed(true);
        },
      })));
    });
    return [items, button(addLabel, `${pointer}:add`, () => {
      list.push(defaultCondition('tag'));
      changed(true);
    })];
  }

  function eventEditor(ev, pointer) {
    const p = `${pointer}/event`;
    const body = h('div', { class: 'event' });
    if (!isObject(ev)) return h('p', { class: 'muted', text: 'Not an object: edit it in the JSON.' });
    body.append(h('div', { class: 'inline', dataset: { pointer: `${p}/type` } },
      h('span', { class: 'lead', text: 'type' }),
      input(ev.type ?? '', 'Event type', `${p}/type`, (t) => {
        if (t === '') delete ev.type;
        else ev.type = t;
        changed(false);
      }, { placeholder: 'any type, e.g. $purchase' }), errorsSlot()));
    const sections = [
      ['when', 'counted only in a time window', 'time'],
      ['where', 'counted only when details match', 'where'],
      ['count', 'how many', 'number'],
      ['sum', 'sum of a detail', 'sum'],
      ['first', 'first one', 'time'],
      ['last', 'last one', 'time'],
    ];
    const adders = [];
    for (const [key, text, family] of sections) {
      const sp = `${p}/${key}`;
      if (!(key in ev)) {
        adders.push(button(`+ ${key}`, `${sp}:add`, () => {
          ev[key] = key === 'where' ? { '': { equals: '' } }
            : key === 'sum' ? { of: 'value.amount', at_least: 0 }
              : key === 'count' ? { at_least: 1 }
                : { within_last: { days: 30 } };
          changed(true);
        }, { 'aria-label': `Add ${key}: ${text}` }));
        continue;
      }
      const section = h('fieldset', { class: 'section', dataset: { pointer: sp } },
        h('legend', {}, h('span', { class: 'lead', text: key }), ` ${text} `,
          button('×', `${sp}:remove`, () => {
            delete ev[key];
            changed(true);
          }, { 'aria-label': `Remove ${key}`, title: `Remove ${key}`, class: 'small icon' })),
        errorsSlot());
      if (family === 'where') {
        const where = ev.where;
        if (isObject(where)) {
          for (const path of Object.keys(where)) {
            const wp = `${sp}/${escapePointer(path)}`;
            const pathInput = input(path, 'Detail path', `${wp}:path`, () => {}, { placeholder: 'value.amount', class: 'short' });
            pathInput.addEventListener('change', () => {
              ev.where = renamed(ev.where, path, pathInput.value, ev.where[path]);
              changed(true);
            });
            section.append(h('div', { class: 'where', dataset: { pointer: wp } },
              h('div', { class: 'inline' }, h('span', { class: 'lead', text: 'detail' }), pathInput,
                button('×', `${wp}:remove`, () => {
                  delete ev.where[path];
                  changed(true);
                }, { 'aria-label': `Remove the test of ${path || 'this path'}`, class: 'small icon' })),
              errorsSlot(),
              opsEditor('value', { get: () => ev.where[path], set: (v, s) => { ev.where[path] = v; changed(s); } }, wp)));
          }
          section.append(button('+ detail test', `${sp}:add`, () => {
            if (!('' in ev.where)) ev.where[''] = { equals: '' };
            changed(true);
          }));
        }
      } else if (family === 'sum') {
        const sum = ev.sum;
        if (isObject(sum)) {
          section.append(h('div', { class: 'inline', dataset: { pointer: `${sp}/of` } }, h('span', { class: 'lead', text: 'of' }),
            input(sum.of ?? '', 'Sum of the detail path', `${sp}/of`, (t) => {
              sum.of = t;
              changed(false);
            }, { placeholder: 'value.amount', class: 'short' }), errorsSlot()));
        }
        section.append(opsEditor('number', at(ev, 'sum'), sp, ['of']));
      } else {
        section.append(opsEditor(family, at(ev, key), sp));
      }
      body.append(section);
    }
    if (adders.length) body.append(h('div', { class: 'adders' }, adders));
    return body;
  }

  function conditionEditor(ref, pointer, { onRemove, root = false } = {}) {
    const value = ref.get();
    const kind = kindOf(value);
    const options = KINDS.map(([k, text]) => [k, text]);
    if (root) options.unshift(['everyone', 'Everyone (no conditions)']);
    let current = kind;
    if (root && isObject(value) && Object.keys(value).length === 0) current = 'everyone';
    if (!current) options.unshift(['', 'Unrecognised']);
    const kindSelect = select(options, current || '', root ? 'Who is in the segment' : 'Condition', `${pointer}:kind`, (next) => {
      const old = ref.get();
      let replacement;
      if (next === 'everyone') replacement = {};
      else if ((next === 'all' || next === 'any') && (current === 'all' || current === 'any')) replacement = { [next]: old[current] };
      else if ((next === 'all' || next === 'any') && current && current !== 'everyone') replacement = { [next]: [old] };
      else replacement = defaultCondition(next, segments);
      ref.set(replacement, true);
    });
    const head = h('div', { class: 'cond-head' }, kindSelect);
    if (onRemove) {
      head.append(button('Remove', `${pointer}:remove`, onRemove, { 'aria-label': 'Remove this condition', class: 'small secondary' }));
    }
    const box = h('div', { class: `cond kind-${current || 'unknown'}`, dataset: { pointer } }, head, errorsSlot());
    if (current === 'everyone') {
      box.append(h('p', { class: 'muted', text: 'Every subscriber of the site. Choose a condition above to narrow it.' }));
      return box;
    }
    if (!current) {
      box.append(h('p', { class: 'muted', text: 'This is not a condition the builder knows: edit it in the JSON.' }));
      return box;
    }
    const inner = value[kind];
    switch (kind) {
      case 'all':
      case 'any':
        if (!Array.isArray(inner)) break;
        box.append(h('p', { class: 'muted small', text: kind === 'all' ? 'Every condition below must hold.' : 'At least one condition below must hold.' }));
        box.append(...conditionList(inner, `${pointer}/${kind}`, '+ condition'));
        break;
      case 'not':
        box.append(conditionEditor(at(value, 'not'), `${pointer}/not`));
        break;
      case 'groups': {
        if (!Array.isArray(inner)) break;
        box.append(h('p', { class: 'muted small', text: 'Any group holds; a group holds when all its filters do.' }));
        const groups = h('ol', { class: 'groups' });
        inner.forEach((group, g) => {
          const gp = `${pointer}/groups/${g}`;
          const groupBox = h('li', { class: 'group', dataset: { pointer: gp } },
            h('div', { class: 'cond-head' }, h('span', { class: 'lead', text: `Group ${g + 1}` }),
              button('Remove group', `${gp}:remove`, () => {
                inner.splice(g, 1);
                changed(true);
              }, { class: 'small secondary' })),
            errorsSlot());
          if (isObject(group) && Array.isArray(group.filters)) {
            groupBox.append(...conditionList(group.filters, `${gp}/filters`, '+ filter'));
          } else {
            groupBox.append(h('p', { class: 'muted', text: 'A group is {"filters": […]}: edit it in the JSON.' }));
          }
          groups.append(groupBox);
        });
        box.append(groups, button('+ group', `${pointer}/groups:add`, () => {
          inner.push({ filters: [] });
          changed(true);
        }));
        break;
      }
      case 'email':
        box.append(opsEditor('text', at(value, 'email'), `${pointer}/email`));
        break;
      case 'subscribed':
        box.append(h('div', { dataset: { pointer: `${pointer}/subscribed` } },
          select([['true', 'is subscribed'], ['false', 'is unsubscribed']], String(inner), 'Subscription state',
            `${pointer}/subscribed`, (v) => ref.set({ subscribed: v === 'true' }, true)), errorsSlot()));
        break;
      case 'created':
        box.append(opsEditor('time', at(value, 'created'), `${pointer}/created`));
        break;
      case 'tag':
        box.append(opsEditor('tag', at(value, 'tag'), `${pointer}/tag`));
        break;
      case 'field':
        if (!isObject(inner)) break;
        box.append(h('div', { class: 'inline', dataset: { pointer: `${pointer}/field/key` } },
          h('span', { class: 'lead', text: 'key' }),
          input(inner.key ?? '', 'Field key', `${pointer}/field/key`, (t) => {
            inner.key = t;
            changed(false);
          }, { placeholder: 'plan', class: 'short' }), errorsSlot()));
        box.append(opsEditor('value', at(value, 'field'), `${pointer}/field`, ['key']));
        break;
      case 'event':
        box.append(eventEditor(inner, pointer));
        break;
      case 'segment': {
        if (!isObject(inner)) break;
        const op = 'not_member_of' in inner ? 'not_member_of' : 'member_of';
        const id = String(inner[op] ?? '');
        const known = segments.some((s) => String(s.id) === id);
        const segmentOptions = segments.map((s) => [String(s.id), `${s.name} (#${s.id})`]);
        if (!known) segmentOptions.unshift([id, id ? `#${id} (not a kept segment)` : 'Choose a segment']);
        box.append(h('div', { class: 'inline', dataset: { pointer: `${pointer}/segment/${op}` } },
          select([['member_of', 'is a member of'], ['not_member_of', 'is not a member of']], op, 'Membership', `${pointer}/segment:op`,
            (next) => ref.set({ segment: { [next]: id } }, true)),
          select(segmentOptions, id, 'Segment', `${pointer}/segment:id`, (next) => ref.set({ segment: { [op]: next } }, false)),
          errorsSlot()));
        break;
      }
      default:
        break;
    }
    return box;
  }

  function rootEditor() {
    if (isObject(query) && Object.keys(query).length === 1 && 'foreign' in query) {
      return h('div', { class: 'cond', dataset: { pointer: '' } }, errorsSlot(),
        h('p', { text: 'This query is kept in the foreign form: Corral stores it as written and never evaluates it. Edit it in the JSON.' }));
    }
    return conditionEditor({
      get: () => query,
      set: (v, structural) => {
        query = v;
        changed(structural);
      },
    }, '', { root: true });
  }

  return {
    /** Shows `next` (an object), redrawing everything. */
    load(next) {
      query = next;
      draw();
    },
    query: () => query,
    /** Shows each `{pointer, message}` at the deepest element its pointer names. */
    showErrors(errors) {
      for (const slot of container.querySelectorAll('.errors')) slot.replaceChildren();
      for (const el of container.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      const places = new Map([...container.querySelectorAll('[data-pointer]')].map((el) => [el.dataset.pointer, el]));
      for (const { pointer, message } of errors) {
        let p = pointer;
        while (!places.has(p) && p !== '') p = p.slice(0, p.lastIndexOf('/'));
        const place = places.get(p) || places.get('');
        if (!place) continue;
        const slot = place.querySelector(':scope > .errors') || place.querySelector(':scope > .op-row + .errors');
        const rest = pointer.slice(p.length);
        const id = nextId('err');
        (slot || place).append(h('p', { class: 'field-error', id, text: rest ? `${rest}: ${message}` : message }));
        const control = place.querySelector(':scope > .op-row input, :scope > .op-row select, :scope > input, :scope > select, :scope > .cond-head select');
        if (control) {
          control.setAttribute('aria-invalid', 'true');
          control.setAttribute('aria-describedby', id);
        }
      }
      return mark;
    },
  };
}
