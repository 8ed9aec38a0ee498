// Shared by the federation test's Node servers: listen on 127.0.0.1, announce the URL as a JSON
// line on stdout (the pytest side waits for it), stop cleanly on SIGTERM/SIGINT, and exit when
// the process that started us is gone, so that an interrupted test run leaves no server behind.
import { startStandaloneServer } from '@apollo/server/standalone';

/** Print one JSON event line; the Python test reads these from the captured output. */
export function announce(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** Start an ApolloServer on 127.0.0.1:port (0: any free port) and keep it until told to stop. */
export async function serve(server, port) {
  const { url } = await startStandaloneServer(server, {
    listen: { host: '127.0.0.1', port },
  });
  const parent = process.ppid;
  const orphanWatch = setInterval(() => {
    if (process.ppid !== parent) stop('orphaned');
  }, 1000);
  let stopping = false;
  async function stop(reason) {
    if (stopping) return;
    stopping = true;
    clearInterval(orphanWatch);
    await server.stop();
    announce('stopped', { reason });
    process.exit(0);
  }
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  announce('listening', { url });
  return url;
}

/** The port argument: a number, 0 (the default) for any free port. */
export function portArgument(value) {
  const port = Number(value ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`not a port: ${value}`);
    process.exit(2);
  }
  return port;
}
