"""Policy serving: a real uvicorn server on a loopback port, driven by an httpx
client, answers exactly what the loaded policy answers, refuses bad requests with a
4xx and a message (and keeps serving), and starts from the command line."""

import contextlib
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import uvicorn

import envs
from jaxrl import export, serve
from jaxrl.agents import ppo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """A sampling PPO policy for CartPole (initial parameters plus noise, so that
    actions depend on the observation and on the seed)."""
    env, env_params = envs.make("gymnax:CartPole-v1")
    config = ppo.PPOConfig(num_envs=2, rollout_len=8, total_steps=16, hidden_sizes=(16, 16))
    state = jax.jit(ppo.make_train(config, env, env_params).init)(
        jax.random.key(0), ppo.PPOHParams()
    )
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    noisy = [x + 0.5 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    state = state._replace(params=jax.tree.unflatten(tree, noisy))
    path = tmp_path_factory.mktemp("serve") / "cartpole"
    export.export_agent(
        ppo.AGENT, config, env, env_params, state, path, "gymnax:CartPole-v1", False
    )
    return path


@pytest.fixture(scope="module")
def policy(artifact):
    return export.load_policy(artifact)


@contextlib.contextmanager
def running(app):
    """An httpx client of a uvicorn server of ``app`` in a background thread, on a
    socket bound to a free loopback port before the server starts (no race for it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def client(artifact):
    with running(serve.make_app(artifact)) as http:
        yield http


def observations(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2.0, 2.0, (n, 4)).astype(np.float32)


def test_act_answers_the_loaded_policy(client, policy):
    obs = observations(8)
    for seed in (0, 7, 2**32 - 1):
        response = client.post("/act", json={"obs": obs[3].tolist(), "seed": seed})
        assert response.status_code == 200, response.text
        assert response.json() == {"action": int(policy(obs[3], seed=seed))}
        batch = client.post("/act", json={"obs": obs.tolist(), "seed": seed}).json()["action"]
        assert batch == policy(obs, seed=seed).tolist()
    default = client.post("/act", json={"obs": obs.tolist()}).json()["action"]
    assert default == policy(obs, seed=0).tolist()
    # The seed is used: over many observations two seeds differ somewhere.
    many = observations(64, seed=1).tolist()
    a, b = (client.post("/act", json={"obs": many, "seed": s}).json()["action"] for s in (1, 2))
    assert a != b


def test_spec_and_health(client, policy):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/spec").json() == policy.spec


BAD_REQUESTS = {
    # name: (body, status, part of the error message)
    "malformed JSON": (b'{"obs": [0, 0', 400, "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\xfa", 400, "not valid JSON"),
    "not an object": (b"[0, 0, 0, 0]", 400, "must be a JSON object"),
    "missing obs": (b'{"seed": 1}', 422, 'missing field "obs"'),
    "unknown field": (b'{"obs": [0, 0, 0, 0], "sed": 1}', 422, "unknown fields ['sed']"),
    "wrong shape": (b'{"obs": [0, 0, 0]}', 422, "shape (4,) or a batch of shape (B, 4); got"),
    "wrong batch shape": (b'{"obs": [[0, 0, 0]]}', 422, "got shape (1, 3)"),
    "empty batch": (b'{"obs": []}', 422, "got shape (0,)"),
    "ragged": (b'{"obs": [[0, 0, 0, 0], [0]]}', 422, "ragged"),
    "strings": (b'{"obs": ["a", "b", "c", "d"]}', 422, "float32 values"),
    "null": (b'{"obs": null}', 422, "float32 values"),
    "object": (b'{"obs": {"x": 1}}', 422, "float32 values"),
    "NaN": (b'{"obs": [0, NaN, 0, 0]}', 422, "finite"),
    "overflow": (b'{"obs": [0, 1e999, 0, 0]}', 422, "finite"),
    "seed string": (b'{"obs": [0, 0, 0, 0], "seed": "1"}', 422, "seed must be an int"),
    "seed float": (b'{"obs": [0, 0, 0, 0], "seed": 1.5}', 422, "seed must be an int"),
    "seed negative": (b'{"obs": [0, 0, 0, 0], "seed": -1}', 422, "seed must be an int"),
    "seed too large": (b'{"obs": [0, 0, 0, 0], "seed": 4294967296}', 422, "seed must be an int"),
    "deep nesting": (b'{"obs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "JSON"),
    "batch too large": (('{"obs": [' + "[0,0,0,0]," * 1024 + "[0,0,0,0]]}").encode(), 422, "max"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_requests_are_refused(client, name):
    body, status, message = BAD_REQUESTS[name]
    response = client.post("/act", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]


def test_unknown_routes_and_methods_answer_json(client):
    response = client.get("/act")
    assert response.status_code == 405 and "error" in response.json()
    assert "POST" in response.headers["allow"]
    response = client.post("/nope", json={})
    assert response.status_code == 404 and "error" in response.json()


def test_still_serves_after_bad_requests(client, policy):
    for body, status, _ in BAD_REQUESTS.values():
        assert client.post("/act", content=body).status_code == status
    obs = observations(3, seed=5)
    response = client.post("/act", json={"obs": obs.tolist(), "seed": 11})
    assert response.json()["action"] == policy(obs, seed=11).tolist()


def test_concurrent_requests(client, policy):
    obs = observations(5, seed=2)

    def one(seed: int):
        return client.post("/act", json={"obs": obs.tolist(), "seed": seed}).json()["action"]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(16)))
    assert answers == [policy(obs, seed=s).tolist() for s in range(16)]


def test_box_actions(tmp_path):
    """A continuous policy (written here, no agent): actions come back as lists of floats."""
    obs_space = envs.spaces.Box(-1.0, 1.0, (3,))
    action_space = envs.spaces.Box(-1.0, 1.0, (2,))
    weights = jnp.arange(6.0).reshape(3, 2) / 6.0

    def act(key, obs):
        noise = 0.1 * jax.random.normal(key, (obs.shape[0], 2))
        return jnp.tanh(obs @ weights + noise)

    path = export.export_policy(act, obs_space, action_space, tmp_path / "box", algo="linear")
    policy = export.load_policy(path)
    obs = np.array([[0.1, -0.2, 0.3], [0.5, 0.5, -0.5]], np.float32)
    with running(serve.make_app(path)) as test_client:
        single = test_client.post("/act", json={"obs": obs[0].tolist(), "seed": 3}).json()
        batch = test_client.post("/act", json={"obs": obs.tolist(), "seed": 3}).json()
        spec = test_client.get("/spec").json()
    np.testing.assert_array_equal(np.float32(single["action"]), policy(obs[0], seed=3))
    np.testing.assert_array_equal(np.float32(batch["action"]), policy(obs, seed=3))
    assert np.shape(batch["action"]) == (2, 2)
    assert spec["action"]["kind"] == "box" and spec["algo"] == "linear"


def test_main_parses_the_command_line(monkeypatch, artifact):
    calls = []
    monkeypatch.setattr(serve, "serve", lambda *args, **kwargs: calls.append((args, kwargs)))
    serve.main([str(artifact), "--port", "8123", "--max-batch-size", "8"])
    assert calls == [
        ((artifact, "127.0.0.1", 8123), {"max_batch_size": 8, "log_level": "info"}),
    ]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"port": 99999}, r"port=99999 is not allowed; it must be an int in \[1, 65535\]"),
        ({"port": -1}, "port=-1 is not allowed"),
        ({"port": 0}, "port=0 is not allowed"),
        ({"max_batch_size": 0}, "max_batch_size=0 is not allowed"),
        ({"log_level": "loud"}, "log_level='loud' is not allowed; it must be one of"),
    ],
)
def test_bad_server_settings_are_refused_before_anything_runs(monkeypatch, kwargs, message):
    """Before, --port 99999 listened on a random port while logging 99999 (issue 19)."""
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    with pytest.raises(ValueError, match=message):
        serve.serve("/nonexistent", **kwargs)


def test_command_line_server(artifact, policy):
    """``python -m jaxrl.serve ARTIFACT --port P`` in a subprocess, stopped after use."""
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "jaxrl.serve", str(artifact), "--port", str(port)]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "server did not start within 60 s"
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        obs = observations(2, seed=3).tolist()
        response = httpx.post(f"{url}/act", json={"obs": obs, "seed": 4}, timeout=30)
        assert response.json() == {"action": policy(np.float32(obs), seed=4).tolist()}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_batches_are_padded_to_powers_of_two_and_answer_the_same(artifact, policy):
    """Each new batch size used to compile once more, without bound; now at most
    log2(max_batch_size) + 1 sizes, and the answers do not change (issue 19)."""
    assert [serve.bucket(n, 1024) for n in (1, 2, 3, 5, 8, 9, 1000)] == [1, 2, 4, 8, 8, 16, 1024]
    assert serve.bucket(600, 1000) == 1000
    app = serve.make_app(artifact)
    with running(app) as http:
        for n in (3, 5, 6, 7):
            obs = observations(n, seed=n)
            answer = http.post("/act", json={"obs": obs.tolist(), "seed": n}).json()["action"]
            np.testing.assert_array_equal(answer, policy(obs, seed=n))
    assert app.state.policy._call._cache_size() == 3  # batches of 1 (warm), 4 and 8


def raw_request(port: int, head: str, body: bytes = b"", wait: float = 10.0) -> str:
    """Send ``head`` and ``body`` on a raw socket (no client fixes the headers) and read
    the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        return conn.recv(4096).decode().splitlines()[0]


def test_large_or_stalled_bodies_are_refused_without_reading_them(artifact, caplog):
    app = serve.make_app(artifact, max_body_bytes=1000, read_timeout=0.5)
    with running(app) as http:
        port = int(str(http.base_url).rsplit(":", 1)[1].strip("/"))
        declared = "POST /act HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        start = time.monotonic()
        status = raw_request(port, declared + "\r\nContent-Length: 1000000000")
        assert " 413 " in status and time.monotonic() - start < 5  # not 1 GB read first
        chunks = (b"[" + b"0," * 100 for _ in range(50))  # streamed: no Content-Length
        assert http.post("/act", content=chunks).status_code == 413
        start = time.monotonic()
        status = raw_request(port, declared + "\r\nContent-Length: 100", b'{"obs": [')
        assert " 408 " in status and time.monotonic() - start < 5
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:  # hang up
            conn.sendall(declared.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.3)
        assert http.get("/health").json() == {"status": "ok"}  # still serving
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert not errors, [r.getMessage() for r in errors]  # a hang-up is not an error


def rss_mb() -> float:
    """This process's resident memory (the server runs in a thread of it), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_abuse_stays_within_memory_and_small_requests_stay_fast(artifact, policy):
    """A bounded abuse run on loopback (issue 19): a 300 MB streamed upload, refused
    once it passes the 16 MiB limit, while small requests go on. Before, the whole
    body was buffered first (+409 MB here) and parsing blocked the event loop.
    Ceilings: at most 64 MB more memory; small requests answered within 1 s each."""
    obs = observations(1)[0].tolist()
    with running(serve.make_app(artifact)) as http:
        http.post("/act", json={"obs": obs})  # warm
        before = rss_mb()
        latencies, stop = [], threading.Event()

        def small_requests():
            while not stop.is_set():
                start = time.monotonic()
                assert http.post("/act", json={"obs": obs, "seed": 1}).status_code == 200
                latencies.append(time.monotonic() - start)

        def upload():
            chunk = b"0," * (2**20 // 2)  # 1 MB of a JSON array's inside, lazily
            yield b'{"obs": ['
            for _ in range(300):
                yield chunk

        worker = threading.Thread(target=small_requests)
        worker.start()
        try:
            with httpx.Client(base_url=http.base_url, timeout=60) as big:
                try:
                    status = big.post("/act", content=upload()).status_code
                except (httpx.RemoteProtocolError, httpx.WriteError):
                    status = "closed"  # it answered 413 and closed while we still sent
        finally:
            time.sleep(0.5)
            stop.set()
            worker.join(timeout=30)
        assert status in (413, "closed")
        grown = rss_mb() - before
        assert grown < 64, f"memory grew by {grown:.0f} MB"
        assert latencies and max(latencies) < 1.0, f"slowest small request {max(latencies):.2f} s"
        assert http.get("/health").json() == {"status": "ok"}
