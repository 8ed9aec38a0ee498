"""The explorer's third-party browser files, pinned to exact npm versions and hashes.

``scripts/fetch-assets`` downloads each package's tarball from the npm registry, takes out the
file, checks it against ``integrity`` (sha384, as a browser's subresource integrity) and writes
it beside the playground's files in ``catalog/static/vendor/<package>@<version>/<path>``
(git-ignored). The page names the same hashes in its import map, so the browser checks them
again when it loads a file.
"""

from __future__ import annotations

from catalog.playground import VENDOR_DIR, VendorAsset


def _asset(package: str, version: str, path: str, integrity: str) -> VendorAsset:
    return VendorAsset(f"npm:{package}@{version}/{path}", package, version, path, integrity)


#: import-map specifier -> the file it names. cytoscape-dagre's ES module bundles dagre itself.
EXPLORER_ASSETS: dict[str, VendorAsset] = {
    "cytoscape": _asset(
        "cytoscape",
        "3.34.4",
        "dist/cytoscape.esm.min.mjs",
        "sha384-RT1zWzNb2SFJBBj1R0Wdiq5w3ow3Z9EjSXxNIwECHjZ8KmTsPKcMiYkmVardbQc6",
    ),
    "cytoscape-dagre": _asset(
        "cytoscape-dagre",
        "4.0.1",
        "dist/cytoscape-dagre.min.mjs",
        "sha384-v0ADgFimLP8/lqTF7vuTx1lLXE2wzTLwRrPxWOioMuhz20ljTKRQzUZWRrzky6lv",
    ),
}


def missing_explorer_assets() -> list[VendorAsset]:
    """The explorer's vendored files not (yet) present under the vendor directory."""
    return [a for a in EXPLORER_ASSETS.values() if not (VENDOR_DIR / a.relpath).is_file()]


__all__ = ["EXPLORER_ASSETS", "missing_explorer_assets"]
