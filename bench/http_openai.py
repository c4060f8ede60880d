#!/usr/bin/env python3
"""The openai Python client (AsyncOpenAI) on the same job as http_bench:
N completions at a given number in flight.  Prints "<wall s> <cpu s> <ok> <failed>"."""
import asyncio
import resource
import sys
import time

import httpx
from openai import AsyncOpenAI


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def main():
    endpoint, n, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = AsyncOpenAI(base_url=endpoint, api_key="none", max_retries=2,
                         http_client=httpx.AsyncClient(limits=limits, timeout=600))
    sem = asyncio.Semaphore(concurrency)
    ok = failed = 0

    async def one(i):
        nonlocal ok, failed
        async with sem:
            try:
                await client.completions.create(model="mock", prompt="What is 2+2?", max_tokens=16,
                                                temperature=0.7, top_p=0.95, seed=1000 + i, n=1)
                ok += 1
            except Exception:
                failed += 1

    c0, w0 = cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    w1, c1 = time.perf_counter(), cpu_seconds()
    print(f"{w1 - w0:.4f} {c1 - c0:.4f} {ok} {failed}")


asyncio.run(main())
