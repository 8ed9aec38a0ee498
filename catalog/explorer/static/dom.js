// Small DOM helpers: elements from plain calls, links to nodes, messages.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export function esc(text) {
  return String(text ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export const KINDS = {
  DOMAIN: { prefix: 'domain', label: 'Domain', plural: 'Domains' },
  TEAM: { prefix: 'team', label: 'Team', plural: 'Teams' },
  SYSTEM: { prefix: 'system', label: 'System', plural: 'Systems' },
  CAPABILITY: { prefix: 'capability', label: 'Capability', plural: 'Capabilities' },
  DATA_ENTITY: { prefix: 'entity', label: 'Data entity', plural: 'Data entities' },
  JOURNEY: { prefix: 'journey', label: 'Journey', plural: 'Journeys' },
  JOURNEY_STEP: { prefix: 'step', label: 'Journey step', plural: 'Journey steps' },
  TOUCHPOINT: { prefix: 'touchpoint', label: 'Touchpoint', plural: 'Touchpoints' },
  SOURCE: { prefix: 'source', label: 'Source', plural: 'Sources' },
};
const BY_PREFIX = Object.fromEntries(Object.entries(KINDS).map(([k, v]) => [v.prefix, k]));

export function kindOf(id) {
  return BY_PREFIX[String(id).split(':', 1)[0]] || null;
}

export function kindLabel(kind) {
  return (KINDS[kind] && KINDS[kind].label) || kind;
}

export const RELATION_TYPES = [
  'PART_OF', 'PROVIDES', 'DEPENDS_ON', 'READS', 'WRITES', 'MASTERS', 'STORES', 'OWNS',
  'STEWARDS', 'REFERENCES', 'FLOWS_TO', 'REPRESENTS', 'USES', 'OCCURS_AT', 'SERVED_BY',
  'HARVESTED_FROM',
];

export function nodeHref(id) {
  return `#/node/${encodeURIComponent(id)}`;
}

/** A link to a node's page, with a kind badge unless told otherwise. */
export function nodeLink(node, { badge = true } = {}) {
  const kind = node.kind || kindOf(node.id);
  return h(
    'a',
    { href: nodeHref(node.id), class: 'node-link', title: node.id },
    badge ? h('span', { class: `kind kind-${String(kind).toLowerCase()}` }, kindLabel(kind)) : null,
    node.name || node.id,
  );
}

export function message(text, kind = 'error') {
  return h('p', { class: `message message-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Put the text of an API highlight (HTML-escaped, with <mark>) into an element, keeping only marks. */
export function highlighted(html) {
  const template = document.createElement('template');
  template.innerHTML = html;
  const out = document.createDocumentFragment();
  for (const child of template.content.childNodes) {
    if (child.nodeType === Node.ELEMENT_NODE && child.nodeName === 'MARK') {
      out.append(h('mark', {}, child.textContent));
    } else out.append(document.createTextNode(child.textContent));
  }
  return out;
}

export function pct(value) {
  return `${Math.round(value * 1000) / 10} %`;
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}

/** Replace an element's children (null, false and nested arrays skipped). */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}
