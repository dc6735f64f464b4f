// Reference GPT-2 BPE encoder: the npm package gpt-3-encoder (its encode), installed by
// scripts/prepare_data.sh into DATA_DIR/node_modules.
//
//   node tests/reference/gpt2_encode.js DATA_DIR [KEY] < input.jsonl > ids.jsonl
//
// Reads JSONL on stdin; for every non-blank line prints one line: a JSON array of the token ids of
// the object's KEY field (default "text"), without an end-of-document token. Blank lines are skipped
// (as `mds preprocess` skips them). Input is decoded as UTF-8 (invalid bytes become U+FFFD).
// A line that is not a JSON object with a string KEY is an error (exit 1, naming the line).
'use strict';
const path = require('path');
const readline = require('readline');

const [dataDir, key = 'text'] = process.argv.slice(2);
if (!dataDir) {
  console.error('usage: node gpt2_encode.js DATA_DIR [KEY] < input.jsonl > ids.jsonl');
  process.exit(2);
}
let encoder;
try {
  encoder = require(path.resolve(dataDir, 'node_modules', 'gpt-3-encoder'));
} catch (e) {
  console.error(`gpt2_encode.js: cannot load gpt-3-encoder from ${dataDir}/node_modules ` +
                `(run scripts/prepare_data.sh ${dataDir}): ${e.message}`);
  process.exit(2);
}

const out = [];
let lineNo = 0;
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  lineNo++;
  if (line.trim().length === 0) return;
  let obj;
  try {
    obj = JSON.parse(line);
  } catch (e) {
    console.error(`gpt2_encode.js: line ${lineNo}: not JSON: ${e.message}`);
    process.exit(1);
  }
  if (obj === null || typeof obj !== 'object' || typeof obj[key] !== 'string') {
    console.error(`gpt2_encode.js: line ${lineNo}: no string field "${key}"`);
    process.exit(1);
  }
  out.push(JSON.stringify(encoder.encode(obj[key])));
  if (out.length >= 64) process.stdout.write(out.splice(0).join('\n') + '\n');
});
rl.on('close', () => {
  if (out.length) process.stdout.write(out.join('\n') + '\n');
});
