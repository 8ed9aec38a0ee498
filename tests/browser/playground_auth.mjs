// Drives the playground of a hub with access control on, in headless Debian chromium.
//
//   CAPAHUB_PLAYGROUND_TOKEN=... node tests/browser/playground_auth.mjs URL ARTIFACT_DIR
//
// URL is the hub's /graphql page; the token (a viewer hub token) comes in the environment,
// never on the command line. The driver runs a query without a token, then pastes
// {"Authorization": "Bearer <token>"} into GraphiQL's header editor as a user would and runs
// it again, taking a screenshot of each state into ARTIFACT_DIR. It prints one JSON object
// (tests/browser/test_playground_auth.py asserts on it) that never contains the token: each
// GraphQL request says only whether it carried no Authorization header, this token, or
// something else.
import { chromium } from 'playwright-core';

const [url, artifactDir] = process.argv.slice(2);
const token = process.env.CAPAHUB_PLAYGROUND_TOKEN;
const QUERY = 'query CrmSystem { node(id: "system:crm") { id name } }';
const TIMEOUT = 15_000;
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const NOTICE = '#capahub-auth-notice';
const HEADERS_TAB = '.graphiql-editor-tools button[data-name="headers"]';
const VARIABLES_TAB = '.graphiql-editor-tools button[data-name="variables"]';
// The variables and headers editors look alike; the section's label names the one showing.
const HEADER_EDITOR =
  'section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror';

function isLocal(address) {
  const parsed = new URL(address);
  if (['data:', 'blob:', 'about:'].includes(parsed.protocol)) return true;
  return LOCAL_HOSTS.has(parsed.hostname);
}

const report = {
  localRequests: [],
  offMachineRequests: [],
  graphqlRequests: [],
  pageErrors: [],
  consoleErrors: [],
  error: null,
};
const sent = new Map();

function describe(request) {
  let operationName = null;
  try {
    operationName = JSON.parse(request.postData() || '{}').operationName || null;
  } catch {
    operationName = null;
  }
  const authorization = request.headers()['authorization'];
  return {
    url: request.url(),
    operationName,
    authorization:
      authorization === undefined ? 'none' : authorization === `Bearer ${token}` ? 'token' : 'other',
    status: null,
  };
}

function responseText(page) {
  return page
    .locator('.graphiql-response .CodeMirror')
    .evaluate((el) => el.CodeMirror.getValue());
}

function waitForResult(page, needle) {
  return page.waitForFunction(
    (text) => {
      const cm = document.querySelector('.graphiql-response .CodeMirror');
      return cm && cm.CodeMirror && cm.CodeMirror.getValue().includes(text);
    },
    needle,
    { timeout: TIMEOUT },
  );
}

function introspected(page, authorization) {
  return page.waitForResponse(
    (response) => {
      if (response.request().method() !== 'POST') return false;
      const sent = describe(response.request());
      return sent.operationName === 'IntrospectionQuery' && sent.authorization === authorization;
    },
    { timeout: TIMEOUT },
  );
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
// A new context is a fresh profile: no headers or tabs kept from an earlier run.
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
let page;
try {
  if (!token) throw new Error('CAPAHUB_PLAYGROUND_TOKEN is not set');
  context.on('request', (request) => {
    const address = request.url();
    (isLocal(address) ? report.localRequests : report.offMachineRequests).push(address);
    if (request.method() === 'POST' && new URL(address).pathname.endsWith('/graphql')) {
      const entry = describe(request);
      sent.set(request, entry);
      report.graphqlRequests.push(entry);
    }
  });
  context.on('response', (response) => {
    const entry = sent.get(response.request());
    if (entry) entry.status = response.status();
  });
  await context.route('**/*', (route) =>
    isLocal(route.request().url()) ? route.continue() : route.abort('blockedbyclient'),
  );
  page = await context.newPage();
  page.on('websocket', (socket) => report.offMachineRequests.push(`websocket ${socket.url()}`));
  page.on('pageerror', (error) => report.pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') report.consoleErrors.push(message.text());
  });
  const notice = page.locator(NOTICE);

  // On load GraphiQL asks for the schema without a token: the hub refuses, the notice shows.
  const loadIntrospection = introspected(page, 'none');
  await page.goto(url, { waitUntil: 'load', timeout: TIMEOUT });
  const editor = page.locator('.graphiql-query-editor .CodeMirror');
  await editor.waitFor({ state: 'visible', timeout: TIMEOUT });
  await loadIntrospection;
  await notice.waitFor({ state: 'visible', timeout: TIMEOUT });
  report.noticeAfterLoad = await notice.isVisible();

  // A query without a token.
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(QUERY);
  await page
    .locator('.graphiql-tab-active')
    .filter({ hasText: 'CrmSystem' })
    .waitFor({ timeout: TIMEOUT });
  await page.locator('.graphiql-execute-button').click();
  await waitForResult(page, 'UNAUTHENTICATED');
  report.before = {
    result: await responseText(page),
    noticeVisible: await notice.isVisible(),
    noticeText: await notice.innerText(),
  };
  await page.screenshot({ path: `${artifactDir}/playground-auth-unauthenticated.png` });

  // The notice's button opens the header editor and puts the cursor in it.
  await page.locator('#capahub-open-headers').click();
  await page.locator(HEADER_EDITOR).waitFor({ state: 'visible', timeout: TIMEOUT });
  report.openHeadersFocusesEditor = await page.evaluate(
    (selector) => document.querySelector(selector).contains(document.activeElement),
    HEADER_EDITOR,
  );
  // Back to Variables, then the user's own way: GraphiQL's "Headers" tab, click, paste.
  await page.locator(VARIABLES_TAB).click();
  await page.locator(HEADER_EDITOR).waitFor({ state: 'hidden', timeout: TIMEOUT });
  await page.locator(HEADERS_TAB).click();
  const headerEditor = page.locator(HEADER_EDITOR);
  await headerEditor.waitFor({ state: 'visible', timeout: TIMEOUT });
  await headerEditor.click();
  // insertText is a paste: typing key by key would let the editor auto-close the braces.
  // First a token the hub does not know: the notice says it was refused, and why.
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText('{"Authorization": "Bearer not-a-hub-token"}');
  await page.locator('.graphiql-execute-button').click();
  await notice.filter({ hasText: 'refused' }).waitFor({ timeout: TIMEOUT });
  report.refused = { noticeVisible: await notice.isVisible(), noticeText: await notice.innerText() };
  await headerEditor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(`{"Authorization": "Bearer ${token}"}`);
  report.headerEditorHoldsToken = await headerEditor.evaluate(
    (el, expected) => el.CodeMirror.getValue() === expected,
    `{"Authorization": "Bearer ${token}"}`,
  );

  // The same query with the token; after it the page re-reads the schema with the token.
  const tokenIntrospection = introspected(page, 'token');
  await page.locator('.graphiql-execute-button').click();
  await waitForResult(page, '"data"');
  report.schemaRefetchStatus = (await tokenIntrospection).status();
  await notice.waitFor({ state: 'hidden', timeout: TIMEOUT });
  report.after = {
    result: await responseText(page),
    resultShown: await page.locator('.graphiql-response .CodeMirror').innerText(),
    noticeVisible: await notice.isVisible(),
  };
  // With the schema loaded, the Docs explorer shows its root types.
  await page.locator('button[aria-label="Show Documentation Explorer"]').click();
  await page
    .locator('.graphiql-doc-explorer-content')
    .getByText('Root Types')
    .waitFor({ timeout: TIMEOUT });
  report.docsShowRootTypes = true;
  // The header editor holds the token: the screenshot paints a box over it.
  await page.screenshot({
    path: `${artifactDir}/playground-auth-authenticated.png`,
    mask: [page.locator(HEADER_EDITOR)],
  });
  report.pageUrl = page.url();
  // GraphiQL keeps the header editor in localStorage (strawberry's shouldPersistHeaders),
  // half a second after the last edit; docs/playground.md tells users so.
  report.headersKeptInLocalStorage = await page
    .waitForFunction(
      (expected) =>
        Object.keys(localStorage).some((k) => localStorage.getItem(k).includes(expected)),
      token,
      { timeout: 5_000 },
    )
    .then(() => true, () => false);
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
  if (artifactDir && page) {
    await page.screenshot({ path: `${artifactDir}/playground-auth-failure.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
// The token must appear nowhere in what the test sees, even if a request put it in a URL.
const out = JSON.stringify(report, null, 2);
process.stdout.write((token ? out.split(token).join('<TOKEN>') : out) + '\n');
