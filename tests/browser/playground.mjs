// Drives the hub's GraphiQL playground in headless Debian chromium and reports what happened.
//
//   node tests/browser/playground.mjs URL [ARTIFACT_DIR]
//
// URL is the hub's /graphql page. Prints one JSON object on stdout (tests/browser/
// test_playground.py asserts on it): the example tabs, the result of a query typed into the
// editor, every request the page made (split into on-machine and off-machine ones), and
// what the page says when a bundle fails to load.
// Off-machine requests are recorded and then aborted, so nothing actually leaves; a probe at
// the end proves that the recorder sees such a request. On a failure a screenshot goes to
// ARTIFACT_DIR.
import { chromium } from 'playwright-core';

const [url, artifactDir] = process.argv.slice(2);
const QUERY = 'query FirstSystems { systems(first: 3) { totalCount edges { node { id } } } }';
const TIMEOUT = 30_000;
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

function isLocal(address) {
  const parsed = new URL(address);
  if (['data:', 'blob:', 'about:'].includes(parsed.protocol)) return true;
  return LOCAL_HOSTS.has(parsed.hostname);
}

const report = {
  tabs: [],
  result: null,
  localRequests: [],
  offMachineRequests: [],
  probeSeen: false,
  pageErrors: [],
  consoleErrors: [],
  error: null,
};
let phase = 'test';

function record(address) {
  if (isLocal(address)) report.localRequests.push(address);
  else if (phase === 'probe') report.probeSeen = true;
  else report.offMachineRequests.push(address);
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
const context = await browser.newContext();
let page;
try {
  context.on('request', (request) => record(request.url()));
  // Belt and braces: whatever the recorder saw, an off-machine request never goes out.
  await context.route('**/*', (route) =>
    isLocal(route.request().url()) ? route.continue() : route.abort('blockedbyclient'),
  );
  page = await context.newPage();
  page.on('websocket', (socket) => record(socket.url()));
  page.on('pageerror', (error) => report.pageErrors.push(String(error)));
  page.on('console', (message) => {
    if (phase === 'test' && message.type() === 'error') report.consoleErrors.push(message.text());
  });

  await page.goto(url, { waitUntil: 'load', timeout: TIMEOUT });
  const editor = page.locator('.graphiql-query-editor .CodeMirror');
  await editor.waitFor({ state: 'visible', timeout: TIMEOUT });
  report.tabs = await page.locator('.graphiql-tab').allInnerTexts();

  // Type the query as a user would: focus the editor, select everything, enter new text.
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText(QUERY);
  // GraphiQL reads the operation name from the editor after a short debounce; running
  // before that would send the replaced example's name. The tab title shows it is done.
  await page
    .locator('.graphiql-tab-active')
    .filter({ hasText: 'FirstSystems' })
    .waitFor({ timeout: TIMEOUT });
  await page.locator('.graphiql-execute-button').click();

  const response = page.locator('.graphiql-response .CodeMirror');
  await page.waitForFunction(
    () => {
      const cm = document.querySelector('.graphiql-response .CodeMirror');
      return cm && cm.CodeMirror && cm.CodeMirror.getValue().includes('"data"');
    },
    null,
    { timeout: TIMEOUT },
  );
  report.editorText = await editor.evaluate((el) => el.CodeMirror.getValue());
  report.result = await response.evaluate((el) => el.CodeMirror.getValue());
  report.resultShown = await response.innerText();
  // With access control off, every answer is accepted: the access notice never shows.
  report.authNoticeVisible = await page.locator('#capahub-auth-notice').isVisible();

  // The recorder must see an off-machine request, or its silence above proves nothing.
  phase = 'probe';
  await page.evaluate(() => fetch('https://unpkg.com/capahub-probe').catch(() => null));
  await page.waitForTimeout(200);

  // A bundle that fails to load (deleted, or failing its integrity check) must leave a
  // message that says what to do, not an endless "Loading...".
  phase = 'guard';
  const broken = await context.newPage();
  await broken.route('**/graphiql.min.js', (route) => route.abort());
  await broken.goto(url, { waitUntil: 'load', timeout: TIMEOUT });
  report.brokenPageText = await broken.locator('#graphiql').innerText();
  await broken.close();
} catch (error) {
  report.error = String(error && error.stack ? error.stack : error);
  if (artifactDir && page) {
    await page.screenshot({ path: `${artifactDir}/playground-failure.png`, fullPage: true });
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
