// Capability map: the L1 > L2 > L3 hierarchy as nested boxes, coloured by a measure the user
// picks (providers, lifecycle, PII, owner), with a legend and a domain filter
// (#/map?measure=providers&domain=domain:sales). Each box links to its capability's page.
// The map is drawn as one HTML string: 10,000 boxes in a few hundred milliseconds.

import { query } from './api.js';
import { remember } from './app.js';
import { esc, h, nodeHref } from './dom.js';
import { exportButtons } from './export.js';

// Owners and data are asked for only when the measure needs them: on a 10,000-capability map
// they are most of the answer. How many systems provide a capability comes from the map's
// leaf coverage (none) and the redundancies (two or more, with their count): the map's own
// providers lists cost the hub more than the rest of the map together (one list per entry).
// Every field counts here (10,000 entries): the level follows from the parents, and the
// redundancies come in a request of their own, which the hub answers meanwhile.
const MAP = `query ExplorerMap($root: ID, $owner: Boolean!, $pii: Boolean!, $lifecycle: Boolean!) {
  capabilityMap(root: $root, depth: 3) {
    parentId
    coveredLeaves
    uncoveredLeaves
    capability {
      id name
      lifecycle @include(if: $lifecycle)
      owner @include(if: $owner) { id name }
      reads @include(if: $pii) { id }
      writes @include(if: $pii) { id }
    }
  }
}`;
const REDUNDANCIES = `query ExplorerRedundancies { redundancies { reason node { id kind } } }`;
const DOMAINS = `query ExplorerDomains { nodes(kinds: [DOMAIN], first: 500) { edges { node { id name } } } }`;
const PII_ENTITIES = `query ExplorerPiiEntities($after: String) {
  dataEntities(first: 500, after: $after) {
    edges { node { id attributes { classification } } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const MAX_ENTITY_PAGES = 40; // 20,000 entities: a bound on what one view reads

const PROVIDER_COLOURS = [
  ['0', '#f4b4ae', 'no provider: a gap'],
  ['1', '#bfe3c7', 'one provider'],
  ['2+', '#ffd68a', 'two or more: redundant'],
];
const LIFECYCLE_COLOURS = { PLANNED: '#cfe0f7', ACTIVE: '#bfe3c7', DEPRECATED: '#ffd68a', RETIRED: '#d5d5d5' };
const PII_COLOURS = { yes: '#f6c1d6', no: '#e3e8ee' };
const OWNER_PALETTE = [
  '#cfe0f7', '#bfe3c7', '#ffd68a', '#f6c1d6', '#d9cff3', '#c7ece9', '#f9d3b4', '#e2e8b0',
  '#f3c9c9', '#c9d8f3', '#e5d4c0', '#d0e7d9',
];
const NO_OWNER = '#eeeeee';
export const MEASURES = {
  providers: 'Providers',
  lifecycle: 'Lifecycle',
  pii: 'Touches PII',
  owner: 'Owner',
};

let piiCache = null;

async function piiEntities() {
  if (piiCache) return piiCache;
  const found = new Set();
  let after = null;
  for (let page = 0; page < MAX_ENTITY_PAGES; page += 1) {
    const data = await query(PII_ENTITIES, { after });
    for (const { node } of data.dataEntities.edges) {
      if (node.attributes.some((a) => String(a.classification || '').toUpperCase() === 'PII')) found.add(node.id);
    }
    if (!data.dataEntities.pageInfo.hasNextPage) break;
    after = data.dataEntities.pageInfo.endCursor;
  }
  piiCache = found;
  return found;
}

function providersOf(entry) {
  const n = entry.providerCount;
  return n === 0 ? PROVIDER_COLOURS[0] : n === 1 ? PROVIDER_COLOURS[1] : PROVIDER_COLOURS[2];
}

/** How one measure colours and describes a box, and its legend. */
function painter(measure, entries, pii) {
  if (measure === 'lifecycle') {
    return {
      fill: (e) => LIFECYCLE_COLOURS[e.capability.lifecycle],
      note: (e) => e.capability.lifecycle.toLowerCase(),
      legend: Object.entries(LIFECYCLE_COLOURS).map(([k, c]) => [c, k.toLowerCase()]),
    };
  }
  if (measure === 'pii') {
    const touches = (e) => [...e.capability.reads, ...e.capability.writes].some((x) => pii.has(x.id));
    return {
      fill: (e) => (touches(e) ? PII_COLOURS.yes : PII_COLOURS.no),
      note: (e) => (touches(e) ? 'touches PII' : ''),
      legend: [[PII_COLOURS.yes, 'reads or writes personal data (PII)'], [PII_COLOURS.no, 'no PII']],
    };
  }
  if (measure === 'owner') {
    const owners = [...new Map(entries.filter((e) => e.capability.owner).map((e) => [e.capability.owner.id, e.capability.owner])).values()]
      .sort((a, b) => a.name.localeCompare(b.name));
    const colours = new Map(owners.map((o, i) => [o.id, OWNER_PALETTE[i % OWNER_PALETTE.length]]));
    return {
      fill: (e) => (e.capability.owner ? colours.get(e.capability.owner.id) : NO_OWNER),
      note: (e) => (e.capability.owner ? e.capability.owner.name : 'no owner'),
      legend: [...owners.map((o) => [colours.get(o.id), o.name]), [NO_OWNER, 'no owner']],
    };
  }
  return {
    // A parent is provided through its leaves: it shows how many of them are covered.
    fill: (e, leaf) => (leaf ? providersOf(e)[1] : e.uncoveredLeaves ? '#fbe1de' : '#ffffff'),
    note: (e, leaf) => {
      if (!leaf) {
        const all = e.coveredLeaves + e.uncoveredLeaves;
        const own = e.providerCount > 1 ? `; ${e.providerCount} providers` : '';
        return `${e.coveredLeaves}/${all} covered${own}`;
      }
      const n = e.providerCount;
      if (!n) return 'no provider: gap';
      return n === 1 ? '1 provider' : `${n} providers: redundant`;
    },
    legend: [...PROVIDER_COLOURS.map(([k, c, text]) => [c, `${k}: ${text}`]), ['#fbe1de', 'group with uncovered leaves']],
  };
}

function drawMap(entries, paint) {
  const kids = new Map();
  const tops = [];
  const ids = new Set(entries.map((e) => e.capability.id));
  for (const e of entries) {
    if (e.parentId && ids.has(e.parentId)) {
      if (!kids.has(e.parentId)) kids.set(e.parentId, []);
      kids.get(e.parentId).push(e);
    } else tops.push(e);
  }
  const out = [];
  const box = (e, depth) => {
    const children = kids.get(e.capability.id) || [];
    const leaf = !children.length;
    const fill = paint.fill(e, leaf);
    const note = paint.note(e, leaf);
    const href = nodeHref(e.capability.id);
    const name = esc(e.capability.name);
    const noteHtml = note ? `<span class="cap-note" data-label>${esc(note)}</span>` : '';
    if (leaf && depth > 0) {
      out.push(`<a class="cap cap-l3" data-box data-id="${esc(e.capability.id)}" href="${href}" style="background:${fill}"><span class="cap-name" data-label>${name}</span>${noteHtml}</a>`);
      return;
    }
    const cls = depth === 0 ? 'cap cap-l1' : 'cap-l2-box';
    out.push(`<div class="${cls}" data-box style="background:${fill}"><a class="cap-head${depth ? ' cap cap-l2' : ''}" data-id="${esc(e.capability.id)}" href="${href}"><span class="cap-name" data-label>${name}</span>${noteHtml}</a>`);
    if (children.length) {
      out.push('<div class="cap-children">');
      for (const child of children) box(child, depth + 1);
      out.push('</div>');
    }
    out.push('</div>');
  };
  for (const e of tops) box(e, 0);
  return out.join('');
}

export async function render(main, ctx) {
  const measure = MEASURES[ctx.params.get('measure')] ? ctx.params.get('measure') : 'providers';
  const domain = ctx.params.get('domain') || '';
  const [mapData, redundancies, domainData] = await Promise.all([
    query(MAP, { root: domain || null, owner: measure === 'owner', pii: measure === 'pii', lifecycle: measure === 'lifecycle' }),
    measure === 'providers' ? query(REDUNDANCIES) : Promise.resolve({ redundancies: [] }),
    query(DOMAINS),
  ]);
  const entries = mapData.capabilityMap;
  const redundant = new Map();
  for (const r of redundancies.redundancies) {
    if (r.node.kind === 'CAPABILITY') redundant.set(r.node.id, Number((/(\d+)/.exec(r.reason) || [0, 2])[1]));
  }
  for (const e of entries) {
    // A leaf without an active provider is uncovered; with one it is covered, and counted
    // among the redundancies when there are more.
    const leaf = e.coveredLeaves + e.uncoveredLeaves === 1;
    e.providerCount = redundant.get(e.capability.id) || (leaf ? e.coveredLeaves : 0);
  }
  const pii = measure === 'pii' ? await piiEntities() : null;
  if (ctx.stale()) return;
  const paint = painter(measure, entries, pii);

  const update = (key, value) => {
    const params = new URLSearchParams(ctx.params);
    if (value) params.set(key, value);
    else params.delete(key);
    location.hash = `#/map${[...params].length ? `?${params}` : ''}`;
  };
  const measureSelect = h('select', { id: 'map-measure', onchange: (e) => update('measure', e.target.value) },
    Object.entries(MEASURES).map(([k, label]) => h('option', { value: k, selected: k === measure }, label)));
  const domains = domainData.nodes.edges.map((e) => e.node);
  const domainSelect = h('select', { id: 'map-domain', onchange: (e) => update('domain', e.target.value) },
    h('option', { value: '' }, 'All domains'),
    domains.map((d) => h('option', { value: d.id, selected: d.id === domain }, d.name)));
  const legend = h('ul', { class: 'legend', 'aria-label': `Legend: ${MEASURES[measure]}` },
    paint.legend.map(([c, text]) => h('li', {}, h('span', { class: 'swatch', style: `background:${c}` }), text)));
  const grid = h('div', { class: 'capmap', id: 'capmap', 'aria-label': 'Capability map', 'data-reflow': '' });
  grid.innerHTML = drawMap(entries, paint);
  const domainName = domain ? (domains.find((d) => d.id === domain) || { name: domain }).name : 'all domains';
  const title = () => `Capability map: ${domainName}, coloured by ${MEASURES[measure].toLowerCase()}`;
  const slug = () => `capability-map-${measure}${domain ? `-${domain.replace(/[^a-z0-9]+/gi, '-')}` : ''}`;
  main.replaceChildren(
    h('h1', {}, 'Capability map'),
    h('div', { class: 'toolbar' },
      h('div', {}, h('label', { for: 'map-measure' }, 'Colour by'), measureSelect),
      h('div', {}, h('label', { for: 'map-domain' }, 'Domain'), domainSelect),
      exportButtons(() => grid, title, slug)),
    legend,
    entries.length ? h('p', { class: 'muted' }, `${entries.length} capabilities`) : h('p', {}, 'No capabilities here yet.'),
    grid,
  );
  remember('/map', ctx.params);
  ctx.drawn();
}
