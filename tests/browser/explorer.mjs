// Drives the explorer (the hub's page at /) in headless Debian chromium.
//
//   node tests/browser/explorer.mjs open BASE_URL ARTIFACT_DIR SCREENSHOT_DIR
//   CAPAHUB_EXPLORER_TOKEN=... node tests/browser/explorer.mjs auth BASE_URL ARTIFACT_DIR
//   node tests/browser/explorer.mjs budget BASE_URL ARTIFACT_DIR
//
// "open" (a hub with auth off, the demo loaded) visits every view at 1280 px and at a phone's
// width, runs axe-core on each, types into the search box, reads the journey board's gap marks,
// clicks a capability box, edits through the forms, exports SVG and PNG, and takes the
// screenshots docs/explorer.md shows. "auth" (CAPAHUB_AUTH=on) meets the sign-in prompt, is
// refused a wrong token and signs in with the right one. It prints one JSON report (asserted by
// tests/browser/test_explorer*.py); the token is written <TOKEN> wherever it would appear.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const [mode, base, artifactDir, shotDir] = process.argv.slice(2);
const token = process.env.CAPAHUB_EXPLORER_TOKEN || '';
const TIMEOUT = 15_000;
const WIDE = { width: 1280, height: 900 };
const NARROW = { width: 390, height: 844 };
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const report = { mode, views: {}, offMachineRequests: [], pageErrors: [], consoleErrors: [], graphql: [], error: null };

function isLocal(address) {
  const parsed = new URL(address);
  if (['data:', 'blob:', 'about:'].includes(parsed.protocol)) return true;
  return LOCAL_HOSTS.has(parsed.hostname);
}

function scrub(value) {
  const text = JSON.stringify(value);
  return JSON.parse(token ? text.split(token).join('<TOKEN>') : text);
}

function watch(page) {
  page.on('pageerror', (error) => report.pageErrors.push(String(error.message || error)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') report.consoleErrors.push(msg.text());
  });
  page.on('request', (request) => {
    if (!isLocal(request.url())) report.offMachineRequests.push(request.url());
  });
  page.on('response', async (response) => {
    const request = response.request();
    if (!request.url().endsWith('/graphql') || request.method() !== 'POST') return;
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    let operation = null;
    try {
      operation = /(?:query|mutation)\s+(\w+)/.exec(JSON.parse(request.postData()).query)[1];
    } catch {
      operation = null;
    }
    const authorization = request.headers().authorization;
    report.graphql.push({
      operation,
      status: response.status(),
      authorization: authorization === undefined ? 'none' : authorization === `Bearer ${token}` ? 'token' : 'other',
      codes: body && body.errors ? body.errors.map((e) => (e.extensions || {}).code || null) : [],
      cost: body && body.extensions ? body.extensions.cost : null,
    });
  });
}

async function axe(page) {
  // Through the debugging protocol, which the page's Content-Security-Policy does not cover.
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
}

async function visit(page, hash, view) {
  const started = Date.now();
  await page.goto(`${base}/${hash}`);
  await page.waitForSelector(`main[data-drawn="${view}"]`, { timeout: TIMEOUT });
  return {
    ms: Date.now() - started,
    h1: (await page.locator('h1').first().textContent()).trim(),
    measure: await page.evaluate((name) => {
      const m = performance.getEntriesByName(name, 'measure').pop();
      return m ? m.duration : null;
    }, `explorer:${view}`),
  };
}

async function download(page, button) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout: TIMEOUT }), page.click(button)]);
  const path = join(artifactDir, file.suggestedFilename());
  await file.saveAs(path);
  return { name: file.suggestedFilename(), path };
}

const VIEWS = [
  ['home', '#/', 'home'],
  ['search', '#/search?q=order', 'search'],
  ['map', '#/map', 'map'],
  ['mapOwner', '#/map?measure=owner&domain=domain:commerce', 'map'],
  ['mapPii', '#/map?measure=pii', 'map'],
  ['mapLifecycle', '#/map?measure=lifecycle', 'map'],
  ['systems', '#/search?kind=SYSTEM', 'search'],
  ['journeys', '#/journeys', 'journeys'],
  ['journey', '#/journey/journey:buy-everyday-sneakers', 'journey'],
  ['capability', '#/node/capability:order-management.order-capture.change-order', 'node'],
  ['entity', '#/node/entity:customer', 'node'],
  ['system', '#/node/system:crm', 'node'],
  ['journeyNode', '#/node/journey:buy-everyday-sneakers', 'node'],
  ['step', '#/node/step:sneakers.advocate', 'node'],
  ['touchpoint', '#/node/touchpoint:review-site', 'node'],
  ['team', '#/node/team:sales-it', 'node'],
  ['domain', '#/node/domain:sales', 'node'],
  ['source', '#/node/source:crm-db', 'node'],
  ['graph', '#/graph/system:crm', 'graph'],
  ['register', '#/new/capability', 'register'],
  ['notFound', '#/node/system:does-not-exist', 'notfound'],
];
const SCREENSHOTS = { home: 'home', map: 'capability-map', journey: 'journey-board', entity: 'node-page', graph: 'graph' };

async function open(browser) {
  for (const [label, viewport] of [['wide', WIDE], ['narrow', NARROW]]) {
    const page = await browser.newPage({ viewport, acceptDownloads: true });
    watch(page);
    for (const [name, hash, view] of VIEWS) {
      const seen = await visit(page, hash, view);
      if (label === 'wide') {
        seen.violations = await axe(page);
        report.views[name] = seen;
      } else {
        seen.violations = await axe(page);
        seen.scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
        report.views[`${name}Narrow`] = seen;
      }
      if (shotDir && SCREENSHOTS[name]) {
        if (name === 'graph') await page.waitForTimeout(200);
        await page.screenshot({ path: join(shotDir, `${SCREENSHOTS[name]}-${label === 'wide' ? 1280 : 390}.png`), fullPage: name !== 'entity' && name !== 'map' });
      }
    }
    await page.close();
  }
  {
    // Then, at 1280 px, what a user does (the screenshots above show the demo as loaded).
    const page = await browser.newPage({ viewport: WIDE, acceptDownloads: true });
    watch(page);

    // Type-ahead: "chan" suggests Change Order; arrow down and Enter open its page.
    await visit(page, '#/', 'home');
    await page.locator('#home-search').pressSequentially('chan', { delay: 40 });
    await page.waitForSelector('#home-search-list li[role="option"][data-id]', { timeout: TIMEOUT });
    report.search = {
      suggestions: await page.locator('#home-search-list li[data-id]').evaluateAll((els) => els.map((e) => e.dataset.id)),
      expanded: await page.getAttribute('#home-search', 'aria-expanded'),
    };
    const index = report.search.suggestions.indexOf('capability:order-management.order-capture.change-order');
    for (let i = 0; i <= index; i += 1) await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Enter');
    await page.waitForSelector('main[data-drawn="node"]', { timeout: TIMEOUT });
    report.search.opened = { hash: await page.evaluate(() => location.hash), h1: (await page.locator('h1').textContent()).trim() };

    // The journey board: every gap mark, the column (step) and row it sits in, its reason.
    await visit(page, '#/journey/journey:buy-everyday-sneakers', 'journey');
    report.journey = {
      coverage: (await page.locator('#journey-coverage').textContent()).trim(),
      columns: await page.locator('#journey-board thead th[data-step]').evaluateAll((els) => els.map((e) => e.dataset.step)),
      uncovered: await page.locator('#journey-board thead th.uncovered').evaluateAll((els) => els.map((e) => e.dataset.step)),
      marks: await page.locator('#journey-board [data-gap]').evaluateAll((els) => els.map((e) => {
        const cell = e.closest('td');
        return { node: e.dataset.gap, step: cell.dataset.step, row: cell.dataset.row, reason: [...e.querySelectorAll('.gap-reason')].map((r) => r.textContent) };
      })),
    };
    const board = await download(page, 'text=Download SVG');
    report.journey.svg = { name: board.name, text: readFileSync(board.path, 'utf8').slice(0, 200000) };

    // The map: export it, then click a capability box to open its page.
    await visit(page, '#/map', 'map');
    const svg = await download(page, 'text=Download SVG');
    const png = await download(page, 'text=Download PNG');
    report.map = {
      boxes: await page.locator('#capmap [data-id]').count(),
      gapBoxes: await page.locator('#capmap a.cap-l3', { hasText: 'no provider: gap' }).evaluateAll((els) => els.map((e) => e.dataset.id)),
      svg: { name: svg.name, text: readFileSync(svg.path, 'utf8').slice(0, 400000) },
      png: { name: png.name, magic: readFileSync(png.path).subarray(0, 8).toString('hex'), bytes: readFileSync(png.path).length },
    };
    await page.click('#capmap a[data-id="capability:order-management.order-capture.change-order"]');
    await page.waitForSelector('main[data-drawn="node"]', { timeout: TIMEOUT });
    report.map.clicked = { hash: await page.evaluate(() => location.hash), h1: (await page.locator('h1').textContent()).trim() };
    // By keyboard: a box is a link, Enter opens it.
    await visit(page, '#/map', 'map');
    await page.focus('#capmap a[data-id="capability:payment.payment-processing.refund-payment"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('main[data-drawn="node"]', { timeout: TIMEOUT });
    report.map.keyboard = (await page.locator('h1').textContent()).trim();
    report.map.pii = await (async () => {
      await visit(page, '#/map?measure=pii', 'map');
      return page.locator('#capmap a.cap-l3', { hasText: 'touches PII' }).evaluateAll((els) => els.map((e) => e.dataset.id));
    })();
    // The capability filter by domain goes through the URL.
    await page.goto(`${base}/#/map`);
    await page.waitForSelector('main[data-drawn="map"]');
    await page.selectOption('#map-domain', 'domain:service');
    await page.waitForFunction(() => location.hash.includes('domain=domain%3Aservice') && document.querySelector('main').dataset.drawn === 'map', null, { timeout: TIMEOUT });
    report.map.serviceBoxes = await page.locator('#capmap [data-id]').evaluateAll((els) => els.map((e) => e.dataset.id));

    // Editing: a field through the form, then errors shown beside the fields they name.
    await visit(page, '#/node/capability:order-management.order-capture.change-order', 'node');
    await page.click('#edit-open');
    await page.fill('#edit-description', 'Edited through the explorer');
    await page.fill('#edit-tags', 'explorer, edited');
    await page.click('#edit-form button[type="submit"]');
    await page.waitForSelector('.message-ok', { timeout: TIMEOUT });
    report.edit = { saved: (await page.locator('.message-ok').textContent()).trim() };
    // The history shows the change as a before/after diff, newest first.
    const latest = page.locator('.timeline > li').first();
    report.edit.history = {
      operation: (await latest.locator('strong').first().textContent()).trim(),
      rows: await latest.locator('tbody tr').evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent))),
    };
    await page.click('#relate-open');
    await page.selectOption('#relate-type', 'MASTERS');
    await page.fill('#relate-other', 'entity:order');
    await page.click('#relate-form button[type="submit"]');
    await page.waitForSelector('#relate-type-error:not([hidden])', { timeout: TIMEOUT });
    report.edit.relateError = (await page.locator('#relate-type-error').textContent()).trim();
    report.edit.relateInvalid = await page.getAttribute('#relate-type', 'aria-invalid');
    await page.selectOption('#relate-type', 'READS');
    await page.click('#relate-form button[type="submit"]');
    await page.waitForSelector('.message-ok >> text=Added', { timeout: TIMEOUT });
    report.edit.related = (await page.locator('.message-ok').textContent()).trim();
    // Remove it again: the button asks to be pressed twice.
    const remove = page.getByRole('button', { name: 'Remove READS relation to Order' });
    await remove.click();
    await remove.click();
    await page.waitForSelector('.message-ok >> text=Removed', { timeout: TIMEOUT });
    report.edit.removed = (await page.locator('.message-ok').textContent()).trim();

    await visit(page, '#/new/capability', 'register');
    await page.fill('#register-key', 'Bad Key');
    await page.fill('#register-name', 'Split order');
    await page.click('form button[type="submit"]');
    await page.waitForSelector('#register-key-error:not([hidden])', { timeout: TIMEOUT });
    report.register = { keyError: (await page.locator('#register-key-error').textContent()).trim() };
    await page.fill('#register-key', 'order-management.order-capture.split-order');
    await page.fill('#register-parent', 'capability:order-management.order-capture');
    await page.fill('#register-providedBy', 'system:erp');
    await page.click('form button[type="submit"]');
    await page.waitForSelector('main[data-drawn="node"]', { timeout: TIMEOUT });
    report.register.opened = await page.evaluate(() => location.hash);

    // Impact, and the graph: expand a node, highlight a path.
    await visit(page, '#/node/system:crm', 'node');
    await page.click('#impact-button');
    await page.waitForSelector('#impact-answer h3', { timeout: TIMEOUT });
    report.impact = (await page.locator('#impact-answer').textContent()).trim().slice(0, 2000);
    await visit(page, '#/graph/system:crm?to=touchpoint:review-site', 'graph');
    await page.waitForSelector('#path-status .message', { timeout: TIMEOUT });
    report.graph = {
      before: await page.locator('#graph-nodes li').count(),
      path: (await page.locator('#path-status').textContent()).trim(),
      onPath: await page.locator('#graph-nodes li.on-path').evaluateAll((els) => els.map((e) => e.dataset.id)),
      canvases: await page.locator('#graph-canvas canvas').count(),
    };
    await page.getByRole('button', { name: 'Expand Customer', exact: true }).click();
    await page.waitForFunction((n) => document.querySelectorAll('#graph-nodes li').length > n, report.graph.before, { timeout: TIMEOUT });
    report.graph.after = await page.locator('#graph-nodes li').count();

    // An API error (a system is no root of the map): the message, and the page still works.
    await page.goto(`${base}/#/map?domain=system:crm`);
    await page.waitForSelector('main[data-drawn="error"]', { timeout: TIMEOUT });
    report.apiError = { text: (await page.locator('main').textContent()).trim() };
    await page.click('nav >> text=Journeys');
    await page.waitForSelector('main[data-drawn="journeys"]', { timeout: TIMEOUT });
    report.apiError.recovered = true;
    await page.close();
  }
}

async function auth(browser) {
  const page = await browser.newPage({ viewport: WIDE });
  watch(page);
  await page.goto(`${base}/#/map`);
  await page.waitForSelector('main[data-drawn="signin"]', { timeout: TIMEOUT });
  report.before = { text: (await page.locator('main').textContent()).trim(), violations: await axe(page), focused: await page.evaluate(() => document.activeElement.id) };
  await page.screenshot({ path: join(artifactDir, 'sign-in-1280.png') });
  await page.fill('#token', 'capahub_not-a-real-token');
  await page.click('main button[type="submit"]');
  await page.waitForSelector('main[data-drawn="signin"] .message', { timeout: TIMEOUT });
  await page.waitForFunction(() => document.querySelector('main').textContent.includes('refused'), null, { timeout: TIMEOUT });
  report.refused = { text: (await page.locator('main').textContent()).trim() };
  await page.fill('#token', token);
  await page.click('main button[type="submit"]');
  await page.waitForSelector('main[data-drawn="map"]', { timeout: TIMEOUT });
  report.after = {
    boxes: await page.locator('#capmap [data-id]').count(),
    session: (await page.locator('#session').textContent()).trim(),
    inSession: await page.evaluate((t) => Object.keys(sessionStorage).filter((k) => sessionStorage.getItem(k) === t), token),
    inLocal: await page.evaluate((t) => Object.keys(localStorage).filter((k) => localStorage.getItem(k) === t), token),
    url: page.url(),
  };
  // A viewer may read but not write: the API's refusal is shown on the form.
  await page.goto(`${base}/#/new/capability`);
  await page.waitForSelector('main[data-drawn="register"]', { timeout: TIMEOUT });
  await page.fill('#register-key', 'viewer-try');
  await page.fill('#register-name', 'Viewer try');
  await page.click('form button[type="submit"]');
  await page.waitForSelector('.form-message .message', { timeout: TIMEOUT });
  report.forbidden = (await page.locator('.form-message').textContent()).trim();
  await page.click('#session button');
  await page.evaluate(() => { location.hash = '#/map'; });
  await page.waitForSelector('main[data-drawn="signin"]', { timeout: TIMEOUT });
  report.signedOut = await page.evaluate(() => sessionStorage.length);
  await page.close();
}

// "budget" (a hub whose cost budget is small): the map and the home page in turns until the
// budget has refused some answers (HTTP 429); every view must still draw, its refused
// requests asked again after the Retry-After the hub named.
async function budget(browser) {
  const page = await browser.newPage({ viewport: WIDE });
  watch(page);
  report.visits = [];
  for (let round = 0; round < 8; round += 1) {
    for (const [hash, view] of [['#/map', 'map'], ['#/', 'home']]) {
      const seen = await visit(page, hash, view);
      report.visits.push({ view, ms: seen.ms, message: await page.locator('main .message').count() });
    }
    if (report.graphql.some((r) => r.status === 429) && round >= 2) break;
  }
  await page.close();
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  if (mode === 'open') await open(browser);
  else if (mode === 'budget') await budget(browser);
  else await auth(browser);
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(scrub(report)));
