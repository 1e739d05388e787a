// `node dist/data/main.js pack|synth|check ...`: the data commands without the full longctx CLI.
import { runDataCommand } from './commands.js';

process.exitCode = await runDataCommand(process.argv.slice(2));
