// The explorer's shell: a hash router (#/view/arg?params: shareable URLs that work behind any
// path prefix), the sign-in prompt, the not-found page and the "drawn" performance marks.

import { ApiError, AuthError, clearToken, setToken, token } from './api.js';
import { h, message } from './dom.js';
import { searchBox } from './searchbox.js';

const ROUTES = [
  { pattern: /^\/?$/, view: 'home', module: './home.js' },
  { pattern: /^\/search$/, view: 'search', module: './home.js', exported: 'renderSearch' },
  { pattern: /^\/map$/, view: 'map', module: './map.js' },
  { pattern: /^\/journeys$/, view: 'journeys', module: './journey.js', exported: 'renderList' },
  { pattern: /^\/journey\/(.+)$/, view: 'journey', module: './journey.js' },
  { pattern: /^\/node\/(.+)$/, view: 'node', module: './node.js' },
  { pattern: /^\/graph(?:\/(.+))?$/, view: 'graph', module: './graph.js' },
  { pattern: /^\/new\/capability$/, view: 'register', module: './edit.js', exported: 'renderRegister' },
];

const main = document.getElementById('main');
let generation = 0;
let cleanup = null;
let startedAt = 0; // the first view counts from navigation start, later ones from hashchange

export function parseHash(hash = location.hash) {
  const text = hash.startsWith('#') ? hash.slice(1) : hash;
  const [path, search = ''] = text.split('?', 2);
  return { path: path || '/', params: new URLSearchParams(search) };
}

export function go(path, params = null) {
  const search = params && [...params].length ? `?${params}` : '';
  location.hash = `#${path}${search}`;
}

/** Replace the URL's parameters without drawing the view again (its state is in the URL). */
export function remember(path, params) {
  const search = [...params].length ? `?${params}` : '';
  history.replaceState(null, '', `#${path}${search}`);
}

/** A view calls this when it has drawn what it came for: tests and the bench wait for it. */
export function drawn(view) {
  const start = startedAt;
  // After the next paint: a frame's callback runs before its layout, a task queued from it
  // after the frame is on the screen. The measure so counts layout and painting too.
  requestAnimationFrame(() => setTimeout(() => {
    const mark = `explorer:${view}:drawn`;
    performance.mark(mark);
    performance.measure(`explorer:${view}`, { start, end: mark });
    main.dataset.drawn = view;
  }, 0));
}

function renderSession() {
  const box = document.getElementById('session');
  if (!token()) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(
    h('span', { class: 'signed-in' }, 'Token in use'),
    h('button', {
      type: 'button',
      class: 'link-button',
      onclick: () => {
        clearToken();
        renderSession();
        route();
      },
    }, 'Sign out'),
  );
}

function signIn(error) {
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    required: true,
    'aria-describedby': 'token-help',
  });
  const reason = error.hadToken
    ? `The hub refused the token: ${error.message}`
    : 'This hub needs a token to answer.';
  const form = h(
    'form',
    {
      class: 'panel signin',
      onsubmit: (event) => {
        event.preventDefault();
        if (!input.value.trim()) return;
        setToken(input.value.trim());
        renderSession();
        route();
      },
    },
    h('h1', {}, 'Sign in'),
    message(reason),
    h('label', { for: 'token' }, 'Token'),
    input,
    h('p', { id: 'token-help', class: 'help' },
      'Paste a hub token or a JWT. It is kept in this tab only (sessionStorage) and sent only in the header ',
      h('code', {}, 'Authorization: Bearer <token>'),
      '. An admin makes one with ', h('code', {}, 'capahub token create --name NAME --role viewer'), '.'),
    h('button', { type: 'submit' }, 'Sign in'),
  );
  main.replaceChildren(form);
  main.dataset.drawn = 'signin';
  input.focus();
}

export function notFound(what) {
  const box = searchBox({
    onPick: (node) => go(`/node/${encodeURIComponent(node.id)}`),
    onSubmit: (text) => go('/search', new URLSearchParams({ q: text })),
  });
  main.replaceChildren(
    h('div', { class: 'panel not-found' },
      h('h1', {}, 'Not found'),
      h('p', {}, what),
      box,
      h('p', {}, h('a', { href: '#/' }, 'Back to the start page'))),
  );
  drawn('notfound');
}

async function route() {
  generation += 1;
  const mine = generation;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a view's cleanup must not stop the next one */
    }
    cleanup = null;
  }
  const { path, params } = parseHash();
  const found = ROUTES.map((r) => [r, path.match(r.pattern)]).find(([, m]) => m);
  document.querySelectorAll('[data-nav]').forEach((a) => a.removeAttribute('aria-current'));
  if (!found) {
    notFound(`The explorer has no page at ${path}.`);
    return;
  }
  const [spec, match] = found;
  const nav = document.querySelector(`[data-nav="${spec.view === 'journey' ? 'journeys' : spec.view}"]`);
  if (nav) nav.setAttribute('aria-current', 'page');
  delete main.dataset.drawn;
  main.setAttribute('aria-busy', 'true');
  const arg = match[1] ? decodeURIComponent(match[1]) : null;
  const ctx = {
    arg,
    params,
    path,
    stale: () => mine !== generation,
    drawn: () => mine === generation && drawn(spec.view),
    onCleanup: (fn) => {
      cleanup = fn;
    },
  };
  try {
    const module = await import(spec.module);
    if (ctx.stale()) return;
    await module[spec.exported || 'render'](main, ctx);
  } catch (error) {
    if (ctx.stale()) return;
    if (error instanceof AuthError) signIn(error);
    else if (error && error.code === 'NOT_FOUND' && arg) notFound(`There is no node ${arg} in the catalog.`);
    else {
      main.replaceChildren(
        h('div', { class: 'panel' }, h('h1', {}, 'Something went wrong'),
          message(error && error.message ? error.message : String(error)),
          h('p', {}, h('a', { href: '#/' }, 'Back to the start page'))),
      );
      main.dataset.drawn = 'error';
    }
  } finally {
    if (!ctx.stale()) main.removeAttribute('aria-busy');
  }
}

window.addEventListener('hashchange', (event) => {
  const { path } = parseHash(new URL(event.newURL).hash);
  startedAt = performance.now();
  route().then(() => {
    const heading = main.querySelector('h1');
    if (heading && path) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  });
  window.scrollTo(0, 0);
});

// A refusal after the view was drawn (a button's request): the sign-in prompt for a token
// the hub no longer takes, the API's message for anything else; never an uncaught error.
window.addEventListener('unhandledrejection', (event) => {
  const error = event.reason;
  if (error instanceof AuthError) {
    event.preventDefault();
    signIn(error);
  } else if (error instanceof ApiError) {
    event.preventDefault();
    let box = document.getElementById('notice');
    if (!box) {
      box = h('div', { id: 'notice', class: 'notice', role: 'alert' });
      document.body.append(box);
    }
    box.replaceChildren(message(error.message), h('button', { type: 'button', class: 'secondary', onclick: () => box.remove() }, 'Dismiss'));
  }
});

document.querySelector('.skip-link').addEventListener('click', (event) => {
  event.preventDefault(); // a hash would be read as a route
  main.focus();
});

renderSession();
route();
