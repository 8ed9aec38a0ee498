"""The GraphiQL playground, served from the hub itself: no CDN, so it works air-gapped.

Strawberry's GraphiQL page loads its bundles from unpkg.com. ``scripts/fetch-assets``
copies those exact files (checked against the page's ``integrity`` hashes) into
``catalog/static/vendor/<package>@<version>/<path>``; this module rewrites the page to
load them from ``/playground/vendor/...`` and serves them there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from html import escape as html_escape
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger("capahub.playground")

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
"""Where ``scripts/fetch-assets`` puts the playground's third-party files (git-ignored)."""

CDN = "https://unpkg.com/"
# Relative on purpose: the page lives at .../graphql, so this resolves to
# .../playground/vendor/ even when a proxy mounts the hub under a path prefix.
VENDOR_URL = "playground/vendor/"
FETCH_COMMAND = ".venv/bin/python scripts/fetch-assets"

_TAG = re.compile(r"""<(?:script|link)\b(?:[^>"']|"[^"]*"|'[^']*')*>""")
_URL_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["'](https://unpkg\.com/[^"']+)["']""")
_INTEGRITY_ATTR = re.compile(r"""\bintegrity\s*=\s*["']([^"']+)["']""")
_UNPKG_PATH = re.compile(r"^((?:@[^/@]+/)?[^/@]+)@([^/]+)/(.+)$")
# Fixed rather than guessed: mimetypes reads the host's /etc/mime.types, which varies.
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".map": "application/json"}
_SRI_ALGORITHMS = ("sha512", "sha384", "sha256")  # strongest first, as browsers pick

EXAMPLE_TABS: list[dict[str, str]] = [
    {
        "query": """\
# capahub playground: Ctrl-Enter (or the run button) runs
# the operation. More examples are in the tabs above; Docs
# and Explorer, on the left, show the schema.
#
# With access control on (CAPAHUB_AUTH=on), open "Headers"
# below and paste {"Authorization": "Bearer <token>"};
# `capahub token create` makes a hub token.
#
# Capabilities, the systems providing them, the data they read:
query DiscoverCapabilities {
  capabilities(first: 10) {
    totalCount
    edges {
      node {
        id
        name
        providers { id name }
        reads { id name }
      }
    }
  }
}
""",
    },
    {
        "query": """\
# Any catalog node by id (<kind>:<key>); the fragments ask
# for the fields of its type.
query LookUpNode($id: ID!) {
  node(id: $id) {
    id
    kind
    name
    ... on System {
      provides { id name }
      masters { id name }
      dependsOn { id name }
    }
    ... on Capability {
      providers { id name }
      children { id name }
    }
  }
}
""",
        "variables": '{\n  "id": "system:crm"\n}\n',
    },
    {
        "query": """\
# Register a capability, its parent and its providers in one
# transaction. The key must be new: running this twice answers
# CONFLICT, so change the key to try again.
mutation RegisterCapability {
  registerCapability(input: {
    key: "order-management.order-capture.split-order"
    name: "Split order"
    parent: "capability:order-management.order-capture"
    providedBy: ["system:erp"]
  }) {
    id
    name
    parent { id }
    providers { id }
  }
}
""",
    },
    {
        "query": """\
# What changed on a node, newest first.
query NodeHistory($id: ID!) {
  history(id: $id, first: 5) {
    id
    operation
    at
    after
  }
}
""",
        "variables": '{\n  "id": "system:crm"\n}\n',
    },
]
"""The operations the playground opens with (one tab each) on a first visit."""

# Checks, before strawberry's own script runs, that every vendored bundle loaded and
# passed its integrity check; otherwise the page would sit on "Loading..." forever.
_BOOT_SCRIPT = """<script>
      const CAPAHUB_TABS = %(tabs)s;
      function capahubTabs(parameters) {
        // A shared link (?q=...) opens first, before the examples.
        return parameters.q
          ? [{ query: parameters.q, variables: parameters.variables }].concat(CAPAHUB_TABS)
          : CAPAHUB_TABS;
      }
      (function () {
        const needed = ["React", "ReactDOM", "Cookies", "GraphiQL", "GraphiQLPluginExplorer"];
        const missing = needed.filter(function (name) { return !(name in window); });
        if (missing.length) {
          document.getElementById("graphiql").textContent =
            "The playground's scripts did not load (" + missing.join(", ") + "). " +
            "On the hub's host, run %(command)s in the capahub checkout, then reload. " +
            "The GraphQL API at this address works without them.";
        }
      })();
    </script>
    """

# With access control on, the page itself needs no token but every query does; the
# user pastes one into GraphiQL's header editor. The page's fetcher gets a fetch that
# looks at each answer: UNAUTHENTICATED shows the notice, anything else (the token was
# accepted, or auth is off) hides it. It reads the headers' names only and stores nothing.
_AUTH_STYLE = """
      /* The access notice sits above GraphiQL, which takes the rest of the window. */
      body {
        display: flex;
        flex-direction: column;
        height: 100vh;
      }

      #graphiql {
        flex: 1;
        min-height: 0;
        height: auto;
      }

      #capahub-auth-notice {
        display: flex;
        align-items: center;
        gap: 16px;
        padding: 8px 16px;
        background: #fff4ce;
        border-bottom: 2px solid #d9a400;
        color: #3b2c00;
        font: 14px/1.45 system-ui, sans-serif;
      }

      #capahub-auth-notice[hidden] {
        display: none;
      }

      #capahub-auth-notice p {
        flex: 1;
        margin: 0;
      }

      #capahub-auth-notice button {
        padding: 4px 12px;
        border: 1px solid #b08600;
        border-radius: 4px;
        background: #fff;
        color: inherit;
        font: inherit;
        cursor: pointer;
      }

      #capahub-auth-notice code {
        background: rgba(0, 0, 0, 0.06);
        padding: 0 3px;
        border-radius: 3px;
        white-space: nowrap;
      }
    """

_AUTH_NOTICE = """<div id="capahub-auth-notice" role="alert" hidden>
      <p>
        <strong id="capahub-auth-reason">This hub needs a token.</strong>
        Open <em>Headers</em> below the query editor, paste
        <code>{"Authorization": "Bearer &lt;token&gt;"}</code> and run the query again.
        An admin of the hub makes a token with
        <code>capahub token create --name NAME --role viewer</code>.
      </p>
      <button type="button" id="capahub-open-headers">Open Headers</button>
    </div>
    <script>
      const capahubAuthFetch = (function () {
        const notice = document.getElementById("capahub-auth-notice");
        const reason = document.getElementById("capahub-auth-reason");
        const INTROSPECTION = "IntrospectionQuery";
        let schemaRefused = false;

        function operationOf(init) {
          try {
            return JSON.parse(init.body).operationName || null;
          } catch (error) {
            return null;
          }
        }

        function unauthenticated(body) {
          return Boolean(body && Array.isArray(body.errors) && body.errors.some(function (e) {
            return e && e.extensions && e.extensions.code === "UNAUTHENTICATED";
          }));
        }

        function show(sentToken, body) {
          const first = body && Array.isArray(body.errors) ? body.errors[0] : null;
          const message = first && typeof first.message === "string" ? first.message : "";
          reason.textContent = sentToken
            ? "The hub refused the Authorization header" + (message ? ": " + message : ".")
            : "This hub needs a token.";
          notice.hidden = false;
        }

        // GraphiQL reads the schema once, on load, so with auth on Docs and autocompletion
        // stay empty after the token is added. Its sidebar button "Re-fetch GraphQL schema"
        // (GraphiQL 3.8) reads it again with the headers now in the editor.
        function refetchSchema() {
          const button = document.querySelector('button[aria-label="Re-fetch GraphQL schema"]');
          if (button && !button.disabled) button.click();
        }

        async function inspect(status, copy, init) {
          const operation = operationOf(init);
          let body = null;
          if (copy) {
            try {
              body = await copy.json();
            } catch (error) {
              body = null;
            }
          }
          if (status === 401 || unauthenticated(body)) {
            if (operation === INTROSPECTION) schemaRefused = true;
            show(new Headers(init && init.headers).has("authorization"), body);
            return;
          }
          notice.hidden = true;
          if (operation === INTROSPECTION) {
            schemaRefused = false;
          } else if (schemaRefused) {
            schemaRefused = false;
            setTimeout(refetchSchema, 0);
          }
        }

        document.getElementById("capahub-open-headers").addEventListener("click", function () {
          const tab = document.querySelector('.graphiql-editor-tools [data-name="headers"]');
          if (tab) tab.click();
          setTimeout(function () {
            const editor = document.querySelector(
              'section[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror',
            );
            if (editor && editor.CodeMirror) editor.CodeMirror.focus();
          }, 0);
        });

        return function (input, init) {
          return window.fetch(input, init).then(function (response) {
            // A multipart answer (@defer) streams; only a JSON body is read, from a copy.
            const type = response.headers.get("content-type") || "";
            const copy = type.indexOf("json") >= 0 ? response.clone() : null;
            inspect(response.status, copy, init).catch(function () {});
            return response;
          });
        };
      })();
    </script>
    """

_MISSING_PAGE = """<!doctype html>
<html>
  <head><meta charset="utf-8"><title>capahub playground: assets missing</title></head>
  <body style="font-family: sans-serif; max-width: 48em; margin: 3em auto; line-height: 1.5">
    <h1>The playground's assets are not installed</h1>
    <p>This hub serves GraphiQL from its own files, never from a CDN, and %(reason)s</p>
    <ul>%(items)s</ul>
    <p>To install them, run <code>%(command)s</code> in the capahub checkout on the hub's
    host (it downloads them once from the npm registry or its mirror and checks each
    file's hash), then reload this page.</p>
    <p>The GraphQL API itself works: POST queries to this address.</p>
  </body>
</html>
"""


class PlaygroundAssetError(Exception):
    """Strawberry's page refers to a CDN file in a way the hub cannot vendor."""


@dataclass(frozen=True)
class VendorAsset:
    """One third-party file the playground page loads, as pinned by strawberry's page."""

    url: str
    package: str
    version: str
    path: str
    integrity: str

    @property
    def relpath(self) -> str:
        """Its path under the vendor directory and the vendor route."""
        return f"{self.package}@{self.version}/{self.path}"


def vendor_assets(html: str) -> list[VendorAsset]:
    """Every unpkg file a GraphiQL page loads, with its integrity hash.

    Raises:
        PlaygroundAssetError: a CDN URL lacks an integrity hash or a pinned version.
    """
    assets: dict[str, VendorAsset] = {}
    for tag in _TAG.findall(html):
        url_match = _URL_ATTR.search(tag)
        if url_match is None:
            continue
        url = url_match.group(1)
        integrity = _INTEGRITY_ATTR.search(tag)
        if integrity is None:
            raise PlaygroundAssetError(f"{url} has no integrity hash; refusing to vendor it")
        parts = _UNPKG_PATH.match(url.removeprefix(CDN))
        if parts is None or not re.fullmatch(r"\d+\.\d+\.\d+(?:[-+][\w.-]+)?", parts.group(2)):
            raise PlaygroundAssetError(f"{url} does not name an exact package version and file")
        package, version, path = parts.groups()
        assets[url] = VendorAsset(url, package, version, path, integrity.group(1))
    unlisted = set(re.findall(r"https://unpkg\.com/[^\"'\s)]+", html)) - set(assets)
    if unlisted:
        raise PlaygroundAssetError(f"{sorted(unlisted)[0]} is not a script or stylesheet tag")
    return list(assets.values())


def integrity_of(data: bytes, algorithm: str = "sha384") -> str:
    """The subresource-integrity value (``sha384-<base64>``) of some bytes."""
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def integrity_matches(data: bytes, integrity: str) -> bool:
    """Whether bytes match an ``integrity`` attribute, judged as a browser does (strongest hash)."""
    hashes = [h.split("?", 1)[0] for h in integrity.split()]
    for algorithm in _SRI_ALGORITHMS:
        expected = [h for h in hashes if h.startswith(f"{algorithm}-")]
        if expected:
            return integrity_of(data, algorithm) in expected
    return False


def missing_assets(html: str, vendor_dir: Path = VENDOR_DIR) -> list[VendorAsset]:
    """The page's vendored files not (yet) present under ``vendor_dir``."""
    return [a for a in vendor_assets(html) if not (vendor_dir / a.relpath).is_file()]


#: The playground page's title (strawberry's reads "Strawberry GraphiQL").
TITLE = "capahub - GraphQL playground"


def playground_html(default_html: str, vendor_dir: Path = VENDOR_DIR) -> str:
    """The playground page served on a browser GET of /graphql.

    Strawberry's GraphiQL page with every CDN URL pointing at the hub's vendor route
    (the integrity attributes stay: the files are byte-identical), the example
    operations preloaded as tabs, and a notice (``#capahub-auth-notice``) that shows
    while the hub answers UNAUTHENTICATED and says how to add a token in the header
    editor. When the vendored files are missing, a page that says how to install them.
    """
    try:
        missing = missing_assets(default_html, vendor_dir)
    except PlaygroundAssetError as exc:
        log.error("cannot serve the playground offline: %s", exc)
        reason = f"strawberry's page cannot be vendored: {html_escape(str(exc))}"
        return _MISSING_PAGE % {"reason": reason, "items": "", "command": FETCH_COMMAND}
    if missing:
        reason = "these files are missing from its <code>catalog/static/vendor</code>:"
        items = "".join(f"<li><code>{html_escape(a.relpath)}</code></li>" for a in missing)
        return _MISSING_PAGE % {"reason": reason, "items": items, "command": FETCH_COMMAND}
    html = default_html.replace(CDN, VENDOR_URL)
    html = _edited(
        html, [("<title>Strawberry GraphiQL</title>", f"<title>{TITLE}</title>")], "title"
    )
    # In this order: the notice adds a second bare <script>, which _with_examples anchors on.
    return _with_auth_notice(_with_examples(html))


def _with_examples(html: str) -> str:
    tabs = json.dumps(EXAMPLE_TABS, indent=2).replace("</", "<\\/")
    boot = _BOOT_SCRIPT % {"tabs": tabs, "command": FETCH_COMMAND}
    edits = [
        # The page's own script is its only bare <script>; ours runs just before it.
        ("<script>", boot + "<script>"),
        # The page keeps the editor in step with this value: it must be the first example,
        # or it would overwrite that tab with strawberry's welcome text.
        ("parameters.q || EXAMPLE_QUERY", "parameters.q || CAPAHUB_TABS[0].query"),
        (
            "React.createElement(GraphiQL, {",
            "React.createElement(GraphiQL, {\n          defaultTabs: capahubTabs(parameters),",
        ),
    ]
    return _edited(html, edits, "examples")


def _with_auth_notice(html: str) -> str:
    edits = [
        ("</style>", _AUTH_STYLE + "</style>"),
        ('<div id="graphiql"', _AUTH_NOTICE + '<div id="graphiql"'),
        ("GraphiQL.createFetcher({", "GraphiQL.createFetcher({\n        fetch: capahubAuthFetch,"),
    ]
    return _edited(html, edits, "its access notice")


def _edited(html: str, edits: list[tuple[str, str]], what: str) -> str:
    if any(html.count(anchor) != 1 for anchor, _ in edits):
        log.warning("strawberry's GraphiQL page changed shape; serving it without %s", what)
        return html
    for anchor, replacement in edits:
        html = html.replace(anchor, replacement)
    return html


def playground_routes(vendor_dir: Path = VENDOR_DIR) -> list[BaseRoute]:
    """Routes serving the playground's vendored files under ``/playground/vendor/``."""
    root = vendor_dir.resolve()

    async def vendor_file(request: Request) -> Response:
        relpath = request.path_params["path"]
        file = (root / relpath).resolve()
        if not file.is_relative_to(root) or not file.is_file():
            return PlainTextResponse(
                f"{relpath} is not among the playground's files; on the hub's host, run "
                f"{FETCH_COMMAND} in the capahub checkout.",
                status_code=404,
            )
        # Each path names an exact package version, so its bytes never change.
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        }
        return FileResponse(file, headers=headers, media_type=_MEDIA_TYPES.get(file.suffix))

    return [Route("/playground/vendor/{path:path}", vendor_file, methods=["GET", "HEAD"])]


__all__ = [
    "EXAMPLE_TABS",
    "VENDOR_DIR",
    "PlaygroundAssetError",
    "VendorAsset",
    "integrity_matches",
    "integrity_of",
    "missing_assets",
    "playground_html",
    "playground_routes",
    "vendor_assets",
]
