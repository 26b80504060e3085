#!/usr/bin/env node
// Checks an AI SDK "UI message stream" body (x-vercel-ai-ui-message-stream: v1) with the
// `ai` package's own machinery, as a useChat client would read it:
//
//   1. `parseJsonEventStream` + `uiMessageChunkSchema` (what DefaultChatTransport does with a
//      response body): every SSE `data:` event must be a valid UI message chunk;
//   2. `readUIMessageStream` (processUIMessageStream): the valid chunks are assembled into the
//      UIMessage; a chunk the reader cannot apply (a delta without its start, an output for an
//      unknown tool call, ...) is a processing error.
//
// Usage: node check_ui_stream.mjs [FILE ...]      (no FILE, or "-": read stdin)
//
// Prints one JSON object per input (a JSON array when there are several inputs) with: `ok`,
// the chunk count, `invalid` (chunks the schema rejects: index, raw data, the package's
// error), `processingErrors`, `errorChunks` (errorText of `error` chunks: protocol content,
// not failures), `done` (body ends with `data: [DONE]`), `terminal` (type of the last chunk),
// `summary` (text, reasoning, tools) and `message` (the assembled UIMessage).
// Exit status: 0 when every input is ok, 1 when one is not, 2 on a usage or I/O error.

import { readFile } from 'node:fs/promises';
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema, UIMessageStreamError } from 'ai';

function bytesStream(bytes) {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

// The zod issues that matter: for a union (the chunk schema), those of the member whose
// `type` matched the chunk (the field-level mismatch), else the union's own issue.
function relevantIssues(issues) {
  const out = [];
  for (const issue of issues) {
    if (issue.code === 'invalid_union' && Array.isArray(issue.errors)) {
      const member = issue.errors.find((errs) => !errs.some((e) => e.path?.length === 1 && e.path[0] === 'type'));
      if (member) {
        out.push(...relevantIssues(member));
        continue;
      }
      out.push({ code: issue.code, path: issue.path, message: 'no chunk type matches "type"' });
      continue;
    }
    const { code, path, message, expected, values } = issue;
    out.push({ code, path, message, ...(expected ? { expected } : {}), ...(values ? { values } : {}) });
  }
  return out;
}

function describeError(error) {
  if (error == null) return null;
  const out = { name: error.name ?? 'Error', message: String(error.message ?? error).split('\n')[0] };
  const cause = error.cause;
  if (cause && Array.isArray(cause.issues)) {
    out.issues = relevantIssues(cause.issues);
  } else if (cause) {
    out.cause = String(cause.message ?? cause);
  }
  return out;
}

function summarize(message) {
  const parts = message?.parts ?? [];
  const tools = [];
  for (const p of parts) {
    if (p.type === 'dynamic-tool' || p.type.startsWith('tool-')) {
      tools.push({
        toolCallId: p.toolCallId,
        toolName: p.type === 'dynamic-tool' ? p.toolName : p.type.slice('tool-'.length),
        state: p.state,
        input: p.input,
        ...(p.rawInput !== undefined ? { rawInput: p.rawInput } : {}),
        ...(p.output !== undefined ? { output: p.output } : {}),
        ...(p.errorText !== undefined ? { errorText: p.errorText } : {}),
      });
    }
  }
  const joined = (type) =>
    parts
      .filter((p) => p.type === type)
      .map((p) => p.text)
      .join('');
  return {
    text: joined('text'),
    reasoning: joined('reasoning'),
    textParts: parts.filter((p) => p.type === 'text').length,
    reasoningParts: parts.filter((p) => p.type === 'reasoning').length,
    openParts: parts.filter((p) => p.state === 'streaming').length,
    steps: parts.filter((p) => p.type === 'step-start').length,
    tools,
    dataParts: parts.filter((p) => p.type.startsWith('data-')).map((p) => p.type),
  };
}

async function checkBody(bytes, source) {
  const text = new TextDecoder().decode(bytes);
  const result = {
    source,
    ok: false,
    chunks: 0,
    invalid: [],
    processingErrors: [],
    errorChunks: [],
    done: /(^|\n)data: \[DONE\]\n\n$/.test(text),
    terminal: null,
    summary: null,
    message: null,
  };

  // 1. the package's SSE parser and chunk schema
  const valid = [];
  let index = 0;
  const parsed = parseJsonEventStream({ stream: bytesStream(bytes), schema: uiMessageChunkSchema });
  for await (const r of parsed) {
    if (r.success) {
      valid.push({ index, chunk: r.value });
    } else {
      result.invalid.push({ index, raw: r.rawValue, error: describeError(r.error) });
    }
    index += 1;
  }
  result.chunks = index;
  result.terminal = valid.length ? valid[valid.length - 1].chunk.type : null;

  // 2. the package's message assembly. The reader reports an `error` chunk through onError
  // as a plain Error carrying its errorText; a chunk it cannot apply as a UIMessageStreamError
  // (naming the chunk type and id), which also ends the stream.
  const pendingErrorTexts = valid.filter((v) => v.chunk.type === 'error').map((v) => v.chunk.errorText);
  const chunkStream = new ReadableStream({
    start(controller) {
      for (const v of valid) controller.enqueue(v.chunk);
      controller.close();
    },
  });
  const onError = (error) => {
    const i = pendingErrorTexts.indexOf(error?.message);
    if (!UIMessageStreamError.isInstance(error) && i >= 0) {
      result.errorChunks.push(pendingErrorTexts.splice(i, 1)[0]);
    } else {
      result.processingErrors.push({
        chunkType: error?.chunkType ?? null,
        chunkId: error?.chunkId ?? null,
        ...describeError(error),
      });
    }
  };
  let message = null;
  for await (const snapshot of readUIMessageStream({ stream: chunkStream, onError })) {
    message = snapshot;
  }
  result.message = message;
  result.summary = summarize(message);
  result.ok =
    result.invalid.length === 0 &&
    result.processingErrors.length === 0 &&
    result.done &&
    (result.terminal === 'finish' || result.terminal === 'abort');
  return result;
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return new Uint8Array(Buffer.concat(chunks));
}

async function main(argv) {
  const inputs = argv.length ? argv : ['-'];
  const results = [];
  for (const path of inputs) {
    let bytes;
    try {
      bytes = path === '-' ? await readStdin() : new Uint8Array(await readFile(path));
    } catch (error) {
      process.stderr.write(`check_ui_stream: cannot read ${path}: ${error.message}\n`);
      return 2;
    }
    results.push(await checkBody(bytes, path === '-' ? '<stdin>' : path));
  }
  process.stdout.write(JSON.stringify(results.length === 1 ? results[0] : results) + '\n');
  const bad = results.filter((r) => !r.ok);
  for (const r of bad) {
    const why = [
      r.invalid.length &&
        `${r.invalid.length} chunk(s) rejected by uiMessageChunkSchema (first: #${r.invalid[0].index} ` +
          `${JSON.stringify(r.invalid[0].raw)}: ${JSON.stringify(r.invalid[0].error?.issues ?? r.invalid[0].error)})`,
      r.processingErrors.length && `readUIMessageStream: ${r.processingErrors[0].message}`,
      !r.done && 'body does not end with "data: [DONE]"',
      !(r.terminal === 'finish' || r.terminal === 'abort') && `last chunk is ${r.terminal}, not finish/abort`,
    ].filter(Boolean);
    process.stderr.write(`check_ui_stream: ${r.source}: ${why.join('; ')}\n`);
  }
  return bad.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
