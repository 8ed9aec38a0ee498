// A search box with type-ahead: as the user types, the API's prefix search suggests nodes.
//
// ARIA combobox pattern: arrow keys move through the suggestions, Enter picks one (or, with
// none chosen, calls onSubmit with the text), Escape closes the list.

import { request } from './api.js';
import { h, highlighted, kindLabel } from './dom.js';

const SUGGEST = `query ExplorerSuggest($q: String!, $kinds: [Kind!]) {
  search(query: $q, kinds: $kinds, first: 8) {
    totalCount
    hits { highlight node { id kind name } }
  }
}`;
let counter = 0;

export function searchBox({
  label = 'Search the catalog',
  placeholder = 'Search: a capability, system, entity…',
  onPick,
  onSubmit = null,
  kinds = null,
  value = '',
  name = 'q',
  id = null,
} = {}) {
  counter += 1;
  const inputId = id || `search-${counter}`;
  const listId = `${inputId}-list`;
  const input = h('input', {
    id: inputId,
    name,
    type: 'search',
    role: 'combobox',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder,
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
  });
  input.value = value;
  const list = h('ul', { id: listId, role: 'listbox', class: 'suggestions', hidden: true, 'aria-label': label });
  const status = h('span', { class: 'visually-hidden', role: 'status' });
  const box = h('div', { class: 'searchbox' }, h('label', { for: inputId }, label), input, list, status);
  let hits = [];
  let active = -1;
  let timer = null;
  let controller = null;

  function close() {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  }

  function mark(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
    if (index >= 0) input.setAttribute('aria-activedescendant', `${listId}-${index}`);
    else input.removeAttribute('aria-activedescendant');
  }

  function pick(index) {
    const hit = hits[index];
    if (!hit) return;
    close();
    onPick(hit.node, input);
  }

  function show(result) {
    hits = result.hits;
    list.replaceChildren(
      ...hits.map((hit, i) =>
        h(
          'li',
          {
            id: `${listId}-${i}`,
            role: 'option',
            'aria-selected': 'false',
            dataset: { id: hit.node.id },
            onmousedown: (event) => {
              event.preventDefault();
              pick(i);
            },
          },
          h('span', { class: `kind kind-${hit.node.kind.toLowerCase()}` }, kindLabel(hit.node.kind)),
          h('span', { class: 'suggestion-name' }, hit.node.name),
          h('span', { class: 'suggestion-id' }, hit.node.id),
        ),
      ),
    );
    if (!hits.length) list.append(h('li', { class: 'none', role: 'option', 'aria-disabled': 'true' }, 'Nothing found'));
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    status.textContent = `${result.totalCount} found`;
    mark(-1);
  }

  async function suggest() {
    const text = input.value.trim();
    if (controller) controller.abort();
    if (!text) {
      close();
      return;
    }
    controller = new AbortController();
    try {
      const { data, errors } = await request(SUGGEST, { q: text, kinds }, { signal: controller.signal });
      if (data && data.search) show(data.search);
      else if (errors.length) {
        list.replaceChildren(h('li', { class: 'none', role: 'option', 'aria-disabled': 'true' }, errors[0].message));
        list.hidden = false;
      }
    } catch (error) {
      if (error.name === 'AbortError') return;
      list.replaceChildren(h('li', { class: 'none', role: 'option', 'aria-disabled': 'true' }, error.message));
      list.hidden = false;
    }
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 120);
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' && hits.length) {
      event.preventDefault();
      if (list.hidden) list.hidden = false;
      mark((active + 1) % hits.length);
    } else if (event.key === 'ArrowUp' && hits.length) {
      event.preventDefault();
      mark(active <= 0 ? hits.length - 1 : active - 1);
    } else if (event.key === 'Enter') {
      if (active >= 0) {
        event.preventDefault();
        pick(active);
      } else if (onSubmit) {
        event.preventDefault();
        close();
        onSubmit(input.value.trim(), input);
      }
    } else if (event.key === 'Escape') {
      close();
    }
  });
  input.addEventListener('blur', () => setTimeout(close, 150));
  box.input = input;
  return box;
}
