// Journey board: one column per step in order; rows for touchpoints, capabilities, systems and
// data; each gap marked where it occurs, with the API's reason; the journey's coverage.
// #/journeys lists the journeys, #/journey/<id> draws one.

import { query } from './api.js';
import { fill, h, kindLabel, message, nodeHref, nodeLink, pct } from './dom.js';
import { exportButtons } from './export.js';

const BOARD = `query ExplorerJourney($id: ID!) {
  journeyCoverage(id: $id) {
    coverage
    journey { id name description }
    gaps { reason node { id kind name } }
    steps {
      covered
      step { id name order }
      touchpoints { id name }
      capabilities { id name }
      systems { id name }
      entities { id name }
      gaps { reason node { id kind name } }
    }
  }
}`;
// journeyCoverage counts steps, capabilities and touchpoints; an entity without a system of
// record is a gap of the landscape (gaps), marked here on the steps whose data it is. Asked
// in a request of its own, which the hub answers meanwhile.
const ENTITY_GAPS = `query ExplorerEntityGaps { gaps(kinds: [DATA_ENTITY]) { reason node { id } } }`;
const ENTITY_GAP = /system of record/i;
const JOURNEYS = `query ExplorerJourneys($after: String) {
  nodes(kinds: [JOURNEY], first: 100, after: $after) {
    totalCount
    edges { node { id name description } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const ROWS = [
  ['touchpoints', 'Touchpoints'],
  ['capabilities', 'Capabilities'],
  ['systems', 'Systems'],
  ['entities', 'Data'],
];

export async function renderList(main, ctx) {
  const data = await query(JOURNEYS, { after: ctx.params.get('after') });
  if (ctx.stale()) return;
  const { edges, totalCount, pageInfo } = data.nodes;
  const items = edges.map(({ node }) =>
    h('li', {}, h('a', { href: `#/journey/${encodeURIComponent(node.id)}` }, node.name),
      h('span', { class: 'result-id' }, ` ${node.id}`),
      node.description ? h('p', { class: 'excerpt' }, node.description) : null));
  fill(main, 
    h('h1', {}, 'Customer journeys'),
    h('section', { class: 'panel', 'aria-label': 'Journeys' },
      h('p', {}, `${totalCount} journeys. Open one to see its steps, what stands behind each and its gaps.`),
      items.length ? h('ul', { class: 'results' }, items) : message('No journeys in the catalog yet.', 'info'),
      pageInfo.hasNextPage ? h('p', {}, h('a', { href: `#/journeys?after=${encodeURIComponent(pageInfo.endCursor)}` }, 'Next page')) : null),
  );
  ctx.drawn();
}

function cellItems(nodes, gapsById) {
  if (!nodes.length) return h('span', { class: 'muted', 'data-label': true }, 'none');
  return h('ul', {}, nodes.map((node) => {
    const gaps = gapsById.get(node.id) || [];
    const link = nodeLink(node, { badge: false });
    link.dataset.label = '';
    if (!gaps.length) return h('li', {}, link);
    return h('li', { class: 'is-gap', 'data-box': true, dataset: { gap: node.id } },
      h('span', { class: 'badge badge-gap', 'data-label': true }, 'Gap'), ' ', link,
      gaps.map((g) => h('span', { class: 'gap-reason', 'data-label': true }, g.reason)));
  }));
}

export async function render(main, ctx) {
  const [data, landscape] = await Promise.all([
    query(BOARD, { id: ctx.arg }),
    query(ENTITY_GAPS).catch((error) => {
      if (error.name === 'AuthError') throw error;
      return { gaps: [] }; // the board stands without them
    }),
  ]);
  if (ctx.stale()) return;
  const board = data.journeyCoverage;
  const entityGaps = landscape.gaps.filter((g) => ENTITY_GAP.test(g.reason));
  const steps = [...board.steps].sort((a, b) => a.step.order - b.step.order);
  const head = h('tr', {}, h('th', { scope: 'col', 'data-box': true }, h('span', { 'data-label': true }, 'Step')),
    steps.map((s) => h('th', { scope: 'col', class: s.covered ? null : 'uncovered', 'data-box': true, dataset: { step: s.step.id } },
      h('span', { class: 'step-order', 'data-label': true }, `Step ${s.step.order}`),
      h('a', { href: nodeHref(s.step.id), 'data-label': true }, s.step.name),
      h('span', { class: 'step-order', 'data-label': true }, s.covered ? 'covered' : `${s.gaps.length} gap${s.gaps.length === 1 ? '' : 's'}`))));
  const rows = ROWS.map(([key, label]) => h('tr', {},
    h('th', { scope: 'row', 'data-box': true }, h('span', { 'data-label': true }, label)),
    steps.map((s) => {
      const gapsById = new Map();
      for (const g of s.gaps) {
        if (!gapsById.has(g.node.id)) gapsById.set(g.node.id, []);
        gapsById.get(g.node.id).push(g);
      }
      if (key === 'entities') {
        for (const g of entityGaps) {
          if (s.entities.some((e) => e.id === g.node.id)) gapsById.set(g.node.id, [g]);
        }
      }
      return h('td', { 'data-box': true, dataset: { row: key, step: s.step.id } }, cellItems(s[key], gapsById));
    })));
  // Gaps of the step itself (no capability at all) and a summary of each column's gaps.
  rows.push(h('tr', {},
    h('th', { scope: 'row', 'data-box': true }, h('span', { 'data-label': true }, 'Gaps')),
    steps.map((s) => h('td', { 'data-box': true, dataset: { row: 'gaps', step: s.step.id }, class: s.gaps.length ? 'uncovered' : null },
      s.gaps.length
        ? h('ul', {}, s.gaps.map((g) => h('li', { class: 'is-gap', dataset: { gap: g.node.id } },
          h('span', { 'data-label': true }, `${kindLabel(g.node.kind)} `, h('a', { href: nodeHref(g.node.id) }, g.node.name)),
          h('span', { class: 'gap-reason', 'data-label': true }, g.reason))))
        : h('span', { class: 'muted', 'data-label': true }, 'none')))));
  const table = h('table', { class: 'board', id: 'journey-board' },
    h('caption', { class: 'visually-hidden' }, `Journey board of ${board.journey.name}: steps in columns`),
    h('thead', {}, head), h('tbody', {}, rows));
  const percent = pct(board.coverage);
  fill(main, 
    h('h1', {}, `Journey: ${board.journey.name}`),
    board.journey.description ? h('p', {}, board.journey.description) : null,
    h('div', { class: 'toolbar' },
      h('p', { class: 'coverage', id: 'journey-coverage' },
        h('strong', {}, `Coverage ${percent}`),
        h('span', { class: 'meter', role: 'img', 'aria-label': `${percent} of the steps covered` },
          h('span', { style: `width:${Math.round(board.coverage * 100)}%` })),
        ` ${steps.filter((s) => s.covered).length} of ${steps.length} steps without a gap, ${board.gaps.length} gaps`),
      exportButtons(() => table, () => `Journey board: ${board.journey.name} (coverage ${percent})`,
        () => `journey-board-${board.journey.id.replace(/[^a-z0-9]+/gi, '-')}`),
      h('a', { href: nodeHref(board.journey.id) }, 'Journey page'),
      h('a', { href: `#/graph/${encodeURIComponent(board.journey.id)}?depth=2` }, 'As a graph')),
    steps.length
      ? h('div', { class: 'board-wrap', tabindex: '0', role: 'region', 'aria-label': 'Journey board (scrolls sideways)' }, table)
      : message('This journey has no steps yet.', 'info'),
  );
  ctx.drawn();
}
