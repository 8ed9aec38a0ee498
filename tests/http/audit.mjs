// Runs graphql-http's GraphQL-over-HTTP server audits against a URL and prints the results as JSON.
//   node tests/http/audit.mjs http://127.0.0.1:8000/graphql
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs URL');
  process.exit(2);
}

const results = [];
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.httpStatus = result.response.status;
    entry.contentType = result.response.headers.get('content-type');
    try {
      entry.body = (await result.response.text()).slice(0, 500);
    } catch {
      entry.body = null; // the audit already read the body
    }
  }
  results.push(entry);
}
console.log(JSON.stringify(results, null, 2));
