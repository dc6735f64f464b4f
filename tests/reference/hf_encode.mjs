// Reference ids for mds's HFTokenizer: the Hugging Face JavaScript implementation
// (@huggingface/tokenizers, pinned by scripts/prepare_data.sh) on a local tokenizer.json.
//   node hf_encode.mjs DATA_DIR TOKENIZER_DIR < in.jsonl > ids.jsonl
// TOKENIZER_DIR holds tokenizer.json and tokenizer_config.json. One JSON id array per input line
// ({"text": ...}), from encode(text) with its defaults (special tokens added by the
// post-processor, as Megatron-DeepSpeed's _HFTokenizer.tokenize does).
import fs from 'fs';
import path from 'path';
import readline from 'readline';
import { createRequire } from 'module';

const [dataDir, tokDir] = process.argv.slice(2);
const require = createRequire(path.resolve(dataDir, 'node_modules', 'x.js'));
const { Tokenizer } = require('@huggingface/tokenizers');
const json = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer.json'), 'utf8'));
const config = JSON.parse(fs.readFileSync(path.join(tokDir, 'tokenizer_config.json'), 'utf8'));
const tok = new Tokenizer(json, config);
const out = [];
for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line.trim().length === 0) continue;
  out.push(JSON.stringify(tok.encode(JSON.parse(line).text).ids));
}
process.stdout.write(out.length ? out.join('\n') + '\n' : '');
