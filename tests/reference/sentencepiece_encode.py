#!/usr/bin/python3
"""Reference ids for mds's SentencePiece tokenizers: Debian's python3-sentencepiece on a .model,
wrapped as Megatron-DeepSpeed's megatron/tokenizer/tokenizer.py wraps it.

  /usr/bin/python3 sentencepiece_encode.py MODEL {llama2|megatron} < in.jsonl > ids.jsonl

One JSON id array per input line ({"text": ...}). Also prints nothing else, so the output can be
compared line by line. The "megatron" flavor is _SentencePieceTokenizer (special tokens appended
after the model's pieces and recognised in the text); "llama2" is _Llama2Tokenizer (bos prepended).
"""
import json
import sys

import sentencepiece as spm


def megatron_specials(sp):
    vocab = {sp.id_to_piece(i): i for i in range(len(sp))}
    specials = {}

    def add(t):
        if t not in vocab:
            vocab[t] = len(vocab)
        specials[t] = vocab[t]

    for t in ("<CLS>", "<SEP>", "<EOD>", "<MASK>"):
        add(t)
    for get, fallback in ((sp.pad_id, "<PAD>"), (sp.bos_id, "<BOS>"), (sp.eos_id, "<EOS>")):
        try:
            add(sp.id_to_piece(get()))
        except IndexError:
            add(fallback)
    return specials


def megatron_tokenize(sp, specials, text):  # _SentencePieceTokenizer.tokenize, verbatim logic
    ids = []
    idx = 0
    while 1:
        indices = {}
        for token in specials:
            try:
                indices[token] = text[idx:].index(token)
            except ValueError:
                continue
        if len(indices) == 0:
            break
        next_token = min(indices, key=indices.get)
        next_idx = idx + indices[next_token]
        ids.extend(sp.encode_as_ids(text[idx:next_idx]))
        ids.append(specials[next_token])
        idx = next_idx + len(next_token)
    ids.extend(sp.encode_as_ids(text[idx:]))
    return ids


def main():
    model, flavor = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=model)
    specials = megatron_specials(sp)
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        text = json.loads(line)["text"]
        if flavor == "llama2":
            ids = [sp.bos_id()] + sp.encode(text)
        else:
            ids = megatron_tokenize(sp, specials, text)
        out.write(json.dumps(ids, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
