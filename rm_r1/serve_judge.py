"""``python -m rm_r1.serve_judge --model PATH``: serve a judge model on an OpenAI-compatible chat endpoint for CPU
smoke runs and tests of the judge-as-reward loop (the server is ``harness.chat_server``)."""

import sys

from harness.chat_server import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m rm_r1.serve_judge"))
