// Editing through the API: register a capability (#/new/capability), and the helpers the node
// page uses to edit fields and relations. The API decides who may write; a refusal (FORBIDDEN,
// CONFLICT, BAD_USER_INPUT...) is shown next to the field its message names.

import { request } from './api.js';
import { go } from './app.js';
import { h, message } from './dom.js';
import { searchBox } from './searchbox.js';

/** The input field an API error names: extensions.field, else the message's "input.x:" prefix. */
export function fieldOf(error) {
  let field = error.field || '';
  if (!field || field === 'input') {
    const match = /^input\.([A-Za-z]+)/.exec(error.message);
    field = match ? match[1] : '';
  }
  return field.replace(/^input\./, '').split('.')[0] || null;
}

/** A labelled input with room for its error; `field` is the API input's field name. */
export function field(form, name, label, { type = 'text', value = '', help = null, options = null, required = false, textarea = false } = {}) {
  const id = `${form}-${name}`;
  let input;
  if (options) {
    input = h('select', { id, name }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
  } else if (textarea) {
    input = h('textarea', { id, name, rows: 3 });
    input.value = value || '';
  } else {
    input = h('input', { id, name, type, required, autocomplete: 'off' });
    input.value = value || '';
  }
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true });
  const described = [help ? `${id}-help` : null, `${id}-error`].filter(Boolean).join(' ');
  input.setAttribute('aria-describedby', described);
  input.dataset.field = name;
  return h('div', { class: 'field', dataset: { field: name } },
    h('label', { for: id }, label), input,
    help ? h('p', { class: 'help', id: `${id}-help` }, help) : null,
    error);
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((p) => {
    p.hidden = true;
    p.textContent = '';
  });
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  const top = form.querySelector('.form-message');
  if (top) top.replaceChildren();
}

/** Show API errors: each next to the field it names, the rest at the top of the form. */
export function showErrors(form, errors, aliases = {}) {
  const top = form.querySelector('.form-message');
  let focused = false;
  for (const error of errors) {
    const name = fieldOf(error);
    const target = name && form.querySelector(`.field[data-field="${aliases[name] || name}"]`);
    if (target) {
      const p = target.querySelector('.field-error');
      p.textContent = error.message;
      p.hidden = false;
      const input = target.querySelector('[data-field]');
      input.setAttribute('aria-invalid', 'true');
      if (!focused) {
        input.focus();
        focused = true;
      }
    } else if (top) {
      top.append(message(error.message));
    }
  }
}

export function list(text) {
  return String(text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

/** Run a mutation for a form: errors shown on the form; resolves to the data or null. */
export async function submit(form, mutation, variables, aliases = {}) {
  clearErrors(form);
  const button = form.querySelector('button[type="submit"]');
  if (button) button.disabled = true;
  try {
    const { data, errors } = await request(mutation, variables);
    if (errors.length) {
      showErrors(form, errors, aliases);
      return null;
    }
    return data;
  } catch (error) {
    showErrors(form, [error], aliases); // a refused token too: the form keeps what was typed
    return null;
  } finally {
    if (button) button.disabled = false;
  }
}

/** An id input with type-ahead: picking a suggestion puts the node's id in the field. */
export function idField(form, name, label, { value = '', help = null, kinds = null, multiple = false } = {}) {
  const box = searchBox({
    label,
    placeholder: multiple ? 'ids, comma-separated; type to search' : 'an id; type to search',
    id: `${form}-${name}`,
    name,
    kinds,
    value,
    onPick: (node, input) => {
      if (multiple) {
        const parts = list(input.value.replace(/[^,]*$/, ''));
        input.value = [...parts, node.id].join(', ');
      } else input.value = node.id;
    },
  });
  box.input.dataset.field = name;
  const error = h('p', { class: 'field-error', id: `${form}-${name}-error`, hidden: true });
  box.input.setAttribute('aria-describedby', [help ? `${form}-${name}-help` : null, `${form}-${name}-error`].filter(Boolean).join(' '));
  return h('div', { class: 'field', dataset: { field: name } }, box,
    help ? h('p', { class: 'help', id: `${form}-${name}-help` }, help) : null, error);
}

const REGISTER = `mutation ExplorerRegisterCapability($input: CapabilityInput!) {
  registerCapability(input: $input) { id name }
}`;

export async function renderRegister(main, ctx) {
  const F = 'register';
  const form = h('form', { class: 'panel', novalidate: true },
    h('div', { class: 'form-message', 'aria-live': 'polite' }),
    h('div', { class: 'form-grid' },
      field(F, 'key', 'Key', { required: true, help: 'The id becomes capability:KEY, e.g. order-management.order-capture.split-order', value: ctx.params.get('key') || '' }),
      field(F, 'name', 'Name', { required: true }),
      idField(F, 'parent', 'Parent capability', { kinds: ['CAPABILITY'], value: ctx.params.get('parent') || '' }),
      idField(F, 'domain', 'Domain', { kinds: ['DOMAIN'] }),
      idField(F, 'owner', 'Owner (team)', { kinds: ['TEAM'] }),
      idField(F, 'providedBy', 'Provided by (systems)', { kinds: ['SYSTEM'], multiple: true }),
      idField(F, 'reads', 'Reads (data entities)', { kinds: ['DATA_ENTITY'], multiple: true }),
      idField(F, 'writes', 'Writes (data entities)', { kinds: ['DATA_ENTITY'], multiple: true }),
      field(F, 'tags', 'Tags', { help: 'comma-separated' })),
    field(F, 'description', 'Description', { textarea: true }),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Register capability')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value.trim();
    const input = { key: v('key'), name: v('name') };
    if (v('description')) input.description = v('description');
    for (const name of ['parent', 'domain', 'owner']) if (v(name)) input[name] = v(name);
    for (const name of ['providedBy', 'reads', 'writes', 'tags']) if (list(v(name)).length) input[name] = list(v(name));
    const data = await submit(form, REGISTER, { input });
    if (data) go(`/node/${encodeURIComponent(data.registerCapability.id)}`);
  });
  main.replaceChildren(h('h1', {}, 'Register a capability'),
    h('p', {}, 'The capability, its parent, domain, providers and data are written in one transaction. You need the editor role when the hub has access control on.'),
    form);
  ctx.drawn();
}
