// Home: the search box, counts per kind, the landscape's top gaps, redundancies and hotspots;
// and the search results page (#/search?q=...&kind=...).

import { query } from './api.js';
import { go, remember } from './app.js';
import { KINDS, h, highlighted, kindLabel, message, nodeLink, section } from './dom.js';
import { searchBox } from './searchbox.js';

const TOP = 10;
const counts = Object.entries(KINDS)
  .map(([kind]) => `  ${kind.toLowerCase()}: nodes(kinds: [${kind}], first: 1) { totalCount }`)
  .join('\n');
const HOME = `query ExplorerHome {
${counts}
  gaps { reason node { id kind name } }
  redundancies { reason node { id kind name } involved { id kind name } }
  hotspots(first: ${TOP}) { score node { id kind name } }
}`;

function mainSearch(value = '') {
  return searchBox({
    label: 'Search the catalog',
    value,
    id: 'home-search',
    onPick: (node) => go(`/node/${encodeURIComponent(node.id)}`),
    onSubmit: (text) => text && go('/search', new URLSearchParams({ q: text })),
  });
}

function topList(items, draw, empty) {
  if (!items.length) return h('p', { class: 'muted' }, empty);
  const shown = h('ol', { class: 'top-list' }, items.slice(0, TOP).map(draw));
  if (items.length <= TOP) return shown;
  const rest = h('ol', { class: 'top-list', start: TOP + 1, hidden: true }, items.slice(TOP).map(draw));
  const toggle = h('button', {
    type: 'button',
    class: 'link-button',
    'aria-expanded': 'false',
    onclick: () => {
      rest.hidden = !rest.hidden;
      toggle.setAttribute('aria-expanded', String(!rest.hidden));
      toggle.textContent = rest.hidden ? `Show all ${items.length}` : 'Show fewer';
    },
  }, `Show all ${items.length}`);
  return h('div', {}, shown, rest, toggle);
}

export async function render(main, ctx) {
  const box = mainSearch();
  main.replaceChildren(h('h1', {}, 'Explore the landscape'), h('div', { class: 'panel search-panel' }, box));
  const data = await query(HOME);
  if (ctx.stale()) return;
  const kinds = h(
    'ul',
    { class: 'counts' },
    Object.entries(KINDS).map(([kind, info]) =>
      h('li', {},
        h('a', { href: `#/search?kind=${kind}` },
          h('strong', {}, String(data[kind.toLowerCase()].totalCount)), ' ', info.plural)),
    ),
  );
  const gaps = topList(data.gaps, (g) => h('li', {}, nodeLink(g.node), h('span', { class: 'reason' }, g.reason)), 'No gaps: every capability is provided, every entity has a system of record.');
  const redundancies = topList(
    data.redundancies,
    (r) => h('li', {}, nodeLink(r.node), h('span', { class: 'reason' }, r.reason, ': '),
      r.involved.map((n, i) => [i ? ', ' : '', nodeLink(n, { badge: false })])),
    'No redundancies.',
  );
  const hotspots = topList(
    data.hotspots,
    (s) => h('li', {}, nodeLink(s.node), h('span', { class: 'score' }, `score ${s.score.toFixed(3)}`)),
    'No hotspots.',
  );
  main.append(
    section('The catalog', kinds),
    h('div', { class: 'columns' },
      section(`Gaps (${data.gaps.length})`, gaps),
      section(`Redundancies (${data.redundancies.length})`, redundancies),
      section('Hotspots', hotspots)),
  );
  ctx.drawn();
}

const SEARCH = `query ExplorerSearch($q: String!, $kinds: [Kind!], $after: String) {
  search(query: $q, kinds: $kinds, first: 20, after: $after) {
    totalCount
    hits { score highlight node { id kind name description } }
    facets { kind { value count } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const LIST = `query ExplorerList($kinds: [Kind!], $after: String) {
  nodes(kinds: $kinds, first: 50, after: $after) {
    totalCount
    edges { node { id kind name description } }
    pageInfo { hasNextPage endCursor }
  }
}`;

export async function renderSearch(main, ctx) {
  const q = (ctx.params.get('q') || '').trim();
  const kind = ctx.params.get('kind');
  const after = ctx.params.get('after');
  const box = mainSearch(q);
  const heading = h('h1', {}, q ? `Search: ${q}` : kind ? KINDS[kind] ? KINDS[kind].plural : kind : 'Search');
  main.replaceChildren(heading, h('div', { class: 'panel search-panel' }, box));
  if (!q && !kind) {
    ctx.drawn();
    return;
  }
  const kinds = kind ? [kind] : null;
  let rows;
  let total;
  let page;
  let facets = null;
  if (q) {
    const data = await query(SEARCH, { q, kinds, after });
    ({ totalCount: total, pageInfo: page, facets } = data.search);
    rows = data.search.hits.map((hit) => ({ node: hit.node, highlight: hit.highlight }));
  } else {
    const data = await query(LIST, { kinds, after });
    ({ totalCount: total, pageInfo: page } = data.nodes);
    rows = data.nodes.edges.map((e) => ({ node: e.node, highlight: null }));
  }
  if (ctx.stale()) return;
  const results = h('ol', { class: 'results' }, rows.map((r) =>
    h('li', {}, nodeLink(r.node), h('span', { class: 'result-id' }, r.node.id),
      r.highlight ? h('p', { class: 'excerpt' }, highlighted(r.highlight))
        : r.node.description ? h('p', { class: 'excerpt' }, r.node.description) : null)));
  const parts = [h('p', { role: 'status' }, `${total} found`)];
  if (facets && facets.kind.length) {
    parts.push(h('ul', { class: 'facets', 'aria-label': 'Filter by kind' },
      h('li', {}, h('a', { href: `#/search?${new URLSearchParams({ q })}`, 'aria-current': kind ? null : 'true' }, 'All kinds')),
      facets.kind.map((f) => h('li', {}, h('a', {
        href: `#/search?${new URLSearchParams({ q, kind: f.value })}`,
        'aria-current': kind === f.value ? 'true' : null,
      }, `${kindLabel(f.value)} (${f.count})`)))));
  }
  parts.push(rows.length ? results : message('Nothing matches.', 'info'));
  if (page.hasNextPage) {
    const next = new URLSearchParams(ctx.params);
    next.set('after', page.endCursor);
    parts.push(h('p', {}, h('a', { href: `#/search?${next}` }, 'Next page')));
  }
  main.append(h('section', { class: 'panel', 'aria-label': 'Results' }, parts));
  remember('/search', ctx.params);
  ctx.drawn();
}
