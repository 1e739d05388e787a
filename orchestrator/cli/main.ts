#!/usr/bin/env node
// The `longctx` executable (package.json "bin"): runs the CLI with this process's streams and
// environment. Ctrl-C or SIGTERM aborts the running command's signal, so `server`, `watch` and
// `logs -f` stop cleanly; a second Ctrl-C exits at once.
import { runCli } from './cli.js';
import { ExitCode } from './exit-codes.js';

const controller = new AbortController();
const onSignal = () => {
  if (controller.signal.aborted) process.exit(ExitCode.INTERRUPTED);
  controller.abort();
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// A closed terminal (SIGHUP) stops the server cleanly too, instead of killing it outright.
process.on('SIGHUP', onSignal);

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  signal: controller.signal,
});
// stdout and stderr are synchronous for files and pipes on Linux: nothing written is lost here.
process.exit(code);
