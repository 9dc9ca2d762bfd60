import { run } from './cli.js';

// The only place that touches the process: everything below takes its dependencies.
const code = await run(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
});
process.exitCode = code;
