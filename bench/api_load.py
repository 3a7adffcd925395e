"""Load generators for bench/api.py: wrk (closed loop, max throughput) and an aiohttp client
(closed loop, or open loop at a fixed rate with latency counted from each scheduled send time).

    python bench/api_load.py SPEC   # the aiohttp client's own process; prints a Result as JSON
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    requests: int = 0
    seconds: float = 0.0
    p50: float = 0.0  # ms
    p99: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # % of one core, per process group

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True)
class Target:
    label: str
    paths: Path  # one request path per line; each request takes one at random
    method: str = "GET"
    body: str = ""
    token: str = ""


WRK_LUA = r"""
local paths, method, headers, body = {}, "GET", {}, nil
local counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  method = args[2]
  if args[3] ~= "" then headers["Authorization"] = "Bearer " .. args[3] end
  if args[4] ~= nil and args[4] ~= "" then body = args[4]; headers["Content-Type"] = "application/json" end
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end
function request() return wrk.format(method, paths[math.random(#paths)], headers, body) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def run_wrk(base: str, target: Target, seconds: float, connections: int, threads: int, work: Path) -> Result:
    script = work / "bench.lua"
    script.write_text(WRK_LUA)
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "10s",
           "-s", str(script), base, "--", str(target.paths), target.method, target.token, target.body]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"wrk printed no result:\n{out}")
    r = json.loads(line[6:])
    errors = {k: r[k] for k in ("connect", "read", "write", "timeout") if r[k]}
    if r["status"]:
        errors["non-2xx"] = r["status"]
    return Result(requests=r["requests"], seconds=r["duration_us"] / 1e6, p50=r["p50_us"] / 1000,
                  p99=r["p99_us"] / 1000, errors=errors)


def run_client(base: str, target: Target, seconds: float, connections: int, rate: float | None) -> Result:
    """The aiohttp load generator, in its own process (`--load-client SPEC`)."""
    spec = {"base": base, "paths": str(target.paths), "method": target.method, "body": target.body,
            "token": target.token, "seconds": seconds, "connections": connections, "rate": rate}
    out = subprocess.run([sys.executable, __file__, json.dumps(spec)],
                         capture_output=True, text=True, check=True).stdout
    return Result(**json.loads(out.splitlines()[-1]))


def load_client(spec: dict) -> None:
    """Closed loop over `connections` (rate None) or open loop at `rate`: prints a Result as JSON."""
    import random

    import aiohttp

    paths = Path(spec["paths"]).read_text().split()
    headers = {"Authorization": f"Bearer {spec['token']}"} if spec["token"] else {}
    body = spec["body"].encode() or None
    if body:
        headers["Content-Type"] = "application/json"
    latencies: list[float] = []
    errors: dict[str, int] = {}

    async def one(http: aiohttp.ClientSession, since: float) -> None:
        try:
            async with http.request(spec["method"], spec["base"] + random.choice(paths),
                                    headers=headers, data=body) as resp:
                await resp.read()
                if not 200 <= resp.status < 300:
                    errors[str(resp.status)] = errors.get(str(resp.status), 0) + 1
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return
        latencies.append(time.perf_counter() - since)

    async def main() -> float:
        connector = aiohttp.TCPConnector(limit=spec["connections"])
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            start = time.perf_counter()
            end = start + spec["seconds"]
            if spec["rate"] is None:
                async def worker() -> None:
                    while (now := time.perf_counter()) < end:
                        await one(http, now)
                await asyncio.gather(*(worker() for _ in range(spec["connections"])))
            else:
                tasks, interval = [], 1.0 / spec["rate"]
                for i in range(int(spec["seconds"] * spec["rate"])):
                    scheduled = start + i * interval
                    if (delay := scheduled - time.perf_counter()) > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one(http, scheduled)))
                await asyncio.gather(*tasks)
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0

    print(json.dumps({"requests": len(latencies) + sum(errors.values()), "seconds": elapsed,
                      "p50": pct(50), "p99": pct(99), "errors": errors}))


if __name__ == "__main__":
    load_client(json.loads(sys.argv[1]))
