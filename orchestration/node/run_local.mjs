// Run the pipeline's state machine in aws-local-stepfunctions, a real ASL interpreter, with every Task state
// overridden by a local command. Driven by orchestration/local_run.py; usage: node run_local.mjs CONFIG.json
//
// CONFIG: {
//   "definition_path": "orchestration/state_machine.asl.json",
//   "substitutions": {"Name": "value", ...},          // fills ${Name}, as CloudFormation's DefinitionSubstitutions do
//   "input": {...}, "context": {...},                 // execution input and Context Object
//   "retry_interval_ms": 0,                           // Retry pauses, shortened for tests
//   "start_time": "2024-05-06T07:08:09.000Z",         // the execution's start ($$.Execution.StartTime)
//   "cwd": "/repo",
//   "tasks": {"StateName": {"argv": [...], "env": {...}, "transient_exit_codes": [75], "transient_error": "Glue.X"}}
// }
//
// A task's command gets the state's effective input (after InputPath and Parameters) as JSON on stdin and in
// SFN_TASK_INPUT. It prints its result as JSON on the last line of stdout. A non-zero exit fails the state:
// with a code in transient_exit_codes as `transient_error` (what AWS raises for capacity or throttling, which
// the definition retries), otherwise as States.TaskFailed with the exit code and the end of stderr as the
// cause (what a failed Glue job run or a container's non-zero exit becomes on AWS).
//
// Prints one JSON object on stdout: {status, output, error, cause, events}. Exit 0 when the execution ran
// (whatever its outcome), 1 when it could not be run.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';

const STDERR_TAIL = 4000;

function substitute(text, substitutions) {
  const missing = new Set();
  const out = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (match, name) => {
    if (!(name in substitutions)) {
      missing.add(name);
      return match;
    }
    // The value lands inside a JSON string: escape it as one.
    return JSON.stringify(String(substitutions[name])).slice(1, -1);
  });
  if (missing.size) {
    throw new Error(`no substitution for ${[...missing].sort().join(', ')}`);
  }
  return out;
}

function taskError(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

function lastJsonLine(stdout) {
  const lines = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!lines.length) return {};
  try {
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    return { stdout: lines.slice(-5).join('\n') };
  }
}

function runTask(stateName, task, input, base) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(input);
    const env = {
      ...process.env,
      ...base.env,
      ...(task.env || {}),
      SFN_STATE_NAME: stateName,
      SFN_TASK_INPUT: payload,
    };
    const child = spawn(task.argv[0], task.argv.slice(1), { cwd: base.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
      process.stderr.write(chunk);
    });
    child.on('error', (err) => reject(taskError('States.TaskFailed', `could not start ${task.argv[0]}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) {
        resolve(lastJsonLine(stdout));
        return;
      }
      const cause = JSON.stringify({
        state: stateName,
        exit_code: code,
        signal,
        stderr: stderr.slice(-STDERR_TAIL),
      });
      const transient = (task.transient_exit_codes || []).includes(code);
      reject(taskError(transient ? task.transient_error : 'States.TaskFailed', cause));
    });
    child.stdin.on('error', () => {}); // a command that ignores its input may close stdin early
    child.stdin.end(payload);
  });
}

function summarise(event) {
  const out = { type: event.type, timestamp: event.timestamp };
  if (event.state) out.state = event.state.name;
  if (event.Error !== undefined) out.error = event.Error;
  if (event.Cause !== undefined) out.cause = event.Cause;
  if (event.retry) out.attempt = event.retry.attempt;
  if (event.type === 'StateExited' && event.state) out.output = event.state.output;
  return out;
}

// local-sfn stamps $$.Execution.StartTime with `new Date()` and offers no override: give this process a clock
// that reads the requested start time, so that defaults derived from it are testable. Timers are unaffected.
function freezeClock(iso) {
  const fixed = Date.parse(iso);
  if (Number.isNaN(fixed)) throw new Error(`start_time ${iso} is not an ISO timestamp`);
  const RealDate = Date;
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      super(...(args.length ? args : [fixed]));
    }

    static now() {
      return fixed;
    }
  };
}

async function main() {
  const configPath = process.argv[2];
  if (!configPath) throw new Error('usage: node run_local.mjs CONFIG.json');
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  if (config.start_time) freezeClock(config.start_time);
  const definition = JSON.parse(substitute(readFileSync(config.definition_path, 'utf8'), config.substitutions || {}));

  const tasks = config.tasks || {};
  const taskStates = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task').map(([n]) => n);
  const notOverridden = taskStates.filter((name) => !(name in tasks));
  if (notOverridden.length) {
    // Without an override local-sfn would call AWS Lambda: never from a test.
    throw new Error(`no local command for Task state(s) ${notOverridden.join(', ')}`);
  }
  const base = { cwd: config.cwd || process.cwd(), env: config.env || {} };
  const handlers = {};
  for (const name of taskStates) {
    handlers[name] = (input) => runTask(name, tasks[name], input, base);
  }
  const retryOverrides = {};
  if (config.retry_interval_ms !== undefined && config.retry_interval_ms !== null) {
    for (const [name, state] of Object.entries(definition.States)) {
      if (state.Retry) retryOverrides[name] = config.retry_interval_ms;
    }
  }

  const machine = new StateMachine(definition, { validationOptions: { checkPaths: true, checkArn: true } });
  const execution = machine.run(config.input ?? {}, {
    overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides: retryOverrides },
    context: config.context,
  });
  const events = [];
  const collecting = (async () => {
    for await (const event of execution.eventLogs) events.push(summarise(event));
  })();

  const result = { status: 'SUCCEEDED', output: null, error: null, cause: null, events };
  try {
    result.output = await execution.result;
  } catch (err) {
    const inner = err.cause instanceof Error ? err.cause : err;
    result.status = 'FAILED';
    result.error = inner.name;
    result.cause = inner.message;
  }
  await collecting;
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  process.stderr.write(`run_local: ${err.message}\n`);
  process.exit(1);
});
