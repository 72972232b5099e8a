"""A shared inference server with a scripted model, as ``tvoice models serve`` runs one:
``python shared_server.py --port 0 --state-file F --exit-when-unused S``."""

import argparse
from pathlib import Path

import trio

from tvoice.inference import InferenceServer, serve_shared
from tvoice.testing import Timeline

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--state-file", type=Path)
parser.add_argument("--exit-when-unused", type=float)
args = parser.parse_args()
tl = Timeline()
tl.llm(input="Hello.", content="Hi.", ttft=0.0, duration=0.0)
server = InferenceServer(llm=tl.fake_llm)
trio.run(
    lambda: serve_shared(
        server,
        state_file=args.state_file,
        port=args.port,
        exit_when_unused=args.exit_when_unused,
        check_interval=0.1,
    )
)
