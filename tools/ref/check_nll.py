"""Mean next-token NLL of a token-id file under the float32 reference, to cross-check `r1 perplexity` by hand.

  /usr/bin/python3 tools/ref/check_nll.py <hf_checkpoint_dir> <ids.txt>
  -> {"nll": <mean natural-log NLL over the T-1 predictions>, "tokens": <T-1>, "ppl": exp(nll)}

ids.txt: whitespace-separated token ids (any number of lines). One full causal forward over all T ids at
positions 0..T-1 (naive MLA, §3.2); the MTP layer is ignored. Intended for the tiny fixtures and small models:
everything is dequantized to float32 in memory.
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_v3 as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("ids_file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, W = ref.load_model(args.model_dir)
    ids = ref.read_ids(args.ids_file)
    if len(ids) < 2:
        sys.exit("check_nll: need at least 2 token ids")
    if len(ids) > cfg.max_position_embeddings:
        print(f"check_nll: warning: {len(ids)} ids > max_position_embeddings {cfg.max_position_embeddings}",
              file=sys.stderr)
    with torch.no_grad():
        nll = ref.nll(ref.forward_naive(cfg, W, ids), ids)
    print(json.dumps({"nll": float("%.9g" % nll), "tokens": len(ids) - 1, "ppl": float("%.9g" % math.exp(nll))}))


if __name__ == "__main__":
    main()
