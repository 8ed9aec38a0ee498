// Composes capahub and the reviews subgraph into a supergraph and serves it through @apollo/gateway.
//   node tests/federation/gateway.mjs CAPAHUB_URL REVIEWS_URL OUT_DIR [PORT]
// Reads each subgraph's `_service { sdl }` (what `rover subgraph introspect` reads), composes them
// with @apollo/composition, writes OUT_DIR/composition.json ({errors, hints}) and, when it
// composes, OUT_DIR/supergraph.graphql; exits 3 on composition errors, else serves the supergraph.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { composeServices } from '@apollo/composition';
import { ApolloGateway, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { parse } from 'graphql';

import { announce, portArgument, serve } from './serve.mjs';

const [capahubUrl, reviewsUrl, outDir, port] = process.argv.slice(2);
if (!capahubUrl || !reviewsUrl || !outDir) {
  console.error('usage: node gateway.mjs CAPAHUB_URL REVIEWS_URL OUT_DIR [PORT]');
  process.exit(2);
}

/** A subgraph's SDL, as a gateway or `rover subgraph introspect` fetches it. */
async function fetchSubgraphSdl(name, url) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query: '{ _service { sdl } }' }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = await response.json();
  if (!response.ok || body.errors || !body.data?._service?.sdl) {
    throw new Error(`${name} (${url}) answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.data._service.sdl;
}

const subgraphs = [
  { name: 'capahub', url: capahubUrl },
  { name: 'reviews', url: reviewsUrl },
];
for (const subgraph of subgraphs) {
  subgraph.sdl = await fetchSubgraphSdl(subgraph.name, subgraph.url);
  writeFileSync(join(outDir, `${subgraph.name}.graphql`), subgraph.sdl);
}

const composition = composeServices(
  subgraphs.map(({ name, url, sdl }) => ({ name, url, typeDefs: parse(sdl) })),
);
const report = {
  errors: (composition.errors ?? []).map((e) => ({
    code: e.extensions?.code ?? null,
    message: e.message,
  })),
  hints: (composition.hints ?? []).map((h) => ({ code: h.definition.code, message: h.message })),
};
writeFileSync(join(outDir, 'composition.json'), `${JSON.stringify(report, null, 2)}\n`);
announce('composed', { errors: report.errors.length, hints: report.hints.length });
if (report.errors.length > 0) {
  for (const error of report.errors) console.error(`[${error.code}] ${error.message}`);
  process.exit(3);
}
writeFileSync(join(outDir, 'supergraph.graphql'), composition.supergraphSdl);

const gateway = new ApolloGateway({
  supergraphSdl: composition.supergraphSdl,
  buildService: ({ url }) => new RemoteGraphQLDataSource({ url }),
});
const server = new ApolloServer({ gateway, stopOnTerminationSignals: false });
await serve(server, portArgument(port));
