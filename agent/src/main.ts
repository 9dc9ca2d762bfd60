import { run } from './cli.js';

// The SDK's multi-line notice about dropping Node 20 would come before the agent's one stderr
// line on every run under Node 20 (which the engines field allows); the SDK's own switch turns
// it off unless the operator set it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// The only place that touches the process: everything below takes its dependencies.
// No top-level await: the bundle runs as a classic script, so V8 can cache its compiled code.
run(process.argv.slice(2), {
  env: process.env,
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
}).then((code) => {
  process.exitCode = code;
});
