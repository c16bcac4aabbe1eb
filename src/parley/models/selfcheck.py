"""``python -m parley.models.selfcheck``: does the offline model run on this machine? It loads the bundled
GGUF and generates a few tokens; exit 0 if it did. Run it in a process of its own: a llama.cpp build this
CPU cannot run dies with a signal rather than an exception (``make install`` then builds it again)."""

from __future__ import annotations

import sys

from parley.models.local import _load, bundled_model_path


def main() -> int:
    """Generate a few tokens with the bundled model; 0 when it worked."""
    # The loader Parley runs the model with, so that what is checked is what runs.
    llm = _load(bundled_model_path(), n_ctx=256, threads=1)
    out = llm.create_chat_completion(
        messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    text = out["choices"][0]["message"]["content"]
    print(f"parley: the local model runs here ({text!r})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
