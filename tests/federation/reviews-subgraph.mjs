// A second, made-up federation subgraph: people's reviews of capahub's business capabilities.
// It extends capahub's `Capability` entity (key `id`) with `reviews` and `averageRating`, and
// has one root field of its own that returns capabilities the gateway completes from capahub.
//   node tests/federation/reviews-subgraph.mjs [PORT]
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';

import { portArgument, serve } from './serve.mjs';

const typeDefs = parse(`
  extend schema
    @link(url: "https://specs.apollo.dev/federation/v2.11", import: ["@key"])

  # capahub's entity, known here by its key only; capahub owns its description and other fields.
  type Capability @key(fields: "id") {
    id: ID!
    reviews: [Review!]!
    "Mean of the reviews' stars; null when there are none."
    averageRating: Float
  }

  type Review {
    id: ID!
    stars: Int!
    author: String!
    comment: String!
  }

  type Query {
    "Capabilities that have at least one review, by id."
    reviewedCapabilities: [Capability!]!
  }
`);

// Keyed by ids of the demo landscape (`capahub serve --demo`).
const REVIEWS = {
  'capability:campaign-management.campaign-execution.run-paid-social': [
    { id: 'r1', stars: 3, author: 'marketing-ops', comment: 'Works, but audiences sync nightly.' },
  ],
  'capability:campaign-management.campaign-execution.send-email': [
    { id: 'r2', stars: 5, author: 'crm-team', comment: 'Reliable and fast.' },
    { id: 'r3', stars: 4, author: 'marketing-ops', comment: 'Templates could be easier.' },
  ],
  'capability:order-management.order-capture.change-order': [
    { id: 'r4', stars: 2, author: 'customer-service', comment: 'Only before the order ships.' },
    { id: 'r5', stars: 4, author: 'webshop-team', comment: 'Self-service saves calls.' },
  ],
};

function averageRating(id) {
  const reviews = REVIEWS[id] ?? [];
  if (reviews.length === 0) return null;
  return reviews.reduce((sum, r) => sum + r.stars, 0) / reviews.length;
}

const resolvers = {
  Query: {
    reviewedCapabilities: () => Object.keys(REVIEWS).sort().map((id) => ({ id })),
  },
  Capability: {
    __resolveReference: ({ id }) => ({ id }),
    reviews: ({ id }) => REVIEWS[id] ?? [],
    averageRating: ({ id }) => averageRating(id),
  },
};

const server = new ApolloServer({
  schema: buildSubgraphSchema([{ typeDefs, resolvers }]),
  // Traces are for Apollo's usage reporting, which this test does not use.
  plugins: [ApolloServerPluginInlineTraceDisabled()],
  stopOnTerminationSignals: false,
});
await serve(server, portArgument(process.argv[2]));
