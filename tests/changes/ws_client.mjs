// The reference client (npm graphql-ws) against a running hub: subscribes to catalogChanged and
// prints one JSON line per message: {"connected":true}, {"event":...}, {"error":...}, {"closed":code}.
// Usage: node --experimental-websocket ws_client.mjs URL COUNT [VARIABLES_JSON] [TOKEN]
import { createClient } from "graphql-ws";

const [url, countText, variablesText, token] = process.argv.slice(2);
const count = Number(countText);
const variables = variablesText ? JSON.parse(variablesText) : {};
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: false,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : undefined,
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => print({ closed: event.code, reason: event.reason }),
  },
});

const query = `subscription($kinds: [Kind!], $ids: [ID!], $types: [RelationType!], $after: Int) {
  catalogChanged(kinds: $kinds, ids: $ids, types: $types, after: $after) {
    version operation target targetId kind relationType actor at truncated before after
  }
}`;

let seen = 0;
const done = (code) => {
  client.dispose();
  setTimeout(() => process.exit(code), 50);
};
client.subscribe(
  { query, variables },
  {
    next: (message) => {
      print({ event: message.data?.catalogChanged ?? null, errors: message.errors ?? null });
      seen += 1;
      if (seen >= count) done(0);
    },
    error: (error) => {
      const shown = Array.isArray(error)
        ? error
        : { message: String(error?.reason ?? error?.message ?? error), code: error?.code };
      print({ error: shown });
      done(1);
    },
    complete: () => done(0),
  },
);
setTimeout(() => {
  print({ timeout: true });
  done(2);
}, 30000);
