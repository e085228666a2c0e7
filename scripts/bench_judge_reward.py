"""Throughput of the judge-as-reward loop (``rm_r1.as_reward.reward.compute_score``) against a fake judge.

``python scripts/bench_judge_reward.py`` starts a built-in fake OpenAI-compatible judge in a child process (asyncio,
keep-alive, every request answered ``<answer>[[A]]</answer>`` after ``--delay`` seconds, 50 ms by default), then, for
each concurrency c of ``--concurrency`` (1, 16, 64), scores distinct policy replies the way verl's reward worker does
(every sample of a batch awaited concurrently in one event loop, ``both_orders: true`` so 2 judge calls per reply,
``concurrency: c`` requests in flight) and prints responses/s, the ideal c / (2 x delay) responses/s (every slot
always busy) and their ratio. The judge answers instantly apart from the delay, so the ratio is what the client costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

ANSWER = b'{"choices": [{"message": {"role": "assistant", "content": "<answer>[[A]]</answer>"}}]}'
CALLS_PER_RESPONSE = 2  # both_orders
SECONDS_PER_LEVEL = 3.0


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(ANSWER), ANSWER)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, delay), "127.0.0.1", 0, backlog=1024)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)
    async with server:
        await server.serve_forever()


def start_fake_judge(delay: float) -> tuple[subprocess.Popen, str]:
    """The fake judge in a child process (its own interpreter, so it does not share the client's GIL) and its URL."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--delay", str(delay)], stdout=subprocess.PIPE, text=True
    )
    return child, child.stdout.readline().strip()


async def _score_all(n: int, concurrency: int, base_url: str, tag: str) -> float:
    from rm_r1.as_reward import reward as jr

    kwargs = {"base_url": base_url, "model": "fake", "k": 1, "both_orders": True, "concurrency": concurrency}
    started = time.perf_counter()
    results = await asyncio.gather(
        *(
            jr.compute_score("bench", f"reply {tag} {i}", "reference", {"index": i, jr.CONTEXT_KEY: "Q?"}, **kwargs)
            for i in range(n)
        )
    )
    seconds = time.perf_counter() - started
    failed = sum(r["judge_failed"] for r in results)
    if failed:
        raise RuntimeError(f"{failed:.0f} judge calls failed against the fake judge")
    return n / seconds


def measure(concurrency: int, base_url: str, delay: float, seconds: float = SECONDS_PER_LEVEL) -> dict[str, float]:
    """responses/s at ``concurrency`` (after a warm-up batch, over about ``seconds`` at the ideal rate), the ideal
    and their ratio."""
    ideal = concurrency / (CALLS_PER_RESPONSE * delay)
    n = max(int(ideal * seconds), 4 * concurrency)

    async def run() -> float:
        await _score_all(min(n, 2 * concurrency), concurrency, base_url, "warm-up")
        return await _score_all(n, concurrency, base_url, "timed")

    rate = asyncio.run(run())
    return {"concurrency": concurrency, "responses": n, "per_s": rate, "ideal_per_s": ideal, "ratio": rate / ideal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.05, help="the fake judge's answer time (default: 0.05 s)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(args.delay))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    child, base_url = start_fake_judge(args.delay)
    try:
        print(f"fake judge at {base_url}, {args.delay * 1000:.0f} ms per answer; {os.cpu_count()} CPUs")
        print(f"{'concurrency':>11} {'responses':>9} {'responses/s':>11} {'ideal/s':>8} {'ratio':>6}")
        for c in args.concurrency:
            r = measure(c, base_url, args.delay)
            print(f"{c:>11} {r['responses']:>9} {r['per_s']:>11.1f} {r['ideal_per_s']:>8.1f} {r['ratio']:>6.2f}")
    finally:
        child.terminate()
        child.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
