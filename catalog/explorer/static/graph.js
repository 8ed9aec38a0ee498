// Graph view (#/graph/<id>?depth=1&types=PROVIDES,USES&to=<id>): a node's neighbourhood drawn
// with cytoscape.js and the dagre layout (vendored, see catalog/explorer/assets.py). Clicking
// a node (or its Expand button in the list beside, for keyboards) adds its own neighbourhood;
// the relation types filter what is fetched; a path to another node is highlighted.

import { query, request } from './api.js';
import { go, remember } from './app.js';
import { KINDS, RELATION_TYPES, fill, h, kindLabel, message, nodeHref } from './dom.js';
import { idField } from './edit.js';
import { searchBox } from './searchbox.js';

const NEIGHBOURHOOD = `query ExplorerNeighbourhood($id: ID!, $depth: Int!, $types: [RelationType!]) {
  neighborhood(id: $id, depth: $depth, types: $types) {
    nodes { id kind name }
    relations { type from { id } to { id } }
  }
}`;
const PATH = `query ExplorerPath($from: ID!, $to: ID!) {
  path(from: $from, to: $to, maxLength: 6) { type from { id kind name } to { id kind name } }
}`;
const COLOURS = {
  DOMAIN: '#9aa5b1', TEAM: '#b8b8b8', SYSTEM: '#8e6fd8', CAPABILITY: '#4a8fe0', DATA_ENTITY: '#3aa276',
  JOURNEY: '#e08a2f', JOURNEY_STEP: '#f0b266', TOUCHPOINT: '#d8588e', SOURCE: '#7f8c8d',
};
const MAX_NODES = 2000; // expanding stops adding beyond this: the picture would be unreadable
let libraries = null;

function config() {
  try {
    return JSON.parse(document.getElementById('explorer-config').textContent);
  } catch {
    return { missingAssets: [], fetchCommand: 'scripts/fetch-assets' };
  }
}

async function loadLibraries() {
  if (!libraries) {
    libraries = Promise.all([import('cytoscape'), import('cytoscape-dagre')]).then(([c, d]) => {
      c.default.use(d.default);
      return c.default;
    });
  }
  return libraries;
}

function elementsOf(subgraph) {
  const nodes = subgraph.nodes.map((n) => ({ group: 'nodes', data: { id: n.id, label: n.name, kind: n.kind, colour: COLOURS[n.kind] || '#999' } }));
  const edges = subgraph.relations.map((r) => ({
    group: 'edges',
    data: { id: `${r.from.id}|${r.type}|${r.to.id}`, source: r.from.id, target: r.to.id, type: r.type, label: r.type },
  }));
  return [...nodes, ...edges];
}

const STYLE = [
  { selector: 'node', style: { 'background-color': 'data(colour)', label: 'data(label)', 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 3, width: 18, height: 18, 'min-zoomed-font-size': 7, color: '#1c2430', 'text-wrap': 'ellipsis', 'text-max-width': 120 } },
  { selector: 'node.root', style: { width: 28, height: 28, 'border-width': 3, 'border-color': '#1c2430' } },
  { selector: 'edge', style: { width: 1.2, 'line-color': '#aab4c0', 'target-arrow-color': '#aab4c0', 'target-arrow-shape': 'triangle', 'curve-style': 'bezier', 'arrow-scale': 0.8, label: 'data(label)', 'font-size': 8, 'min-zoomed-font-size': 9, color: '#56606e' } },
  { selector: 'edge.path', style: { 'line-color': '#d9480f', 'target-arrow-color': '#d9480f', width: 4, 'z-index': 10 } },
  { selector: 'node.path', style: { 'border-width': 4, 'border-color': '#d9480f' } },
  { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#ffbf00' } },
];

export async function render(main, ctx) {
  const id = ctx.arg;
  if (!id) {
    main.replaceChildren(h('h1', {}, 'Graph'), h('div', { class: 'panel' },
      h('p', {}, 'Pick a node to draw its neighbourhood.'),
      searchBox({ label: 'Start from', onPick: (node) => go(`/graph/${encodeURIComponent(node.id)}`) })));
    ctx.drawn();
    return;
  }
  const depth = Math.min(3, Math.max(1, Number(ctx.params.get('depth')) || 1));
  const types = (ctx.params.get('types') || '').split(',').filter((t) => RELATION_TYPES.includes(t));
  const to = ctx.params.get('to') || '';
  const vars = { id, depth, types: types.length ? types : null };
  const [{ data, errors }, cytoscape] = await Promise.all([
    request(NEIGHBOURHOOD, vars),
    config().missingAssets.length ? Promise.resolve(null) : loadLibraries(),
  ]);
  if (ctx.stale()) return;
  if (!data || !data.neighborhood) throw errors[0];

  const setParam = (key, value) => {
    const params = new URLSearchParams(ctx.params);
    if (value) params.set(key, value);
    else params.delete(key);
    go(`/graph/${encodeURIComponent(id)}`, params);
  };
  const depthSelect = h('select', { id: 'graph-depth', onchange: (e) => setParam('depth', e.target.value) },
    [1, 2, 3].map((d) => h('option', { value: d, selected: d === depth }, String(d))));
  const typeBoxes = RELATION_TYPES.map((t) => h('label', {},
    h('input', { type: 'checkbox', value: t, checked: types.includes(t), onchange: () => {
      setParam('types', typeBoxes.map((l) => l.firstChild).filter((c) => c.checked).map((c) => c.value).join(','));
    } }), t.toLowerCase().replace(/_/g, ' ')));
  const filter = h('fieldset', { class: 'type-filter' }, h('legend', {}, 'Relation types (none ticked: all)'), typeBoxes);
  const pathForm = h('form', { class: 'toolbar', id: 'path-form' }, idField('graph', 'to', 'Path to', { value: to }),
    h('button', { type: 'submit' }, 'Highlight path'));
  const pathStatus = h('div', { 'aria-live': 'polite', id: 'path-status' });
  const canvas = h('div', { id: 'graph-canvas', role: 'img' });
  const listBox = h('ul', { id: 'graph-nodes' });
  const side = h('section', { class: 'panel graph-side', 'aria-label': 'Nodes in the graph' }, h('h2', {}, 'Nodes'), listBox);
  const count = h('p', { class: 'muted', role: 'status' });
  const legend = h('ul', { class: 'legend', 'aria-label': 'Kinds' },
    Object.keys(KINDS).map((k) => h('li', {}, h('span', { class: 'swatch', style: `background:${COLOURS[k]}` }), kindLabel(k))));
  fill(main,
    h('h1', {}, 'Graph around ', h('a', { href: nodeHref(id) }, data.neighborhood.nodes.find((n) => n.id === id)?.name || id)),
    h('div', { class: 'toolbar' }, h('div', {}, h('label', { for: 'graph-depth' }, 'Depth'), depthSelect), filter),
    pathForm, pathStatus, legend, count,
    h('div', { class: 'graph-layout' }, cytoscape ? canvas : message(
      `The graph library is not installed on this hub (missing ${config().missingAssets.join(', ')}). On the hub's host, run ${config().fetchCommand} in the capahub checkout; the list beside still works.`), side));

  const known = new Map(data.neighborhood.nodes.map((n) => [n.id, n]));
  const expanded = new Set([id]);
  const cy = cytoscape
    ? cytoscape({ container: canvas, elements: elementsOf(data.neighborhood), style: STYLE, minZoom: 0.05, maxZoom: 4 })
    : null;
  if (cy) cy.getElementById(id).addClass('root');

  function layout() {
    if (!cy) return Promise.resolve();
    return new Promise((resolve) => {
      const run = cy.layout({ name: 'dagre', rankDir: 'LR', nodeSep: 28, rankSep: 120, animate: false, fit: true, padding: 20 });
      run.one('layoutstop', resolve);
      run.run();
    });
  }

  function drawList() {
    const nodes = [...known.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
    count.textContent = `${known.size} nodes, ${cy ? cy.edges().length : '?'} relations`;
    canvas.setAttribute('aria-label', `Graph of ${known.size} nodes around ${id}; the list of nodes beside it has the same content`);
    fill(listBox, nodes.map((n) => h('li', { dataset: { id: n.id }, class: cy && cy.getElementById(n.id).hasClass('path') ? 'on-path' : null },
      h('span', { class: `kind kind-${n.kind.toLowerCase()}` }, kindLabel(n.kind)),
      h('a', { href: nodeHref(n.id) }, n.name),
      expanded.has(n.id) ? null : h('button', { type: 'button', class: 'link-button', 'aria-label': `Expand ${n.name}`, onclick: () => expand(n.id) }, 'Expand'))));
  }

  async function expand(nodeId) {
    if (expanded.has(nodeId) || known.size >= MAX_NODES) return;
    expanded.add(nodeId);
    const more = await query(NEIGHBOURHOOD, { ...vars, id: nodeId, depth: 1 });
    if (ctx.stale()) return;
    for (const n of more.neighborhood.nodes) known.set(n.id, n);
    if (cy) {
      const fresh = elementsOf(more.neighborhood).filter((e) => cy.getElementById(e.data.id).empty());
      cy.add(fresh);
      await layout();
    }
    drawList();
  }

  async function highlight(target) {
    fill(pathStatus);
    if (!target) return;
    const answer = await request(PATH, { from: id, to: target });
    if (ctx.stale()) return;
    if (answer.errors.length) {
      pathStatus.append(message(answer.errors[0].message));
      return;
    }
    const rels = answer.data.path;
    if (!rels) {
      pathStatus.append(message(`No connection between ${id} and ${target} within 6 relations.`, 'info'));
      return;
    }
    const sub = { nodes: [], relations: rels };
    for (const r of rels) sub.nodes.push(r.from, r.to);
    for (const n of sub.nodes) known.set(n.id, n);
    if (cy) {
      cy.elements().removeClass('path');
      const fresh = elementsOf(sub).filter((e) => cy.getElementById(e.data.id).empty());
      if (fresh.length) {
        cy.add(fresh);
        await layout();
      }
      for (const e of elementsOf(sub)) cy.getElementById(e.data.id).addClass('path');
    }
    pathStatus.append(h('p', { class: 'message message-ok' }, `Path of ${rels.length} relation${rels.length === 1 ? '' : 's'}: `,
      rels.map((r, i) => [i ? ' · ' : '', `${r.from.name} ${r.type} ${r.to.name}`])));
    drawList();
  }

  pathForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const target = pathForm.elements.to.value.trim();
    const params = new URLSearchParams(ctx.params);
    if (target) params.set('to', target);
    else params.delete('to');
    remember(`/graph/${encodeURIComponent(id)}`, params);
    highlight(target);
  });
  if (cy) cy.on('tap', 'node', (event) => expand(event.target.id()));

  await layout();
  if (ctx.stale()) return;
  drawList();
  ctx.drawn();
  if (to) highlight(to);
  ctx.onCleanup(() => cy && cy.destroy());
}
