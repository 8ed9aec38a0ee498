// The page of any node (#/node/<id>): fields, attributes with PII badges, relations by type and
// direction, live records of data entities, history with before/after diffs, "what breaks if
// this is retired?", and editing (fields, relations) for callers the API lets write.

import { query, request } from './api.js';
import { notFound } from './app.js';
import { RELATION_TYPES, append, fill, h, kindLabel, message, nodeHref, nodeLink, section } from './dom.js';
import { field, idField, list, submit } from './edit.js';

const NODE = `query ExplorerNode($id: ID!) {
  node(id: $id) {
    id kind key name description tags lifecycle properties version createdAt updatedAt
    owner { id name }
    relations { type properties from { id kind name } to { id kind name } }
    ... on DataEntity { attributes { name type description classification } }
  }
}`;
const HISTORY = `query ExplorerHistory($id: ID!) {
  history(id: $id, first: 20) { id operation at actor before after }
}`;
const RECORDS = `query ExplorerRecords($id: ID!) {
  records(entity: $id, first: 20) {
    totalCount
    edges { node { key data sources masked conflicts { field chosen reason values { system value } } } }
    errors { source code message }
  }
}`;
const IMPACT = `query ExplorerImpact($id: ID!) {
  impact(id: $id, depth: 3) {
    affected { distance node { id kind name } via { type from { id } to { id } } }
    unprovidedCapabilities { id kind name }
    orphanedEntities { id kind name }
  }
}`;
const UPSERT = `mutation ExplorerEditNode($input: NodeInput!) { upsertNode(input: $input) { id version } }`;
const RELATE = `mutation ExplorerRelate($input: RelationInput!) { relate(input: $input) { type } }`;
const UNRELATE = `mutation ExplorerUnrelate($input: RelationInput!) { unrelate(input: $input) }`;
const PHRASES = {
  PART_OF: ['part of', 'has parts'],
  PROVIDES: ['provides', 'provided by'],
  DEPENDS_ON: ['depends on', 'needed by'],
  READS: ['reads', 'read by'],
  WRITES: ['writes', 'written by'],
  MASTERS: ['system of record for', 'mastered by'],
  STORES: ['stores a copy of', 'stored by'],
  OWNS: ['owns', 'owned by'],
  STEWARDS: ['stewards', 'stewarded by'],
  REFERENCES: ['references', 'referenced by'],
  FLOWS_TO: ['flows to', 'flows from'],
  REPRESENTS: ['represents', 'represented by'],
  USES: ['uses', 'used by'],
  OCCURS_AT: ['occurs at', 'where steps occur'],
  SERVED_BY: ['served by', 'serves'],
  HARVESTED_FROM: ['harvested from', 'harvested'],
};
const MAX_RECORD_COLUMNS = 12;
let flash = null; // a message for the next drawing of a node page (after a write)

function show(value) {
  if (value === null || value === undefined) return '—';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function fields(node) {
  const rows = [
    ['Id', h('span', { class: 'node-id' }, node.id)],
    ['Kind', kindLabel(node.kind)],
    ['Lifecycle', h('span', { class: 'badge badge-lifecycle' }, node.lifecycle)],
    ['Owner', node.owner ? nodeLink(node.owner) : 'no owner'],
    ['Description', node.description || '—'],
    ['Tags', node.tags.length ? node.tags.join(', ') : '—'],
    ['Version', String(node.version)],
    ['Created', new Date(node.createdAt).toLocaleString()],
    ['Updated', new Date(node.updatedAt).toLocaleString()],
  ];
  for (const [key, value] of Object.entries(node.properties || {})) rows.push([key, show(value)]);
  return h('dl', { class: 'fields' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function attributes(node) {
  if (!node.attributes) return null;
  if (!node.attributes.length) return section('Attributes', h('p', { class: 'muted' }, 'No attributes.'));
  return section('Attributes', h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Attributes' }, h('table', { class: 'data' },
    h('thead', {}, h('tr', {}, ['Name', 'Type', 'Classification', 'Description'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, node.attributes.map((a) => h('tr', {},
      h('td', {}, a.name, ' ', String(a.classification || '').toUpperCase() === 'PII' ? h('span', { class: 'badge badge-pii', title: 'personal data' }, 'PII') : null),
      h('td', {}, a.type || '—'), h('td', {}, a.classification || '—'), h('td', {}, a.description || '—')))))));
}

function relationGroups(node, refresh) {
  const groups = new Map();
  for (const r of node.relations) {
    const out = r.from.id === node.id;
    const key = `${r.type}:${out ? 'out' : 'in'}`;
    if (!groups.has(key)) groups.set(key, { type: r.type, out, items: [] });
    groups.get(key).items.push(r);
  }
  const order = (g) => RELATION_TYPES.indexOf(g.type) * 2 + (g.out ? 0 : 1);
  const sorted = [...groups.values()].sort((a, b) => order(a) - order(b));
  if (!sorted.length) return h('p', { class: 'muted' }, 'No relations.');
  const status = h('div', { 'aria-live': 'polite' });
  return h('div', {}, status, h('div', { class: 'relations columns' }, sorted.map((g) => h('div', {},
    h('h3', {}, `${PHRASES[g.type][g.out ? 0 : 1]} `, h('span', { class: 'muted' }, `(${g.type}, ${g.out ? 'out' : 'in'}, ${g.items.length})`)),
    h('ul', {}, g.items.map((r) => {
      const other = g.out ? r.to : r.from;
      const remove = h('button', {
        type: 'button',
        class: 'danger rel-remove',
        'aria-label': `Remove ${r.type} relation ${g.out ? 'to' : 'from'} ${other.name}`,
        onclick: async () => {
          if (remove.dataset.armed !== 'yes') {
            remove.dataset.armed = 'yes';
            remove.textContent = 'Confirm removal';
            return;
          }
          remove.disabled = true;
          const { errors } = await request(UNRELATE, { input: { from: r.from.id, type: r.type, to: r.to.id } });
          if (errors.length) {
            status.replaceChildren(message(errors[0].message));
            remove.disabled = false;
          } else refresh(`Removed ${r.from.id} ${r.type} ${r.to.id}.`);
        },
      }, 'Remove');
      return h('li', {}, nodeLink(other), remove);
    }))))));
}

function diffTable(before, after) {
  const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])];
  const changed = keys.filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k]));
  if (!changed.length) return null;
  return h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Changed fields' }, h('table', { class: 'data diff' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Field'), h('th', { scope: 'col' }, 'Before'), h('th', { scope: 'col' }, 'After'))),
    h('tbody', {}, changed.map((k) => h('tr', {}, h('th', { scope: 'row' }, k),
      h('td', { class: 'before' }, before ? show(before[k]) : '—'),
      h('td', { class: 'after' }, after ? show(after[k]) : '—'))))));
}

async function historyPanel(id) {
  const panel = section('History');
  try {
    const { history } = await query(HISTORY, { id });
    if (!history.length) panel.append(h('p', { class: 'muted' }, 'No recorded changes.'));
    else {
      panel.append(h('ol', { class: 'timeline' }, history.map((c) => h('li', {},
        h('strong', {}, c.operation), ' ', c.at ? h('time', { datetime: c.at }, new Date(c.at).toLocaleString()) : null,
        c.actor ? h('span', { class: 'muted' }, ` by ${c.actor}`) : null,
        diffTable(c.before, c.after)))));
    }
  } catch (error) {
    if (error.name === 'AuthError') throw error;
    panel.append(message(error.message));
  }
  return panel;
}

async function recordsPanel(id) {
  const panel = section('Live records');
  try {
    const { records } = await query(RECORDS, { id });
    for (const e of records.errors) panel.append(message(`${e.source}: ${e.message} (${e.code})`));
    const rows = records.edges.map((e) => e.node);
    if (!rows.length) {
      panel.append(h('p', { class: 'muted' }, 'No records: no source holds this entity, or it is empty.'));
      return panel;
    }
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r.data)))].slice(0, MAX_RECORD_COLUMNS);
    panel.append(h('p', {}, `${records.totalCount} records; the first ${rows.length}:`),
      h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Live records' }, h('table', { class: 'data', id: 'records' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), columns.map((c) => h('th', { scope: 'col' }, c)),
          h('th', { scope: 'col' }, 'Sources'), h('th', { scope: 'col' }, 'Conflicts'))),
        h('tbody', {}, rows.map((r) => h('tr', {}, h('td', {}, r.key),
          columns.map((c) => h('td', {}, r.masked.includes(c) ? h('span', { class: 'badge badge-pii' }, 'masked') : show(r.data[c]))),
          h('td', {}, r.sources.map((s, i) => [i ? ', ' : '', h('a', { href: nodeHref(s) }, s)])),
          h('td', {}, r.conflicts.length ? h('details', {},
            h('summary', {}, r.conflicts.map((c) => c.field).join(', ')),
            h('ul', {}, r.conflicts.map((c) => h('li', {},
              h('strong', {}, c.field), `: ${show(c.chosen)} chosen (${c.reason}); `,
              c.values.map((v) => `${v.system} said ${show(v.value)}`).join(', '))))) : '—')))))));
  } catch (error) {
    if (error.name === 'AuthError') throw error;
    panel.append(message(error.message));
  }
  return panel;
}

function impactPanel(id) {
  const out = h('div', { 'aria-live': 'polite', id: 'impact-answer' });
  const button = h('button', {
    type: 'button',
    id: 'impact-button',
    onclick: async () => {
      button.disabled = true;
      out.replaceChildren(h('p', {}, 'Asking the hub…'));
      try {
        const { impact } = await query(IMPACT, { id });
        const byDistance = new Map();
        for (const a of impact.affected) {
          if (!byDistance.has(a.distance)) byDistance.set(a.distance, []);
          byDistance.get(a.distance).push(a.node);
        }
        fill(out,
          h('p', {}, h('strong', {}, `${impact.affected.length} nodes depend on it`),
            ` within 3 relations; ${impact.unprovidedCapabilities.length} capabilities would lose their last provider, ${impact.orphanedEntities.length} entities their system of record.`),
          impact.unprovidedCapabilities.length ? [h('h3', {}, 'Capabilities left without a provider'),
            h('ul', {}, impact.unprovidedCapabilities.map((n) => h('li', {}, nodeLink(n))))] : null,
          impact.orphanedEntities.length ? [h('h3', {}, 'Entities left without a system of record'),
            h('ul', {}, impact.orphanedEntities.map((n) => h('li', {}, nodeLink(n))))] : null,
          [...byDistance.entries()].sort((a, b) => a[0] - b[0]).map(([d, nodes]) => [
            h('h3', {}, `${d} relation${d === 1 ? '' : 's'} away (${nodes.length})`),
            h('ul', {}, nodes.map((n) => h('li', {}, nodeLink(n))))]),
        );
      } catch (error) {
        if (error.name === 'AuthError') throw error;
        out.replaceChildren(message(error.message));
      } finally {
        button.disabled = false;
      }
    },
  }, 'What breaks if this is retired?');
  return section('Impact', button, out);
}

function editForm(node, refresh) {
  const F = 'edit';
  const lifecycles = ['PLANNED', 'ACTIVE', 'DEPRECATED', 'RETIRED'].map((l) => [l, l.toLowerCase()]);
  const form = h('form', { class: 'panel', novalidate: true, id: 'edit-form', hidden: true },
    h('h2', {}, 'Edit fields'),
    h('div', { class: 'form-message', 'aria-live': 'polite' }),
    h('div', { class: 'form-grid' },
      field(F, 'name', 'Name', { value: node.name, required: true }),
      field(F, 'lifecycle', 'Lifecycle', { value: node.lifecycle, options: lifecycles }),
      idField(F, 'owner', 'Owner (team)', { value: node.owner ? node.owner.id : '', kinds: ['TEAM'] }),
      field(F, 'tags', 'Tags', { value: node.tags.join(', '), help: 'comma-separated' })),
    field(F, 'description', 'Description', { value: node.description || '', textarea: true }),
    h('p', { class: 'field-error', hidden: true }),
    h('div', { class: 'field', dataset: { field: 'expectedVersion' } }, h('p', { class: 'field-error', hidden: true }),
      h('input', { type: 'hidden', name: 'expectedVersion', value: String(node.version), 'data-field': 'expectedVersion' })),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { form.hidden = true; } }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = (name) => form.elements[name].value.trim();
    // Every field goes back (an upsert writes the node whole), properties and attributes as read.
    const input = {
      id: node.id,
      name: v('name'),
      description: v('description') || null,
      tags: list(v('tags')),
      lifecycle: v('lifecycle'),
      owner: v('owner') || null,
      properties: node.properties || {},
      expectedVersion: node.version,
    };
    if (node.attributes) input.attributes = node.attributes.map(({ name, type, description, classification }) => ({ name, type, description, classification }));
    const data = await submit(form, UPSERT, { input });
    if (data) refresh(`Saved: ${node.id} is at version ${data.upsertNode.version}.`);
  });
  return form;
}

function relateForm(node, refresh) {
  const F = 'relate';
  const form = h('form', { class: 'panel', novalidate: true, id: 'relate-form', hidden: true },
    h('h2', {}, 'Add a relation'),
    h('div', { class: 'form-message', 'aria-live': 'polite' }),
    h('div', { class: 'form-grid' },
      field(F, 'direction', 'Direction', { options: [['out', `from ${node.name} to…`], ['in', `to ${node.name} from…`]] }),
      field(F, 'type', 'Relation type', { options: RELATION_TYPES.map((t) => [t, t]) }),
      idField(F, 'other', 'Other node')),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Add relation'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { form.hidden = true; } }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const out = form.elements.direction.value === 'out';
    const other = form.elements.other.value.trim();
    const input = { from: out ? node.id : other, type: form.elements.type.value, to: out ? other : node.id };
    // The other node is `to` going out and `from` coming in; this node's side is the direction.
    const aliases = out ? { to: 'other', from: 'direction' } : { from: 'other', to: 'direction' };
    const data = await submit(form, RELATE, { input }, aliases);
    if (data) refresh(`Added ${input.from} ${input.type} ${input.to}.`);
  });
  return form;
}

export async function render(main, ctx) {
  const id = ctx.arg;
  const { data, errors } = await request(NODE, { id });
  if (ctx.stale()) return;
  if (!data || !data.node) {
    if (errors.length && errors[0].code !== 'NOT_FOUND' && errors[0].code !== 'BAD_USER_INPUT') throw errors[0];
    notFound(`There is no node ${id} in the catalog.`);
    return;
  }
  const node = data.node;
  const refresh = (text) => {
    flash = { id, text };
    render(main, ctx);
  };
  const edit = editForm(node, refresh);
  const relate = relateForm(node, refresh);
  const open = (form) => () => {
    form.hidden = false;
    form.querySelector('input:not([type=hidden]), select').focus();
  };
  const links = [h('a', { href: `#/graph/${encodeURIComponent(id)}` }, 'Show in the graph')];
  if (node.kind === 'JOURNEY') links.push(h('a', { href: `#/journey/${encodeURIComponent(id)}` }, 'Journey board'));
  if (node.kind === 'CAPABILITY') links.push(h('a', { href: `#/new/capability?parent=${encodeURIComponent(id)}` }, 'Register a sub-capability'));
  const note = flash && flash.id === id ? message(flash.text, 'ok') : null;
  flash = null;
  const [history, records] = await Promise.all([
    historyPanel(id),
    node.kind === 'DATA_ENTITY' ? recordsPanel(id) : Promise.resolve(null),
  ]);
  if (ctx.stale()) return;
  main.replaceChildren();
  append(main, [
    h('div', { class: 'node-head' },
      h('h1', {}, h('span', { class: `kind kind-${node.kind.toLowerCase()}` }, kindLabel(node.kind)), ' ', node.name),
      h('span', { class: 'node-id' }, node.id)),
    note,
    h('div', { class: 'toolbar' }, links, ' ',
      h('button', { type: 'button', class: 'secondary', id: 'edit-open', onclick: open(edit) }, 'Edit fields'),
      h('button', { type: 'button', class: 'secondary', id: 'relate-open', onclick: open(relate) }, 'Add a relation')),
    edit,
    relate,
    h('div', { class: 'columns' }, section('Fields', fields(node)), attributes(node)),
    section(`Relations (${node.relations.length})`, relationGroups(node, refresh)),
    records,
    impactPanel(id),
    history,
  ]);
  ctx.drawn();
}
