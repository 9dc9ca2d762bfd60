import { run } from './cli.js';

// The only place that touches the process: everything below takes its dependencies.
// No top-level await: the bundle runs as a classic script, so V8 can cache its compiled code.
run(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
}).then((code) => {
  process.exitCode = code;
});
