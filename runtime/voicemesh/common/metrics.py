"""Prometheus metrics every voicemesh process exports on its own /metrics port.

One registry per process (prometheus_client's default, which also carries the process collector:
resident memory, CPU seconds, open fds). Stage latencies are histograms so P50/P95/P99 can be read
with ``histogram_quantile``; the ``stage`` label names the hop and the moment, e.g.
``gateway.first_audio`` or ``stt.final_decode``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip

RPCS = Counter("voicemesh_rpcs", "Finished RPCs by method and status code.", ["method", "code"])
ACTIVE_RPCS = Gauge("voicemesh_active_rpcs", "RPCs (streams) in progress.", ["method"])
RPC_SECONDS = Histogram(
    "voicemesh_rpc_duration_seconds", "Wall time of each RPC.", ["method"], buckets=LATENCY_BUCKETS
)
STAGE_SECONDS = Histogram(
    "voicemesh_stage_seconds", "Latency of each stage of a turn.", ["stage"], buckets=LATENCY_BUCKETS
)
TOKENS = Counter("voicemesh_tokens_generated", "Reply tokens generated.", ["tier"])
SENTENCES = Counter("voicemesh_sentences_synthesized", "Sentences turned into speech.")
WORK_STOPPED = Counter(
    "voicemesh_work_stopped",
    "Model work stopped early because its caller cancelled (the work itself, not just the sending).",
    ["kind"],
)
BREAKER_STATE = Gauge(
    "voicemesh_breaker_state",
    "Circuit breaker per downstream replica: 0 closed, 1 half-open, 2 open.",
    ["service", "replica"],
)
DOWNSTREAM_IN_FLIGHT = Gauge(
    "voicemesh_downstream_in_flight",
    "Gateway calls in flight to each downstream (its slots in use).",
    ["service"],
)
DOWNSTREAM_QUEUED = Gauge(
    "voicemesh_downstream_queued", "Gateway calls waiting for a slot of each downstream.", ["service"]
)
LLM_SEQUENCES = Gauge(
    "voicemesh_llm_sequences", "Turns the embedded model is decoding now (its slots in use)."
)
LLM_THREADS = Gauge(
    "voicemesh_llm_threads", "Threads the embedded model's decode steps use now (automatic: the idle cores)."
)
LLM_QUEUED = Gauge("voicemesh_llm_queued", "Turns waiting for a slot of the embedded model.")
LLM_QUEUE_SECONDS = Histogram(
    "voicemesh_llm_queue_seconds",
    "How long a turn waited for a slot of the embedded model.",
    buckets=LATENCY_BUCKETS,
)
LLM_BATCH_SEQUENCES = Histogram(
    "voicemesh_llm_batch_sequences",
    "Turns given a token by one decode step of the embedded model (more than 1: decoded together).",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
)
LLM_STEP_SECONDS = Histogram(
    "voicemesh_llm_step_seconds",
    "Wall time of one decode step of the embedded model (all its turns at once).",
    buckets=LATENCY_BUCKETS,
)
LLM_PROMPT_TOKENS = Counter(
    "voicemesh_llm_prompt_tokens",
    "Prompt tokens of the embedded model's turns: 'computed' (prefill) or 'cached' (KV state kept "
    "from an earlier turn with the same start).",
    ["source"],
)
TURNS_SHED = Counter(
    "voicemesh_turns_shed",
    "Turns the core refused for load, by the limit: 'queue_full', 'queue_wait' (no slot in time), "
    "'deadline' (the caller's is nearer than the wait), 'first_token' (admitted, but its prompt not "
    "read in time).",
    ["reason"],
)
BARGE_INS = Counter("voicemesh_barge_ins", "Replies interrupted because the user spoke over them.")
ENDPOINTS = Counter(
    "voicemesh_stt_endpoints",
    "Utterances ended, by endpointing mode and by what ended them: 'turn' (a pause judged finished: "
    "early), 'silence' (in semantic mode, the wait after a pause judged unfinished ran out: late), "
    "'length' or 'end_of_stream'.",
    ["mode", "ended_by"],
)
TURN_JUDGEMENTS = Counter(
    "voicemesh_stt_turn_judgements",
    "Pauses judged in semantic mode, by verdict: 'sound_complete' ends the turn, "
    "'words_unfinished' and 'sound_unfinished' wait for more speech; a pause that sounded unfinished "
    "is heard again at the fixed silence ('…_on_second_look').",
    ["reason"],
)
WHISPER_DECODES = Counter(
    "voicemesh_whisper_decodes_total",
    "Whisper decodes by threads: 'many' on an idle box, 'one' beside other work (spare_cores).",
    ["threads"],
)
SPECULATIONS = Counter(
    "voicemesh_stt_speculations",
    "Utterances decoded in a pause before the endpoint: 'used' as the final, or 'wasted'.",
    ["outcome"],
)
PREEMPTIVE = Counter(
    "voicemesh_preemptive_turns", "Replies started on a speculative transcript, by outcome.", ["outcome"]
)

SESSION_STORE_DEGRADED = Gauge(
    "voicemesh_session_store_degraded", "1 while Redis is down and sessions are kept in process."
)
HISTORY_QUEUED = Gauge("voicemesh_history_queued", "Turns waiting to be written to the history store.")
HISTORY_WRITES = Counter(
    "voicemesh_history_writes", "History writes: 'ok', 'retried' (store failed), 'dropped'.", ["result"]
)
RECORDS_QUEUED = Gauge("voicemesh_records_queued", "Turn records the gateway has queued for the core.")
RECORDS_SENT = Counter(
    "voicemesh_records_sent",
    "Turn records sent to the core: 'ok', 'retried' (it failed or was busy), 'refused', 'dropped'.",
    ["result"],
)
BACKGROUND_RESTARTS = Counter(
    "voicemesh_background_restarts", "Background loops that died of a bug and were started again.", ["task"]
)
REPLY_CACHE = Counter(
    "voicemesh_reply_cache_lookups", "Reply cache lookups by result ('hit' or 'miss').", ["where", "result"]
)


def scrape(address: str, timeout_s: float = 5.0) -> dict[str, float]:
    """Another process's /metrics as {'name{labels}': value}: for tests, benchmarks and the CLI."""
    import urllib.request

    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout_s).read().decode()
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(value) for name, value in samples}


def serve_metrics(host: str, port: int) -> str:
    """Start the /metrics HTTP endpoint on a daemon thread; returns ``host:port`` (port 0 picks one)."""
    server, _thread = start_http_server(port, addr=host)
    return f"{host}:{server.server_port}"


AUTH_REFUSED = Counter(
    "voicemesh_auth_refused",
    "Calls refused at the gateway for their credential, by the check that failed.",
    ["reason"],
)
VOICE_TURNS = Counter(
    "voicemesh_voice_turns",
    "Spoken turns of users with a voice print, by the speaker check's outcome (match, no_match and "
    "too_short where a match is required; not_required; unknown or unchecked: the print was unreadable).",
    ["verdict"],
)
